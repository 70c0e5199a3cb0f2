"""Sweeps end to end on tiny data: every trial is a 2-worker Ray Train run inside a Tune trial."""
import csv
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from core.config.loading import load_config
from core.config.sweep import load_sweep
from data_pipeline.format.shards import read_manifest
from data_pipeline.storage.datastore import DataStore
from jobs._train import experiment as _experiment
from jobs._tune import sweep as _sweep
from jobs import tune
from tests.ray_fixtures import local_ray_with_dashboard  # noqa: F401  (fixture)
from tests.sweep_files import FRACTIONAL, sweep_file


def _results(tmp_path) -> tuple[Path, list[dict]]:
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    with open(sweep_dir / "results.csv") as handle:
        return sweep_dir, list(csv.DictReader(handle))


# 1-worker trials of 0.5 CPU each (0.1 trial + 0.2 worker + 0.2 for Ray Data). Two at a time, not the four that would
# fit: ASHA and TPE then see the first trials' results before the last start, and fewer processes start at once
# (92 and 102 s against 117 and 123 s with four, alternating, on 2 cores).
SMALL_TRIALS = ["scaling.num_workers=1", "scaling.cpus_per_worker=0.2", "scaling.data_cpus=0.2"]
CONDITIONAL = {"train.optimizer.name": {"choice": ["adamw", "sgd"]}, "train.optimizer.lr": {"loguniform": [1e-4, 1e-2]},
               "train.optimizer.momentum": {"uniform": [0.8, 0.99], "when": {"train.optimizer.name": ["sgd"]}}}


def test_an_optuna_sweep_under_asha_writes_a_row_per_trial_naming_its_search_over_a_conditional_space(  # noqa: F811
        local_ray_with_dashboard, tiny_dataset, tmp_path, capsys):
    path = sweep_file(tmp_path, tiny_dataset, epochs=2, scaling=SMALL_TRIALS, space=CONDITIONAL, search="optuna", num_samples=4,
                      max_concurrent=2, scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2})
    assert tune.main([str(path)]) == 0
    sweep_dir, rows = _results(tmp_path)
    assert len(rows) == 4 and {(r["search"], r["scheduler"]) for r in rows} == {("optuna", "asha")}, rows
    for r in rows:
        overrides = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in r["overrides"].split())}
        assert 1e-4 <= overrides["train.optimizer.lr"] <= 1e-2
        assert ("train.optimizer.momentum" in overrides) == (overrides["train.optimizer.name"] == "sgd"), r
        assert r["status"] in ("completed", "stopped early by asha"), r
        done, planned = map(int, r["epochs"].split("/"))
        assert planned == 2 and 1 <= done <= 2 and (r["status"] == "completed") == (done == 2)
        assert 0.0 <= float(r["best"]) <= 1.0 and (Path(r["run directory"]) / "metrics.jsonl").is_file()
        summary = json.loads((Path(r["run directory"]) / "summary.json").read_text())  # though Tune ended the trial
        assert summary["status"] == r["status"] and summary["epochs_completed"] == done
        assert load_config(Path(r["run directory"]) / "config.yaml").train.optimizer.name == overrides["train.optimizer.name"]
    assert any(r["status"] == "completed" for r in rows)
    best = max(rows, key=lambda r: float(r["best"]))
    assert f"train.optimizer.lr={load_config(sweep_dir / 'best_config.yaml').train.optimizer.lr!r}" in best["overrides"]
    assert (sweep_dir / "metric_by_epoch.png").stat().st_size > 5000
    assert "| trial 0 | optuna | asha |" in (sweep_dir / "results.md").read_text()
    assert "best config" in capsys.readouterr().out


def test_concurrent_trials_that_cannot_fit_are_refused(local_ray_with_dashboard, tiny_dataset, tmp_path, capsys):  # noqa: F811
    path = sweep_file(tmp_path, tiny_dataset, epochs=1, scaling=[], space={"train.optimizer.lr": {"grid": [0.001, 0.003, 0.01]}},
                       max_concurrent=3)
    assert tune.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "3 concurrent trials" in err and "number of concurrent trials" in err
    assert not (tmp_path / "sweeps").exists()


