"""What an epoch has trained so far, kept across the sessions of a run that stopped inside it.

The sums of the losses, the batches and samples behind them, and a digest of which samples they
were: each sample's key (core.augmentation.sample_key, from its id) mixed into 64 bits and added
up, so the digest of an epoch is the same whatever order, workers and interruptions it was trained
in, and changes when a sample is trained twice or left out. A mid-epoch checkpoint keeps the tally
of all workers together (rank 0 goes on with it, the others from zero), so the epoch's record
covers the whole epoch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
import torch.distributed as dist

from core.engine.distributed import is_distributed

_MASK = 2**64 - 1


def sample_digest(keys: Iterable[int]) -> int:
    """The digest of these samples' keys: a sum of mixed keys, so a multiset's (order does not count)."""
    return sum(_mix(int(key)) for key in keys) & _MASK


def _mix(key: int) -> int:
    """splitmix64's finaliser: nearby keys land far apart, so one sample twice and another left out do not cancel."""
    key = (key + 0x9E3779B97F4A7C15) & _MASK
    key = ((key ^ (key >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    key = ((key ^ (key >> 27)) * 0x94D049BB133111EB) & _MASK
    return key ^ (key >> 31)


@dataclass
class EpochTally:
    losses: dict[str, Any] = field(default_factory=dict)  # summed batch means (tensors while the epoch trains)
    batches: int = 0
    samples: int = 0
    digest: int = 0

    def add(self, losses: dict[str, torch.Tensor], samples: int, keys: torch.Tensor | None) -> None:
        for name, value in losses.items():
            self.losses[name] = self.losses.get(name, 0.0) + value.detach().float()
        self.batches += 1
        self.samples += samples
        if keys is not None:
            self.digest = (self.digest + sample_digest(keys.tolist())) & _MASK

    def gathered(self) -> "EpochTally":
        """Every worker's tally added up (a collective: every rank calls it)."""
        own = self.state_dict()
        if not is_distributed():
            return EpochTally.from_state(own)
        every: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(every, own)
        names = sorted({name for state in every for name in state["losses"]})
        return EpochTally({name: sum(state["losses"].get(name, 0.0) for state in every) for name in names},
                          sum(state["batches"] for state in every), sum(state["samples"] for state in every),
                          sum(state["digest"] for state in every) & _MASK)

    def mean_losses(self) -> dict[str, float]:
        return {name: value / max(self.batches, 1) for name, value in self.losses.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"losses": {name: float(value) for name, value in self.losses.items()}, "batches": self.batches,
                "samples": self.samples, "digest": self.digest}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "EpochTally":
        return cls(dict(state["losses"]), state["batches"], state["samples"], state["digest"])
