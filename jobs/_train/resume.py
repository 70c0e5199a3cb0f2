"""What `jobs.train --resume RUN_DIR` needs from a run: its config, its latest checkpoint (local or on S3), and where it stopped."""
from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import fsspec
import pyarrow.fs
import torch

from core.engine import checkpoint
from core.config.schema import ExperimentConfig
from core.config.loading import load_config
from core.engine.progress import Progress
from core.runs import history
from core.runs.run_dir import METRICS, TRAIN_STORAGE, read_metrics

RAY_SNAPSHOT = "checkpoint_manager_snapshot.json"  # where Ray Train lists the checkpoints it registered


@dataclass(frozen=True)
class CheckpointStorage:
    """Where Ray Train keeps a run's checkpoints (TRAIN_STORAGE in the run directory, or on S3), as fsspec sees it."""
    fs: fsspec.AbstractFileSystem
    root: str  # the TRAIN_STORAGE folder's path in fs
    uri: str  # the same folder, as messages name it

    def display(self, path: str) -> str:
        """A checkpoint's path in fs as a URI."""
        return self.uri + path[len(self.root):] if path.startswith(self.root) else path


StorageOf = Callable[[ExperimentConfig, Path], CheckpointStorage]


@dataclass(frozen=True)
class ResumePoint:
    run_dir: Path
    config: ExperimentConfig
    checkpoint: str  # URI of the checkpoint folder
    progress: Progress


def find_resume_point(location: str, storage_of: StorageOf) -> ResumePoint:
    run_dir = Path(location).resolve()
    if not (run_dir / "config.yaml").is_file():
        raise ValueError(f"--resume {location}: not a run directory (it holds no config.yaml); give a folder that "
                         "`python -m jobs.train` printed as its run directory")
    config = load_config(run_dir / "config.yaml")
    storage = storage_of(config, run_dir)
    latest = latest_checkpoint(storage)
    if latest is None:
        raise ValueError(f"--resume {location}: the run holds no complete checkpoint (none listed in {storage.uri}/"
                         f"{RAY_SNAPSHOT}); it stopped before its first epoch ended, so start it again from its config")
    with storage.fs.open(posixpath.join(latest, checkpoint.STATE_FILE), "rb") as handle:
        state = torch.load(handle, map_location="cpu", weights_only=True)["train_state"]
    return ResumePoint(run_dir, config, storage.display(latest), Progress.from_state(state))


def latest_checkpoint(storage: CheckpointStorage) -> str | None:
    """The path (in storage.fs) of the latest epoch's checkpoint that Ray Train registered, if any.

    Ray Train lists a checkpoint in its snapshot only once all its files are in storage, so a folder
    it does not list is a write that never finished, however complete its state.pt looks.
    """
    by_epoch = sorted(registered_checkpoints(storage), key=lambda result: result["metrics"]["epoch"], reverse=True)
    folders = (posixpath.join(storage.root, result["checkpoint_dir_name"]) for result in by_epoch)
    return next((f for f in folders if storage.fs.exists(posixpath.join(f, checkpoint.STATE_FILE))), None)


def latest_registered_metrics(run_dir: Path) -> dict:
    """What was reported with the latest checkpoint Ray Train registered in a local run directory, read without Ray
    (tests and benches poll it while the run goes on); {} before the first, or while the snapshot is being written."""
    try:
        return json.loads((run_dir / TRAIN_STORAGE / RAY_SNAPSHOT).read_text())["latest_checkpoint_result"]["metrics"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def registered_checkpoints(storage: CheckpointStorage) -> list[dict]:
    """The checkpoints Ray Train registered and keeps, as its Result.from_path reads them back: each folder's name and
    the metrics reported with it. None yet (no RAY_SNAPSHOT) is an empty list."""
    if not storage.fs.exists(posixpath.join(storage.root, RAY_SNAPSHOT)):
        return []
    from ray.train import Result  # imported here: a bad --resume is refused without waiting for Ray Train's import

    result = Result.from_path(storage.root, storage_filesystem=pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(storage.fs)))
    return [{"checkpoint_dir_name": posixpath.basename(saved.path.rstrip("/")), "metrics": metrics}
            for saved, metrics in result.best_checkpoints]


def drop_records_after(run_dir: Path, epoch: int) -> int:
    """Remove metrics.jsonl records of epochs after `epoch` (1-based): they are trained again. Returns how many."""
    records = read_metrics(run_dir)
    kept = [r for r in records if r.get("epoch", 0) <= epoch]
    if len(kept) < len(records):
        partial = run_dir / f".{METRICS}.partial"
        partial.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(partial, run_dir / METRICS)
        history.write(run_dir, kept)
    return len(records) - len(kept)

