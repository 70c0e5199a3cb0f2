"""The model wrapped for scaling.strategy: DDP through Ray Train, or a DeepSpeed ZeRO engine.

What a wrapped model saves and loads, under either, is core.engine.model_state's.
"""
from __future__ import annotations

from typing import Any

import ray.train.torch
import torch
from torch import nn

from core.config.schema import ExperimentConfig
from core.engine.optim import build_optimizer

# The op DeepSpeed's CPU accelerator compiles, a C++ extension, when its communication starts: 35 s of g++ here, once
# per Python environment, on every node. Only its inference all-reduce uses it; training reduces through torch.
_INFERENCE_ALL_REDUCE_OP = "deepspeed_shm_comm"


def wrap(module: nn.Module, config: ExperimentConfig) -> tuple[nn.Module, torch.optim.Optimizer]:
    """(the model to train, the optimizer whose param_groups carry the learning rate)."""
    optimizer = build_optimizer(config.train.optimizer, [p for p in module.parameters() if p.requires_grad])
    if config.scaling.strategy == "ddp":
        return ray.train.torch.prepare_model(module), optimizer  # wrapped again each stage: DDP takes what trains now
    if config.train.precision == "fp16" and not deepspeed_runs_fp16():
        raise ValueError("train.precision=fp16 with scaling.strategy=deepspeed: DeepSpeed has no fp16 on this worker's device "
                         "(a CPU needs AVX512-FP16 or AMX-FP16); use train.precision=bf16 here, or fp16 on GPUs")
    return deepspeed_engine(module.to(ray.train.torch.get_device()), optimizer, config), optimizer


def deepspeed_engine(module: nn.Module, optimizer: torch.optim.Optimizer, config: ExperimentConfig):
    """A ZeRO engine in the process group already started, without building DeepSpeed's inference all-reduce."""
    import deepspeed
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__[_INFERENCE_ALL_REDUCE_OP] = False  # DeepSpeed's own table of what it may build
    engine, _, _, _ = deepspeed.initialize(model=module, optimizer=optimizer, config=deepspeed_config(config),
                                           dist_init_required=False)
    return engine


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
