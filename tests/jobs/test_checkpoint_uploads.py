"""train.checkpoint_upload=async (the default): at most two checkpoints wait for their copy, and the local copies a
killed worker left are removed. (That the workers train on while a checkpoint is copied to a slow S3 is
test_s3_storage's, in its run through an outage.)"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from jobs._train import checkpoint_uploads
from jobs._train.checkpoint_uploads import CheckpointUploads
from core.engine import checkpoint


def test_a_third_checkpoint_waits_until_the_oldest_copy_is_done(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(checkpoint_uploads, "SPOOL", tmp_path)
    uploads = CheckpointUploads("async", "s3://bucket/run/ray_train")
    waiting = [Path(tempfile.mkdtemp(prefix="checkpoint-", dir=uploads.root)) for _ in range(checkpoint_uploads.MAX_WAITING)]
    entered = threading.Event()

    def third() -> None:
        with uploads.folder():
            entered.set()

    writer = threading.Thread(target=third)
    writer.start()
    assert not entered.wait(1.0), "two copies were still on their way"
    shutil.rmtree(waiting[0])  # as Ray Train's upload thread does once the copy is stored
    assert entered.wait(10.0)
    writer.join()
    assert "2 checkpoints still being copied to s3://bucket/run/ray_train" in capsys.readouterr().err
    assert [p for p in uploads.root.iterdir()] == [waiting[1]], "a folder not handed to the upload thread is removed"


def test_folders_left_by_a_killed_worker_are_removed_by_the_next_one(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_uploads, "SPOOL", tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    left = tmp_path / gone.stdout.strip() / "checkpoint-abc"
    left.mkdir(parents=True)
    (left / checkpoint.STATE_FILE).write_bytes(b"half a checkpoint")
    alive = tmp_path / str(os.getppid()) / "checkpoint-def"  # pytest's parent: a live process
    alive.mkdir(parents=True)
    CheckpointUploads("async", "the run directory")
    assert not left.parent.exists() and alive.is_dir()
    assert (tmp_path / str(os.getpid())).is_dir()
