"""The local Ray instance jobs start when RAY_ADDRESS names no cluster."""
from __future__ import annotations

import logging
import os
import time

import psutil
import pytest
import ray

from cluster.connect import IDLE_WORKER_KEEP, PREEMPTION_WATCHER, RAY_DATA_LOGGING, connect
from core.config.sections import RayConfig
from tests.ray_fixtures import REPO


@pytest.fixture(scope="module")
def connected():
    """One instance for the module's tests, each of which leaves it as it found it."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("RAY_ADDRESS", PREEMPTION_WATCHER, RAY_DATA_LOGGING, IDLE_WORKER_KEEP):
            env.delenv(name, raising=False)
        env.setenv("PYTHONPATH", "/elsewhere")
        connect(RayConfig(num_cpus=1, include_dashboard=False), REPO)
        try:
            yield
        finally:
            ray.shutdown()


def test_a_local_instance_imports_this_code_and_starts_no_preemption_watcher(connected):
    @ray.remote(num_cpus=0)
    def worker_view():
        import cluster.connect as module

        return os.environ.get(PREEMPTION_WATCHER), module.__file__, os.environ.get("PYTHONPATH"), os.environ.get("RAY_ADDRESS")

    watcher, module_file, pythonpath, address = ray.get(worker_view.remote())
    assert watcher == "0"  # Ray Train's controller reads it: a machine of its own is never preempted
    assert module_file == str(REPO / "cluster" / "connect.py") and pythonpath == f"{REPO}{os.pathsep}/elsewhere"
    # The workers inherit it from the raylet: no runtime_env, which would keep Ray's prestarted workers from them.
    assert ray.get_runtime_context().runtime_env == {}
    assert PREEMPTION_WATCHER not in os.environ and os.environ["PYTHONPATH"] == "/elsewhere", "the driver's own is as it was"
    # Ray Train's actors use the state API, which without it fails where a second Ray runs on the machine.
    gcs_port = ray.get_runtime_context().gcs_address.rsplit(":", 1)[1]  # announced on the machine's address, reached on loopback
    assert address == f"127.0.0.1:{gcs_port}" and "RAY_ADDRESS" not in os.environ


def test_ray_data_in_a_local_instance_logs_warnings_to_the_console_and_the_rest_to_its_file_only(connected):
    @ray.remote(num_cpus=0)
    def ray_data_logging():
        import ray.data  # noqa: F401  (importing it configures its loggers from RAY_DATA_LOGGING_CONFIG)

        handlers = {handler.name: handler.level for handler in logging.getLogger("ray.data").handlers}
        return handlers, logging.getLogger("ray.data._internal.progress").getEffectiveLevel()

    handlers, progress_notices = ray.get(ray_data_logging.remote())
    # "Dataset ... execution finished" (INFO), per split and epoch, reaches only the session's ray-data.log.
    assert handlers == {"file": logging.NOTSET, "console": logging.WARNING}
    assert progress_notices == logging.ERROR  # "Progress bars disabled": this project turns them off itself
    assert RAY_DATA_LOGGING not in os.environ, "the driver's own is as it was"


def test_a_task_workers_process_outlives_a_second_idle_while_the_cpus_are_taken(connected):
    """Ray ends idle workers beyond the free CPUs after 1 s: the next epoch's read tasks waited for new processes."""
    @ray.remote(num_cpus=1)
    class Holder:  # as a run's training workers hold the CPUs
        def ready(self) -> bool:
            return True

    @ray.remote(num_cpus=0)
    def pid() -> int:
        return os.getpid()

    holder = Holder.remote()
    ray.get(holder.ready.remote())
    first = ray.get(pid.remote())
    time.sleep(3)
    alive = psutil.pid_exists(first)
    ray.kill(holder)
    assert alive, "the raylet ended the idle worker"
    assert IDLE_WORKER_KEEP not in os.environ, "the driver's own is as it was"
