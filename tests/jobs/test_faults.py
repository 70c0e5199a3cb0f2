"""Faults during training: a training worker killed mid-run, and the run goes on from its latest checkpoint."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import ray
from ray.util.state import list_actors

from core.runs.run_dir import TRAIN_STORAGE
from jobs import train
from jobs._train.starts import STARTS
from tests.conftest import tiny_overrides
from tests.ray_fixtures import local_ray_with_dashboard  # noqa: F401  (fixture: the state API finds the worker)

EPOCHS = 3


def _records(runs: Path) -> bool:
    return any(path.read_text().strip() for path in runs.glob("*/metrics.jsonl"))


def _kill_a_worker(killed: list[int], only: int | None = None) -> bool:
    """SIGKILL one live Ray Train worker process of this test's own Ray (never another Ray on the machine), by its PID;
    only: that worker's PID."""
    workers = list_actors(address=ray.get_runtime_context().gcs_address,
                          filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    for worker in workers:
        if worker.pid in killed or only not in (None, worker.pid):
            continue
        try:
            os.kill(worker.pid, signal.SIGKILL)
        except ProcessLookupError:  # gone already; the state API has not seen it yet
            continue
        killed.append(worker.pid)
        return True
    return False


def _kill_before_and_after_the_first_checkpoint(runs: Path, killed: list[int], timeout_s: float = 300) -> None:
    """One worker killed as soon as the group has started training, before any epoch ended, and one once the run has recorded its
    first checkpointed epoch (metrics.jsonl is written after Ray Train registered the checkpoint; the checkpoint's
    files alone appear before that, and a restart then would rightly begin from scratch)."""
    deadline = time.monotonic() + timeout_s
    # Rank 0 marks each start of the loop in the run's storage, with its PID: its part of the group's start is over
    # then. A worker killed while Ray Train still starts the group fails the whole run, whatever max_failures says.
    while not (marks := list(runs.glob(f"*/{TRAIN_STORAGE}/{STARTS}/*.json"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    rank0 = json.loads(marks[0].read_text())["rank0_pid"] if marks else None
    while not _kill_a_worker(killed, only=rank0) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _records(runs):
        return  # too late for a kill before the first checkpoint: the test fails on the counts, naming it
    while not _records(runs) and time.monotonic() < deadline:
        time.sleep(0.1)
    while not _kill_a_worker(killed) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_killed_workers_restart_the_run_from_scratch_and_from_its_latest_checkpoint_and_both_count(
        local_ray_with_dashboard, tiny_dataset, tmp_path):  # noqa: F811
    runs, killed = tmp_path / "runs", []
    killer = threading.Thread(target=_kill_before_and_after_the_first_checkpoint, args=(runs, killed))
    killer.start()
    overrides = [o for o in tiny_overrides(tiny_dataset, runs) if not o.startswith("train.epochs")]
    code = train.main([*overrides, f"train.epochs={EPOCHS}", "failure.max_failures=2"])
    killer.join()
    assert len(killed) == 2, f"killed {len(killed)} training worker(s), not one before and one after the first checkpoint"
    (run_dir,) = runs.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert code == 0 and summary["status"] == "completed", summary.get("error")
    assert summary["epochs_completed"] == EPOCHS and summary["restarts_from_checkpoint"] == 1
    assert summary["restarts"] == 2 and summary["restarts_from_scratch"] == 1
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))
    assert records[0]["restarts_from_checkpoint"] == 0 and records[-1]["restarts_from_checkpoint"] == 1
