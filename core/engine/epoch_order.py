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
class EpochShare:
    """The batches (micro-batches under gradient accumulation) of an epoch from `start` on: sizes[k] samples in
    global batch k, of which this worker trains its part."""

    start: int
    sizes: np.ndarray  # samples of each global batch, over all workers
    world_size: int

    @classmethod
    def plan(cls, rows: int, start: int, world_size: int, batch_size: int) -> "EpochShare":
        """Global batches of world_size * batch_size samples; a last partial one of fewer samples than workers is
        trained with the batch before it, so that every worker has a part of every batch."""
        left = rows - start
        if left < world_size:
            where = f"the train split has {rows} rows" if start == 0 else f"the checkpoint leaves {left} of the epoch's {rows} samples"
            raise ValueError(f"{where}, fewer than the {world_size} workers: each worker needs a part of every batch")
        full, rest = divmod(left, world_size * batch_size)
        sizes = [world_size * batch_size] * full + ([rest] if rest else [])
        if rest and rest < world_size and full:
            sizes = sizes[:-2] + [world_size * batch_size + rest]
        return cls(start, np.asarray(sizes, dtype=np.int64), world_size)

    def worker_rows(self, order: np.ndarray, rank: int) -> tuple[np.ndarray, list[int]]:
        """This worker's rows in the order it trains them, and how many of them each of its batches holds."""
        bounds = self.start + np.concatenate([[0], np.cumsum(self.sizes)])
        parts = [np.array_split(order[low:high], self.world_size)[rank] for low, high in zip(bounds[:-1], bounds[1:])]
        return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)), [len(part) for part in parts]

    def position_after(self, batches: int) -> int:
        """The epoch's position once the first `batches` global batches from the start are trained."""
        return self.start + int(self.sizes[:batches].sum())
