"""python -m bench._startup_floor OUT_DIR: the floor under jobs.train's startup, one JSON line of marks.

A bare ray.init() and a TorchTrainer whose workers do nothing, with the quickstart's plan (2
workers, half a CPU each); the marks are those of core.profiling.startup, up to the workers' first line.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from core.profiling import startup

MARKS = {"process_start": startup.process_start()}

import ray  # noqa: E402  (after the process-start mark, so that the imports are timed)
from ray.train import RunConfig, ScalingConfig  # noqa: E402
from ray.train.torch import TorchTrainer  # noqa: E402


def _enter(config: dict) -> None:
    if ray.train.get_context().get_world_rank() == 0:
        Path(config["entered"]).write_text(str(time.time()))


def main(out: Path) -> None:
    MARKS["imports_done"] = time.time()
    # With the arguments jobs.train gives the quickstart's (cluster.connect), so that Ray starts the same
    # processes in both; bare otherwise: no environment for the workers (this module's function travels
    # by value), and Ray Train's preemption watcher on, as Ray has it.
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=True, dashboard_host="127.0.0.1",
             _node_ip_address="127.0.0.1")
    MARKS["ray_connected"] = time.time()
    entered = out / "entered"
    trainer = TorchTrainer(_enter, train_loop_config={"entered": str(entered)},
                           scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
                           run_config=RunConfig(storage_path=str(out), name="floor"))
    MARKS["trainer_built"] = time.time()
    trainer.fit()
    MARKS["worker_entered"] = float(entered.read_text())
    print(json.dumps(MARKS))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
