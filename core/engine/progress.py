"""Where a run stands between epochs: saved in every checkpoint, read back on resume and on Ray Train's restarts.

The checkpoint's train_state holds these fields at its top level, and beside them the state of each
of the loop's components under its fixed key (core.engine.trainer.COMPONENTS)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from core.engine.distributed import is_distributed, rank
from core.engine.stages import Stage


@dataclass
class Progress:
    epoch: int = -1  # the last finished epoch, 0-based and counted over the whole run
    stage: int = 0  # the stage the next epoch belongs to
    stage_epochs: int = 0  # epochs the current stage has finished
    restarts: int = 0  # Ray Train restarts from a checkpoint after a failure
    resumes: int = 0  # `jobs.train --resume` of this run
    steps: int = 0  # optimizer steps over the whole run: the x axis of the step-level scalars
    rng: list[torch.Tensor] | None = None  # torch's generator state per rank
    inside: dict[str, Any] | None = None  # a mid-epoch checkpoint's place in the epoch after `epoch` (core.engine.mid_epoch)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Progress":
        """Its own fields of a train_state; the components' keys beside them are theirs."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in state.items() if key in known})

    def state(self) -> dict[str, Any]:
        return asdict(self)

    def finish_epoch(self, stage: Stage, stop_early: bool) -> str | None:
        """Count the epoch; returns why the stage ends here ("early stopping", "last epoch") or None."""
        self.epoch += 1
        self.stage_epochs += 1
        if stop_early:
            reason = "early stopping"
        elif self.stage_epochs >= stage.epochs:
            reason = "last epoch"
        else:
            return None
        self.stage, self.stage_epochs = self.stage + 1, 0
        return reason

    def save_rng(self) -> None:
        """Every rank's generator, gathered (a collective: every rank calls it)."""
        state = torch.get_rng_state()
        if is_distributed():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, state)
            self.rng = gathered
        else:
            self.rng = [state]

    def restore_rng(self) -> None:
        if self.rng and rank() < len(self.rng):
            torch.set_rng_state(self.rng[rank()])
