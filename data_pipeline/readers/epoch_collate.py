"""A training batch's per-epoch work, done in Ray Data's prefetch thread so that the step does not wait for it:
the task's draws (the implicit task's training points) and then augmentation, each seeded by (seed, epoch, sample)."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from ray.data.collate_fn import NumpyBatchCollateFn

from core.augmentation.augment import augment_batch
from core.config.sections import AugmentConfig
from core.tasks.columns import Column

Draw = Callable[[dict[str, np.ndarray], int, int], dict[str, np.ndarray]]


class EpochCollate(NumpyBatchCollateFn):
    def __init__(self, augment: AugmentConfig | None, draw: Draw | None, columns: list[Column], seed: int, epoch: int,
                 ignore_index: int):
        self.augment, self.draw, self.columns = augment, draw, columns
        self.seed, self.epoch, self.ignore_index = seed, epoch, ignore_index

    @classmethod
    def of(cls, task: Any, augment: AugmentConfig | None, seed: int, epoch: int, ignore_index: int) -> "EpochCollate | None":
        """The collate a task's training batches need in this epoch, or None where they need none."""
        draw = getattr(task, "draw_train", None)
        return cls(augment, draw, task.columns, seed, epoch, ignore_index) if augment or draw else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        if self.draw is not None:
            batch = self.draw(batch, self.seed, self.epoch)
        if self.augment:
            return augment_batch(batch, self.columns, self.augment, self.seed, self.epoch, self.ignore_index)
        # Ray Data hands over read-only views of its blocks; torch wants arrays it may write to
        return {name: torch.from_numpy(np.require(values, requirements=["C", "W"])) for name, values in batch.items()}


def in_sizes(batches: Iterable[dict[str, torch.Tensor]], sizes: list[int]) -> Iterator[dict[str, torch.Tensor]]:
    """The batches' rows regrouped into batches of these sizes: a worker's parts of an epoch's batches differ by a
    sample, and the last may be larger than the rest (core.engine.epoch_order)."""
    iterator = iter(batches)
    held: list[dict[str, torch.Tensor]] = []
    rows = 0
    for size in sizes:
        while rows < size:
            part = next(iterator, None)
            if part is None:
                raise RuntimeError(f"the epoch's stream ended {size - rows} rows short of a batch of {size}")
            held.append(part)
            rows += _length(part)
        merged = held[0] if len(held) == 1 else {name: torch.cat([part[name] for part in held]) for name in held[0]}
        yield merged if rows == size else {name: values[:size] for name, values in merged.items()}
        held = [] if rows == size else [{name: values[size:] for name, values in merged.items()}]
        rows -= size
    if next(iterator, None) is not None or rows:
        raise RuntimeError("the epoch's stream holds more rows than its batches")


def _length(batch: dict[str, torch.Tensor]) -> int:
    return len(next(iter(batch.values())))
