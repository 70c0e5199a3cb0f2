"""An epoch's sample order that does not depend on the number of workers, and each worker's share of it.

With train.checkpoint_every a run may stop inside an epoch and go on with another number of
workers. What it goes on from is one number, the samples of the epoch's order already trained
(its position): the order is drawn from (seed, epoch) alone, and the global steps after the
position take its samples in turn, each worker a contiguous part of each step. Every sample of the
epoch is then trained once, whatever the world size before and after.

The order shuffles the shards, then the rows inside windows of consecutive shards of at least
`window_rows` rows: a read task finds its rows in a few shards instead of all of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_ORDER_STREAM = 0x5EED_0DE7  # keeps the order's generator apart from the other streams drawn from the seed


def epoch_order(shard_rows: list[int], seed: int, epoch: int, window_rows: int) -> np.ndarray:
    """The epoch's rows as indices into the split's shards laid end to end (in the manifest's order)."""
    rng = np.random.default_rng([_ORDER_STREAM, seed, epoch])
    starts = np.concatenate([[0], np.cumsum(shard_rows)[:-1]]).astype(np.int64)
    order: list[np.ndarray] = []
    window: list[np.ndarray] = []
    for shard in rng.permutation(len(shard_rows)):
        window.append(np.arange(starts[shard], starts[shard] + shard_rows[shard]))
        if sum(len(rows) for rows in window) >= window_rows:
            order.append(rng.permutation(np.concatenate(window)))
            window = []
    if window:
        order.append(rng.permutation(np.concatenate(window)))
    return np.concatenate(order) if order else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Batching:
    """How the samples of one optimizer step are trained at a world size: the global batch stays the configured one
    (train.batch_size x train.grad_accumulation x the configured, or elastic MAX, workers), so the learning rate means
    the same at any size; fewer workers take more batches of at most train.batch_size each."""

    global_batch: int  # samples of one optimizer step, over all workers
    accumulation: int  # batches each worker adds up into one optimizer step
    world_size: int

    @classmethod
    def at(cls, batch_size: int, grad_accumulation: int, configured_workers: int, world_size: int) -> "Batching":
        global_batch = batch_size * grad_accumulation * configured_workers
        return cls(global_batch, max(1, -(-global_batch // (world_size * batch_size))), world_size)

    @classmethod
    def of(cls, config: Any, world_size: int) -> "Batching":
        """A (stage's) ExperimentConfig's batching at this world size. Without train.checkpoint_every the batches are
        train.batch_size each, as Ray Train's split of the stream (or a caller's) hands them over."""
        train = config.train
        configured = config.scaling.max_workers if train.checkpoint_every is not None else world_size
        return cls.at(train.batch_size, train.grad_accumulation, configured, world_size)

    @property
    def batch_size(self) -> int:
        """The most samples a worker's batch holds."""
        return -(-self.global_batch // (self.world_size * self.accumulation))


@dataclass(frozen=True)
class EpochShare:
    """The batches of an epoch from `start` on: sizes[k] samples in global batch k, of which each worker trains its
    part (they differ by at most one sample); `accumulation` global batches make an optimizer step."""

    start: int
    sizes: np.ndarray  # samples of each global batch, over all workers
    world_size: int

    @classmethod
    def plan(cls, rows: int, start: int, batching: Batching) -> "EpochShare":
        """Optimizer steps of batching.global_batch samples, each in `accumulation` global batches; a last partial step of
        fewer samples than workers is trained with the step before it, so that every worker has a part of every batch."""
        left, world_size = rows - start, batching.world_size
        if left < world_size:
            where = f"the train split has {rows} rows" if start == 0 else f"the checkpoint leaves {left} of the epoch's {rows} samples"
            raise ValueError(f"{where}, fewer than the {world_size} workers: each worker needs a part of every batch")
        full, rest = divmod(left, batching.global_batch)
        steps = [batching.global_batch] * full + ([rest] if rest else [])
        if rest and rest < world_size and full:
            steps = steps[:-2] + [batching.global_batch + rest]
        sizes = [part for step in steps for part in _split(step, min(batching.accumulation, step // world_size))]
        return cls(start, np.asarray(sizes, dtype=np.int64), world_size)

    def worker_rows(self, order: np.ndarray, rank: int) -> tuple[np.ndarray, list[int]]:
        """This worker's rows in the order it trains them, and how many of them each of its batches holds."""
        bounds = self.start + np.concatenate([[0], np.cumsum(self.sizes)])
        parts = [np.array_split(order[low:high], self.world_size)[rank] for low, high in zip(bounds[:-1], bounds[1:])]
        return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)), [len(part) for part in parts]

    def position_after(self, batches: int) -> int:
        """The epoch's position once the first `batches` global batches from the start are trained."""
        return self.start + int(self.sizes[:batches].sum())


def _split(samples: int, parts: int) -> list[int]:
    return [samples // parts + (index < samples % parts) for index in range(parts)]
