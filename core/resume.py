"""What `jobs.train --resume RUN_DIR` needs from a run directory: its config, its latest checkpoint, and where it stopped."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from core import checkpoint
from core.config import ExperimentConfig, load_config
from core.progress import Progress
from core.run_dir import METRICS, read_metrics

TRAIN_STORAGE = "ray_train"  # RunConfig(name=...) of the run's Ray Train storage inside its run directory
RAY_SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's list of the checkpoints it registered


@dataclass(frozen=True)
class ResumePoint:
    run_dir: Path
    config: ExperimentConfig
    checkpoint: Path
    progress: Progress


def find_resume_point(location: str) -> ResumePoint:
    run_dir = Path(location).resolve()
    if not (run_dir / "config.yaml").is_file():
        raise ValueError(f"--resume {location}: not a run directory (it holds no config.yaml); give a folder that "
                         "`python -m jobs.train` printed as its run directory")
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise ValueError(f"--resume {location}: the run holds no complete checkpoint (none listed in {TRAIN_STORAGE}/"
                         f"{RAY_SNAPSHOT}); it stopped before its first epoch ended, so start it again from its config")
    state = checkpoint.saved_train_state(latest)
    return ResumePoint(run_dir, load_config(run_dir / "config.yaml"), latest, Progress.from_state(state))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint of the latest epoch that Ray Train registered in a run directory, if any.

    Ray Train lists a checkpoint in its snapshot only once all its files are in storage, so a folder
    it does not list is a write that never finished, however complete its state.pt looks.
    """
    storage = run_dir / TRAIN_STORAGE
    try:
        listed = json.loads((storage / RAY_SNAPSHOT).read_text())["checkpoint_results"]
    except FileNotFoundError:
        return None
    folders = [storage / result["checkpoint_dir_name"] for result in listed]
    return max((f for f in folders if (f / checkpoint.STATE_FILE).is_file()), key=checkpoint.saved_epoch, default=None)


def drop_records_after(run_dir: Path, epoch: int) -> int:
    """Remove metrics.jsonl records of epochs after `epoch` (1-based): they are trained again. Returns how many."""
    records = read_metrics(run_dir)
    kept = [r for r in records if r.get("epoch", 0) <= epoch]
    if len(kept) < len(records):
        partial = run_dir / f".{METRICS}.partial"
        partial.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(partial, run_dir / METRICS)
    return len(records) - len(kept)

