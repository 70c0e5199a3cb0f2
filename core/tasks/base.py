"""What a task owns: its model, how a batch becomes inputs and targets, its losses, metrics and images.

Everything else (loops, distribution, checkpoints, logging) is shared and knows no task.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from core.tasks.columns import Column


class MetricState(Protocol):
    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None: ...

    def all_reduce(self) -> "MetricState":
        """Combine the states of all workers so that every worker holds the global figures."""

    def compute(self) -> dict[str, float]: ...

    def baselines(self) -> dict[str, float]:
        """The same metrics for trivial predictors on the same data, to read the result against."""


class Task(Protocol):
    config_class: type  # its section of the config (a core.config.sections.TaskSection with name: Literal[...])
    columns: list[Column]  # the data set columns this task reads, with their kinds
    inputs: list[str]  # the columns its model sees
    monitor: str  # the validation metric that ranks checkpoints
    monitor_mode: str  # "max" or "min": which way the monitored metric improves
    # optional: metric_modes, {"val/<metric>": "max" | "min"}, which way each of its other metrics improves (jobs.report)
    loss_weights: dict[str, float]  # the configured losses by name, 0 for one that is off; losses() returns exactly these

    def __init__(self, config: Any, manifest: dict[str, Any]): ...

    def build_model(self) -> nn.Module: ...

    def split_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> tuple[Any, Any]:
        """(model inputs, targets): a tensor or a dict of tensors each; the first dimension is the batch."""

    def losses(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted losses by name; the engine applies loss_weights and sums."""

    def new_metrics(self) -> MetricState: ...

    def previews(self, inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> list[np.ndarray]:
        """HxWx3 uint8 images, one per sample, showing input, truth and prediction side by side."""


def loss_weights(weights: dict[str, float], known: tuple[str, ...], task: str) -> dict[str, float]:
    """The configured losses, after refusing names the task does not have. A loss at weight 0 stays: it is
    computed and logged beside the others, so a reader of the run sees that it was off."""
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise ValueError(f"task.loss.weights names {unknown}; the {task} task's losses are {list(known)}")
    return dict(weights)


def weighted_sum(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """The loss the optimizer follows: the terms that are on, weighted (a term that is off adds nothing, not 0 x NaN)."""
    return sum(weights[name] * value for name, value in losses.items() if weights[name] > 0)


def batch_length(inputs: Any) -> int:
    """Samples in a task's model inputs (a tensor, or a dict of tensors)."""
    return len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)
