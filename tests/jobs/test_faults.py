"""Faults during training: a training worker killed mid-run, and the run goes on from its latest checkpoint."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import ray
from ray.util.state import list_actors

from jobs import train
from tests.conftest import tiny_overrides
from tests.ray_fixtures import local_ray_with_dashboard  # noqa: F401  (fixture: the state API finds the worker)

EPOCHS = 3


def _kill_a_worker_after_first_checkpoint(runs: Path, killed: list[int], timeout_s: float = 300) -> None:
    """SIGKILL one Ray Train worker process, by its PID, once the run has recorded its first checkpointed epoch.

    metrics.jsonl is written after Ray Train registered the checkpoint; the checkpoint's files alone
    appear before that, and a restart then would rightly begin from scratch."""
    deadline = time.monotonic() + timeout_s
    while not any(path.read_text().strip() for path in runs.glob("*/metrics.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.1)
    # This test's own Ray, never another Ray that happens to run on the machine.
    workers = list_actors(address=ray.get_runtime_context().gcs_address,
                          filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    if workers:
        os.kill(workers[0].pid, signal.SIGKILL)
        killed.append(workers[0].pid)


def test_a_killed_worker_restarts_the_run_from_its_latest_checkpoint(local_ray_with_dashboard, tiny_dataset, tmp_path):  # noqa: F811
    runs, killed = tmp_path / "runs", []
    killer = threading.Thread(target=_kill_a_worker_after_first_checkpoint, args=(runs, killed))
    killer.start()
    overrides = [o for o in tiny_overrides(tiny_dataset, runs) if not o.startswith("train.epochs")]
    code = train.main([*overrides, f"train.epochs={EPOCHS}", "failure.max_failures=1"])
    killer.join()
    assert killed, "no training worker was found to kill"
    (run_dir,) = runs.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert code == 0 and summary["status"] == "completed", summary.get("error")
    assert summary["epochs_completed"] == EPOCHS and summary["restarts_from_checkpoint"] == 1
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))
    assert records[0]["restarts_from_checkpoint"] == 0 and records[-1]["restarts_from_checkpoint"] == 1
