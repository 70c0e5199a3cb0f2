"""python -m bench.ray_processes [--rounds R] [--steps N] [--threads T]: what Ray's other processes cost a training worker.

bench.overhead's (c) trails (b) at two torch threads on two cores; this finds which processes take
the difference. One Ray Train worker (the quickstart model on pre-decoded batches, as in
bench.overhead) times blocks of --steps steps in turns:
  as is             every process running;
  helpers paused    Ray Train's helper actors (PlacementGroupCleaner, _AutoscalingCoordinatorActor,
                    DatasetManager, PreemptionWatcher) stopped with SIGSTOP for the block;
  all paused        every other Ray process of the instance (raylet, GCS, dashboard, agents, log
                    monitor, the TrainController and the helpers) stopped for the block.
Each round runs the three in rotating order; the ratios are medians of each round's pair, so the
machine's drift cancels. Pausing is a measurement only: nothing a run does depends on it. Each
Ray worker process wakes its main thread every 10 ms to check for signals (Ray's core worker, fixed
in its C++), and a worker using every core loses a step's share to each wake-up.
JSON goes to bench/results/ray_processes.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import psutil

from bench import _results
from bench.overhead import _setup, engine_loop
from cluster.connect import CODE_ROOT, connect
from core.config.sections import RayConfig

HELPERS = ("PlacementGroupCleaner", "_AutoscalingCoordinatorActor", "DatasetManager", "PreemptionWatcher")
MODES = ("as is", "helpers paused", "all paused")
BLOCKS = Path("/tmp/bench_ray_processes.json")


def _ray_processes(driver: int) -> list[psutil.Process]:
    """This instance's other processes: Ray's daemons and actors, not the timing worker or the driver."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if process.pid not in (os.getpid(), driver) and ("ray::" in command or "/ray/" in command):
            found.append(process)
    return found


def _paused(processes: list[psutil.Process], steps) -> float:
    for process in processes:
        _signal(process.suspend)
    try:
        return steps()
    finally:
        for process in processes:
            _signal(process.resume)


def _signal(send) -> None:
    try:
        send()
    except psutil.NoSuchProcess:  # an idle Ray worker that the raylet let go meanwhile
        pass


def _worker(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch

    task, batches, model, optimizer = _setup(loop_config["threads"])
    model = ray.train.torch.prepare_model(model)
    engine_loop(task, batches, model, optimizer, loop_config["warmup"])
    others = _ray_processes(loop_config["driver"])
    helpers = [p for p in others if any(name in " ".join(p.cmdline()) for name in HELPERS)]
    paused = {"as is": [], "helpers paused": helpers, "all paused": others}
    blocks: dict[str, list[float]] = {mode: [] for mode in MODES}
    for turn in range(loop_config["rounds"]):
        for mode in MODES[turn % 3:] + MODES[:turn % 3]:
            blocks[mode].append(_paused(paused[mode], lambda: engine_loop(task, batches, model, optimizer, loop_config["steps"])))
    found = sorted(name for name in HELPERS if any(name in " ".join(p.cmdline()) for p in helpers))
    BLOCKS.write_text(json.dumps({"blocks": blocks, "helpers_found": found, "others": len(others)}))
    ray.train.report({})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ray_processes", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12, help="turns of the three modes")
    parser.add_argument("--steps", type=int, default=20, help="steps per block")
    parser.add_argument("--warmup", type=int, default=25, help="untimed steps first, while Ray's processes settle")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (and CPUs) of the worker")
    args = parser.parse_args()

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    connect(RayConfig(num_cpus=args.threads, include_dashboard=False), CODE_ROOT)  # as jobs.train starts its local Ray, less the dashboard
    try:
        TorchTrainer(_worker, train_loop_config={**vars(args), "driver": os.getpid()},
                     scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": args.threads}),
                     run_config=RunConfig(name="bench_ray_processes", storage_path="/tmp/bench_ray_processes")).fit()
    finally:
        ray.shutdown()
    found = json.loads(BLOCKS.read_text())
    blocks = found["blocks"]
    medians = {mode: statistics.median(values) for mode, values in blocks.items()}
    ratios = {f"{mode} / all paused": statistics.median(a / b for a, b in zip(blocks[mode], blocks["all paused"]))
              for mode in MODES[:2]}
    ratios["as is / helpers paused"] = statistics.median(a / b for a, b in zip(blocks["as is"], blocks["helpers paused"]))
    _print(args, found, medians, ratios)
    _results.write("ray_processes", {"settings": vars(args), "helpers_found": found["helpers_found"],
                                     "blocks": blocks, "medians": medians, "ratios": ratios})


def _print(args: argparse.Namespace, found: dict, medians: dict[str, float], ratios: dict[str, float]) -> None:
    print(f"\none Ray Train worker, {args.threads} torch threads, blocks of {args.steps} steps, {args.rounds} rounds; "
          f"helpers paused: {', '.join(found['helpers_found'])}; all paused: {found['others']} processes")
    print(f"{'mode':<18}{'samples/s':>12}   per block")
    for mode, values in found["blocks"].items():
        print(f"{mode:<18}{medians[mode]:>12.1f}   {', '.join(f'{v:.1f}' for v in values)}")
    for name, value in ratios.items():
        print(f"{name:<28}{value:>8.3f}   (median of each round's pair)")


if __name__ == "__main__":
    main()
