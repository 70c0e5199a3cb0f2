"""Ray Data's start, made quicker where Ray 2.60 is slow to begin an execution.

Let a Ray Data execution use its CPUs from its first task, not a second later: each execution
learns its CPUs from the autoscaling coordinator actor, whose answer is cached on the executor's
side and refreshed once a second; until the first answer arrives the executor sees zero CPUs and
runs one task at a time (its liveness rule). Every epoch of every split starts a new execution, so
each began single-file for about a second: bench.ingest measured passes over 2,048 samples running
one task at a time throughout. Refreshing every 0.1 s picks up the answer after one round trip, for
ten small actor calls a second per running execution. The refresh is set on import: this module is
imported by data_pipeline.readers.ray_data, so that the process running an execution (the driver, or Ray
Train's split coordinator, which imports the reader when it unpickles the data set) has it.

Start Ray Data's two actors of the cluster from the driver (start_actors) before Ray Train starts
its workers, instead of when Ray Train first needs them. Each is started once, beside the one who
first asks, and found by name afterwards:
- the autoscaling coordinator: Ray Train's controller asks it for the workers' resources, and waits
  for it, after importing Ray Train and before it places the workers, so its process start (1.5 s
  of one core on 2 cores) stood alone on the way to the first step while the other core idled;
- the stats actor: otherwise started with the first execution, when the workers build their models
  on every core.
"""
from __future__ import annotations

from ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator import get_or_create_autoscaling_coordinator
from ray.data._internal.execution.resource_manager import ResourceManager
from ray.data._internal.stats import get_or_create_stats_actor

LIMITS_REFRESH_S = 0.1


def refresh_limits_promptly() -> None:
    ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S = min(ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S,
                                                          LIMITS_REFRESH_S)


def start_actors() -> None:
    """Ray Data creates each with its own options (name, node, lifetime) when none is there yet; this
    only asks sooner, and does not wait for their processes. Ray Train's controller runs on the
    driver's node, so the coordinator starts where the controller would have started it."""
    get_or_create_autoscaling_coordinator()
    get_or_create_stats_actor()


refresh_limits_promptly()
