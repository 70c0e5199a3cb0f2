"""python -m bench.recovery [--repeats R] [--kill-after S]: what a killed training worker costs.

Each repeat runs the quickstart for 3 epochs with failure.max_failures=1 in its own process and,
--kill-after seconds into epoch 2 (about 13 s long here), SIGKILLs one Ray Train worker process
(by PID, found among the run's descendants). Ray Train restarts the worker group from the epoch 1
checkpoint. Measured: seconds from the kill to the first optimizer step after the restart (rank
0's startup marks in metrics.jsonl), and the work redone (the part of epoch 2 done before the
kill, in seconds and in steps at the last epoch's step rate). Medians in the table; JSON to bench/results/recovery.json.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import _results
from core.config.loading import load_config
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.synthetic import ensure_dataset

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "configs" / "quickstart.yaml"
WORKER_TITLE = "ray::RayTrainWorker"


def one_run(out: Path, kill_after: float) -> dict[str, float]:
    command = [sys.executable, "-m", "jobs.train", f"output.root={out}", "train.epochs=3", "failure.max_failures=1"]
    run = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first_record_at = _wait_for_first_record(out, run)
        time.sleep(kill_after)
        killed_at = _kill_a_worker(run.pid)
        stderr = run.communicate(timeout=1800)[1]
        (out / "stderr.log").write_text(stderr)
        if run.returncode != 0:
            raise SystemExit(f"the run failed ({run.returncode}):\n{stderr[-3000:]}")
    finally:
        _stop_group(run.pid)
    (run_dir,) = out.glob("*/")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    restarted = next((r for r in records if r["restarts_from_checkpoint"] == 1 and "startup" in r), None)
    if restarted is None:
        seen = [(r["epoch"], r["restarts_from_checkpoint"], "startup" in r) for r in records]
        raise SystemExit(f"no record of a restarted worker group in {run_dir} (epoch, restarts, startup marks): {seen}\n"
                         f"{(out / 'stderr.log').read_text()[-4000:]}")
    config = load_config(run_dir / "config.yaml")  # the last epoch is the steadiest: no startup in it
    steps_per_s = records[-1]["train/samples_per_s"] / (config.train.batch_size * config.scaling.num_workers)
    redone_s = killed_at - first_record_at
    return {"kill_to_next_step_s": restarted["startup"]["first_step"] - killed_at, "redone_s": redone_s,
            "redone_steps": redone_s * steps_per_s}


def _wait_for_first_record(out: Path, run: subprocess.Popen, timeout_s: float = 900) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(path.read_text().strip() for path in out.glob("*/metrics.jsonl")):
            return time.time()
        if run.poll() is not None:
            raise SystemExit(f"the run ended before its first epoch did:\n{run.stderr.read()[-3000:]}")
        time.sleep(0.1)
    raise SystemExit(f"no epoch ended within {timeout_s:.0f} s")


def _kill_a_worker(driver_pid: int) -> float:
    workers = [p for p in psutil.Process(driver_pid).children(recursive=True) if _title(p).startswith(WORKER_TITLE)]
    if not workers:
        raise SystemExit("no Ray Train worker process among the run's processes")
    os.kill(workers[0].pid, signal.SIGKILL)
    return time.time()


def _title(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _stop_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kill-after", type=float, default=4.0, help="seconds into epoch 2")
    args = parser.parse_args()
    config = load_config(QUICKSTART)
    ensure_dataset(DataStore.at(REPO / config.data.uri), config.data.synthetic)
    runs = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(one_run(Path(tmp), args.kill_after))
        print(f"repeat {repeat + 1}/{args.repeats}: {runs[-1]['kill_to_next_step_s']:.1f} s to the next step", file=sys.stderr)
    medians = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(f"\nquickstart, 2 workers, one worker SIGKILLed {args.kill_after:g} s into epoch 2; median of {args.repeats}")
    print(f"{'kill to the next step after restart':<40}{medians['kill_to_next_step_s']:>8.1f} s")
    print(f"{'work redone (epoch 2 before the kill)':<40}{medians['redone_s']:>8.1f} s, about {medians['redone_steps']:.0f} steps")
    print(f"{'lost in all':<40}{medians['kill_to_next_step_s'] + medians['redone_s']:>8.1f} s")
    _results.write("recovery", {"settings": vars(args), "runs": runs, "medians": medians})


if __name__ == "__main__":
    main()
