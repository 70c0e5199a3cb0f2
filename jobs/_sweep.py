"""Ray Tune around Ray Train: each trial is a function trainable that runs one full training run.

Train V2 cannot be handed to a Tuner directly; a trial builds its TorchTrainer (through
jobs._experiment, so its run directory is what jobs.train writes) with TuneReportCallback,
which forwards every epoch's report to Tune, where the scheduler (FIFO or ASHA) acts on it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from cluster.connect import node_resources
from cluster.resources import make_plan
from core.config import format_override, load_config
from core.sweep_config import SweepConfig
from core.tasks import build_task
from jobs._experiment import run

TUNE_FOLDER = "tune"


def param_space(sweep: SweepConfig) -> dict[str, Any]:
    space = {}
    for key, domain in sweep.space.items():
        values = getattr(domain, domain.kind)
        space[key] = {
            "grid": lambda: tune.grid_search(values),
            "choice": lambda: tune.choice(values),
            "uniform": lambda: tune.uniform(*values),
            "loguniform": lambda: tune.loguniform(*values),
            "randint": lambda: tune.randint(values[0], values[1] + 1),  # the sweep file's bounds are inclusive
        }[domain.kind]()
    return space


def trainable(sweep: SweepConfig, sweep_dir: Path, data_root: Path, manifest: dict[str, Any]):
    fixed = {"sweep_fields": sweep.model_dump(mode="json"), "runs_root": str(sweep_dir / "runs"),
             "data_root": str(data_root), "manifest": manifest}
    return tune.with_resources(tune.with_parameters(run_trial, **fixed), {"CPU": sweep.trial_driver_cpus})


def run_trial(params: dict[str, Any], sweep_fields: dict, runs_root: str, data_root: str, manifest: dict[str, Any]) -> None:
    sweep = SweepConfig.model_validate(sweep_fields)
    overrides = [*sweep.overrides, f"output.root={runs_root}", *(format_override(k, v) for k, v in params.items())]
    config = load_config(sweep.base, overrides)
    plan = make_plan(config.scaling, node_resources())
    _, summary = run(config, plan, Path(data_root), manifest, build_task(config.task, manifest), callbacks=[TuneReportCallback()])
    if summary["status"] != "completed":
        raise RuntimeError(f"trial training failed: {summary['error']}")


def build_tuner(sweep: SweepConfig, sweep_dir: Path, data_root: Path, manifest: dict[str, Any]) -> tune.Tuner:
    epochs = sweep.base_config().train.epochs
    if sweep.scheduler.name == "asha":
        scheduler = ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=sweep.scheduler.grace_period,
                                  reduction_factor=sweep.scheduler.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    return tune.Tuner(
        trainable(sweep, sweep_dir, data_root, manifest),
        param_space=param_space(sweep),
        tune_config=tune.TuneConfig(metric=sweep.metric, mode=sweep.mode, num_samples=sweep.num_samples,
                                    max_concurrent_trials=sweep.max_concurrent, scheduler=scheduler),
        run_config=tune.RunConfig(name=TUNE_FOLDER, storage_path=str(sweep_dir)),
    )


def restore_tuner(sweep: SweepConfig, sweep_dir: Path, data_root: Path, manifest: dict[str, Any]) -> tune.Tuner:
    return tune.Tuner.restore(str(sweep_dir / TUNE_FOLDER), trainable=trainable(sweep, sweep_dir, data_root, manifest),
                              resume_errored=True, resume_unfinished=True)


def result_rows(results: tune.ResultGrid, sweep: SweepConfig, runs_root: Path) -> list[dict[str, Any]]:
    planned = sweep.base_config().train.epochs
    rows = []
    for index, result in enumerate(results):
        history = result.metrics_dataframe
        scores = [] if history is None or sweep.metric not in history else history[sweep.metric].dropna().tolist()
        last = result.metrics or {}
        epochs = int(last.get("epoch", 0))
        if result.error:
            status = f"error: {type(result.error).__name__}"
        elif epochs < planned:
            status = f"stopped early by {sweep.scheduler.name}"
        else:
            status = "completed"
        run_name = last.get("run")
        rows.append({
            "trial": f"trial {index}",
            "overrides": " ".join(format_override(k, v) for k, v in (result.config or {}).items()),
            "status": status,
            "best": (max if sweep.mode == "max" else min)(scores) if scores else None,
            "epochs": f"{epochs}/{planned}",
            "wall time (s)": round(float(last.get("time_total_s", 0.0)), 1),
            "run directory": str(runs_root / run_name) if run_name else "",
        })
    return rows
