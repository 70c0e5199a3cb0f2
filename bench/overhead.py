"""python -m bench.overhead [--steps N] [--warmup W] [--repeats R] [--threads T]: what the framework costs per step.

Steady-state training throughput of the quickstart model (FPN ResNet-18, 3x64x64, batches of 8)
on the same pre-decoded batches through
  (a) a plain single-process PyTorch loop (forward, cross-entropy, backward, AdamW step),
  (b) the project's engine without Ray (core.engine.train_epoch: the task splits, normalises and
      weighs the losses; the step loop times data waits),
  (c) Ray Train with one worker running the same engine (prepare_model, ray.train.report per pass).
Each pass times --steps steps after --warmup untimed ones, with the same torch threads everywhere,
and counts the CPU time every other process on the machine used meanwhile (Ray's own processes
during (c)), as a share of the machine's CPUs.
The variants take turns, c in a Ray instance started for its pass and shut down after it, and each
turn starts one variant later (abc, bca, cab, ...), so that a noisy neighbour, a slow drift of the
machine or the heat of starting Ray hurts all three alike, and a and b run without Ray beside them. The table shows medians over --repeats turns and the ratios
b/a and c/a; JSON goes to bench/results/overhead.json. The batches come from the quickstart data set (generated if absent).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F

from bench import _results
from core.config import OptimizerConfig, load_config
from core.engine import train_epoch
from core.optim import build_optimizer
from core.tasks import build_task
from data_pipeline.local_reader import split_batches
from data_pipeline.storage import DataStore
from data_pipeline.synthetic import ensure_dataset

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "quickstart.yaml"
CPU = torch.device("cpu")
PASSES = Path("/tmp/bench_overhead_passes.json")


def _setup(threads: int):
    torch.set_num_threads(threads)
    config = load_config(CONFIG)
    store = DataStore.at(ROOT / config.data.uri)  # from the checkout, also in (c)'s worker, whose working directory is Ray's
    manifest = ensure_dataset(store, config.data.synthetic)
    task = build_task(config.task, manifest)
    batches = [b for _, b in zip(range(8), split_batches(store, manifest, "train", task.columns, config.train.batch_size))]
    torch.manual_seed(0)
    model = task.build_model()
    return task, batches, model, build_optimizer(OptimizerConfig(lr=1e-3), model.parameters())


def _cpu_seconds_by_process() -> dict[int, float]:
    seconds = {}
    for process in psutil.process_iter():
        try:
            times = process.cpu_times()
        except psutil.Error:  # gone, or not ours to read
            continue
        seconds[process.pid] = times.user + times.system
    return seconds


def used_elsewhere(timed) -> tuple[float, float]:
    """(what timed() returns, the share of the machine's CPUs that other processes used while it ran)."""
    before, start = _cpu_seconds_by_process(), time.perf_counter()
    result = timed()
    wall, after = time.perf_counter() - start, _cpu_seconds_by_process()
    others = sum(seconds - before[pid] for pid, seconds in after.items() if pid in before and pid != os.getpid())
    return result, others / (wall * psutil.cpu_count())


def plain_loop(task, batches, model, optimizer, steps: int) -> float:
    """samples/s of a hand-written loop over the same tensors, normalised once beforehand."""
    ready = [task.split_batch(batch, CPU) for batch in batches]
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        inputs, targets = ready[step % len(ready)]
        loss = F.cross_entropy(model(inputs), targets, ignore_index=task.ignore_index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * len(ready[0][1]) / (time.perf_counter() - start)


def engine_loop(task, batches, model, optimizer, steps: int) -> float:
    cycled = [batches[step % len(batches)] for step in range(steps)]
    stats = train_epoch(model, optimizer, cycled, task, CPU)
    return stats.samples / stats.seconds


def _ray_worker(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch

    task, batches, model, optimizer = _setup(loop_config["threads"])
    model = ray.train.torch.prepare_model(model)
    engine_loop(task, batches, model, optimizer, loop_config["warmup"])
    figures = used_elsewhere(lambda: engine_loop(task, batches, model, optimizer, loop_config["steps"]))
    # Train V2 keeps the metrics of reports with a checkpoint only; the bench runs on one node, so a file does.
    Path(loop_config["out"]).write_text(json.dumps(figures))
    ray.train.report({"samples_per_s": figures[0]})


def ray_train(args: argparse.Namespace) -> tuple[float, float]:
    """One timed pass (after --warmup steps) of a one-worker Ray Train run in a fresh Ray instance."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from jobs._trainer import quiet_ray_data

    ray.init(num_cpus=args.threads, include_dashboard=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    quiet_ray_data()
    try:
        TorchTrainer(_ray_worker, train_loop_config={**vars(args), "out": str(PASSES)},
                     scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": args.threads}),
                     run_config=RunConfig(name="bench_overhead", storage_path="/tmp/bench_overhead")).fit()
    finally:
        ray.shutdown()
    return json.loads(PASSES.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=6, help="turns; a multiple of 3 gives each variant each place alike")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in every variant (and CPUs of the Ray worker)")
    args = parser.parse_args()
    task, batches, model, optimizer = _setup(args.threads)
    engine_loop(task, batches, model, optimizer, args.warmup)
    variants = {"a: plain loop": lambda: used_elsewhere(lambda: plain_loop(task, batches, model, optimizer, args.steps)),
                "b: engine, no Ray": lambda: used_elsewhere(lambda: engine_loop(task, batches, model, optimizer, args.steps)),
                "c: Ray Train, 1 worker": lambda: ray_train(args)}
    names = list(variants)
    figures: dict[str, list[float]] = {name: [] for name in names}
    elsewhere: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(args.repeats):
        for name in names[turn % 3:] + names[:turn % 3]:
            samples_per_s, share = variants[name]()
            figures[name].append(samples_per_s)
            elsewhere[name].append(share)
        print(f"turn {turn + 1}/{args.repeats} done", flush=True)
    medians = {name: statistics.median(values) for name, values in figures.items()}
    elsewhere_medians = {name: statistics.median(values) for name, values in elsewhere.items()}
    ratios = {"b/a": medians["b: engine, no Ray"] / medians["a: plain loop"],
              "c/a": medians["c: Ray Train, 1 worker"] / medians["a: plain loop"]}
    print(f"\nquickstart model, batches of {len(batches[0]['rgb'])}, {args.steps} steps per pass after {args.warmup} warm-up, "
          f"{args.threads} torch threads, median of {args.repeats}")
    print(f"{'loop':<26}{'samples/s':>12}{'CPU elsewhere':>15}   passes")
    for name, values in figures.items():
        print(f"{name:<26}{medians[name]:>12.1f}{elsewhere_medians[name]:>14.1%}   {', '.join(f'{v:.1f}' for v in values)}")
    for name, value in ratios.items():
        print(f"{name:<26}{value:>12.3f}")
    print("CPU elsewhere: the share of the machine's CPUs that other processes used during the timed steps")
    _results.write("overhead", {"settings": vars(args), "runs": figures, "medians": medians, "ratios": ratios,
                                "cpu_share_elsewhere": {"runs": elsewhere, "medians": elsewhere_medians}})


if __name__ == "__main__":
    main()
