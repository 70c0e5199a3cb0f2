"""Early stopping within a stage: the stage ends once more epochs than `patience` in a row did not improve the
monitored metric (counted as ReduceLROnPlateau counts its patience). Its state is saved under KEY."""
from __future__ import annotations

from typing import Any

KEY = "early_stopping"


class EarlyStopping:
    def __init__(self, patience: int | None, mode: str):
        """patience None: never stops; mode: "max" or "min", which way the metric improves."""
        self.patience, self.mode = patience, mode
        self.best: float | None = None
        self.bad_epochs = 0

    def update(self, value: float | None) -> bool:
        """Count the epoch's value; True when the stage should stop here."""
        if value is not None and (self.best is None or (value > self.best if self.mode == "max" else value < self.best)):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.patience is not None and self.bad_epochs > self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state.get("best"), state.get("bad_epochs", 0)
