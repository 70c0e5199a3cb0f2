"""python -m bench.ingest [--samples N] [--image-size S] [--repeats R]: decode throughput of the data pipeline.

Samples/s over the same shards (RGB + labels, PNG) into torch batches of 32 for
  (a) Ray Data streaming decode (read_parquet -> map_batches(decode) -> iter_torch_batches), as training reads,
  (b) a torch DataLoader with the same decode and as many worker processes as Ray Data gets CPUs,
  (c) pyarrow read plus decode in this one process (the floor any pipeline pays),
and the same decode on raw (uncompressed) image bytes instead of PNG. Prints a table of medians
over --repeats runs with the ratios a/b and a/c, and writes bench/results/ingest.json.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from core.config import SyntheticConfig
from data_pipeline import codec
from data_pipeline.ray_reader import decode_images, read_split
from data_pipeline.shards import shard_paths
from data_pipeline.storage import DataStore
from data_pipeline.synthetic import ensure_dataset

COLUMNS = ["rgb", "labels"]
BATCH = 32
RESULTS = Path(__file__).resolve().parent / "results" / "ingest.json"


def ray_data(store: DataStore, manifest: dict, cpus: int) -> int:
    dataset = read_split(store, manifest, "train", COLUMNS, task_cpus=1.0)
    rows = 0
    for batch in dataset.iter_torch_batches(batch_size=BATCH):
        rows += len(batch["rgb"])
    return rows


class _Shards(torch.utils.data.IterableDataset):
    """Each DataLoader worker reads every n-th shard and yields decoded batches."""

    def __init__(self, paths: list[str], raw: bool):
        self.paths, self.raw = paths, raw

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        mine = self.paths[info.id::info.num_workers] if info else self.paths
        for path in mine:
            yield from _decoded_batches(path, self.raw)


def dataloader(paths: list[str], cpus: int, raw: bool = False) -> int:
    loader = torch.utils.data.DataLoader(_Shards(paths, raw), batch_size=None, num_workers=cpus, prefetch_factor=4)
    return sum(len(batch["rgb"]) for batch in loader)


def single_process(paths: list[str], raw: bool = False) -> int:
    return sum(len(batch["rgb"]) for path in paths for batch in _decoded_batches(path, raw))


def _decoded_batches(path: str, raw: bool):
    table = pq.read_table(path, columns=COLUMNS)
    for start in range(0, table.num_rows, BATCH):
        chunk = {name: np.array(table.column(name).slice(start, BATCH).to_pylist(), dtype=object) for name in COLUMNS}
        decoded = _decode_raw(chunk) if raw else decode_images(chunk)
        yield {name: torch.from_numpy(values) for name, values in decoded.items()}


def _decode_raw(chunk: dict) -> dict:
    return {name: np.stack([np.load(io.BytesIO(item)) for item in values]) for name, values in chunk.items()}


def _raw_copy(paths: list[str], folder: Path) -> list[str]:
    """The same shards with each image stored as uncompressed .npy bytes instead of PNG."""

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in paths:
        target = folder / Path(path).name
        if not target.exists():
            table = pq.read_table(path, columns=COLUMNS).to_pydict()
            for name in COLUMNS:
                encoded = []
                for item in table[name]:
                    buffer = io.BytesIO()
                    np.save(buffer, codec.decode_png(item))
                    encoded.append(buffer.getvalue())
                table[name] = encoded
            pq.write_table(pa.table(table), target, compression="zstd")
        out.append(str(target))
    return out


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    rows = fn(*args)
    return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs for Ray Data, and DataLoader worker processes")
    args = parser.parse_args()
    import ray

    store = DataStore.at(f"data/bench_ingest_{args.samples}_{args.image_size}")
    manifest = ensure_dataset(store, SyntheticConfig(num_train=args.samples, num_val=8, image_size=args.image_size,
                                                     views_per_scene=8, rows_per_shard=128))
    paths = shard_paths(store, manifest, "train")
    raw_paths = _raw_copy(paths, Path(store.uri + "_raw"))
    ray.init(num_cpus=args.cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    figures: dict[str, list[float]] = {}
    for repeat in range(args.repeats):
        for name, run in (("a: Ray Data", lambda: _timed(ray_data, store, manifest, args.cpus)),
                          ("b: DataLoader", lambda: _timed(dataloader, paths, args.cpus)),
                          ("c: one process", lambda: _timed(single_process, paths)),
                          ("b: DataLoader, raw", lambda: _timed(dataloader, raw_paths, args.cpus, True)),
                          ("c: one process, raw", lambda: _timed(single_process, raw_paths, True))):
            figures.setdefault(name, []).append(run())
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    ray.shutdown()
    medians = {name: statistics.median(values) for name, values in figures.items()}
    ratios = {"a/b": medians["a: Ray Data"] / medians["b: DataLoader"], "a/c": medians["a: Ray Data"] / medians["c: one process"],
              "raw/png (one process)": medians["c: one process, raw"] / medians["c: one process"]}
    png_bytes = sum(os.path.getsize(p) for p in paths)
    raw_bytes = sum(os.path.getsize(p) for p in raw_paths)
    print(f"\n{args.samples} samples, {args.image_size}x{args.image_size} RGB + labels, batches of {BATCH}, {args.cpus} CPUs")
    print(f"{'pipeline':<24}{'samples/s (median)':>20}{'runs':>40}")
    for name, values in figures.items():
        print(f"{name:<24}{medians[name]:>20.0f}{', '.join(f'{v:.0f}' for v in values):>40}")
    for name, value in ratios.items():
        print(f"{name:<24}{value:>20.2f}")
    print(f"shards on disk: PNG {png_bytes / 2**20:.1f} MB, raw {raw_bytes / 2**20:.1f} MB")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": __import__("platform").platform()},
        "versions": {"ray": ray.__version__, "torch": torch.__version__},
        "settings": vars(args), "runs": figures, "medians": medians, "ratios": ratios,
        "bytes": {"png": png_bytes, "raw": raw_bytes},
    }, indent=2) + "\n")
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    main()
