"""python -m bench.ingest [--samples N] [--image-size S] [--repeats R] [--reads K] [--block-mb MB ...]: decode throughput of the data pipeline.

Samples/s over the same shards (RGB + labels) into torch batches of 32 for
  (a) Ray Data streaming decode (data_pipeline.readers.ray_data.read_split, exactly as training reads),
  (b) a torch DataLoader with the same decode and as many worker processes as Ray Data gets CPUs,
      each worker decoding a shard at a time and sending batches,
  (c) pyarrow read plus the same decode in this one process (the floor any pipeline pays),
each over shards with images stored as .npy and as PNG, and each for epochs that read the
shards once and --reads times over (an epoch as long as a data set that many times larger: each
epoch pays once for starting, a Ray Data execution or the DataLoader's worker processes). Ray
Data's first pass in a fresh Ray instance (starting its workers and internal actors) is timed
apart and left out of the medians. --block-mb adds Ray Data at other block sizes than the
default (data_pipeline.readers.ray_data.BLOCK_BYTES), over the .npy shards. Prints a table of medians
over --repeats runs with the ratios a/b and a/c, and writes bench/results/ingest.json.
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

import pyarrow.parquet as pq
import torch

from bench import _results
from cluster.connect import CODE_ROOT, connect
from core.config.sections import RayConfig, SyntheticConfig
from data_pipeline.format.codec import ENCODINGS
from core.tasks.columns import Column, Kind
from data_pipeline.readers.decode import decode_columns
from data_pipeline.readers.ray_data import BLOCK_BYTES, read_split
from data_pipeline.format.shards import shard_paths
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.synthetic import ensure_dataset

COLUMNS = [Column("rgb", Kind.IMAGE, (3,)), Column("labels", Kind.LABEL_MAP)]  # the quickstart's
READ = [*(column.name for column in COLUMNS), "sample_id"]  # as read_split reads them: each row's id becomes the key augmentation seeds by
BATCH = 32
LOADER_TIMEOUT_S = 300  # a batch takes milliseconds; a worker silent this long is stuck, and the bench says so
_FORKSERVER = multiprocessing.get_context("forkserver")
_FORKSERVER.set_forkserver_preload(["bench.ingest"])


def ray_data(store: DataStore, manifest: dict, cpus: int, block_bytes: int = BLOCK_BYTES) -> int:
    dataset = read_split(store, manifest, "train", COLUMNS, task_cpus=1.0, tasks_at_once=cpus, block_bytes=block_bytes,
                         batch_rows=BATCH)
    return sum(len(batch["rgb"]) for batch in dataset.iter_torch_batches(batch_size=BATCH))


class _Shards(torch.utils.data.IterableDataset):
    """Each DataLoader worker reads every n-th shard and yields decoded batches."""

    def __init__(self, paths: list[str]):
        self.paths = paths

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        mine = self.paths[info.id::info.num_workers] if info else self.paths
        for path in mine:
            yield from _decoded_batches(path)


def dataloader(paths: list[str], cpus: int) -> int:
    """Workers forked from a forkserver, not from this process: a fork of a process that holds Ray's threads (the Ray
    Data passes run in it) can inherit a lock held by one of them, and such workers hung here without using a CPU.
    The forkserver preloads this module, so a worker starts as quickly as a fork of this process did."""
    loader = torch.utils.data.DataLoader(_Shards(paths), batch_size=None, num_workers=cpus, prefetch_factor=4,
                                         multiprocessing_context=_FORKSERVER, timeout=LOADER_TIMEOUT_S)
    try:
        return sum(len(batch["rgb"]) for batch in loader)
    except RuntimeError as err:
        if "timed out" not in str(err):
            raise
        raise RuntimeError(f"bench.ingest: a DataLoader worker gave no batch in {LOADER_TIMEOUT_S} s; its workers are "
                           f"stuck or starved (see `ps` for their CPU time): {err}") from None


def single_process(paths: list[str]) -> int:
    return sum(len(batch["rgb"]) for path in paths for batch in _decoded_batches(path, own_storage=False))


def _decoded_batches(path: str, own_storage: bool = True):
    """A shard decoded at once, as a read task decodes a block, in batches. own_storage: each batch is copied
    out, so that a DataLoader worker sends its batch's bytes, not the whole shard's, through shared memory."""
    table = pq.read_table(path, columns=READ)
    decoded = decode_columns({name: table.column(name) for name in READ}, COLUMNS)
    tensors = {name: torch.from_numpy(values) for name, values in decoded.items()}
    for start in range(0, table.num_rows, BATCH):
        yield {name: values[start:start + BATCH].clone() if own_storage else values[start:start + BATCH]
               for name, values in tensors.items()}


def _epoch(manifest: dict, reads: int) -> dict:
    """The manifest of a training split whose shards are listed `reads` times over."""
    train = manifest["splits"]["train"]
    return {**manifest, "splits": {**manifest["splits"], "train": {**train, "shards": train["shards"] * reads}}}


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    rows = fn(*args)
    return rows / (time.perf_counter() - start)


def _data_sets(args: argparse.Namespace) -> dict[str, tuple[DataStore, dict]]:
    found = {}
    for encoding in ENCODINGS:
        store = DataStore.at(f"data/bench_ingest_{args.samples}_{args.image_size}_{encoding}")
        found[encoding] = store, ensure_dataset(store, SyntheticConfig(
            num_train=args.samples, num_val=8, image_size=args.image_size, views_per_scene=8, rows_per_shard=128, encoding=encoding))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs for Ray Data, and DataLoader worker processes")
    parser.add_argument("--reads", type=int, default=4, help="the longer epoch reads the shards this many times")
    parser.add_argument("--block-mb", type=float, nargs="*", default=[], help="Ray Data also at these block sizes (MB)")
    args = parser.parse_args()
    import ray

    data_sets = _data_sets(args)
    disk = {encoding: sum(store.fs.size(store.path(p["path"])) for split in manifest["splits"].values() for p in split["shards"])
            for encoding, (store, manifest) in data_sets.items()}
    connect(RayConfig(num_cpus=args.cpus, include_dashboard=False), CODE_ROOT)  # as jobs.train starts its local Ray, less the dashboard
    from jobs._train.trainer import quiet_ray_data

    quiet_ray_data()
    first_pass = _timed(ray_data, *data_sets["npy"], args.cpus)
    figures: dict[str, list[float]] = {}
    epochs = (1, args.reads)
    for repeat in range(args.repeats):
        for encoding, (store, full) in data_sets.items():
            for reads in epochs:
                manifest = _epoch(full, reads)
                paths, tag = shard_paths(store, manifest, "train"), f"{encoding} x{reads}"
                figures.setdefault(f"a: Ray Data, {tag}", []).append(_timed(ray_data, store, manifest, args.cpus))
                figures.setdefault(f"b: DataLoader, {tag}", []).append(_timed(dataloader, paths, args.cpus))
                figures.setdefault(f"c: one process, {tag}", []).append(_timed(single_process, paths))
                if encoding == "npy":
                    for mb in args.block_mb:
                        figures.setdefault(f"a: {mb:g} MB blocks, {tag}", []).append(
                            _timed(ray_data, store, manifest, args.cpus, int(mb * 2**20)))
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    ray.shutdown()
    medians = {name: statistics.median(values) for name, values in figures.items()}
    ratios = {}
    for encoding in ENCODINGS:
        for reads in epochs:
            tag = f"{encoding} x{reads}"
            a = medians[f"a: Ray Data, {tag}"]
            ratios[f"a/b {tag}"] = a / medians[f"b: DataLoader, {tag}"]
            ratios[f"a/c {tag}"] = a / medians[f"c: one process, {tag}"]
    ratios["npy/png (one process)"] = medians["c: one process, npy x1"] / medians["c: one process, png x1"]
    _print(args, figures, medians, ratios, first_pass, disk)
    _results.write("ingest", {"settings": vars(args), "runs": figures, "medians": medians, "ratios": ratios,
                              "ray_data_first_pass": first_pass, "bytes_on_disk": disk, "block_bytes": BLOCK_BYTES})


def _print(args, figures, medians, ratios, first_pass, disk) -> None:
    print(f"\n{args.samples} samples, {args.image_size}x{args.image_size} RGB + labels, batches of {BATCH}, {args.cpus} CPUs, "
          f"Ray Data's blocks {BLOCK_BYTES / 2**20:g} MB, median of {args.repeats}; xK: an epoch reads the shards K times")
    print(f"{'pipeline':<30}{'samples/s':>12}   runs")
    for name, values in figures.items():
        print(f"{name:<30}{medians[name]:>12.0f}   {', '.join(f'{v:.0f}' for v in values)}")
    for name, value in ratios.items():
        print(f"{name:<30}{value:>12.2f}")
    print(f"Ray Data first pass in a fresh instance: {first_pass:.0f} samples/s")
    print("shards on disk: " + ", ".join(f"{encoding} {size / 2**20:.1f} MB" for encoding, size in disk.items()))


if __name__ == "__main__":
    main()
