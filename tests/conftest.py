"""Shared fixtures: a tiny synthetic data set, made once per session, and a tiny config."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.config import SyntheticConfig

TINY_DATA = SyntheticConfig(num_train=16, num_val=8, image_size=32, views_per_scene=4, seed=7, rows_per_shard=8)


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
    from data_pipeline.storage import DataStore
    from data_pipeline.synthetic import generate

    root = tmp_path_factory.mktemp("data") / "tiny"
    generate(DataStore.at(root), TINY_DATA)
    return root
