"""Where a run's checkpoints live: in its run directory, or under output.checkpoints on S3 in a folder named like the run."""
from __future__ import annotations

import posixpath
from pathlib import Path

from core.config import ExperimentConfig
from core.resume import TRAIN_STORAGE, CheckpointStorage
from data_pipeline.storage import DataStore


def checkpoint_store(config: ExperimentConfig, run_dir: Path) -> DataStore:
    if config.output.checkpoints is None:
        return DataStore.at(run_dir / TRAIN_STORAGE)
    location = posixpath.join(config.output.checkpoints.rstrip("/"), run_dir.name, TRAIN_STORAGE)
    return DataStore.at(location, config.output.endpoint_url, config.output.storage_retry_s)


def checkpoint_storage(config: ExperimentConfig, run_dir: Path) -> CheckpointStorage:
    store = checkpoint_store(config, run_dir)
    return CheckpointStorage(store.fs, store.root, store.uri)
