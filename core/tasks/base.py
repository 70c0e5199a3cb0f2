"""What a task owns: its model, how a batch becomes inputs and targets, its losses, metrics and images.

Everything else (loops, distribution, checkpoints, logging) is shared and knows no task.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import nn


class MetricState(Protocol):
    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None: ...

    def all_reduce(self) -> "MetricState":
        """Combine the states of all workers so that every worker holds the global figures."""

    def compute(self) -> dict[str, float]: ...

    def baselines(self) -> dict[str, float]:
        """The same metrics for trivial predictors on the same data, to read the result against."""


class Task(Protocol):
    columns: list[str]  # data set columns this task reads
    monitor: str  # the validation metric that ranks checkpoints
    monitor_mode: str  # "max" or "min": which way the monitored metric improves
    loss_weights: dict[str, float]  # the losses that are on, by name; losses() returns exactly these

    def __init__(self, config: Any, manifest: dict[str, Any]): ...

    def build_model(self) -> nn.Module: ...

    def split_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> tuple[Any, Any]:
        """(model inputs, targets): a tensor or a dict of tensors each; the first dimension is the batch."""

    def losses(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted losses by name; the engine applies loss_weights and sums."""

    def new_metrics(self) -> MetricState: ...

    def previews(self, inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> list[np.ndarray]:
        """HxWx3 uint8 images, one per sample, showing input, truth and prediction side by side."""


def active_losses(weights: dict[str, float], known: tuple[str, ...], task: str) -> dict[str, float]:
    """The configured losses with weight > 0, after refusing names the task does not have."""
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise ValueError(f"task.loss.weights names {unknown}; the {task} task's losses are {list(known)}")
    return {name: weight for name, weight in weights.items() if weight > 0}


def batch_length(inputs: Any) -> int:
    """Samples in a task's model inputs (a tensor, or a dict of tensors)."""
    return len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)
