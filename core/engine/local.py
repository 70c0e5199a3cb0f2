"""The training loop in this one process, without Ray: for debugging, tests and the baselines benchmarks compare against.

Batches come from the caller's functions; each epoch's record is kept, and each checkpoint the
loop writes is copied into `checkpoints` (one folder per epoch) when given, so a run can be
resumed from it with core.engine.local.restore.
"""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator

import torch
from torch import nn

from core.config.schema import ExperimentConfig
from core.engine import checkpoint
from core.engine.optim import build_optimizer
from core.engine.progress import Progress
from core.engine.steps import StepTiming
from core.engine.trainer import Restored

Batches = Callable[[ExperimentConfig, int], Iterable[dict]]


class LocalBackend:
    def __init__(self, train_batches: Batches, val_batches: Callable[[ExperimentConfig], Iterable[dict]],
                 checkpoints: Path | None = None, device: torch.device = torch.device("cpu")):
        self.device, self.rank, self.world_size = device, 0, 1
        self._train, self._val, self.checkpoints = train_batches, val_batches, checkpoints
        self.records: list[dict[str, Any]] = []
        self.steps: list[StepTiming] = []
        self.scalars: list[tuple[int, dict[str, float]]] = []

    def wrap(self, module: nn.Module, config: ExperimentConfig) -> tuple[nn.Module, torch.optim.Optimizer]:
        if config.scaling.strategy != "ddp":
            raise ValueError(f"scaling.strategy {config.scaling.strategy} needs workers; in one process the model trains "
                             "as it is (scaling.strategy=ddp)")
        if config.train.checkpoint_every is not None:
            raise ValueError("train.checkpoint_every resumes inside an epoch from the Ray Data reader's epoch order; in one "
                             "process the batches are the caller's: leave it unset")
        module.to(self.device)
        return module, build_optimizer(config.train.optimizer, [p for p in module.parameters() if p.requires_grad])

    def train_batches(self, config: ExperimentConfig, epoch: int, start: int = 0) -> Iterable[dict]:
        return self._train(config, epoch)

    def val_batches(self, config: ExperimentConfig) -> Iterable[dict]:
        return self._val(config)

    def on_step(self, timing: StepTiming, learning_rate: float) -> None:
        self.steps.append(timing)

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        self.scalars.append((step, scalars))

    def checkpoint_folder(self) -> ContextManager[Path]:
        return _temporary_folder()

    def report(self, record: dict[str, Any], folder: Path | None) -> None:
        self.records.append(record)
        if self.checkpoints is not None and folder is not None:
            shutil.copytree(folder, self.checkpoints / f"epoch_{record['epoch']:04d}", dirs_exist_ok=True)


@contextmanager
def _temporary_folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def restore(folder: Path, module: nn.Module) -> Restored:
    """The weights of a checkpoint folder into module, its random state back, and what the loop goes on from."""
    state = checkpoint.read(folder)
    checkpoint.load_weights(module, state["model"], folder)
    progress = Progress.from_state(state["train_state"])
    progress.restore_rng()
    return Restored(progress, state["train_state"], state["optimizer"] or None)
