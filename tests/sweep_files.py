"""Sweep files for the sweep tests: the quickstart shrunk to tiny data, two trials side by side on 2 CPUs."""
from pathlib import Path

import yaml

from tests.conftest import tiny_overrides

QUICKSTART = str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml")
# Two concurrent trials on 2 CPUs: 2 x (0.1 trial + 2 x 0.25 workers + 0.4 for Ray Data) = 2 CPUs.
FRACTIONAL = ["scaling.cpus_per_worker=0.25", "scaling.data_cpus=0.4"]


def sweep_file(tmp_path, tiny_dataset, epochs: int, scaling: list[str] = FRACTIONAL, **fields) -> Path:
    overrides = [o for o in tiny_overrides(tiny_dataset, tmp_path / "unused") if not o.startswith("output.")]
    raw = {"name": "t", "base": QUICKSTART, "overrides": [*overrides, *scaling, f"train.epochs={epochs}"], "metric": "val/miou",
           "mode": "max", "max_concurrent": 2, "output_root": str(tmp_path / "sweeps"), **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
