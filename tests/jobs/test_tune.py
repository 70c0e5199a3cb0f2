"""Sweeps end to end on tiny data: every trial is a 2-worker Ray Train run inside a Tune trial."""
import csv
from pathlib import Path

import pytest
import yaml

from core.config import load_config
from jobs import tune
from tests.conftest import tiny_overrides
from tests.ray_fixtures import local_ray_with_dashboard  # noqa: F401  (fixture)

QUICKSTART = str(Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml")
# Two concurrent trials on 2 CPUs: 2 x (0.1 trial + 2 x 0.25 workers + 0.4 for Ray Data) = 2 CPUs.
FRACTIONAL = ["scaling.cpus_per_worker=0.25", "scaling.data_cpus=0.4"]


def _sweep_file(tmp_path, tiny_dataset, epochs: int, scaling: list[str] = FRACTIONAL, **fields) -> Path:
    overrides = [o for o in tiny_overrides(tiny_dataset, tmp_path / "unused") if not o.startswith("output.")]
    raw = {"name": "t", "base": QUICKSTART, "overrides": [*overrides, *scaling, f"train.epochs={epochs}"], "metric": "val/miou",
           "mode": "max", "max_concurrent": 2, "output_root": str(tmp_path / "sweeps"), **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _results(tmp_path) -> tuple[Path, list[dict]]:
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    with open(sweep_dir / "results.csv") as handle:
        return sweep_dir, list(csv.DictReader(handle))


def test_grid_sweep_writes_complete_results(local_ray_with_dashboard, tiny_dataset, tmp_path, capsys):  # noqa: F811
    path = _sweep_file(tmp_path, tiny_dataset, epochs=2, space={"train.optimizer.lr": {"grid": [0.001, 0.003]}})
    assert tune.main([str(path)]) == 0
    sweep_dir, rows = _results(tmp_path)
    assert sorted(r["overrides"] for r in rows) == ["train.optimizer.lr=0.001", "train.optimizer.lr=0.003"]
    for r in rows:
        assert r["status"] == "completed" and r["epochs"] == "2/2" and 0.0 <= float(r["best"]) <= 1.0
        assert (Path(r["run directory"]) / "summary.json").is_file()
    best = max(rows, key=lambda r: float(r["best"]))
    assert load_config(sweep_dir / "best_config.yaml").train.optimizer.lr == float(best["overrides"].split("=")[1])
    assert (sweep_dir / "metric_by_epoch.png").stat().st_size > 5000
    assert "| trial 0 |" in (sweep_dir / "results.md").read_text()
    assert "best config" in capsys.readouterr().out


def test_asha_sweep_writes_a_row_for_every_trial(local_ray_with_dashboard, tiny_dataset, tmp_path):  # noqa: F811
    path = _sweep_file(tmp_path, tiny_dataset, epochs=3, space={"train.optimizer.lr": {"grid": [0.0003, 0.001, 0.003]}},
                       scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2})
    assert tune.main([str(path)]) == 0
    sweep_dir, rows = _results(tmp_path)
    assert len(rows) == 3
    for r in rows:
        assert r["status"] in ("completed", "stopped early by asha"), r
        done, planned = map(int, r["epochs"].split("/"))
        assert planned == 3 and 1 <= done <= 3 and (r["status"] == "completed") == (done == 3)
    assert any(r["status"] == "completed" for r in rows)


def test_concurrent_trials_that_cannot_fit_are_refused(local_ray_with_dashboard, tiny_dataset, tmp_path, capsys):  # noqa: F811
    path = _sweep_file(tmp_path, tiny_dataset, epochs=1, scaling=[], space={"train.optimizer.lr": {"grid": [0.001, 0.003, 0.01]}},
                       max_concurrent=3)
    assert tune.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "3 concurrent trials" in err and "number of concurrent trials" in err
    assert not (tmp_path / "sweeps").exists()
