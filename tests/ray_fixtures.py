"""A local Ray instance per test module, bound to loopback, always shut down by its fixture."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray

from tests.ray_head import free_port

REPO = Path(__file__).resolve().parent.parent


def start_local_ray(include_dashboard: bool):
    extra = {"dashboard_host": "127.0.0.1", "dashboard_port": free_port()} if include_dashboard else {}
    ray.init(
        address="local",  # never another test session's Ray, nor a Cluster's head of this machine
        num_cpus=2,
        include_dashboard=include_dashboard,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}},
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
