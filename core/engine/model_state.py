"""What a wrapped model (plain, DDP, or a DeepSpeed ZeRO engine) saves into a checkpoint and reads back.

Under DeepSpeed each worker holds only its partition of the optimizer state (ZeRO 1), of the
gradients (2) and of the parameters (3), so every worker writes its own shard into the
checkpoint (DEEPSPEED_DIR) and reads its own back. state.pt beside it still holds the whole
model, gathered, so that jobs.evaluate and start_from read any checkpoint alike.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from core.engine.steppers import is_deepspeed

DEEPSPEED_DIR = "deepspeed"
TAG = "state"


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
