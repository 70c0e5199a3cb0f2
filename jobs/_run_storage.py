"""Where a run's outputs live: all in its run directory, or, with output.storage = s3://bucket/prefix,
checkpoints written to prefix/RUN_NAME/ray_train/ by Ray Train and the run directory's files copied
beside them, so that the S3 folder is the whole run."""
from __future__ import annotations

import posixpath
from pathlib import Path

from core.config import ExperimentConfig
from core.resume import TRAIN_STORAGE, CheckpointStorage
from data_pipeline.storage import DataStore


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
