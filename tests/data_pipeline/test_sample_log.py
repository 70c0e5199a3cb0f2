"""A run's SampleLog: absent while every sample is good (unless the run skips bad ones), one log for all the read tasks
that meet bad ones, gone once read."""
import time

import pytest
import ray

from data_pipeline.sample_log import NAMESPACE, SampleLogRef
from tests.ray_fixtures import local_ray  # noqa: F401


@ray.remote(max_calls=1)  # a fresh process each time, which exits after the task: the log must outlive it
def _skip(ref: SampleLogRef, sample_id: str) -> None:
    ray.get(ref.actor().skip.remote({"sample_id": sample_id, "reason": "label ids [9] are outside the class table"}))


@ray.remote(max_calls=1)
def _fail(ref: SampleLogRef, message: str) -> None:
    ray.get(ref.actor().fail.remote(message))


def _exists(ref: SampleLogRef) -> bool:
    try:
        ray.get_actor(ref.name, namespace=NAMESPACE)
    except ValueError:
        return False
    return True


def test_no_log_is_started_until_a_sample_is_bad(local_ray):  # noqa: F811
    ref = SampleLogRef.beside_driver("clean-run")
    assert not _exists(ref)
    assert ref.close() == ([], None)
    assert not _exists(ref)


def test_bad_samples_of_several_tasks_reach_one_log_that_reading_ends(local_ray):  # noqa: F811
    ref = SampleLogRef.beside_driver("bad-run")
    ray.get([_skip.remote(ref, f"sample-{i % 2}") for i in range(4)])
    skipped, failure = ref.close()
    assert sorted(record["sample_id"] for record in skipped) == ["sample-0", "sample-1"] and failure is None
    assert not _exists(ref)


def test_the_first_failure_is_the_one_kept(local_ray):  # noqa: F811
    ref = SampleLogRef.beside_driver("failed-run")
    ray.get(_fail.remote(ref, "shard a, row 3: first"))
    ray.get(_fail.remote(ref, "shard b, row 1: second"))
    assert ref.close() == ([], "shard a, row 3: first")


def test_runs_have_logs_of_their_own(local_ray):  # noqa: F811
    first, second = SampleLogRef.beside_driver("same-name"), SampleLogRef.beside_driver("same-name")
    ray.get(_skip.remote(first, "sample-0"))
    assert second.close() == ([], None)
    assert [record["sample_id"] for record in first.close()[0]] == ["sample-0"]


@ray.remote(num_cpus=0)
class _Driver:
    """A run's driver in a process of its own, as a Tune trial is."""

    def start_run(self) -> SampleLogRef:
        return SampleLogRef.beside_driver("skipping-run", skipping=True)


def test_a_skipping_run_starts_its_log_with_it_and_takes_it_along_when_its_driver_goes(local_ray):  # noqa: F811
    driver = _Driver.remote()
    ref = ray.get(driver.start_run.remote())
    assert _exists(ref), "started with the run"
    ray.get(_skip.remote(ref, "sample-0"))
    ray.kill(driver)  # stopped from outside, before it read its log
    deadline = time.monotonic() + 30
    while _exists(ref) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _exists(ref)

