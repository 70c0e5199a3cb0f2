"""Ray Data reads a split with all the CPUs it was given from the start of every execution."""
from __future__ import annotations

import time

import numpy as np
import pytest

from data_pipeline.ray_reader import read_split
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
    return read_split(store, manifest, "train", ["rgb"], task_cpus=1.0).map_batches(
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