def test_pbt_copies_a_trial_into_another_and_the_copy_continues_from_its_epoch(local_ray_with_dashboard, tiny_dataset, tmp_path):  # noqa: F811
    # One worker per trial: PBT's exploit can leave the stopped trial's worker placement group reserved
    # for a while (seen: 1.7 of 2 CPUs reserved, 1.2 used), and with two workers per trial that left
    # Ray Data no CPU for its read tasks.
    path = sweep_file(tmp_path, tiny_dataset, epochs=2, scaling=["scaling.num_workers=1", *FRACTIONAL], space={"train.optimizer.lr": {"choice": [0.00001, 0.003]}},
                      scheduler={"name": "pbt", "perturbation_interval": 1, "quantile_fraction": 0.5, "synch": True},
                      num_samples=2)
    assert tune.main([str(path)]) == 0
    sweep_dir, rows = _results(tmp_path)
    assert len(rows) == 2 and all(r["status"] == "completed" and r["epochs"] == "2/2" for r in rows), rows
    # Tune logs each copy as [target tag, donor tag, target time, donor time, donor config, target's new config].
    copies = [json.loads(line) for line in (sweep_dir / "tune" / "pbt_global.txt").read_text().splitlines()]
    assert copies, "PBT never copied one trial into the other"
    new_lr = copies[0][5]["train.optimizer.lr"]
    # The copy went on in a new run from the donor's epoch 1 checkpoint, under its own new learning rate.
    starts = [json.loads((run / "metrics.jsonl").read_text().splitlines()[0]) for run in (sweep_dir / "runs").iterdir()]
    assert any(first["epoch"] == 2 and first["lr"] == pytest.approx(new_lr) for first in starts), (new_lr, starts)


def test_pbt_refuses_keys_it_cannot_change_in_a_running_trial(tiny_dataset, tmp_path, capsys):
    path = sweep_file(tmp_path, tiny_dataset, epochs=2, space={"task.model.decoder": {"choice": ["fpn", "unet"]}},
                       scheduler={"name": "pbt"})
    assert tune.main([str(path)]) == 2
    assert "space.task.model.decoder: PBT changes hyperparameters of running trials" in capsys.readouterr().err


def _trial_run(folder: Path, summary_status: str | None) -> dict | None:
    """A trial's run folder with 2 epochs of metrics and, unless None, its own summary, which is returned."""
    folder.mkdir(parents=True)
    records = [{"epoch": epoch, "val/miou": 0.1 * epoch} for epoch in (1, 2)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if summary_status is None:
        return None
    own = {"status": summary_status, "error": "ActorDiedError: TrainController" if summary_status == "failed" else None}
    (folder / "summary.json").write_text(json.dumps(own))
    return own


@pytest.mark.parametrize("own_status, row_status, expected", [
    (None, "completed", "completed"),  # Tune stopped the trial before its run wrote a summary
    ("failed", "completed", "completed"),  # the trial's placement group went first, taking Ray Train's controller
    ("failed", "stopped early by asha", "stopped early by asha"),
    ("failed", "error: RuntimeError", "failed"),  # the run failed on its own: its summary stands
    ("completed", "completed", "completed"),
])
def test_a_trial_ended_by_tune_gets_its_sweep_row_as_summary(tiny_dataset, tmp_path, own_status, row_status, expected):
    sweep = load_sweep(sweep_file(tmp_path, tiny_dataset, epochs=2, space={"train.optimizer.lr": {"grid": [0.001]}}))
    folder = tmp_path / "runs" / "trial-0"
    own = _trial_run(folder, own_status)
    row = {"run directory": str(folder), "status": row_status, "wall time (s)": 12.5}
    _sweep.write_trial_summaries([row], sweep, read_manifest(DataStore.at(tiny_dataset)))
    summary = json.loads((folder / "summary.json").read_text())
    if own_status == expected:
        assert summary == own
    else:
        assert summary["status"] == expected and summary["error"] is None
        assert summary["epochs_completed"] == 2 and summary["best"]["epoch"] == 2 and summary["wall_time_s"] == 12.5


def test_a_trial_run_keeps_the_summary_its_sweep_wrote_while_it_failed(tmp_path):
    """Tune may take a trial's placement group before the trial's thread is done: the sweep writes the trial's summary,
    and the thread, failing late, must not write the controller's death over it."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    before = time.time() - 60
    assert not _experiment.summary_written_since(run_dir, before)
    (run_dir / "summary.json").write_text("{}")
    os.utime(run_dir / "summary.json", (before - 1, before - 1))
    assert not _experiment.summary_written_since(run_dir, before), "a resumed run rewrites its older summary"
    os.utime(run_dir / "summary.json", (before + 1, before + 1))
    assert _experiment.summary_written_since(run_dir, before)
