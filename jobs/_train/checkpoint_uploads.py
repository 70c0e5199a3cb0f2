"""A Ray Train worker's checkpoint folders and their copy to the run's storage (train.checkpoint_upload).

async: the folder is handed to Ray Train's upload thread (CheckpointUploadMode.ASYNC), which copies it
with the storage's retries, registers it only once it is whole, and deletes it; the loop trains on
meanwhile. A copy that fails is raised in the worker (Ray Train restarts the group from the latest
registered checkpoint, or fails the run). Folders live under SPOOL/<pid>: a worker killed mid-copy
leaves its folder, which the next worker started on the machine removes.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import ray.train
from botocore.exceptions import BotoCoreError
from ray.train.v2.api.report_config import CheckpointUploadMode

from core.runs.run_dir import REPORTED_AT

SPOOL = Path(tempfile.gettempdir()) / "vision-train-checkpoints"
MAX_WAITING = 2  # checkpoints written and not yet copied; a third waits, so a slow link cannot fill the disk


class CheckpointUploads:
    def __init__(self, mode: str, where: str):
        self.asynchronous, self.where = mode == "async", where
        _remove_folders_of_gone_workers()
        self.root = SPOOL / str(os.getpid())
        self.root.mkdir(parents=True, exist_ok=True)
        self._handed: set[Path] = set()  # to the upload thread, which deletes them
        self._opened_at = 0.0  # when the latest folder was made, to time the checkpoint's local write

    @contextmanager
    def folder(self) -> Iterator[Path]:
        """A new folder for a checkpoint; removed afterwards unless report handed it to the upload thread."""
        self._wait_for_earlier_copies()
        folder = Path(tempfile.mkdtemp(prefix="checkpoint-", dir=self.root))
        self._opened_at = time.perf_counter()
        try:
            yield folder
        finally:
            if folder in self._handed:
                self._handed.discard(folder)
            else:
                shutil.rmtree(folder, ignore_errors=True)

    def report(self, record: dict[str, Any], folder: Path | None) -> None:
        mode = CheckpointUploadMode.ASYNC if self.asynchronous else CheckpointUploadMode.SYNC
        checkpoint = ray.train.Checkpoint.from_directory(folder) if folder else None
        if folder and self.asynchronous:
            self._handed.add(folder)
        if folder:
            record["checkpoint_write_s"] = round(time.perf_counter() - self._opened_at, 2)
        record[REPORTED_AT] = time.time()
        ray.train.report(record, checkpoint=checkpoint, checkpoint_upload_mode=mode,
                         delete_local_checkpoint_after_upload=self.asynchronous,
                         checkpoint_upload_fn=lambda cp, name: self._copy(cp, name, record["epoch"]))

    def _copy(self, checkpoint: ray.train.Checkpoint, name: str, epoch: float) -> ray.train.Checkpoint:
        try:
            return ray.train.get_context().get_storage().persist_current_checkpoint(checkpoint, name)
        except (OSError, BotoCoreError) as err:  # after the storage's own retries; Ray Train tries the copy 3 times
            raise OSError(f"the checkpoint of epoch {epoch:g} could not be written to {self.where}: {type(err).__name__}: "
                          f"{err}. Ray Train registered the checkpoints before it; --resume goes on from the latest") from err

    def _wait_for_earlier_copies(self) -> None:
        waiting, said = self._waiting(), False
        while waiting >= MAX_WAITING:
            if not said:
                print(f"{waiting} checkpoints still being copied to {self.where}: training waits for the oldest",
                      file=sys.stderr, flush=True)
                said = True
            time.sleep(0.1)
            waiting = self._waiting()

    def _waiting(self) -> int:
        return sum(1 for _ in self.root.iterdir())


def _remove_folders_of_gone_workers() -> None:
    """Folders a killed worker left mid-copy; its checkpoint was never registered."""
    for folder in SPOOL.glob("*") if SPOOL.is_dir() else []:
        if not folder.name.isdigit() or not _alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
