"""Checkpoints inside an epoch (train.checkpoint_every): when one is due, and what a run goes on from inside an epoch.

A mid-epoch checkpoint is a whole one (weights, optimizer, components, random state) whose
Progress also holds `inside`: the epoch it stopped in, its position in the epoch's order
(core.engine.epoch_order), the epoch's tally so far (core.engine.epoch_tally) and the key of the
train split it was drawn from. Its record carries the epoch as a fraction (2.5: half of the third
epoch trained), so that Ray Train's ranking by epoch, and --resume's choice of the latest, place it
between the epochs around it.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import torch

from core.config.sections import CheckpointEvery
from core.engine.distributed import all_reduce_sum, rank
from core.engine.epoch_order import EpochShare
from core.engine.epoch_tally import EpochTally


def split_key(manifest: dict[str, Any]) -> str:
    """What the epoch order of the train split depends on: its shards and their rows."""
    shards = [(shard["path"], shard["rows"], shard.get("sha256")) for shard in manifest["splits"]["train"]["shards"]]
    return hashlib.sha256(json.dumps(shards).encode()).hexdigest()[:16]


def check_same_split(inside: dict[str, Any], manifest: dict[str, Any], source: str) -> None:
    """ValueError when a mid-epoch checkpoint was saved on another train split than the one the run would read now."""
    if inside["data"] != split_key(manifest):
        raise ValueError(f"{source} stopped inside epoch {inside['epoch'] + 1} at sample {inside['samples']} of a train split "
                         f"other than the one at data.uri now (its shards or their rows differ): the rest of that epoch "
                         "cannot be told apart. Resume with the data set it was trained on, or start a new run")


def resumed_inside(inside: dict[str, Any] | None, epoch: int) -> tuple[int, EpochTally]:
    """(position, tally) the epoch goes on from: a mid-epoch checkpoint's for this epoch, else its start. Rank 0 carries
    the tally of every worker before; the others start from zero, so that the sum over workers stays right."""
    if inside is None or inside["epoch"] != epoch:
        return 0, EpochTally()
    return inside["samples"], EpochTally.from_state(inside["tally"]) if rank() == 0 else EpochTally()


class MidEpochSchedule:
    """Says, after each optimizer step, whether a checkpoint is due and where in the epoch the run then stands."""

    def __init__(self, every: CheckpointEvery, share: EpochShare, grad_accumulation: int, device: torch.device,
                 clock=time.monotonic):
        self.every, self.share, self.accumulation, self.device, self._clock = every, share, grad_accumulation, device, clock
        self._last = clock()

    def due(self, run_step: int, epoch_step: int) -> int | None:
        """The epoch's position after this step if a checkpoint is due here; None otherwise, and at the epoch's last
        step, whose checkpoint the epoch's end writes. Every rank calls it at every step (minutes: rank 0's clock decides)."""
        batches = min(epoch_step * self.accumulation, len(self.share.sizes))
        if self.every.steps is not None:
            due = run_step % self.every.steps == 0
        else:
            flag = torch.tensor([float(rank() == 0 and self._clock() - self._last >= self.every.minutes * 60)], device=self.device)
            due = all_reduce_sum(flag).item() > 0
        if not due or batches >= len(self.share.sizes):
            return None
        self._last = self._clock()
        return self.share.position_after(batches)
