"""python -m jobs.train [CONFIG] [dotted.key=value ...]: train one experiment on Ray Train.

Validates the config, connects to Ray and checks the resource plan, makes sure the data set
exists, writes the run directory, trains, and prints where the results are.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import ray

from cluster import autoscale
from cluster.connect import connect
from cluster.resources import PlanError
from core import run_dir as runs
from core.config import ConfigError, load_config
from core.summary import headline, summarise
from core.tasks import build_task
from data_pipeline.shards import DatasetError, read_manifest
from data_pipeline.synthetic import ensure_dataset

CODE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = CODE_ROOT / "configs" / "quickstart.yaml"
USAGE_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        config = load_config(args.config, args.overrides)
        connect(config.ray, CODE_ROOT)
        plan = autoscale.plan_when_it_fits(config.scaling)
        data_root = Path(config.data.uri).resolve()  # workers may run in another folder, or on another machine
        manifest = ensure_dataset(data_root, config.data.synthetic) if config.data.generate_if_missing else read_manifest(data_root)
        task = build_task(config.task, manifest)
    except (ConfigError, PlanError, DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR

    from jobs._trainer import build_trainer  # Ray Train's import costs seconds; a bad config should not wait for it

    run_dir = runs.create(config, CODE_ROOT, extra_env={"ray_cluster": ray.cluster_resources(), "plan": asdict(plan)})
    print(f"run directory: {run_dir}", file=sys.stderr, flush=True)
    started = time.time()
    facts = {"status": "completed", "error": None, "checkpoint": None}
    try:
        result = build_trainer(config, plan, task, data_root, manifest, run_dir).fit()
        facts["checkpoint"] = result.checkpoint.path if result.checkpoint else None
    except Exception as err:  # the run directory must still say what happened
        facts.update(status="failed", error=f"{type(err).__name__}: {err}")
    finally:
        if config.scaling.autoscale_timeout_s > 0:
            autoscale.release()
    summary = summarise(
        runs.read_metrics(run_dir), task.monitor, config.train.epochs, **facts, wall_time_s=time.time() - started,
        run_dir=str(run_dir), data={"uri": str(data_root), **{s: v["rows"] for s, v in manifest["splits"].items()}},
    )
    runs.write_json(run_dir / runs.SUMMARY, summary)
    print("\n".join([f"run directory: {run_dir}", *headline(summary)]))
    return 0 if facts["status"] == "completed" else 1


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
