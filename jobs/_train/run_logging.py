"""A Ray Train callback that writes each report into the run directory.

It runs in the Train controller, which Ray places on the driver's node, so metrics.jsonl and tb/
land beside config.yaml even when the workers run on other machines.
"""
from __future__ import annotations

import posixpath
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray.train import Checkpoint, UserCallback

from core.engine.checkpoint import PREVIEWS, load_meshes, load_previews
from jobs._train.resume import CheckpointStorage
from core.runs.run_dir import REPORTED_AT, RunLogger
from data_pipeline.storage.datastore import DataStore
from jobs._train.best_checkpoints import BestCheckpoints
from jobs._train.run_storage import RUN_FILES, copy_run_files


class RunDirCallback(UserCallback):
    def __init__(self, run_dir: Path, checkpoints: CheckpointStorage, remote: DataStore | None, best: BestCheckpoints | None,
                 monitor: str):
        self.run_dir, self.monitor = run_dir, monitor
        self.checkpoints = checkpoints
        self.best = best
        self.remote = remote  # the run's S3 folder (output.storage), where the files are copied each epoch
        self._logger: RunLogger | None = None  # made on first use: a SummaryWriter cannot be pickled
        self._copied: dict[str, tuple] = {}  # the run files uploaded so far, as copy_run_files keeps them

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint: Checkpoint | None) -> None:
        record = dict(metrics[0])  # rank 0's figures, already reduced over all workers, as Ray Train keeps them
        reported_at = record.pop(REPORTED_AT, None)
        if checkpoint is not None and reported_at is not None:  # registered once whole: the copy and any copies queued before it
            record["checkpoint_upload_s"] = round(time.time() - reported_at, 2)
        if "inside_epoch" in record:  # a mid-epoch checkpoint (train.checkpoint_every): no epoch's figures to log
            print(f"checkpoint inside epoch {record['inside_epoch']} after {record['epoch_samples']}/{record['epoch_rows']} "
                  f"samples, stored {record.get('checkpoint_upload_s', 0):.1f} s after it was written: "
                  f"{self.checkpoints.display(checkpoint.path)}", file=sys.stderr, flush=True)
            return
        images, meshes = [], []
        if checkpoint is not None:
            record["checkpoint"] = self.checkpoints.display(checkpoint.path)
            if self.best is not None:
                self.best.offer(record, checkpoint.path)
            images, meshes = _previews(checkpoint)
        if self._logger is None:
            self._logger = RunLogger(self.run_dir)
        self._logger.log(record, step=int(record["epoch"]), images=images, meshes=meshes)
        copy_run_files(self.run_dir, self.remote, RUN_FILES, self._copied)
        print(_progress_line(record, self.monitor), file=sys.stderr, flush=True)


def _previews(checkpoint: Checkpoint) -> tuple[list, list]:
    """The checkpoint's validation previews, fetched alone: on S3, Checkpoint.as_directory would download the
    weights and the optimizer's state as well, every epoch."""
    source = posixpath.join(checkpoint.path, PREVIEWS)
    if checkpoint.filesystem.get_file_info(source).type == pyarrow.fs.FileType.NotFound:
        return [], []
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / PREVIEWS
        local.mkdir()
        pyarrow.fs.copy_files(source, str(local), source_filesystem=checkpoint.filesystem,
                              destination_filesystem=pyarrow.fs.LocalFileSystem())
        return load_previews(Path(folder)), load_meshes(Path(folder))


def _progress_line(record: dict[str, Any], monitor: str) -> str:
    """The epoch, its loss, the task's monitored metric and its speed, on one line."""
    shown = [f"epoch {record['epoch']}" + (f" ({record['stage']})" if record.get("stage", "train") != "train" else "")]
    for key in ("train/loss", monitor, "train/samples_per_s"):
        if isinstance(record.get(key), float):
            shown.append(f"{key} {record[key]:.4g}")
    if record.get("stage_event"):
        shown.append(f"stage {record['stage_event']}")
    return "  ".join(shown)
