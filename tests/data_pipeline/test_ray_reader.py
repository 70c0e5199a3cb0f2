"""Ray Data reads a split with all the CPUs it was given from the start of every execution, in long tasks that stream blocks of a set size."""
from __future__ import annotations

import math
import os
import time
import zlib
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.augmentation.sample_key import SAMPLE_KEY
from core.tasks.columns import Column, Kind
from data_pipeline.readers.decode import PATH, decoded_row_bytes
from core.engine.epoch_order import Batching, epoch_order
from data_pipeline.readers.ray_data import TASK_BYTES, read_split, read_tasks, share_reader
from data_pipeline.readers.shard_datasource import read_shards
from data_pipeline.format.shards import shard_paths
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.synthetic import generate
from tests.conftest import TINY_DATA
from tests.ray_fixtures import local_ray  # noqa: F401

RGB = [Column("rgb", Kind.IMAGE, (3,))]
BLOCK_S = 0.15  # four blocks to a task: 0.6 s, shorter than the 1 s Ray Data waits without ray_data_start


@pytest.fixture(scope="module")
def eight_shards(local_ray, tmp_path_factory):  # noqa: F811
    store = DataStore.at(tmp_path_factory.mktemp("data") / "eight_shards")
    manifest = generate(store, TINY_DATA.model_copy(update={"rows_per_shard": 2}))
    # Ray starts its worker processes on the first read; starting them is not what is tested. Two
    # tasks this slow overlap even with the refresh at Ray's 1 s, so both processes start.
    _stamped_split(store, manifest).materialize()
    return store, manifest


def _stamped_split(store, manifest):
    rows_per_shard = manifest["splits"]["train"]["shards"][0]["rows"]
    return _split_in_blocks_of(store, manifest, rows_per_shard).map_batches(
        _stamped, batch_format="numpy", batch_size=None, num_cpus=1.0)


