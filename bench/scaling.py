"""python -m bench.scaling [--repeats R] [--steps S]: 1 against 2 workers, and ring allreduce projected to N GPUs.

Each repeat profiles the quickstart with jobs.profile at 1 and 2 workers (batch 8 per worker, the
quickstart's plan otherwise): per-worker samples/s and, with 2 workers, the time per step during
which a gradient allreduce was in flight (core.profiling.comm_timing), in median over the repeats. The
projection is the bandwidth term of a ring allreduce of the model's fp32 gradients,
2 (N-1)/N x gradient bytes / link bandwidth, for the links in LINKS (latency ignored, so it is a
lower bound). Table printed; JSON to bench/results/scaling.json.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import _results
from core.config.loading import load_config
from core.tasks.catalog import build_task
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.synthetic import ensure_dataset

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "configs" / "quickstart.yaml"
BATCH = 8
# GB/s in one direction per GPU (or per node, for the network links)
LINKS = {"NVLink 3 (A100, 12 links)": 300.0, "PCIe 4.0 x16": 32.0, "EFA 400 Gb/s (p4d node)": 50.0,
         "EFA 100 Gb/s": 12.5, "25 GbE": 3.125}
GPU_COUNTS = (2, 4, 8, 16, 32, 64)


def profile_once(steps: int, out: Path) -> dict[int, dict[str, float]]:
    command = [sys.executable, "-m", "jobs.profile", str(QUICKSTART), "ray.include_dashboard=false", "--workers", "1,2",
               "--batch-sizes", str(BATCH), "--steps", str(steps), "--out", str(out), "--ledger", str(out / "ledger.jsonl")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"jobs.profile failed ({done.returncode}):\n{done.stderr[-3000:]}")
    with open(out / "profile.csv") as handle:
        rows = {int(r["workers"]): r for r in csv.DictReader(handle)}
    return {workers: {"per_worker_samples_per_s": float(r["samples_per_s"]) / workers, "s_per_it": float(r["s_per_it"]),
                      "allreduce_s_per_step": float(r["comm_share"]) * float(r["s_per_it"]) if r["comm_share"] else 0.0}
            for workers, r in rows.items()}


def ring_allreduce_s(gradient_bytes: int, gpus: int, gb_per_s: float) -> float:
    return 2 * (gpus - 1) / gpus * gradient_bytes / (gb_per_s * 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    config = load_config(QUICKSTART)
    manifest = ensure_dataset(DataStore.at(REPO / config.data.uri), config.data.synthetic)
    gradient_bytes = 4 * sum(p.numel() for p in build_task(config.task, manifest).build_model().parameters())
    runs = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(profile_once(args.steps, Path(tmp)))
        print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)
    measured = {w: {k: statistics.median(r[w][k] for r in runs) for k in runs[0][w]} for w in (1, 2)}
    projection = {link: {n: ring_allreduce_s(gradient_bytes, n, bw) for n in GPU_COUNTS} for link, bw in LINKS.items()}
    _print(measured, projection, gradient_bytes, args.repeats)
    _results.write("scaling", {"settings": {**vars(args), "batch_per_worker": BATCH}, "gradient_bytes": gradient_bytes,
                               "runs": runs, "medians": measured, "link_gb_per_s": LINKS, "ring_allreduce_s": projection})


def _print(measured: dict, projection: dict, gradient_bytes: int, repeats: int) -> None:
    one, two = measured[1], measured[2]
    print(f"\nquickstart model, batch {BATCH} per worker, median of {repeats} profiles on this machine")
    print(f"{'workers':<10}{'samples/s per worker':>22}{'s/step':>10}{'allreduce s/step':>18}")
    for workers, m in measured.items():
        print(f"{workers:<10}{m['per_worker_samples_per_s']:>22.1f}{m['s_per_it']:>10.3f}{m['allreduce_s_per_step']:>18.3f}")
    print(f"per-worker throughput, 2 workers against 1: {two['per_worker_samples_per_s'] / one['per_worker_samples_per_s']:.2f}")
    print(f"\nring allreduce of {gradient_bytes / 1e6:.1f} MB of fp32 gradients, bandwidth term, ms per step")
    print(f"{'link (GB/s)':<34}" + "".join(f"{n:>8}" for n in GPU_COUNTS))
    for link, by_n in projection.items():
        print(f"{f'{link} ({LINKS[link]:g})':<34}" + "".join(f"{by_n[n] * 1e3:>8.2f}" for n in GPU_COUNTS))


if __name__ == "__main__":
    main()
