"""Local Ray instances bound to loopback, each shared by the test modules that ask for the same kind.

Starting Ray costs 5-7 s here, and about fifteen modules train on one; conftest orders the modules
so that those of a kind run one after another, and the instance goes on from one to the next. A
module asking for another kind stops it first; the session's end stops the last one. Modules that
ask for none run before any is started, so a test that starts its own Ray never finds one running.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import ray

from cluster.connect import worker_environment
from tests.ray_head import free_port

REPO = Path(__file__).resolve().parent.parent
# The fixtures below, in the order conftest runs their modules (after the modules that use none).
KINDS = ("local_ray", "ray_with_s3_credentials", "local_ray_with_dashboard")
GROUP = {"fresh_local_ray": "local_ray"}  # fixtures that start a kind's instance anew


class SharedRay:
    """The one local instance of this test process, and the kind it was started as."""

    def __init__(self) -> None:
        self.kind: str | None = None

    def use(self, kind: str, include_dashboard: bool):
        if self.kind != kind:
            self.stop()
            _start(include_dashboard)
            self.kind = kind
        return ray

    def stop(self) -> None:
        if self.kind is not None:
            ray.shutdown()
            self.kind = None


SHARED = SharedRay()


def _start(include_dashboard: bool) -> None:
    extra = {"dashboard_host": "127.0.0.1", "dashboard_port": free_port()} if include_dashboard else {}
    with worker_environment(REPO, "127.0.0.1"):  # as jobs start theirs (cluster.connect)
        ray.init(
            address="local",  # never another test session's Ray, nor a Cluster's head of this machine
            num_cpus=2,
            include_dashboard=include_dashboard,
            _node_ip_address="127.0.0.1",
            **extra,
        )


@pytest.fixture(scope="module")
def local_ray():
    return SHARED.use("local_ray", include_dashboard=False)


@pytest.fixture(scope="module")
def fresh_local_ray():
    """For a module that must find an instance nothing ran on yet; the modules after it share it."""
    SHARED.stop()
    return SHARED.use("local_ray", include_dashboard=False)


@pytest.fixture(scope="module")
def local_ray_with_dashboard():
    """Tune needs it: Ray Train releases a stopped trial's workers through the state API the dashboard serves."""
    return SHARED.use("local_ray_with_dashboard", include_dashboard=True)
