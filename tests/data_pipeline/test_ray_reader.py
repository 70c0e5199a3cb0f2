"""Ray Data reads a split with all the CPUs it was given from the start of every execution, small shards several to a task."""
from __future__ import annotations

import time

import numpy as np
import pytest

from core.sample_key import SAMPLE_KEY
from data_pipeline.ray_reader import TASK_BYTES, read_split, read_tasks
from data_pipeline.storage import DataStore
from data_pipeline.synthetic import generate
from tests.conftest import TINY_DATA
from tests.ray_fixtures import local_ray  # noqa: F401

TASK_S = 0.3


@pytest.fixture(scope="module")
def eight_shards(local_ray, tmp_path_factory):  # noqa: F811
    store = DataStore.at(tmp_path_factory.mktemp("data") / "eight_shards")
    manifest = generate(store, TINY_DATA.model_copy(update={"rows_per_shard": 2}))
    # Ray starts its worker processes on the first read; starting them is not what is tested. Tasks
    # this slow overlap within a second even with the refresh at Ray's 1 s, so both processes start.
    _stamped_split(store, manifest).materialize()
    return store, manifest


def _stamped_split(store, manifest):
    return read_split(store, manifest, "train", ["rgb"], task_cpus=1.0, tasks_at_once=2).map_batches(
        _stamped, batch_format="numpy", batch_size=None, num_cpus=1.0)


def _stamped(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs fused into the read task: when that task's work started and ended."""
    start = time.time()
    time.sleep(TASK_S)
    rows = len(batch["rgb"])
    return {"start": np.full(rows, start), "end": np.full(rows, time.time())}


def _first_two_tasks(batches) -> list[tuple[float, float]]:
    spans = {(float(batch["start"][0]), float(batch["end"][0])) for batch in batches}
    return sorted(spans)[:2]


@pytest.mark.parametrize("consumer", ["driver", "split coordinator"])
def test_a_fresh_execution_runs_its_read_tasks_side_by_side_from_the_first(eight_shards, consumer):
    store, manifest = eight_shards
    for _ in range(2):  # every epoch is a new execution
        dataset = _stamped_split(store, manifest)
        stream = dataset if consumer == "driver" else dataset.streaming_split(1)[0]
        first, second = _first_two_tasks(stream.iter_batches(batch_size=None, batch_format="numpy"))
        assert second[0] < first[1], f"the second read task started {second[0] - first[1]:.2f} s after the first ended"


def test_small_shards_are_read_several_to_a_task_but_every_cpu_gets_two(eight_shards):
    store, manifest = eight_shards
    shards = manifest["splits"]["train"]["shards"]
    assert len(shards) == 8 and all(0 < shard["bytes"] < TASK_BYTES for shard in shards)
    rows = list(read_split(store, manifest, "train", ["rgb"], task_cpus=1.0, tasks_at_once=2)
                .iter_batches(batch_size=None, batch_format="numpy"))
    assert len(rows) == 4, "2 tasks run at once, so 4 tasks of 2 shards each, one block each"
    keys = np.concatenate([batch[SAMPLE_KEY] for batch in rows])
    assert len(keys) == len(set(keys)) == manifest["splits"]["train"]["rows"]


def test_read_tasks_follow_shard_sizes():
    assert read_tasks([{"bytes": TASK_BYTES // 4}] * 16, tasks_at_once=1) == 4
    assert read_tasks([{"bytes": TASK_BYTES // 4}] * 16, tasks_at_once=3) == 6
    assert read_tasks([{"bytes": 2 * TASK_BYTES}] * 5, tasks_at_once=1) == 5
    assert read_tasks([{"rows": 8}] * 5, tasks_at_once=1) == 5, "a shard of unknown size is a task of its own"
    assert read_tasks([{"bytes": 10}], tasks_at_once=4) == 1
