"""python -m jobs.train [CONFIG] [dotted.key=value ...]: train one experiment on Ray Train.

Validates the config, connects to Ray and checks the resource plan, makes sure the data set
exists, writes the run directory, trains, and prints where the results are.
"""
from __future__ import annotations

import argparse
import sys

from cluster import autoscale
from cluster.connect import connect
from cluster.resources import PlanError
from core.config import ConfigError, load_config
from core.summary import headline
from data_pipeline.shards import DatasetError
from jobs._experiment import CODE_ROOT, prepare_data, run

DEFAULT_CONFIG = CODE_ROOT / "configs" / "quickstart.yaml"
USAGE_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        config = load_config(args.config, args.overrides)
        connect(config.ray, CODE_ROOT)
        plan = autoscale.plan_when_it_fits(config.scaling)
        store, manifest, task = prepare_data(config)
    except (ConfigError, PlanError, DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    try:
        run_dir, summary = run(config, plan, store, manifest, task)
    finally:
        if config.scaling.autoscale_timeout_s > 0:
            autoscale.release()
    print("\n".join([f"run directory: {run_dir}", *headline(summary)]))
    return 0 if summary["status"] == "completed" else 1


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.train", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="YAML experiment (default: configs/quickstart.yaml)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value, e.g. train.epochs=3")
    args, unknown = parser.parse_known_args(argv)
    if args.config and "=" in args.config:  # only overrides were given
        args.overrides.insert(0, args.config)
        args.config = str(DEFAULT_CONFIG)
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    return args


if __name__ == "__main__":
    sys.exit(main())