def _stamped(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs fused into the read task, once per block (a shard's rows): which process did the block's work, and when."""
    start = time.time()
    time.sleep(BLOCK_S)
    rows = len(batch["rgb"])
    return {"pid": np.full(rows, os.getpid()), "start": np.full(rows, start), "end": np.full(rows, time.time())}


def _two_tasks(batches) -> list[tuple[float, float]]:
    """When each of the two tasks started and ended: one process runs one task at a time."""
    spans: dict[int, list[float]] = {}
    for batch in batches:
        span = spans.setdefault(int(batch["pid"][0]), [math.inf, -math.inf])
        span[0], span[1] = min(span[0], float(batch["start"].min())), max(span[1], float(batch["end"].max()))
    assert len(spans) == 2, f"{len(spans)} process(es) ran the two tasks: one means one task after the other"
    return sorted(tuple(span) for span in spans.values())


@pytest.mark.parametrize("consumer", ["driver", "split coordinator"])
def test_a_fresh_execution_runs_its_read_tasks_side_by_side_from_the_first(eight_shards, consumer):
    store, manifest = eight_shards
    for _ in range(2):  # every epoch is a new execution
        dataset = _stamped_split(store, manifest)
        stream = dataset if consumer == "driver" else dataset.streaming_split(1)[0]
        first, second = _two_tasks(stream.iter_batches(batch_size=None, batch_format="numpy"))
        assert second[0] < first[1], f"the second read task started {second[0] - first[1]:.2f} s after the first ended"


def _split_in_blocks_of(store, manifest, rows):
    block_bytes = rows * decoded_row_bytes(RGB, tuple(manifest["image_size"]))
    return read_split(store, manifest, "train", RGB, task_cpus=1.0, tasks_at_once=2, block_bytes=block_bytes)


def test_blocks_reach_the_consumer_with_the_rows_asked_for_across_and_within_shards(eight_shards):
    store, manifest = eight_shards
    shards = manifest["splits"]["train"]["shards"]
    assert [shard["rows"] for shard in shards] == [2] * 8 and read_tasks(shards, tasks_at_once=2) == 2
    blocks = list(_split_in_blocks_of(store, manifest, 3).iter_batches(batch_size=None, batch_format="numpy"))
    assert sorted(len(block["rgb"]) for block in blocks) == [2, 2, 3, 3, 3, 3], "each task of 8 rows: 3 + 3 + 2"
    keys = np.concatenate([block[SAMPLE_KEY] for block in blocks])
    assert len(keys) == len(set(keys)) == manifest["splits"]["train"]["rows"]


def test_a_block_holds_at_least_the_rows_of_a_batch(eight_shards):
    store, manifest = eight_shards
    one_row = decoded_row_bytes(RGB, tuple(manifest["image_size"]))
    dataset = read_split(store, manifest, "train", RGB, task_cpus=1.0, tasks_at_once=2, block_bytes=one_row, batch_rows=3)
    blocks = list(dataset.iter_batches(batch_size=None, batch_format="numpy"))
    assert sorted(len(block["rgb"]) for block in blocks) == [2, 2, 3, 3, 3, 3], "rows too large for a block of a batch"


def test_a_block_keeps_each_row_beside_the_shard_it_came_from(eight_shards):
    store, manifest = eight_shards
    paths = shard_paths(store, manifest, "train")[:3]
    blocks = list(read_shards(store.arrow_fs(), paths, ["sample_id"], lambda batch: batch, block_rows=4))
    assert [block.num_rows for block in blocks] == [4, 2]
    read = [(row[PATH], row["sample_id"]) for block in blocks for row in block.to_pylist()]
    expected = [(path, sample_id) for path in paths
                for sample_id in pq.read_table(path, columns=["sample_id"], filesystem=store.arrow_fs())["sample_id"].to_pylist()]
    assert read == expected


def test_read_tasks_come_in_whole_rounds_of_about_task_bytes():
    assert read_tasks([{"bytes": TASK_BYTES // 4}] * 16, tasks_at_once=1) == 4
    assert read_tasks([{"bytes": TASK_BYTES // 4}] * 16, tasks_at_once=3) == 6
    assert read_tasks([{"bytes": TASK_BYTES // 16}] * 16, tasks_at_once=2) == 2
    assert read_tasks([{"bytes": 2 * TASK_BYTES}] * 5, tasks_at_once=1) == 5
    assert read_tasks([{"rows": 8}] * 5, tasks_at_once=1) == 5, "a shard of unknown size is a task of its own"
    assert read_tasks([{"bytes": 10}], tasks_at_once=4) == 1


def _share_keys(reader, world_size: int, start: int, batches: int | None, epoch: int = 3) -> tuple[list[int], int]:
    """The sample keys every worker of world_size trains from `start`, stopping after `batches` batches (None: the
    epoch's end) as an interrupted run would; and the position it stopped at."""
    keys, taken = [], 0
    for rank in range(world_size):
        stream = reader.epoch_batches(seed=1, epoch=epoch, window_rows=4, start=start, rank=rank,
                                      batching=Batching.at(3, 1, world_size, world_size))
        trained = list(stream) if batches is None else [batch for _, batch in zip(range(batches), stream)]
        keys += [int(key) for batch in trained for key in batch[SAMPLE_KEY]]
        taken += sum(len(batch[SAMPLE_KEY]) for batch in trained)
    return keys, start + taken


@pytest.mark.parametrize("before, after", [(2, 1), (1, 2), (1, 3)])  # 1 -> 3: the last batch holds the few left over
def test_an_epoch_stopped_inside_and_read_on_by_another_number_of_workers_reads_each_sample_once(eight_shards, before,
                                                                                                  after):
    store, manifest = eight_shards
    reader = share_reader(store, manifest, RGB, task_cpus=0.5, data_cpus=1.0, tasks_at_once=2, rules=None)
    first, position = _share_keys(reader, before, start=0, batches=2)
    rest, end = _share_keys(reader, after, start=position, batches=None)
    whole, _ = _share_keys(reader, before, start=0, batches=None)
    expected = Counter(zlib.crc32(str(sample_id).encode()) for sample_id in _train_ids(store, manifest))
    assert 0 < position < manifest["splits"]["train"]["rows"] == end
    assert Counter(first + rest) == Counter(whole) == expected


def test_a_share_is_read_in_the_epochs_order(eight_shards):
    store, manifest = eight_shards
    reader = share_reader(store, manifest, RGB, task_cpus=0.5, data_cpus=1.0, tasks_at_once=2, rules=None)
    keys, _ = _share_keys(reader, 1, start=0, batches=None, epoch=0)
    ids = _train_ids(store, manifest)
    order = epoch_order([shard["rows"] for shard in manifest["splits"]["train"]["shards"]], seed=1, epoch=0, window_rows=4)
    assert keys == [zlib.crc32(str(ids[row]).encode()) for row in order]


def _train_ids(store, manifest) -> list[str]:
    """The train split's sample ids, its shards laid end to end in the manifest's order."""
    return [sample_id for path in shard_paths(store, manifest, "train")
            for sample_id in pq.read_table(path, columns=["sample_id"]).column("sample_id").to_pylist()]
