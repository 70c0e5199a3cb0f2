"""The model wrapped for scaling.strategy: DDP through Ray Train, or a DeepSpeed ZeRO engine; and its checkpoints.

Under DeepSpeed each worker holds only its partition of the optimizer state (ZeRO 1), of the
gradients (2) and of the parameters (3), so every worker writes its own shard into the
checkpoint (DEEPSPEED_DIR) and reads its own back. state.pt beside it still holds the whole
model, gathered, so that jobs.evaluate and start_from read any checkpoint alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import ray.train.torch
import torch
from torch import nn

from core.config.schema import ExperimentConfig
from core.engine.optim import build_optimizer
from core.engine.steppers import is_deepspeed

DEEPSPEED_DIR = "deepspeed"
TAG = "state"


def wrap(module: nn.Module, config: ExperimentConfig) -> tuple[nn.Module, torch.optim.Optimizer]:
    """(the model to train, the optimizer whose param_groups carry the learning rate)."""
    optimizer = build_optimizer(config.train.optimizer, [p for p in module.parameters() if p.requires_grad])
    if config.scaling.strategy == "ddp":
        return ray.train.torch.prepare_model(module), optimizer  # wrapped again each stage: DDP takes what trains now
    import deepspeed

    if config.train.precision == "fp16" and not deepspeed_runs_fp16():
        raise ValueError("train.precision=fp16 with scaling.strategy=deepspeed: DeepSpeed has no fp16 on this worker's device "
                         "(a CPU needs AVX512-FP16 or AMX-FP16); use train.precision=bf16 here, or fp16 on GPUs")
    engine, _, _, _ = deepspeed.initialize(model=module.to(ray.train.torch.get_device()), optimizer=optimizer,
                                           config=deepspeed_config(config), dist_init_required=False)
    return engine, optimizer


def deepspeed_runs_fp16() -> bool:
    """Whether DeepSpeed's accelerator here (CUDA, or the CPU by its instruction set) takes fp16."""
    from deepspeed.accelerator import get_accelerator

    return torch.float16 in get_accelerator().supported_dtypes()


def deepspeed_config(config: ExperimentConfig) -> dict[str, Any]:
    train = config.train
    return {
        "train_micro_batch_size_per_gpu": train.batch_size,
        "gradient_accumulation_steps": train.grad_accumulation,
        "gradient_clipping": train.grad_clip or 0.0,
        "zero_optimization": {"stage": config.scaling.zero_stage},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,  # the run prints its own line per epoch
        **(_DEEPSPEED_FP16 if train.precision == "fp16" else {}),
    }


# DeepSpeed's own mixed precision: the model in fp16 (inputs cast at its forward; auto_cast acts even with fp16 off,
# hence all or nothing), fp32 master weights, a dynamic loss scale that skips overflowing steps and is saved in every
# shard. Buffers too, as module.half() would: normalisation layers refuse fp16 weights beside fp32 statistics.
# Its torch_autocast setting left the weights unchanged under ZeRO 2 on the CPU (0.19.8); bf16 through it trained.
_DEEPSPEED_FP16 = {"fp16": {"enabled": True, "auto_cast": True}, "data_types": {"buffer_dtype": "fp16"}}


def loss_scale(model: nn.Module, scaler: torch.amp.GradScaler) -> float:
    """fp16's current loss scale: DeepSpeed's own, or the scaler's under DDP."""
    return float(model.optimizer.loss_scale) if is_deepspeed(model) else scaler.get_scale()


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def full_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state on every worker (a collective under ZeRO 3, which partitions the parameters)."""
    module = unwrap(model)
    if is_deepspeed(model) and model.zero_optimization_stage() == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            return {name: value.detach().cpu().clone() for name, value in module.state_dict().items()}
    return module.state_dict()


def save_shards(model: nn.Module, folder: Path) -> None:
    """Every worker's partition of the DeepSpeed state into folder/DEEPSPEED_DIR (a collective); nothing under DDP."""
    if is_deepspeed(model):
        model.save_checkpoint(str(folder / DEEPSPEED_DIR), tag=TAG)


def load_shards(model: nn.Module, folder: Path) -> None:
    """This worker's partition back, from a checkpoint folder holding every worker's shard."""
    model.load_checkpoint(str(folder / DEEPSPEED_DIR), tag=TAG, load_optimizer_states=True, load_lr_scheduler_states=False)
