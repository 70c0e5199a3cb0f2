"""Node failure on a multi-node Ray cluster on this machine: a head without CPUs and two 2-CPU worker nodes.

Removing the node that holds a training worker mid-run fails the run naming the missing resources
when its plan no longer fits the node left; an elastic run goes on there from its checkpoint with
the workers left, and grows again when a node comes back. (A run of fixed size that still fits goes
on as the elastic one does: its restart from a checkpoint is test_faults', on one node.)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster
from ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator import _AutoscalingCoordinatorActor
from ray.util.state import list_actors

from cluster.connect import IDLE_WORKER_KEEP_MS
from core.config.sections import FailureSettings
from core.engine import checkpoint
from core.runs import fingerprint
from core.runs.run_dir import read_metrics
from jobs import train
from jobs._train.resume import latest_registered_metrics
from jobs._train.starts import STARTS
from jobs._train.trainer import COORDINATOR_TICK_S, ELASTIC_START_S, START_TIMEOUT, failure_config
from tests.conftest import tiny_overrides
from tests.ray_head import free_port

REPO = Path(__file__).resolve().parents[2]
NODE_CPUS = 2
EPOCHS = 4
# The grow waits for the added node and for Ray Data's AutoscalingCoordinator, which looks at the nodes every 20 s:
# the grown group started 12-34 s after the one-worker group here, and an epoch of one worker takes about 2 s. The
# elastic run is planned longer than that can take, and stopped by SIGTERM once the grown group trained an epoch.
ELASTIC_EPOCHS = 40


@pytest.fixture(scope="module")
def cluster():
    # No CPUs on the head: every worker lands on a node the test can remove (the driver's cannot be).
    # Nodes take the machine's address: a head on 127.0.0.1 announced its GCS on eth0's and was never reached.
    with pytest.MonkeyPatch.context() as env:
        port = free_port()  # named to every node's processes, which find their own Ray among others (cluster.connect)
        env.setenv("RAY_GCS_SERVER_PORT", str(port))
        env.setenv("RAY_ADDRESS", f"{ray.util.get_node_ip_address()}:{port}")
        # Inherited by every node's workers, as cluster.connect gives a local instance this code: a job's runtime_env
        # would have each worker started through the runtime-env agent instead of prestarted (3-5 s apart here).
        env.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": free_port(),
            # a lost node is noticed in 3 s, not 15; idle workers kept as ray_cluster.yaml's nodes keep them
            "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3,
                               "idle_worker_killing_time_threshold_ms": IDLE_WORKER_KEEP_MS}})
        try:
            ray.init(address=cluster.address)
            yield cluster
        finally:
            ray.shutdown()
            cluster.shutdown()


@pytest.fixture
def two_nodes(cluster):
    """The module's cluster with exactly two live worker nodes, all their CPUs free (a previous test may have removed one,
    and its actors may still hold CPUs). The elastic test is the module's first all the same: Ray Data's
    AutoscalingCoordinator, which sizes an elastic group, sees a node added by a previous test up to 20 s late, and a run
    started in between began with one worker and grew at once (a resize and a restart from scratch more)."""
    while len(cluster.worker_nodes) < 2:
        cluster.add_node(num_cpus=NODE_CPUS)
    cluster.wait_for_nodes()
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2 * NODE_CPUS and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2 * NODE_CPUS, ray.available_resources()
    return cluster


def _starts(run_dir: Path) -> list[dict]:
    """The run's worker-group starts (jobs._train.starts), in order."""
    folder = run_dir / "ray_train" / STARTS
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"), key=lambda p: int(p.stem))] if folder.is_dir() else []


