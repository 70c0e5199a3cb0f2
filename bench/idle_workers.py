"""python -m bench.idle_workers [--repeats R] [--epochs E]: epoch time with the raylet keeping idle workers, and with Ray's default.

A raylet keeps at most as many idle worker processes as its node has CPUs free and ends the rest
after `RAY_idle_worker_killing_time_threshold_ms` (Ray: 1000). jobs.train starts its local instance
with 60000 (cluster.connect). Each repeat runs `python -m jobs.train` on the quickstart twice per
workload, (a) as it is and (b) with Ray's 1000, the order alternating between repeats; the
workloads are the quickstart's epochs, and the same with a checkpoint after every step. The table
shows medians of the epochs after the first (their wall_time_s in metrics.jsonl), the whole run,
and the worker processes the raylet started (counted in raylet.out of Ray's latest session: run it
with no other Ray starting on the machine); the ratio b/a of each repeat's epoch times, with its 90%
interval (bench._goal). JSON goes to bench/results/idle_workers.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import _goal, _results
from cluster.connect import IDLE_WORKER_KEEP
from core.config.loading import load_config
from data_pipeline.sources.synthetic import ensure_dataset
from data_pipeline.storage.datastore import DataStore

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "configs" / "quickstart.yaml"
RAYLET_LOG = Path(tempfile.gettempdir()) / "ray" / "session_latest" / "logs" / "raylet.out"
SETTINGS = {"kept 60 s": None, "Ray's 1 s": "1000"}
WORKLOADS = {"quickstart": [], "checkpoint every step": ["train.checkpoint_every={steps: 1}"]}


def run(out: Path, epochs: int, overrides: list[str], keep_ms: str | None) -> dict[str, float]:
    env = {key: value for key, value in os.environ.items() if key != IDLE_WORKER_KEEP}
    if keep_ms is not None:
        env[IDLE_WORKER_KEEP] = keep_ms
    command = [sys.executable, "-m", "jobs.train", f"output.root={out}", f"train.epochs={epochs}", *overrides]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    (run_dir,) = out.iterdir()
    times = [json.loads(line)["wall_time_s"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"epoch_s": statistics.median(b - a for a, b in zip(times, times[1:])), "run_s": times[-1],
            "processes": RAYLET_LOG.read_text().count("Started worker process")}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_workers", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="5 or more for an interval")
    parser.add_argument("--epochs", type=int, default=4, help="at least 2: the first epoch holds the start")
    args = parser.parse_args()
    config = load_config(QUICKSTART)
    ensure_dataset(DataStore.at(REPO / config.data.uri), config.data.synthetic)
    runs = {workload: {setting: [] for setting in SETTINGS} for workload in WORKLOADS}
    for repeat in range(args.repeats):
        for workload, overrides in WORKLOADS.items():
            order = list(SETTINGS.items())
            for setting, keep_ms in order if repeat % 2 == 0 else order[::-1]:
                with tempfile.TemporaryDirectory() as tmp:
                    runs[workload][setting].append(run(Path(tmp), args.epochs, overrides, keep_ms))
            print(f"repeat {repeat + 1}/{args.repeats}, {workload}: "
                  + ", ".join(f"{s} {runs[workload][s][-1]['epoch_s']:.2f} s/epoch" for s in SETTINGS), file=sys.stderr)
    ratios = {workload: _goal.judge([b["epoch_s"] / a["epoch_s"] for a, b in zip(*by_setting.values())], 1.0, at_least=True)
              for workload, by_setting in runs.items()}
    _print(runs, ratios, args)
    _results.write("idle_workers", {"settings": vars(args), "runs": runs, "ratios": ratios})


def _print(runs: dict, ratios: dict, args: argparse.Namespace) -> None:
    print(f"\nmedians of {args.repeats} repeats, {args.epochs} epochs each; epoch: the epochs after the first")
    print(f"{'workload':<24}{'idle workers':<14}{'epoch s':>9}{'run s':>8}{'processes':>11}")
    for workload, by_setting in runs.items():
        for setting, results in by_setting.items():
            cells = [statistics.median(r[key] for r in results) for key in ("epoch_s", "run_s", "processes")]
            print(f"{workload:<24}{setting:<14}{cells[0]:>9.2f}{cells[1]:>8.1f}{cells[2]:>11.0f}")
    for workload, judged in ratios.items():
        print(_goal.describe(f"{workload}: epoch time, Ray's 1 s / kept 60 s", judged))


if __name__ == "__main__":
    main()
