"""python -m bench.recovery [--repeats R] [--kill-after S] [--stop worker|driver] [--checkpoint-every N]: what a stopped run costs.

Each repeat runs the quickstart for 3 epochs in its own process and, --kill-after seconds into
epoch 2 (about 13 s long here), stops it: `--stop worker` SIGKILLs one Ray Train worker process
(by PID, found among the run's descendants; failure.max_failures=1, so Ray Train restarts the
worker group from the latest checkpoint), `--stop driver` SIGTERMs the driver and runs `jobs.train
--resume` on the run directory. With --checkpoint-every N the run also checkpoints every N steps
inside the epochs (train.checkpoint_every) and goes on from inside epoch 2; without it, from the
epoch 1 checkpoint. Measured: seconds from the stop to the first optimizer step after it (rank 0's
startup marks in metrics.jsonl); the work redone: the optimizer steps trained twice (counted in TensorBoard's step/loss, logged at every step here:
the run goes on from its checkpoint's step count); and whether every epoch trained each of its
samples once. Medians in the table; JSON to bench/results/recovery[_driver][_every<N>].json.
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
from collections import Counter
from pathlib import Path

import psutil
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bench import _results
from core.config.loading import load_config
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.synthetic import ensure_dataset
from jobs._train.resume import latest_registered_metrics

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "configs" / "quickstart.yaml"
WORKER_TITLE = "ray::RayTrainWorker"


def one_run(out: Path, kill_after: float, stop: str, every: int | None) -> dict[str, float]:
    command = [sys.executable, "-m", "jobs.train", f"output.root={out}", "train.epochs=3", "failure.max_failures=1",
               "train.step_scalars_every=1", *([f"train.checkpoint_every={{steps: {every}}}"] if every else [])]
    run = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_first_epoch(out, run)
        _wait(kill_after, run)
        stopped_at = _kill_a_worker(run.pid) if stop == "worker" else _sigterm(run)
        stderr = run.communicate(timeout=1800)[1]
        (out / "stderr.log").write_text(stderr)
        if stop == "driver":
            (run_dir,) = out.glob("*/")
            resumed = subprocess.run([sys.executable, "-m", "jobs.train", "--resume", str(run_dir)], cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=1800)
            stderr, returncode = resumed.stderr, resumed.returncode
        else:
            returncode = run.returncode
        if returncode != 0:
            raise SystemExit(f"the run failed ({returncode}):\n{stderr[-3000:]}")
    finally:
        _stop_group(run.pid)
    (run_dir,) = out.glob("*/")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    went_on = next((r for r in records if (r["restarts_from_checkpoint"] or r["resumes"]) and "startup" in r), None)
    if went_on is None:
        seen = [(r["epoch"], r["restarts_from_checkpoint"], r["resumes"], "startup" in r) for r in records]
        raise SystemExit(f"no record of a restarted or resumed run in {run_dir} (epoch, restarts, resumes, startup marks): "
                         f"{seen}\n{stderr[-4000:]}")
    rows = json.loads((run_dir / "summary.json").read_text())["data"]["train"]
    return {"stop_to_next_step_s": went_on["startup"]["first_step"] - stopped_at, "redone_steps": _redone_steps(run_dir),
            "exact_epochs": float(all(r.get("train/samples") == rows for r in records))}


def _redone_steps(run_dir: Path) -> int:
    """Optimizer steps trained twice: a run goes on from its checkpoint's step count, so each step trained after the
    checkpoint and lost logs its step/loss (train.step_scalars_every=1) a second time under the same step."""
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0}, purge_orphaned_data=False)
    events.Reload()
    steps = Counter(event.step for event in events.Scalars("step/loss"))
    return sum(count - 1 for count in steps.values())


def _wait_for_first_epoch(out: Path, run: subprocess.Popen, timeout_s: float = 900) -> None:
    """Until Ray Train registered epoch 1's checkpoint (listed in its snapshot); the run must not end meanwhile."""
    deadline = time.monotonic() + timeout_s
    while all(latest_registered_metrics(run_dir).get("epoch", 0) < 1 for run_dir in out.glob("*/")):
        _pause(run)
        if time.monotonic() > deadline:
            raise SystemExit(f"no epoch ended within {timeout_s:.0f} s")


def _wait(seconds: float, run: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _pause(run)


def _pause(run: subprocess.Popen) -> None:
    if run.poll() is not None:
        raise SystemExit(f"the run ended early:\n{run.stderr.read()[-3000:]}")
    time.sleep(0.05)


def _sigterm(run: subprocess.Popen) -> float:
    run.send_signal(signal.SIGTERM)
    return time.time()


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
    parser.add_argument("--stop", choices=["worker", "driver"], default="worker",
                        help="SIGKILL a worker (Ray Train restarts), or SIGTERM the driver and --resume")
    parser.add_argument("--checkpoint-every", type=int, metavar="N", help="train.checkpoint_every={steps: N}")
    args = parser.parse_args()
    config = load_config(QUICKSTART)
    ensure_dataset(DataStore.at(REPO / config.data.uri), config.data.synthetic)
    runs = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(one_run(Path(tmp), args.kill_after, args.stop, args.checkpoint_every))
        print(f"repeat {repeat + 1}/{args.repeats}: {runs[-1]['stop_to_next_step_s']:.1f} s to the next step, "
              f"{runs[-1]['redone_steps']:.1f} steps redone", file=sys.stderr)
    medians = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    how = "one worker SIGKILLed" if args.stop == "worker" else "the driver SIGTERMed, then --resume"
    every = f"checkpoints every {args.checkpoint_every} steps" if args.checkpoint_every else "checkpoints at epoch ends"
    print(f"\nquickstart, 2 workers, {every}, {how} {args.kill_after:g} s into epoch 2; median of {args.repeats}")
    print(f"{'stop to the next step after it':<42}{medians['stop_to_next_step_s']:>8.1f} s")
    print(f"{'steps trained again':<42}{medians['redone_steps']:>8.0f}   (most {max(r['redone_steps'] for r in runs):.0f})")
    print(f"{'every epoch trained each sample once':<42}{sum(r['exact_epochs'] for r in runs):>8.0f} of {len(runs)} runs")
    name = "recovery" + ("_driver" if args.stop == "driver" else "") + (f"_every{args.checkpoint_every}" if args.checkpoint_every else "")
    _results.write(name, {"settings": vars(args), "runs": runs, "medians": medians})


if __name__ == "__main__":
    main()
