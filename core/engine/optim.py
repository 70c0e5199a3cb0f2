"""Optimizers and learning-rate schedules from config."""
from __future__ import annotations

from typing import Iterable

import torch

from core.config.sections import OptimizerConfig, PlateauConfig


def build_optimizer(config: OptimizerConfig, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if config.name == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def build_plateau(config: PlateauConfig | None, optimizer: torch.optim.Optimizer,
                  mode: str = "max") -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """On the task's monitored validation metric; mode: which way it improves."""
    if config is None:
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, patience=config.patience, factor=config.factor,
                                                      min_lr=config.min_lr)


def apply_hyperparameters(config: OptimizerConfig, optimizer: torch.optim.Optimizer) -> None:
    """Set the config's values on an optimizer whose state came from elsewhere (a PBT donor's checkpoint)."""
    for group in optimizer.param_groups:
        group["lr"] = config.lr
        group["weight_decay"] = config.weight_decay
        if "momentum" in group:
            group["momentum"] = config.momentum
