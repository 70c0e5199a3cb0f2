"""python -m jobs.tune SWEEP.yaml [dotted.key=value ...] | python -m jobs.tune --resume SWEEP_DIR

Runs a Ray Tune sweep in which every trial is a full Ray Train run, after checking that the
concurrent trials fit the cluster together; writes results.csv, results.md, best_config.yaml and
metric_by_epoch.png into the sweep directory and prints where they are.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import yaml

from cluster.connect import CODE_ROOT, connect, node_resources
from cluster.resources import PlanError, make_plan
from core.config.errors import ConfigError
from core.config.loading import format_override, load_config
from core.config.sweep import SweepConfig, load_sweep
from core.reporting.sweep_results import write_results
from data_pipeline.format.shards import DatasetError
from jobs._train import signals as _signals
from jobs._train.experiment import prepare_data
from jobs._cli import USAGE_ERROR

SWEEP_FILE = "sweep.yaml"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        sweep, sweep_dir = _load(args)
        base = sweep.base_config()
        # Ray Train frees the workers of a trial the scheduler stopped through the state API, which
        # the dashboard serves: without it, ASHA's stopped trials keep their CPUs and the sweep hangs.
        connect(base.ray.model_copy(update={"include_dashboard": True}), CODE_ROOT)
        _signals.forward_sigterm()  # Tune stops a sweep cleanly on SIGINT; ray.init's SIGTERM handler just exits
        _check_trials_fit(sweep)
        store, manifest, _ = prepare_data(base)
    except (ConfigError, PlanError, DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR

    from jobs._tune import sweep as _sweep  # Ray Tune's import costs seconds; a bad sweep file should not wait for it

    if args.resume:
        tuner = _sweep.restore_tuner(sweep, sweep_dir, store, manifest)
    else:
        sweep_dir.mkdir(parents=True)
        (sweep_dir / SWEEP_FILE).write_text(yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False))
        tuner = _sweep.build_tuner(sweep, sweep_dir, store, manifest)
    print(f"sweep directory: {sweep_dir}", file=sys.stderr, flush=True)
    rows = _sweep.result_rows(tuner.fit(), sweep, sweep_dir / "runs")
    _sweep.write_trial_summaries(rows, sweep, manifest)
    best_config = write_results(sweep_dir, rows, sweep.metric, sweep.mode)
    print(f"sweep directory: {sweep_dir}\nresults: {sweep_dir / 'results.md'}")
    print(f"best config: {best_config}" if best_config else "no trial reported the metric")
    unfinished = [row["trial"] for row in rows if row["status"] == "unfinished"]
    if unfinished:
        print(f"interrupted: {', '.join(unfinished)} unfinished; continue with python -m jobs.tune --resume {sweep_dir}")
        return _signals.exit_code(_signals.stopped_by())
    return 0 if best_config else 1


def _load(args: argparse.Namespace) -> tuple[SweepConfig, Path]:
    if args.resume:
        sweep_dir = Path(args.target).resolve()
        if not (sweep_dir / SWEEP_FILE).is_file():
            raise ConfigError(f"{sweep_dir} is not a sweep directory (no {SWEEP_FILE})")
        return SweepConfig.model_validate(yaml.safe_load((sweep_dir / SWEEP_FILE).read_text())), sweep_dir
    sweep = load_sweep(args.target, args.overrides)
    sweep = sweep.model_copy(update={"base": str(Path(sweep.base).resolve())})  # trials run in other folders
    sweep_dir = Path(sweep.output_root).resolve() / f"{datetime.now():%Y%m%d-%H%M%S}_{sweep.name}"
    return sweep, sweep_dir


def _check_trials_fit(sweep: SweepConfig) -> None:
    """Every scaling value the space can produce, max_concurrent trials at once, must fit the cluster."""
    variants = [[]] + [[format_override(key, value)] for key, domain in sweep.space.items()
                       if key.startswith("scaling.") for value in domain.extremes()]
    for extra in variants:
        scaling = load_config(sweep.base, [*sweep.overrides, *extra]).scaling
        make_plan(scaling, node_resources(), runs=sweep.max_concurrent, driver_cpus=sweep.trial_driver_cpus)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.tune", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="SWEEP.yaml, or with --resume a sweep directory")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value applied to the base config of every trial")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted sweep (Tuner.restore)")
    args = parser.parse_args(argv)
    if args.resume and args.overrides:
        parser.error("--resume takes the sweep directory only: the sweep keeps its own settings")
    return args


if __name__ == "__main__":
    sys.exit(main())
