"""Ray Data's start, made quicker where Ray 2.60 is slow to begin an execution.

Let a Ray Data execution use its CPUs from its first task, not a second later: each execution
learns its CPUs from the autoscaling coordinator actor, whose answer is cached on the executor's
side and refreshed once a second; until the first answer arrives the executor sees zero CPUs and
runs one task at a time (its liveness rule). Every epoch of every split starts a new execution, so
each began single-file for about a second: bench.ingest measured passes over 2,048 samples running
one task at a time throughout. Refreshing every 0.1 s picks up the answer after one round trip, for
ten small actor calls a second per running execution. The refresh is set on import: this module is
imported by data_pipeline.ray_reader, so that the process running an execution (the driver, or Ray
Train's split coordinator, which imports the reader when it unpickles the data set) has it.

Start Ray Data's stats actor from the driver (start_stats_actor) while Ray Train starts its
workers, which leaves CPU idle on a small machine, instead of with the first execution, when the
workers build their models on every core.
"""
from __future__ import annotations

from ray.data._internal.execution.resource_manager import ResourceManager
from ray.data._internal.stats import get_or_create_stats_actor

LIMITS_REFRESH_S = 0.1


def refresh_limits_promptly() -> None:
    ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S = min(ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S,
                                                          LIMITS_REFRESH_S)


def start_stats_actor() -> None:
    """Ray Data creates the one stats actor of the cluster, beside the driver, when none is there yet;
    this only asks for it sooner (the call does not wait for the actor's process)."""
    get_or_create_stats_actor()


refresh_limits_promptly()
