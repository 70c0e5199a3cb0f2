"""Let a Ray Data execution use its CPUs from its first task, not a second later.

In Ray 2.60 each execution learns its CPUs from the autoscaling coordinator actor, whose answer is
cached on the executor's side and refreshed once a second; until the first answer arrives the
executor sees zero CPUs and runs one task at a time (its liveness rule). Every epoch of every split
starts a new execution, so each began single-file for about a second: bench.ingest measured
passes over 2,048 samples running one task at a time throughout. Refreshing every 0.1 s picks up
the answer after one round trip, for ten small actor calls a second per running execution.

Imported by data_pipeline.ray_reader, so that the process running an execution (the driver, or
Ray Train's split coordinator, which imports the reader when it unpickles the data set) has it.
"""
from __future__ import annotations

from ray.data._internal.execution.resource_manager import ResourceManager

LIMITS_REFRESH_S = 0.1


def refresh_limits_promptly() -> None:
    ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S = min(ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S,
                                                          LIMITS_REFRESH_S)


refresh_limits_promptly()