def _shrink_then_grow(cluster: Cluster, runs: Path, run: subprocess.Popen, timeout_s: float = 300) -> list[str]:
    """Remove a worker's node once a checkpoint inside epoch 2 is registered; add a node once the run started again with
    one worker after that; stop the run by SIGTERM once the grown group trained an epoch. In this thread: Ray starts a
    node's processes with signal handlers, which only the main thread may set."""
    deadline = time.monotonic() + timeout_s

    def wait_for(condition) -> bool:
        while time.monotonic() < deadline and run.poll() is None:
            if any(condition(run_dir) for run_dir in runs.glob("*/")):
                return True
            time.sleep(0.05)
        return False

    if not wait_for(lambda run_dir: latest_registered_metrics(run_dir).get("inside_epoch", 0) >= 2):
        return ["no checkpoint inside epoch 2"]
    workers = list_actors(address=cluster.address, filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    before = {run_dir: len(_starts(run_dir)) for run_dir in runs.glob("*/")}
    cluster.remove_node(next(n for n in cluster.worker_nodes if n.node_id == workers[0].node_id), allow_graceful=False)
    if not wait_for(lambda run_dir: any(start["world_size"] == 1 for start in _starts(run_dir)[before.get(run_dir, 0):])):
        return ["removed", "no start with one worker"]
    cluster.add_node(num_cpus=NODE_CPUS)
    if not wait_for(lambda run_dir: _trained_an_epoch_after_the_grow(run_dir, before.get(run_dir, 0))):
        return ["removed", "added", "no epoch trained after a grow"]
    run.send_signal(signal.SIGTERM)
    return ["removed", "added", "grown"]


def _trained_an_epoch_after_the_grow(run_dir: Path, starts_before_removal: int) -> bool:
    """Whether a group of two started after the removal, and metrics.jsonl holds an epoch it trained from its start."""
    grown = [start for start in _starts(run_dir)[starts_before_removal:] if start["world_size"] == 2]
    records = read_metrics(run_dir) if grown else []
    return bool(records) and records[-1]["epoch"] > grown[0]["epoch"]


def test_an_elastic_run_shrinks_on_a_node_loss_grows_when_a_node_comes_and_trains_every_sample_once(two_nodes, tiny_dataset,
                                                                                                     tmp_path):
    # One 1.5-CPU worker per 2-CPU node, 0.5 CPU beside it for Ray Data: one node holds a run of one worker.
    runs = tmp_path / "runs"
    base = [o for o in tiny_overrides(tiny_dataset, runs) if not o.startswith("train.epochs")]
    run = subprocess.Popen(
        [sys.executable, "-m", "jobs.train", *base, f"train.epochs={ELASTIC_EPOCHS}", "scaling.use_gpu=false",
         "failure.max_failures=2", "scaling.num_workers=[1, 2]", "scaling.cpus_per_worker=1.5", "scaling.data_cpus=0.5",
         "scaling.resize_check_s=1", "train.checkpoint_every={steps: 1}"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        events = _shrink_then_grow(two_nodes, runs, run)
        output = run.communicate(timeout=600)[0]
    finally:
        run.kill()
    (run_dir,) = runs.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert events == ["removed", "added", "grown"], (events, output[-3000:])
    assert run.returncode == 128 + signal.SIGTERM and summary["status"] == "interrupted", (summary.get("error"), output[-3000:])
    assert "elastic: starts with 1 worker(s) and grows to 2" in output
    assert [(r["from"], r["to"]) for r in summary["resizes"]] == [(2, 1), (1, 2)], summary["resizes"]
    assert summary["resizes"][0]["epoch"] >= 1 and summary["resizes"][0]["epoch_samples"] > 0, "the shrink went on inside epoch 2"
    # Both new groups, the one on the node left and the grown one, went on from a checkpoint.
    assert (summary["restarts"], summary["restarts_from_scratch"]) == (2, 0), summary
    env = json.loads((run_dir / "env.json").read_text())
    assert env["nodes"] == {"2 CPU": fingerprint.current()}, "the pre-flight read the worker nodes' type on one of them"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, len(records) + 1)) and records[-1]["world_size"] == 2
    assert {r["train/samples"] for r in records} == {16} and len({r["train/sample_digest"] for r in records}) == 1
    assert {r["global_batch"] for r in records} == {8}
    # an epoch that ends at one worker (the grow may come first) accumulates two batches into each step
    assert all(r["grad_accumulation"] == 2 // r["world_size"] for r in records)


def _remove_a_workers_node(cluster: Cluster, runs: Path, removed: list[str], after_first_epoch: bool,
                           timeout_s: float = 300) -> None:
    """Remove the node of one Ray Train worker once the run recorded its first checkpointed epoch (see test_faults), or
    once all its workers are up."""
    deadline = time.monotonic() + timeout_s
    workers = []
    while len(workers) < 2 and time.monotonic() < deadline:
        if not after_first_epoch or any(path.read_text().strip() for path in runs.glob("*/metrics.jsonl")):
            workers = list_actors(address=cluster.address, filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
        time.sleep(0.1)
    node = next((n for n in cluster.worker_nodes if workers and n.node_id == workers[0].node_id), None)
    if node is not None:
        cluster.remove_node(node, allow_graceful=False)
        removed.append(node.node_id)


def _train_and_remove_a_node(cluster: Cluster, tiny_dataset: Path, runs: Path, overrides: list[str],
                             after_first_epoch: bool) -> tuple[int, Path, list[str]]:
    removed: list[str] = []
    remover = threading.Thread(target=_remove_a_workers_node, args=(cluster, runs, removed, after_first_epoch))
    remover.start()
    base = [o for o in tiny_overrides(tiny_dataset, runs) if not o.startswith("train.epochs")]
    code = train.main([*base, f"train.epochs={EPOCHS}", "scaling.use_gpu=false", "failure.max_failures=1", *overrides])
    remover.join()
    assert removed, "no node holding a training worker was found to remove"
    (run_dir,) = runs.iterdir()
    return code, run_dir, removed


def test_a_run_whose_plan_no_longer_fits_fails_naming_the_missing_resources(two_nodes, tiny_dataset, tmp_path):
    # 2 workers x 1.5 CPU need both nodes; after one is gone, 2 CPUs remain of the 3.5 the plan needs.
    code, run_dir, _ = _train_and_remove_a_node(
        two_nodes, tiny_dataset, tmp_path / "runs",
        ["scaling.num_workers=2", "scaling.cpus_per_worker=1.5", "scaling.data_cpus=0.5", "failure.resource_wait_s=3"],
        after_first_epoch=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert code == 1 and summary["status"] == "failed"
    assert "missing 1.5 CPU" in summary["error"] and "failure.resource_wait_s=3" in summary["error"], summary["error"]
    assert summary["checkpoint"] and (Path(summary["checkpoint"]) / checkpoint.STATE_FILE).is_file()


def test_a_restart_that_would_leave_ray_data_no_cpu_fails_instead_of_waiting(two_nodes, tiny_dataset, tmp_path):
    # 2 workers x 1 CPU + 1 CPU for Ray Data: after a node is gone the workers still fit the 2 CPUs left, Ray Data not.
    code, run_dir, _ = _train_and_remove_a_node(
        two_nodes, tiny_dataset, tmp_path / "runs", ["scaling.num_workers=2", "scaling.cpus_per_worker=1", "scaling.data_cpus=1"],
        after_first_epoch=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert code == 1 and summary["status"] == "failed"
    assert "missing 1 CPU" in summary["error"] and "Ray Data needs 1" in summary["error"], summary["error"]


@pytest.mark.parametrize("resource_wait_s", [3.0, 600.0])
def test_an_elastic_group_start_is_retried_past_the_coordinators_stale_view_and_the_resource_wait(monkeypatch, resource_wait_s):
    monkeypatch.setenv(START_TIMEOUT, "unset")  # failure_config sets it for Ray Train's controller; restored after the test
    retries = failure_config(FailureSettings(resource_wait_s=resource_wait_s), elastic=True).controller_failure_limit
    attempt_s = float(os.environ[START_TIMEOUT])
    assert attempt_s == min(resource_wait_s, ELASTIC_START_S)
    assert (retries + 1) * attempt_s >= COORDINATOR_TICK_S + resource_wait_s > retries * attempt_s
    assert COORDINATOR_TICK_S == _AutoscalingCoordinatorActor.TICK_INTERVAL_S, "Ray Data's coordinator looks at the nodes at another pace"
    assert failure_config(FailureSettings(resource_wait_s=resource_wait_s)).controller_failure_limit == 0
    assert float(os.environ[START_TIMEOUT]) == resource_wait_s, "a fixed-size group waits the whole time in one start"
