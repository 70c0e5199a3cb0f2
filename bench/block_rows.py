"""python -m bench.block_rows [--samples N] [--image-size S] [--reads K] [--turns T] [--rows R ...]: Ray Data's speed by rows per block.

Ray Data pays a cost per block on the consumer's side. With small rows, ray_reader.BLOCK_BYTES
(16 MB) holds hundreds of them; with rows as large as KITTI's it holds a few, and each batch is
stitched from several blocks. This reads bench.ingest's .npy data set (made if absent) with
read_split, as training does, in batches of 32, with blocks of each --rows rows, in turns of
rotating order in one Ray instance; an epoch reads the shards --reads times over. Prints the median
samples/s per block size and its ratio to blocks of a batch (32 rows: read_split's smallest block
for batches of 32), medians of each turn's ratio; writes bench/results/block_rows.json.
"""
from __future__ import annotations

import argparse
import statistics
import time

from bench import _results
from bench.ingest import BATCH, COLUMNS, _data_sets, _epoch
from cluster.connect import CODE_ROOT, connect
from core.config.sections import RayConfig
from data_pipeline.readers.decode import decoded_row_bytes
from data_pipeline.readers.ray_data import read_split


def samples_per_s(store, manifest: dict, rows: int, cpus: int) -> float:
    row_bytes = decoded_row_bytes(COLUMNS, tuple(manifest["image_size"]))
    dataset = read_split(store, manifest, "train", COLUMNS, task_cpus=1.0, tasks_at_once=cpus, block_bytes=rows * row_bytes)
    start = time.perf_counter()
    samples = sum(len(batch["rgb"]) for batch in dataset.iter_torch_batches(batch_size=BATCH))
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.block_rows", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=683, help="683x683 is about a KITTI frame's pixels")
    parser.add_argument("--reads", type=int, default=8)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--rows", type=int, nargs="+", default=[8, 16, BATCH, 2 * BATCH])
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    import ray

    from jobs._train.trainer import quiet_ray_data

    store, full = _data_sets(args)["npy"]
    manifest = _epoch(full, args.reads)
    connect(RayConfig(num_cpus=args.cpus, include_dashboard=False), CODE_ROOT)
    quiet_ray_data()
    samples_per_s(store, manifest, BATCH, args.cpus)  # Ray Data's workers and actors start in the first pass
    runs: dict[int, list[float]] = {rows: [] for rows in args.rows}
    for turn in range(args.turns):
        for rows in args.rows[turn % len(args.rows):] + args.rows[:turn % len(args.rows)]:
            runs[rows].append(samples_per_s(store, manifest, rows, args.cpus))
        print(f"turn {turn + 1}/{args.turns} done", flush=True)
    ray.shutdown()
    _report(args, manifest, runs)


def _report(args: argparse.Namespace, manifest: dict, runs: dict[int, list[float]]) -> None:
    row_mb = decoded_row_bytes(COLUMNS, tuple(manifest["image_size"])) / 2**20
    medians = {rows: statistics.median(values) for rows, values in runs.items()}
    ratios = {rows: statistics.median(a / b for a, b in zip(values, runs[BATCH])) for rows, values in runs.items()} \
        if BATCH in runs else {}
    print(f"\n{args.samples} samples x {args.reads} reads, {args.image_size}x{args.image_size} RGB + labels (.npy, "
          f"{row_mb:.2f} MB a row decoded), batches of {BATCH}, {args.cpus} CPUs, {args.turns} turns")
    print(f"{'rows a block':<14}{'MB':>6}{'samples/s':>11}{f'/ {BATCH} rows':>11}   runs")
    for rows, values in runs.items():
        ratio = f"{ratios[rows]:.2f}" if ratios else "-"
        print(f"{rows:<14}{rows * row_mb:>6.0f}{medians[rows]:>11.0f}{ratio:>11}   {', '.join(f'{v:.0f}' for v in values)}")
    _results.write("block_rows", {"settings": vars(args), "row_mb": row_mb, "runs": {str(k): v for k, v in runs.items()},
                                  "medians": {str(k): v for k, v in medians.items()},
                                  "ratios_to_a_batch": {str(k): v for k, v in ratios.items()}})


if __name__ == "__main__":
    main()
