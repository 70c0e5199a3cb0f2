"""train.checkpoint_upload=async (the default): the workers train on while a checkpoint is copied to a slow
S3, each checkpoint is registered once whole and in order, and no local copy is left behind."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

from jobs import train
from jobs._train import checkpoint_uploads
from jobs._train.checkpoint_uploads import SPOOL, CheckpointUploads
from jobs._train.resume import find_resume_point
from jobs._train.run_storage import checkpoint_storage
from core.engine import checkpoint
from tests.conftest import SMALL_MODEL, tiny_overrides
from tests.s3_server import ray_with_s3_credentials, s3, s3_proxy  # noqa: F401  (fixtures)

UPLOAD_S = 8.0  # each checkpoint's copy through the slowed link, about
CHECKPOINT_BYTES = 51e6  # FPN on MobileNetV2 (SMALL_MODEL) with its AdamW state


def test_training_goes_on_while_a_checkpoint_is_copied_to_a_slow_s3(ray_with_s3_credentials, s3, s3_proxy,
                                                                     tiny_dataset, tmp_path):
    runs = tmp_path / "runs"
    s3_proxy.throttle(CHECKPOINT_BYTES / UPLOAD_S)
    base = [o for o in tiny_overrides(tiny_dataset, runs) if not o.startswith("train.epochs")]
    code = train.main([*base, SMALL_MODEL, "train.epochs=2", f"output.storage=s3://{s3.bucket}/slow",
                       f"output.endpoint_url=http://127.0.0.1:{s3_proxy.port}", "output.storage_retry_s=60"])
    s3_proxy.throttle(None)
    (run_dir,) = runs.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert code == 0 and summary["status"] == "completed", summary.get("error")
    first, second = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert first["checkpoint_upload_s"] > UPLOAD_S / 2 and 0 < first["checkpoint_write_s"] < first["checkpoint_upload_s"], first
    # Epoch 2 trained, and reached its own report, well before epoch 1's checkpoint was stored: a synchronous copy
    # holds the workers until it is (and Ray Train registers it within its 2 s poll).
    assert second["wall_time_s"] + 3 < first["wall_time_s"] + first["checkpoint_upload_s"], (first, second)
    resume = find_resume_point(str(run_dir), checkpoint_storage)
    assert resume.checkpoint == summary["checkpoint"] == second["checkpoint"] and resume.progress.epoch == 1  # 0-based: epoch 2
    storage = checkpoint_storage(resume.config, run_dir)
    with storage.fs.open(f"{resume.checkpoint.removeprefix('s3://')}/{checkpoint.STATE_FILE}", "rb") as handle:
        assert torch.load(handle, weights_only=True)["train_state"]["epoch"] == 1
    assert not list(SPOOL.glob("*/checkpoint-*")), "each local copy is deleted once stored"


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
