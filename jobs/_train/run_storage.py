"""Where a run's outputs live: all in its run directory, or, with output.storage = s3://bucket/prefix,
checkpoints written to prefix/RUN_NAME/ray_train/ by Ray Train and the run directory's files copied
beside them, so that the S3 folder is the whole run."""
from __future__ import annotations

import json
import os
import posixpath
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from core.runs import history, run_dir as runs
from core.config.schema import ExperimentConfig
from core.config.loading import validate
from core.runs.run_dir import REPORTED_AT, TRAIN_STORAGE
from jobs._train.resume import CheckpointStorage, latest_checkpoint, registered_checkpoints
from core.tasks.base import Task
from data_pipeline.storage.datastore import DataStore
from jobs._train.best_checkpoints import BestCheckpoints

RUN_START_FILES = ["config.yaml", "env.json", "code.patch"]  # copied when the run starts, so S3 holds what --resume needs
RUN_FILES = [*RUN_START_FILES, runs.METRICS, history.CSV, history.XLSX, runs.TENSORBOARD]  # copied after each epoch where changed


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


def copy_run_files(run_dir: Path, remote: DataStore | None, names: list[str], copied: dict[str, tuple] | None = None) -> None:
    """Upload these files (and folders) of the run directory to its S3 folder, where it has one.

    copied: what earlier calls uploaded (path: size and modification time), kept up to date here; a file
    unchanged since is not sent again (TensorBoard's earlier event files, every epoch)."""
    if remote is None:
        return
    copied = {} if copied is None else copied
    for name in names:
        local = run_dir / name
        files = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else [local] if local.is_file() else []
        for path in files:
            stat = path.stat()
            if copied.get(str(path)) == (stat.st_size, stat.st_mtime_ns):
                continue
            remote.fs.put_file(str(path), remote.path(path.relative_to(run_dir).as_posix()))
            copied[str(path)] = (stat.st_size, stat.st_mtime_ns)


def copy_run(config: ExperimentConfig, run_dir: Path, names: tuple[str, ...] = (*RUN_FILES, runs.SUMMARY)) -> None:
    """At the end of a run (or of its evaluation: names): its files to its S3 folder, where it has one."""
    remote = run_store(config, run_dir)
    try:
        copy_run_files(run_dir, remote, list(names))
    except Exception as err:  # the work is over and complete on this disk; S3 lacks its last files
        print(f"could not copy {', '.join(names)} to {remote.uri} ({type(err).__name__}: {err}); "
              f"they are complete in {run_dir}", file=sys.stderr)


def fetch_run(uri: str, endpoint_url: str | None, command: str = "--resume") -> Path:
    """A run stored with output.storage, copied from its S3 folder into output.root, so that a machine that never held
    its run directory (the driver's machine is gone) can go on with it or evaluate it. Returns the local run directory.
    command: what was given the folder, as the errors name it (the way to go on with a local copy follows it)."""
    remote = DataStore.at(uri, endpoint_url, retry_s=10.0)
    try:
        found = remote.exists("config.yaml")
    except Exception as err:  # s3fs raises botocore's errors as they come: no credentials, an endpoint that is not there
        raise ValueError(f"{command} {uri}: S3 did not answer ({type(err).__name__}: {err}); check --endpoint-url and "
                         "the AWS credentials in the environment") from None
    if not found:
        raise ValueError(f"{command} {uri}: holds no config.yaml; give the S3 folder of a run, OUTPUT_STORAGE/RUN_NAME, "
                         "where OUTPUT_STORAGE is the run's output.storage")
    config = validate(yaml.safe_load(remote.read_bytes("config.yaml")), source=remote.display("config.yaml"))
    name = posixpath.basename(remote.uri)
    stored_at = run_store(config, Path(name))
    if stored_at is None or stored_at.uri != remote.uri:
        raise ValueError(f"{command} {uri}: its config.yaml has output.storage={config.output.storage}, so its "
                         f"checkpoints are not in this folder; give {stored_at.uri if stored_at else 'a run directory'}")
    local = Path(config.output.root) / name
    if local.exists():
        raise ValueError(f"{command} {uri}: {local} already exists on this machine; its files are the ones the S3 folder "
                         f"holds copies of, so go on with {command} {local}")
    partial = local.with_name(f".{name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for file in [*RUN_FILES, runs.SUMMARY]:
        if remote.exists(file):
            remote.fs.get(remote.path(file), str(partial / file), recursive=True)
    restored = _restore_lost_records(partial, checkpoint_storage(config, Path(name)))
    os.replace(partial, local)  # a copy cut off halfway is never taken for a run directory
    print(f"copied {remote.uri}'s run files to {local}"
          + (f"; {restored} epoch record(s) restored from Ray Train's list of checkpoints" if restored else ""), file=sys.stderr)
    return local.resolve()


def _restore_lost_records(run_dir: Path, checkpoints: CheckpointStorage) -> int:
    """Append to metrics.jsonl the epochs whose checkpoint Ray Train registered after the last copy of it reached S3
    (the copy after that epoch was cut off): Ray Train keeps the metrics reported with each checkpoint. Returns how many."""
    last = max((record["epoch"] for record in runs.read_metrics(run_dir)), default=0)
    lost = sorted((r for r in registered_checkpoints(checkpoints) if r["metrics"]["epoch"] > last
                   and "inside_epoch" not in r["metrics"]), key=lambda result: result["metrics"]["epoch"])
    with open(run_dir / runs.METRICS, "a") as handle:
        for result in lost:
            folder = checkpoints.display(posixpath.join(checkpoints.root, result["checkpoint_dir_name"]))
            record = {name: value for name, value in result["metrics"].items() if name != REPORTED_AT}
            handle.write(json.dumps({**record, "checkpoint": folder}) + "\n")
    if lost:
        history.write(run_dir, runs.read_metrics(run_dir))
    return len(lost)


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
