"""python -m jobs.train [CONFIG] [dotted.key=value ...] | --resume RUN_DIR|S3_FOLDER: train one experiment on Ray Train.

Validates the config, connects to Ray and checks the resource plan, makes sure the data set
exists, writes the run directory, trains, and prints where the results are. --resume goes on with
a run from its latest checkpoint, in its stage and epoch, writing into the same run directory.
A run stored with output.storage can be resumed from its S3 folder on a machine that never held it
(--endpoint-url for MinIO): its run files are copied into output.root first.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cluster import autoscale
from cluster.connect import CODE_ROOT, connect, node_resources
from cluster.resources import PlanError, growth
from core.profiling import startup
from core.config.errors import ConfigError
from core.config.loading import load_config
from data_pipeline.storage.datastore import S3
from jobs._train import signals as _signals
from jobs._cli import DEFAULT_CONFIG, USAGE_ERROR

if TYPE_CHECKING:
    from jobs._train.resume import ResumePoint

# The run's code, and what it imports (torch, pyarrow, the engine: about 1.5 s of one core), is
# imported in a thread while Ray starts, which leaves the CPU idle for seconds (bench.startup_cpu).
# None of it imports a module of Ray's that ray.init imports meanwhile.
RUN_CODE = ("jobs._train.experiment",)


def main(argv: list[str] | None = None, started_at: float | None = None) -> int:
    """started_at: where the startup phases count from; this call, unless the process was started for the run."""
    called = startup.mark()
    marks = {"process_start": started_at or called, "imports_done": called}
    args = _parse(argv)
    run_code = startup.import_in_background(RUN_CODE)
    try:
        resume = None
        if args.resume:
            run_code.join()  # the resume point is read with torch
            resume = _resume_point(args)
        config = _resumed_config(resume, args.overrides) if resume else load_config(args.config, args.overrides)
        if resume and _finished(resume):
            print(f"{resume.run_dir} already finished all its epochs; nothing to resume")
            return 0
        connect(config.ray, CODE_ROOT)
        _signals.forward_sigterm()  # after ray.init, which installs a SIGTERM handler of its own
        run_code.join()
        marks["ray_connected"] = startup.mark()
        from jobs._train.env_check import check, environments
        from jobs._train.experiment import prepare_data, run

        plan = autoscale.plan_when_it_fits(config.scaling)
        if plan.elastic:
            print(growth(plan, node_resources()), file=sys.stderr, flush=True)
        envs = environments()
        if not check(config, envs, resume.run_dir if resume else None, args.env_lock, args.strict_env):
            return USAGE_ERROR
        store, manifest, task = prepare_data(config)
        marks["data_prepared"] = startup.mark()
    except (ConfigError, PlanError, ValueError) as err:  # a DatasetError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    try:
        run_dir, summary = run(config, plan, store, manifest, task, resume=resume, startup_marks=marks, environments=envs)
    finally:
        if config.scaling.autoscale_timeout_s > 0:
            autoscale.release()
    from core.runs.summary import headline

    print("\n".join([f"run directory: {run_dir}", *headline(summary)]))
    if summary["status"] == "interrupted":
        return _signals.exit_code(_signals.stopped_by())
    return 0 if summary["status"] == "completed" else 1


def _resume_point(args: argparse.Namespace) -> ResumePoint:
    from jobs._train.resume import find_resume_point
    from jobs._train.run_storage import checkpoint_storage, fetch_run

    run_dir = str(fetch_run(args.resume, args.endpoint_url)) if args.resume.startswith(S3) else args.resume
    return find_resume_point(run_dir, checkpoint_storage)


def _resumed_config(resume: ResumePoint, overrides: list[str]):
    """The run's config with the scaling overrides given; a run stopped inside an epoch must find the train split it
    was drawing that epoch from."""
    config = load_config(resume.run_dir / "config.yaml", overrides) if overrides else resume.config
    if resume.progress.inside is not None:
        from core.engine.mid_epoch import check_same_split
        from data_pipeline.format.shards import read_manifest
        from data_pipeline.storage.datastore import DataStore

        manifest = read_manifest(DataStore.at(config.data.uri, config.data.endpoint_url))
        check_same_split(resume.progress.inside, manifest, f"--resume {resume.run_dir}: its checkpoint {resume.checkpoint}")
    return config


def _finished(resume: ResumePoint) -> bool:
    from core.engine.stages import plan_stages

    return resume.progress.stage >= len(plan_stages(resume.config))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.train", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="YAML experiment (default: configs/quickstart.yaml)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value, e.g. train.epochs=3")
    parser.add_argument("--resume", metavar="RUN_DIR", help="go on with this run from its latest checkpoint, as it was configured; "
                        "a run stored with output.storage also from its S3 folder, s3://BUCKET/PREFIX/RUN_NAME")
    parser.add_argument("--endpoint-url", help="with --resume s3://...: an S3-compatible endpoint (MinIO, ...)")
    parser.add_argument("--env-lock", type=Path, metavar="FILE", help="a known-good environment (python -m jobs.report --lock "
                        "RUN_DIR) to compare this launch's with, beside the last completed run of the same name")
    parser.add_argument("--strict-env", action="store_true", help="refuse to launch (exit 2) where the environment differs")
    args, unknown = parser.parse_known_args(argv)
    if args.config and "=" in args.config:  # only overrides were given
        args.overrides.insert(0, args.config)
        args.config = str(DEFAULT_CONFIG)
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    if args.resume and (args.config != str(DEFAULT_CONFIG) or any(not o.startswith("scaling.") for o in args.overrides)):
        parser.error("--resume goes on with a run as it was configured: give no config file with it, and overrides only of "
                     "scaling.* (the workers it goes on with, e.g. scaling.num_workers=1)")
    if args.env_lock and not args.env_lock.is_file():
        parser.error(f"--env-lock {args.env_lock} does not exist; write one with python -m jobs.report --lock RUN_DIR")
    if args.endpoint_url and not (args.resume or "").startswith(S3):
        parser.error("--endpoint-url goes with --resume s3://...; a new run takes output.endpoint_url from its config")
    return args


if __name__ == "__main__":
    import jobs

    sys.exit(main(started_at=startup.process_start(jobs.IMPORTED_AT)))
