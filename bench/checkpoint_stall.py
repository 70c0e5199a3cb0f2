"""python -m bench.checkpoint_stall [--rate-mb-s R] [--train-rows N] [--modes async,sync]: what a checkpoint copied to a slow S3 costs training.

moto_server (a real S3 endpoint on loopback) runs behind the tests' TCP proxy, slowed to R MB/s. For
each train.checkpoint_upload mode the quickstart trains 2 epochs of N rows (long enough that epoch 2
outlasts the copy of epoch 1's checkpoint) with output.storage on that S3 and a step-level
TensorBoard scalar at every step. The proxy is slowed until epoch 1's checkpoint is stored, then
lifted. Measured, from the run's TensorBoard steps and metrics.jsonl:
  write_s: rank 0's write of the checkpoint to its local folder (checkpoint_write_s), before the report;
  copy_s: from the workers' report of epoch 1 to the checkpoint stored (checkpoint_upload_s);
  hold_s: from that report to the start of epoch 2's first step;
  slowdown_s: what the steps trained during the copy took beyond the median step outside it;
  stall_s = write_s + hold_s + slowdown_s, and its share of copy_s (the goal: under 10%).
JSON to bench/results/checkpoint_stall.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bench import _results
from tests.s3_server import moto_s3
from tests.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parent.parent
BATCH, WORKERS = 8, 2  # the quickstart's


def one_run(out: Path, data: Path, rows: int, mode: str, proxy: TcpProxy, bucket: str, rate: float) -> dict[str, float]:
    proxy.throttle(rate)
    command = [sys.executable, "-m", "jobs.train", f"output.root={out}", "train.epochs=2", "train.step_scalars_every=1",
               f"data.uri={data}", f"data.synthetic.num_train={rows}", f"train.checkpoint_upload={mode}",
               f"output.storage=s3://{bucket}/{mode}", f"output.endpoint_url=http://127.0.0.1:{proxy.port}",
               "output.storage_retry_s=600"]
    run = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stored_at = _wait_for_epoch_1_stored(out, run)
    proxy.throttle(None)
    stderr = run.communicate(timeout=3600)[1]
    if run.returncode != 0:
        raise SystemExit(f"the {mode} run failed ({run.returncode}):\n{stderr[-3000:]}")
    (run_dir,) = out.glob("*/")
    first = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    figures = _stall(run_dir, stored_at - first["checkpoint_upload_s"], stored_at, first["checkpoint_upload_s"])
    stall = first["checkpoint_write_s"] + figures["hold_s"] + figures["slowdown_s"]
    return {**figures, "write_s": first["checkpoint_write_s"], "stall_s": stall, "stall_share": stall / figures["copy_s"]}


def _wait_for_epoch_1_stored(out: Path, run: subprocess.Popen, timeout_s: float = 3600) -> float:
    deadline = time.monotonic() + timeout_s
    # metrics.jsonl gets epoch 1's line once its checkpoint is registered, before the run's files are copied to S3
    while not any((run_dir / "metrics.jsonl").is_file() and (run_dir / "metrics.jsonl").read_text().strip()
                  for run_dir in out.glob("*/")):
        if run.poll() is not None:
            raise SystemExit(f"the run ended before epoch 1's checkpoint was stored:\n{run.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"epoch 1's checkpoint was not stored within {timeout_s:.0f} s")
        time.sleep(0.05)
    return time.time()


def _stall(run_dir: Path, reported_at: float, stored_at: float, copy_s: float) -> dict[str, float]:
    """Each step as (start, seconds) from TensorBoard: logged at its end, its length from step/samples_per_s."""
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0}, purge_orphaned_data=False)
    events.Reload()
    steps = [(e.wall_time - BATCH * WORKERS / e.value, BATCH * WORKERS / e.value) for e in events.Scalars("step/samples_per_s")]
    during = [seconds for start, seconds in steps if reported_at <= start < stored_at]
    around = [seconds for start, seconds in steps if not reported_at <= start < stored_at]
    first_after = min(start for start, _ in steps if start >= reported_at)
    typical = statistics.median(around)
    hold = first_after - reported_at
    slowdown = sum(seconds - typical for seconds in during)
    return {"copy_s": copy_s, "hold_s": hold, "steps_during_copy": len(during), "median_step_s_around": typical,
            "median_step_s_during": statistics.median(during) if during else float("nan"), "slowdown_s": slowdown}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.checkpoint_stall", description=__doc__.splitlines()[0])
    parser.add_argument("--rate-mb-s", type=float, default=1.0, help="the slowed link to S3, MB/s")
    parser.add_argument("--train-rows", type=int, default=4096, help="rows of the epoch (epoch 2 must outlast the copy)")
    parser.add_argument("--modes", default="async,sync")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch, moto_s3(Path(scratch) / "moto.log") as s3:
        proxy = TcpProxy(int(s3.url.rsplit(":", 1)[1]))
        proxy.up()
        data = REPO / "data" / f"quickstart_{args.train_rows}"
        for mode in args.modes.split(","):
            results[mode] = one_run(Path(scratch) / mode, data, args.train_rows, mode, proxy, s3.bucket, args.rate_mb_s * 1e6)
            print(f"{mode}: {json.dumps({k: round(v, 3) for k, v in results[mode].items()})}", flush=True)
        proxy.down()
    print(f"\ncheckpoint of the quickstart copied to S3 at {args.rate_mb_s:g} MB/s, {args.train_rows} rows per epoch\n")
    print("| upload | copy (s) | local write (s) | held after report (s) | steps during copy | median step during / around (s) "
          "| stall (s) | stall / copy |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, r in results.items():
        print(f"| {mode} | {r['copy_s']:.1f} | {r['write_s']:.1f} | {r['hold_s']:.1f} | {r['steps_during_copy']} | "
              f"{r['median_step_s_during']:.3f} / "
              f"{r['median_step_s_around']:.3f} | {r['stall_s']:.1f} | {r['stall_share']:.1%} |")
    _results.write("checkpoint_stall", {"rate_mb_s": args.rate_mb_s, "train_rows": args.train_rows, "runs": results})


if __name__ == "__main__":
    main()
