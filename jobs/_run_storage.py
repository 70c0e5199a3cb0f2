"""Where a run's outputs live: all in its run directory, or, with output.storage = s3://bucket/prefix,
checkpoints written to prefix/RUN_NAME/ray_train/ by Ray Train and the run directory's files copied
beside them, so that the S3 folder is the whole run."""
from __future__ import annotations

import posixpath
import sys
from pathlib import Path
from typing import Any

from core import run_dir as runs
from core.config import ExperimentConfig
from core.resume import TRAIN_STORAGE, CheckpointStorage, latest_checkpoint
from core.tasks.base import Task
from data_pipeline.storage import DataStore
from jobs._best_checkpoints import BestCheckpoints

RUN_FILES = ["config.yaml", "env.json", "code.patch", runs.METRICS, runs.TENSORBOARD]  # copied after each epoch


def run_store(config: ExperimentConfig, run_dir: Path) -> DataStore | None:
    """The run's folder on S3, or None when everything stays in the run directory."""
    if config.output.storage is None:
        return None
    return DataStore.at(posixpath.join(config.output.storage.rstrip("/"), run_dir.name), config.output.endpoint_url,
                        config.output.storage_retry_s)


def checkpoint_store(config: ExperimentConfig, run_dir: Path) -> DataStore:
    remote = run_store(config, run_dir)
    if remote is None:
        return DataStore.at(run_dir / TRAIN_STORAGE)
    return DataStore.at(remote.display(TRAIN_STORAGE), remote.endpoint_url, remote.retry_s)


def checkpoint_storage(config: ExperimentConfig, run_dir: Path) -> CheckpointStorage:
    store = checkpoint_store(config, run_dir)
    return CheckpointStorage(store.fs, store.root, store.uri)


def copy_run_files(run_dir: Path, remote: DataStore | None, names: list[str]) -> None:
    """Upload these files (and folders) of the run directory to its S3 folder, where it has one."""
    if remote is None:
        return
    for name in names:
        local = run_dir / name
        files = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else [local] if local.is_file() else []
        for path in files:
            remote.fs.put_file(str(path), remote.path(path.relative_to(run_dir).as_posix()))


def copy_run(config: ExperimentConfig, run_dir: Path) -> None:
    """At the end of a run: its files and summary.json to its S3 folder, where it has one."""
    remote = run_store(config, run_dir)
    try:
        copy_run_files(run_dir, remote, [*RUN_FILES, runs.SUMMARY])
    except Exception as err:  # the run is over and complete on this disk; S3 lacks its last files
        print(f"could not copy the run directory to {remote.uri} ({type(err).__name__}: {err}); "
              f"it is complete in {run_dir}", file=sys.stderr)


def latest_or_logged(checkpoints: CheckpointStorage, run_dir: Path) -> tuple[str | None, str | None]:
    """(the latest registered checkpoint's URI, None) for a run that stopped; where the storage does not answer,
    (the checkpoint of metrics.jsonl's last record, which Ray Train had registered, and what went wrong)."""
    try:
        latest = latest_checkpoint(checkpoints)
    except Exception as err:  # whatever the storage raised, summary.json must still be written
        logged = [r["checkpoint"] for r in runs.read_metrics(run_dir) if r.get("checkpoint")]
        return (logged[-1] if logged else None), f"{checkpoints.uri} did not answer ({type(err).__name__}: {err})"
    return (checkpoints.display(latest) if latest else None), None


def best_checkpoints(checkpoints: CheckpointStorage, keep: int, task: Task) -> list[dict[str, Any]] | str:
    """best/index.json: the kept copies of the best checkpoints, best first."""
    try:
        return BestCheckpoints(checkpoints, keep, task.monitor, task.monitor_mode).index()
    except Exception as err:  # storage that stopped answering; summary.json must still be written
        return f"unknown: {checkpoints.uri} did not answer ({type(err).__name__})"
