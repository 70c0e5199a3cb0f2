"""Ray Tune around Ray Train: each trial is a function trainable that runs one full training run.

Train V2 cannot be handed to a Tuner directly; a trial builds its TorchTrainer (through
jobs._train.experiment, so its run directory is what jobs.train writes) and forwards every epoch's
report and checkpoint to Tune (jobs._tune.trial_reporting), where the scheduler acts on it: FIFO, ASHA,
HyperBand for BOHB, or PBT, whose exploit restarts a trial from another trial's checkpoint with
perturbed values. The values come from the sweep's search (jobs._tune.searches).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandForBOHB, PopulationBasedTraining

from cluster.connect import node_resources
from cluster.resources import make_plan
from core.engine import checkpoint
from core.runs import run_dir as runs
from core.config.loading import format_override, load_config
from core.runs.summary import summarise
from core.config.sweep import SweepConfig
from core.tasks.catalog import build_task
from data_pipeline.storage.datastore import DataStore
from jobs._train.experiment import run
from jobs._tune.searches import chosen, search_algorithm
from jobs._tune.trial_reporting import fit_reporting_to_tune

TUNE_FOLDER = "tune"


def param_space(sweep: SweepConfig) -> dict[str, Any]:
    """Tune's domains, for its variant generator and PBT; Optuna and BOHB take the space as their own (searches)."""
    if sweep.search in ("optuna", "bohb"):
        return {}
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


def trainable(sweep: SweepConfig, sweep_dir: Path, store: DataStore, manifest: dict[str, Any]):
    fixed = {"sweep_fields": sweep.model_dump(mode="json"), "runs_root": str(sweep_dir / "runs"),
             "store": store, "manifest": manifest}
    return tune.with_resources(tune.with_parameters(run_trial, **fixed), {"CPU": sweep.trial_driver_cpus})


def run_trial(params: dict[str, Any], sweep_fields: dict, runs_root: str, store: DataStore, manifest: dict[str, Any]) -> None:
    sweep = SweepConfig.model_validate(sweep_fields)
    values = chosen(params, list(sweep.space))
    overrides = [*sweep.overrides, f"output.root={runs_root}", *(format_override(k, v) for k, v in values.items())]
    config = load_config(sweep.base, overrides)
    plan = make_plan(config.scaling, node_resources())
    task, init = build_task(config.task, manifest), _init_checkpoint()
    if init is not None and checkpoint.saved_epoch(Path(init["path"])) + 1 >= config.train.epochs:
        return  # paused or copied at its last epoch (PBT): nothing left to train, its last report stands
    _, summary = fit_reporting_to_tune(
        lambda callbacks: run(config, plan, store, manifest, task, callbacks=callbacks, init_checkpoint=init))
    if summary["status"] != "completed":
        raise RuntimeError(f"trial training failed: {summary['error']}")


def _init_checkpoint() -> dict[str, str] | None:
    """Where this trial starts: from scratch, from its own checkpoint (a restored sweep), or from
    another trial's (PBT's exploit, which brings this trial's new hyperparameters)."""
    saved = tune.get_checkpoint()
    if saved is None:
        return None
    own = Path(saved.path).parent.name == Path(tune.get_context().get_trial_dir()).name
    return {"path": saved.path, "hyperparameters": "checkpoint" if own else "config"}


def build_tuner(sweep: SweepConfig, sweep_dir: Path, store: DataStore, manifest: dict[str, Any]) -> tune.Tuner:
    return tune.Tuner(
        trainable(sweep, sweep_dir, store, manifest),
        param_space=param_space(sweep),
        tune_config=tune.TuneConfig(metric=sweep.metric, mode=sweep.mode, num_samples=sweep.num_samples,
                                    max_concurrent_trials=sweep.max_concurrent, scheduler=_scheduler(sweep),
                                    search_alg=search_algorithm(sweep)),
        run_config=tune.RunConfig(name=TUNE_FOLDER, storage_path=str(sweep_dir), stop=_stop(sweep),
                                  # PBT copies a donor's latest checkpoint, which must outlive the donor's next epochs.
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=4 if sweep.scheduler.name == "pbt" else 2)),
    )


def _stop(sweep: SweepConfig) -> dict[str, int] | None:
    """PBT ends each trial at its last epoch's report, before its scheduler sees it: otherwise a trial
    could be copied into another at the very end, and the copy, with nothing left to train, would
    leave Tune's record of that trial empty."""
    return {"epoch": sweep.base_config().train.epochs} if sweep.scheduler.name == "pbt" else None


