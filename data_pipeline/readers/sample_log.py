"""The samples a run with data.on_bad_sample "skip" left out, kept by an actor beside its driver.

Read tasks run in many processes, on any node, and end before the driver asks what they met, so
the record lives in an actor beside the driver (as Ray Train places its controller: a worker node
may be lost mid-run, and the log with it). The driver starts it with the run and owns it, so a
driver that goes without reading it (a Tune trial ended by its scheduler, a killed job) takes it
along. A run that stops at its first bad sample (on_bad_sample "error", the default) starts none:
the driver finds that sample's DatasetError in the run's failure (jobs._train.experiment).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@ray.remote(num_cpus=0)
class SampleLog:
    """The samples a run skipped, each once however many epochs met it."""

    def __init__(self):
        self._skipped: dict[str, dict[str, Any]] = {}

    def skip(self, record: dict[str, Any]) -> None:
        self._skipped.setdefault(record["sample_id"], record)

    def report(self) -> list[dict[str, Any]]:
        return list(self._skipped.values())


@dataclass(frozen=True)
class SampleLogRef:
    """A run's SampleLog; travels with the read tasks, which borrow the driver's handle."""

    log: Any

    @classmethod
    def beside_driver(cls) -> "SampleLogRef":
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        return cls(SampleLog.options(scheduling_strategy=here).remote())

    def skip(self, record: dict[str, Any]) -> None:
        ray.get(self.log.skip.remote(record))

    def close(self) -> list[dict[str, Any]]:
        """The skipped samples, in the order they were met. Ends the log."""
        skipped = ray.get(self.log.report.remote())
        ray.kill(self.log)
        return skipped
