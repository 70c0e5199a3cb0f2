"""The driver starts Ray Data's two cluster-wide actors itself, and Ray finds them by name afterwards."""
from __future__ import annotations

import pytest
import ray
from ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator import get_or_create_autoscaling_coordinator
from ray.data._internal.stats import STATS_ACTOR_NAME, STATS_ACTOR_NAMESPACE, get_or_create_stats_actor

from data_pipeline.readers import ray_data_start
from tests.ray_fixtures import fresh_local_ray  # noqa: F401  (fixture: neither actor may exist yet)

COORDINATOR = ("AutoscalingCoordinator", "AutoscalingCoordinator")  # Ray Data's name and namespace for it


def test_start_actors_starts_the_ones_ray_train_and_ray_data_would_otherwise_start(fresh_local_ray):  # noqa: F811
    for name, namespace in (COORDINATOR, (STATS_ACTOR_NAME, STATS_ACTOR_NAMESPACE)):
        with pytest.raises(ValueError):
            ray.get_actor(name, namespace=namespace)
    ray_data_start.start_actors()
    coordinator = ray.get_actor(*COORDINATOR)
    stats = ray.get_actor(STATS_ACTOR_NAME, namespace=STATS_ACTOR_NAMESPACE)
    ray.get([coordinator.__ray_ready__.remote(), stats.__ray_ready__.remote()], timeout=60)
    # What Ray Train's controller and Ray Data's executions ask for is the same actor, not a second one.
    assert get_or_create_autoscaling_coordinator()._actor_id == coordinator._actor_id
    assert get_or_create_stats_actor()._actor_id == stats._actor_id
