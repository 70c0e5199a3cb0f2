"""A local Ray instance per test module, bound to loopback, always shut down by its fixture."""
from __future__ import annotations

from pathlib import Path

import pytest
import ray

from cluster.connect import worker_environment
from tests.ray_head import free_port

REPO = Path(__file__).resolve().parent.parent


def start_local_ray(include_dashboard: bool):
    extra = {"dashboard_host": "127.0.0.1", "dashboard_port": free_port()} if include_dashboard else {}
    with worker_environment(REPO, "127.0.0.1"):  # as jobs start theirs (cluster.connect)
        ray.init(
            address="local",  # never another test session's Ray, nor a Cluster's head of this machine
            num_cpus=2,
            include_dashboard=include_dashboard,
            _node_ip_address="127.0.0.1",
            **extra,
        )
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_ray():
    yield from start_local_ray(include_dashboard=False)


@pytest.fixture(scope="module")
def local_ray_with_dashboard():
    """Tune needs it: Ray Train releases a stopped trial's workers through the state API the dashboard serves."""
    yield from start_local_ray(include_dashboard=True)
