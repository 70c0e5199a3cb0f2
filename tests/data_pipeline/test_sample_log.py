"""A skipping run's SampleLog: one log for all the read tasks that meet bad samples, gone once read, and gone
with its driver when the driver goes without reading it."""
import time

import ray
from ray.exceptions import RayActorError

from data_pipeline.readers.sample_log import SampleLogRef
from tests.ray_fixtures import local_ray  # noqa: F401


@ray.remote(max_calls=1)  # a fresh process each time, which exits after the task: the log must outlive it
def _skip(ref: SampleLogRef, sample_id: str) -> None:
    ref.skip({"sample_id": sample_id, "reason": "label ids [9] are outside the class table"})


def _alive(ref: SampleLogRef) -> bool:
    try:
        ray.get(ref.log.report.remote(), timeout=30)
    except RayActorError:
        return False
    return True


def _gone_within(ref: SampleLogRef, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(ref) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _alive(ref)


def test_bad_samples_of_several_tasks_reach_one_log_once_each_and_reading_ends_it(local_ray):  # noqa: F811
    ref = SampleLogRef.beside_driver()
    ray.get([_skip.remote(ref, f"sample-{i % 2}") for i in range(4)])
    assert sorted(record["sample_id"] for record in ref.close()) == ["sample-0", "sample-1"]
    assert _gone_within(ref, 30), "ray.kill is asynchronous: the log goes, though not always before the next call"


def test_runs_have_logs_of_their_own(local_ray):  # noqa: F811
    first, second = SampleLogRef.beside_driver(), SampleLogRef.beside_driver()
    ray.get(_skip.remote(first, "sample-0"))
    assert second.close() == []
    assert [record["sample_id"] for record in first.close()] == ["sample-0"]


@ray.remote(num_cpus=0)
class _Driver:
    """A run's driver in a process of its own, as a Tune trial or a submitted job is."""

    def start_run(self) -> SampleLogRef:
        self.log = SampleLogRef.beside_driver()
        return self.log


def test_a_log_goes_with_its_driver_when_the_driver_goes_without_reading_it(local_ray):  # noqa: F811
    driver = _Driver.remote()
    ref = ray.get(driver.start_run.remote())
    ray.get(_skip.remote(ref, "sample-0"))
    assert _alive(ref)
    ray.kill(driver)  # stopped from outside (a scheduler, a killed job) before it read its log
    assert _gone_within(ref, 30)

