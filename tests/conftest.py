"""Shared fixtures: a tiny synthetic data set, made once per session, and a tiny config."""
from __future__ import annotations

import faulthandler
import sys
from pathlib import Path

import pytest

from core.config.sections import SyntheticConfig
from tests.ray_fixtures import GROUP, KINDS, SHARED

TINY_DATA = SyntheticConfig(num_train=16, num_val=8, image_size=32, views_per_scene=4, seed=7, rows_per_shard=8)
TINY_BODIES = SyntheticConfig(kind="bodies", num_train=8, num_val=4, image_size=32, mesh_resolution=32, points_per_sample=256,
                              seed=3, rows_per_shard=4)
TINY_ROOMS = SyntheticConfig(kind="rooms", num_train=4, num_val=2, image_size=24, volume_resolution=8, envmap_height=8, seed=5,
                             rows_per_shard=2)
# For tests whose claim is about checkpoints, not the model: a third of ResNet-18's parameters, so 51 MB checkpoints
# instead of 157 MB. moto_server serves a ranged read in time that grows with the object's size: a 157 MB checkpoint
# took 66 s to read back from it here, a 51 MB one 9 s.
SMALL_MODEL = "task.model.encoder=mobilenet_v2"


def pytest_collection_modifyitems(items):
    """Modules that use no shared Ray first, then those of each kind (tests.ray_fixtures) one after another, a module
    that starts its kind anew first among them; the order within a module, and among the others of a kind, stays."""
    group: dict[Path, int] = {}
    anew: set[Path] = set()
    for item in items:
        names = [name for name in item.fixturenames if GROUP.get(name, name) in KINDS]
        group[item.path] = max([group.get(item.path, 0), *(KINDS.index(GROUP.get(name, name)) + 1 for name in names)])
        anew.update(item.path for name in names if name in GROUP)
    rank = {path: (index, path not in anew) for path, index in group.items()}
    items.sort(key=lambda item: rank[item.path])


@pytest.fixture(scope="session", autouse=True)
def _shared_ray_ends_with_the_session():
    yield
    SHARED.stop()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """pytest's own faulthandler stops here; a crash while the interpreter exits (Ray's, gRPC's and
    OpenMP's native threads outlive the tests) must still print every thread's stack."""
    faulthandler.enable(file=sys.__stderr__, all_threads=True)


def tiny_overrides(data_uri: Path, output_root: Path) -> list[str]:
    """Overrides that make the quickstart a seconds-long run on TINY_DATA, on a loopback Ray without dashboard."""
    synthetic = TINY_DATA.model_dump()
    return [
        f"data.uri={data_uri}",
        "data.synthetic={" + ", ".join(f"{k}: {v}" for k, v in synthetic.items()) + "}",
        f"output.root={output_root}",
        "train.epochs=1",
        "train.batch_size=4",
        "train.log_images=2",
        "ray.include_dashboard=false",
    ]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    from data_pipeline.storage.datastore import DataStore
    from data_pipeline.sources.synthetic import generate

    root = tmp_path_factory.mktemp("data") / "tiny"
    generate(DataStore.at(root), TINY_DATA)
    return root


@pytest.fixture(scope="session")
def tiny_bodies(tmp_path_factory) -> Path:
    from data_pipeline.storage.datastore import DataStore
    from data_pipeline.sources.synthetic_bodies import generate

    root = tmp_path_factory.mktemp("data") / "bodies"
    generate(DataStore.at(root), TINY_BODIES)
    return root


@pytest.fixture(scope="session")
def tiny_rooms(tmp_path_factory) -> Path:
    from data_pipeline.storage.datastore import DataStore
    from data_pipeline.sources.synthetic_rooms import generate

    root = tmp_path_factory.mktemp("data") / "rooms"
    generate(DataStore.at(root), TINY_ROOMS)
    return root
