"""Connect to the Ray cluster named by RAY_ADDRESS, or start a local one bound to loopback."""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import ray

from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR

from core.config.sections import RayConfig

CODE_ROOT = Path(__file__).resolve().parent.parent  # this checkout: local workers import it, a cluster is sent it

# Besides what .gitignore leaves out (Ray honours it), never upload these to a cluster.
SHIPPING_EXCLUDES = ["/.git", "/.venv", "/data", "/runs", "**/__pycache__"]  # anchored: core/runs/ is code
PREEMPTION_WATCHER = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"  # Ray Train's switch; set in the environment, it is kept
RAY_DATA_LOGGING = "RAY_DATA_LOGGING_CONFIG"  # Ray Data's; set in the environment, it is kept
# The per-epoch lines of Ray Data's split coordinators go to its log file, not to the console between the
# lines the jobs print. A cluster's nodes name it in their own environment (ray_cluster.yaml), as an absolute
# path: Ray Data opens it in every process that imports it, and some of Ray's own actors (usage collection,
# the preemption watcher) do not run in the job's working_dir, where a relative path would lead.
RAY_DATA_LOGGING_FILE = Path("configs") / "ray_data_logging.yaml"
# A raylet keeps at most as many idle worker processes as its node has CPUs free, and ends the rest after
# 1 s idle. A training run holds nearly every CPU, so the processes that ran an epoch's read tasks were
# ended in the seconds before the next epoch's reads, which waited for new ones to start and import torch
# (bench.idle_workers: 23 processes against 14 in a quickstart run with a checkpoint every step). Ray's
# knob, read by each raylet from its environment at start; set there (a cluster's `ray start`,
# ray_cluster.yaml), it is kept.
IDLE_WORKER_KEEP = "RAY_idle_worker_killing_time_threshold_ms"
IDLE_WORKER_KEEP_MS = 60_000


def connect(config: RayConfig, code_root: Path) -> None:
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        # A submitted job already carries its --working-dir; a driver started by hand ships this code.
        submitted = RAY_JOB_CONFIG_JSON_ENV_VAR in os.environ
        runtime_env = {} if submitted else {"working_dir": str(code_root), "excludes": SHIPPING_EXCLUDES}
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=runtime_env)
        return
    with worker_environment(code_root, config.node_ip_address):
        ray.init(
            address="local",  # a new instance even where `ray start` left one running: that one is named by RAY_ADDRESS
            num_cpus=config.num_cpus or os.cpu_count(),
            include_dashboard=config.include_dashboard,
            dashboard_host=config.dashboard_host,
            _node_ip_address=config.node_ip_address,
        )


@contextlib.contextmanager
def worker_environment(code_root: Path, node_ip_address: str):
    """Around ray.init starting a local instance: what its raylet and workers find in their environment.

    They inherit it from the raylet, which ray.init starts from this process; os.environ is as it was
    again afterwards. Not given as the job's runtime_env: Ray starts every worker of a job that has
    one through its runtime-env agent and never hands it one of the workers it prestarts, so each
    actor took about 0.5 s longer to start (bench.actor_start), and a run starts about ten.
    """
    # Local workers import this code by path; a submitted job ships it with --working-dir instead.
    pythonpath = os.pathsep.join(filter(None, [str(code_root), os.environ.get("PYTHONPATH")]))
    # A machine of its own is never preempted: Ray Train's preemption watcher, a process started with every
    # run, would only take CPU from the model build (1.0 s of it on 2 cores: bench.startup_pairs, README "Startup").
    values = {"PYTHONPATH": pythonpath, PREEMPTION_WATCHER: os.environ.get(PREEMPTION_WATCHER, "0"),
              IDLE_WORKER_KEEP: os.environ.get(IDLE_WORKER_KEEP, str(IDLE_WORKER_KEEP_MS)),
              RAY_DATA_LOGGING: os.environ.get(RAY_DATA_LOGGING, str(code_root / RAY_DATA_LOGGING_FILE)),
              **_own_address(node_ip_address)}
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value



def _own_address(node_ip_address: str) -> dict[str, str]:
    """The instance's GCS port, chosen here, and its address for the workers. Ray Train's own actors find
    the cluster through the state API, which without RAY_ADDRESS looks for every Ray on the machine and
    fails ("Found multiple active Ray instances") where a second one runs: a second run, a test, a
    `ray start`. The run then waited forever for workers its placement-group cleaner never saw."""
    with socket.socket() as sock:
        sock.bind((node_ip_address, 0))
        port = sock.getsockname()[1]
    return {"RAY_GCS_SERVER_PORT": str(port), "RAY_ADDRESS": f"{node_ip_address}:{port}"}


def node_resources() -> list[dict[str, float]]:
    return [node["Resources"] for node in ray.nodes() if node["Alive"]]
