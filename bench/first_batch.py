"""python -m bench.first_batch [--repeats R]: seconds from splitting the quickstart's train split to the first batch.

Each repeat is a fresh process with a fresh Ray instance, as every `python -m jobs.train` is: two
consumer actors with the quickstart plan's CPUs per worker stand for Ray Train's workers, the
split is read as training reads it (data_pipeline.readers.ray_data.read_split, the plan's CPUs per data
task) and split between them with streaming_split, as Ray Train's DataConfig does. What is timed
is the data side of jobs.train's "first step" phase: Ray Data's split coordinator starting, its
read workers importing the reader, the first read tasks. Prints medians and writes
bench/results/first_batch.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import ray

from bench import _results

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "configs" / "quickstart.yaml"
FIGURES = {"first_batch_s": "to the first batch (slower consumer)", "epoch_s": "to the end of the epoch",
           "split_s": "planning the read and the split"}


def one_run() -> dict[str, float]:
    """One fresh Ray instance; runs in a process of its own."""
    from cluster.resources import make_plan
    from core.config.loading import load_config
    from bench.ingest import COLUMNS
    from data_pipeline.format.shards import read_manifest
    from data_pipeline.readers.ray_data import read_split
    from data_pipeline.storage.datastore import DataStore

    config = load_config(QUICKSTART)
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    plan = make_plan(config.scaling, [node["Resources"] for node in ray.nodes()])
    consumers = [_Consumer.options(num_cpus=plan.cpus_per_worker).remote() for _ in range(plan.num_workers)]
    ray.get([c.__ray_ready__.remote() for c in consumers])
    start = time.time()
    store = DataStore.at(REPO / config.data.uri)
    dataset = read_split(store, read_manifest(store), "train", COLUMNS, plan.data_task_cpus,
                         plan.data_tasks_at_once)
    splits = dataset.streaming_split(plan.num_workers, equal=True)
    split = time.time()
    spans = ray.get([c.consume.remote(s) for c, s in zip(consumers, splits)])
    ray.shutdown()
    return {"split_s": split - start, "first_batch_s": max(first for first, _ in spans) - start,
            "epoch_s": max(end for _, end in spans) - start}


@ray.remote
class _Consumer:
    """Iterates its share as a Ray Train worker does; (when the first batch came, when the last had)."""

    def consume(self, split) -> tuple[float, float]:
        first = None
        for _ in split.iter_torch_batches(batch_size=8):
            first = first or time.time()
        return first, time.time()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.first_batch", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run()))
        return
    from core.config.loading import load_config
    from data_pipeline.storage.datastore import DataStore
    from data_pipeline.sources.synthetic import ensure_dataset

    config = load_config(QUICKSTART)
    ensure_dataset(DataStore.at(REPO / config.data.uri), config.data.synthetic)
    runs = []
    for repeat in range(args.repeats):
        done = subprocess.run([sys.executable, "-m", "bench.first_batch", "--one"], cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"run {repeat + 1} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"repeat {repeat + 1}/{args.repeats}: first batch {runs[-1]['first_batch_s']:.1f} s", file=sys.stderr)
    medians = {name: statistics.median(run[name] for run in runs) for name in FIGURES}
    print(f"\nseconds from read_split, median of {args.repeats} fresh Ray instances (quickstart plan, train split)")
    for name, label in FIGURES.items():
        print(f"{label:<40}{medians[name]:>8.2f}")
    _results.write("first_batch", {"settings": {"repeats": args.repeats}, "runs": runs, "medians": medians})


if __name__ == "__main__":
    main()
