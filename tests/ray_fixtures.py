"""A local Ray instance per test module, bound to loopback, always shut down by its fixture."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def local_ray():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()