def _scheduler(sweep: SweepConfig):
    settings = sweep.scheduler
    if settings.name == "asha":
        return ASHAScheduler(time_attr="epoch", max_t=sweep.base_config().train.epochs, grace_period=settings.grace_period,
                             reduction_factor=settings.reduction_factor)
    if sweep.search == "bohb":
        return HyperBandForBOHB(time_attr="epoch", max_t=sweep.base_config().train.epochs, reduction_factor=settings.reduction_factor)
    if settings.name == "pbt":
        return PopulationBasedTraining(time_attr="epoch", perturbation_interval=settings.perturbation_interval,
                                       hyperparam_mutations=param_space(sweep), quantile_fraction=settings.quantile_fraction,
                                       resample_probability=settings.resample_probability, synch=settings.synch)
    return FIFOScheduler()


def scheduler_name(sweep: SweepConfig) -> str:
    return "hyperband for bohb" if sweep.search == "bohb" else sweep.scheduler.name


def restore_tuner(sweep: SweepConfig, sweep_dir: Path, store: DataStore, manifest: dict[str, Any]) -> tune.Tuner:
    return tune.Tuner.restore(str(sweep_dir / TUNE_FOLDER), trainable=trainable(sweep, sweep_dir, store, manifest),
                              resume_errored=True, resume_unfinished=True)


def result_rows(results: tune.ResultGrid, sweep: SweepConfig, runs_root: Path) -> list[dict[str, Any]]:
    planned = sweep.base_config().train.epochs
    rows = []
    for index, result in enumerate(results):
        history = result.metrics_dataframe
        scored = history is not None and sweep.metric in history and "epoch" in history
        points = history[["epoch", sweep.metric]].dropna().values.tolist() if scored else []
        scores = [score for _, score in points]
        last = result.metrics or {}
        epochs = int(last.get("epoch", 0))
        if result.error:
            status = f"error: {type(result.error).__name__}"
        elif epochs < planned and scheduler_name(sweep) in ("asha", "hyperband for bohb"):
            status = f"stopped early by {scheduler_name(sweep)}"
        elif epochs < planned:
            status = "unfinished"
        else:
            status = "completed"
        run_name = last.get("run")
        rows.append({
            "trial": f"trial {index}",
            "search": sweep.search,
            "scheduler": scheduler_name(sweep),
            "overrides": " ".join(format_override(k, v) for k, v in chosen(result.config or {}, list(sweep.space)).items()),
            "status": status,
            "best": (max if sweep.mode == "max" else min)(scores) if scores else None,
            "epochs": f"{epochs}/{planned}",
            "wall time (s)": round(float(last.get("time_total_s", 0.0)), 1),
            "run directory": str(runs_root / run_name) if run_name else "",
            "history": points,  # across the trial's restarts (PBT), unlike the last run directory's metrics
        })
    return rows


def write_trial_summaries(rows: list[dict[str, Any]], sweep: SweepConfig, manifest: dict[str, Any]) -> None:
    """summary.json, from its metrics and its row, for each trial's run that Tune ended: Tune ends a trial as soon as
    its scheduler says stop (ASHA at max_t too, so its completed trials as well). Its run then writes no summary, and
    jobs.report would list it as still running or killed; or, when the trial's placement group goes before the trial
    does, taking the run's Ray Train controller with it, the run records that as its failure. A trial whose run
    failed on its own has an error in its row, and keeps the run's summary."""
    base = sweep.base_config()
    task = build_task(base.task, manifest)
    for row in rows:
        folder = Path(row["run directory"]) if row["run directory"] else None
        if folder is None or not _ended_by_tune(folder, row):
            continue
        summary = summarise(runs.read_metrics(folder), task.monitor, base.train.epochs, task.monitor_mode,
                            status=row["status"], error=None, checkpoint=None, wall_time_s=row["wall time (s)"],
                            run_dir=str(folder), metric_modes=getattr(task, "metric_modes", {}))
        runs.write_json(folder / runs.SUMMARY, summary)


def _ended_by_tune(folder: Path, row: dict[str, Any]) -> bool:
    if not (folder / runs.SUMMARY).exists():
        return True
    own = json.loads((folder / runs.SUMMARY).read_text())
    return own["status"] == "failed" and not row["status"].startswith("error")
