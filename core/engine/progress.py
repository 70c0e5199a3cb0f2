"""Where a run stands between epochs: saved in every checkpoint, read back on resume and on Ray Train's restarts."""
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
    best: float | None = None  # the current stage's best monitored value, for early stopping
    bad_epochs: int = 0  # epochs since it improved
    restarts: int = 0  # Ray Train restarts after a failure
    resumes: int = 0  # `jobs.train --resume` of this run
    skipped_steps: int = 0  # non-finite steps skipped (train.skip_nonfinite_steps)
    overflow_steps: int = 0  # fp16 steps the loss scaler skipped because their gradients overflowed
    loss_scale: dict[str, Any] | None = None  # fp16's GradScaler state
    plateau: dict[str, Any] | None = None
    rng: list[torch.Tensor] | None = None  # torch's generator state per rank

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Progress":
        """Also reads checkpoints written before stages existed (epoch, restarts, plateau only)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in state.items() if key in known})

    def state(self) -> dict[str, Any]:
        return asdict(self)

    def finish_epoch(self, stage: Stage, value: float | None, mode: str) -> str | None:
        """Count the epoch; returns why the stage ends here ("early stopping", "last epoch") or None."""
        self.epoch += 1
        self.stage_epochs += 1
        if value is not None and (self.best is None or (value > self.best if mode == "max" else value < self.best)):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if stage.early_stopping is not None and self.bad_epochs > stage.early_stopping:
            reason = "early stopping"
        elif self.stage_epochs >= stage.epochs:
            reason = "last epoch"
        else:
            return None
        self.stage, self.stage_epochs, self.best, self.bad_epochs, self.plateau = self.stage + 1, 0, None, 0, None
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
