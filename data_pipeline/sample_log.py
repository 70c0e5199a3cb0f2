"""A run's bad samples, kept by an actor beside the driver.

Read tasks run in many processes, on any node, and end before the driver asks what they met, so
the record lives in a named actor beside the driver (as Ray Train places its controller: a worker
node may be lost mid-run, and the log with it).

With data.on_bad_sample "error" (the default) the first bad sample starts it: detached, so that it
outlives the read task that started it, and killed by the driver once read. A run whose samples
are all good starts no process for it: an actor's process costs about a second of CPU, and at the
start of a run that second is taken from the workers building their models and Ray Data starting
its execution (bench.startup). With "skip" a run may meet bad samples all along and be stopped from
outside before it reads its log (a Tune trial ended by its scheduler), so the log starts with the
run and is owned by its driver, which takes it along when it goes.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

NAMESPACE = "sample_logs"


@ray.remote(num_cpus=0)
class SampleLog:
    """The samples a run skipped, each once however many epochs met it, or the one that stopped it."""

    def __init__(self):
        self._skipped: dict[str, dict[str, Any]] = {}
        self._failure: str | None = None

    def skip(self, record: dict[str, Any]) -> None:
        self._skipped.setdefault(record["sample_id"], record)

    def fail(self, message: str) -> None:
        self._failure = self._failure or message

    def report(self) -> tuple[list[dict[str, Any]], str | None]:
        return list(self._skipped.values()), self._failure


@dataclass(frozen=True)
class SampleLogRef:
    """Where a run's SampleLog is, or will be once a sample is bad; travels with the read tasks."""

    name: str
    node_id: str
    started: Any = None  # the handle of a log started with the run: Ray keeps the log while a handle exists

    @classmethod
    def beside_driver(cls, run_name: str, skipping: bool = False) -> "SampleLogRef":
        ref = cls(f"{run_name}-{uuid.uuid4().hex[:8]}", ray.get_runtime_context().get_node_id())
        return replace(ref, started=SampleLog.options(**ref._placement()).remote()) if skipping else ref

    def actor(self) -> "ray.actor.ActorHandle":
        """The log, started by the first caller; Ray lets one of several callers at once create it."""
        return SampleLog.options(**self._placement(), get_if_exists=True, lifetime="detached").remote()

    def _placement(self) -> dict[str, Any]:
        here = NodeAffinitySchedulingStrategy(self.node_id, soft=False)
        return {"name": self.name, "namespace": NAMESPACE, "scheduling_strategy": here}

    def close(self) -> tuple[list[dict[str, Any]], str | None]:
        """(skipped samples, the failure message or None); nothing when no sample was bad. Ends the log."""
        try:
            log = ray.get_actor(self.name, namespace=NAMESPACE)
        except ValueError:
            return [], None
        report = ray.get(log.report.remote())
        ray.kill(log)
        return report
