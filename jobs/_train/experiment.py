"""One training run from a validated config: data, run directory, Ray Train fit, summary.

Shared by jobs.train (one run) and jobs.tune (one run per trial), so a trial's run directory is
exactly what `python -m jobs.train` would have written.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayError

from cluster.connect import CODE_ROOT, node_resources
from cluster.resources import ResourcePlan, shortfall
from core.engine import checkpoint
from core.profiling import startup
from core.runs import run_dir as runs
from core.runs.fingerprint import DRIVER
from core.config.schema import ExperimentConfig
from jobs._train.resume import CheckpointStorage, ResumePoint, drop_records_after
from core.engine.stages import PREVIOUS, check_patterns, plan_stages
from core.runs.summary import summarise
from core.tasks.catalog import build_task
from core.tasks.base import Task
from data_pipeline.format import class_subset
from data_pipeline.format.shards import DatasetError, read_manifest
from data_pipeline.storage.datastore import DataStore
from data_pipeline.readers.sample_log import SampleLogRef
from data_pipeline.format.validate import SampleRules, check_shards
from data_pipeline.sources.synthetic import ensure_dataset
from jobs._train import signals as _signals
from jobs._train import live_tensorboard
from jobs._train.starts import restarts
from jobs._train.run_storage import RUN_START_FILES, best_checkpoints, checkpoint_storage, copy_run, copy_run_files, latest_or_logged, run_store

_SKIPPED_LISTED = 20  # summary.json lists this many skipped samples by name, and counts them all


def prepare_data(config: ExperimentConfig) -> tuple[DataStore, dict[str, Any], Task]:
    """(data store, manifest, task); generates the synthetic data set when configured to."""
    store = DataStore.at(config.data.uri, config.data.endpoint_url)
    stored = ensure_dataset(store, config.data.synthetic) if config.data.generate_if_missing else read_manifest(store)
    manifest = class_subset.select(stored, config.data)
    task = build_task(config.task, manifest)
    check_stages(config, manifest, task)
    names = [*(column.name for column in task.columns), "sample_id"]
    check_shards(store, manifest, ["train", "val"], names, checksums=config.data.verify_checksums)
    return store, manifest, task


def check_stages(config: ExperimentConfig, manifest: dict[str, Any], task: Task) -> None:
    """What the config alone cannot check: loss names, freeze patterns against the model, start_from folders."""
    if not config.stages:
        return
    model = task.build_model()
    for stage in plan_stages(config):
        build_task(stage.config.task, manifest)
        check_patterns(model, stage.freeze, stage.name)
        if stage.start_from == PREVIOUS:
            continue
        if not (Path(stage.start_from) / checkpoint.STATE_FILE).is_file():
            raise ValueError(f"stage {stage.name}: start_from {stage.start_from} is not a complete checkpoint folder "
                             f"(no {checkpoint.STATE_FILE}); give 'previous' or a checkpoint_* folder of a run")
        checkpoint.load(Path(stage.start_from), model)


def run(config: ExperimentConfig, plan: ResourcePlan, store: DataStore, manifest: dict[str, Any], task: Task,
        callbacks: list = (), init_checkpoint: dict[str, str] | None = None, resume: ResumePoint | None = None,
        startup_marks: dict[str, float] | None = None, environments: dict[str, dict] | None = None) -> tuple[Path, dict[str, Any]]:
    """Train (or go on with a resumed run); return the run directory and its summary. A failed fit is recorded, not raised.

    startup_marks: the driver's core.profiling.startup marks so far; with rank 0's they become summary.json's "startup".
    environments: jobs._train.env_check's fingerprints; env.json records those of the node types as "nodes"."""
    from data_pipeline.readers import ray_data_start  # these imports cost seconds; a bad config should not wait for them
    from jobs._train.trainer import build_trainer

    ray_data_start.start_actors()  # first: their processes start while the run directory is written
    if resume is None:
        nodes = {place: fingerprint for place, fingerprint in (environments or {}).items() if place != DRIVER}
        run_dir = runs.create(config, CODE_ROOT, extra_env={"ray_cluster": ray.cluster_resources(), "plan": asdict(plan), "nodes": nodes})
    else:
        run_dir = resume.run_dir
        dropped = drop_records_after(run_dir, resume.progress.epoch + 1)
        inside = resume.progress.inside
        within = f" and {inside['samples']} samples of epoch {inside['epoch'] + 1}" if inside else ""
        print(f"resuming after epoch {resume.progress.epoch + 1}{within} from {resume.checkpoint}"
              + (f"; {dropped} later record(s) of metrics.jsonl are trained again" if dropped else ""), file=sys.stderr)
    print(f"run directory: {run_dir}", file=sys.stderr, flush=True)
    started = time.time()
    checkpoints = checkpoint_storage(config, run_dir)
    facts = {"status": "completed", "error": None, "checkpoint": None}
    unreachable = None  # the checkpoint storage, where it did not answer at the end
    distill = getattr(config.task, "distill", None)
    if distill is not None:
        facts["teacher"] = distill.teacher
    marks = dict(startup_marks or {})
    samples = SampleLogRef.beside_driver() if config.data.on_bad_sample == "skip" else None
    rules = SampleRules.of(store, manifest, config.data.on_bad_sample, samples)
    live = live_tensorboard.start(run_dir / runs.TENSORBOARD) if config.train.step_scalars_every or config.data.augment else None
    try:
        resumes = resume.progress.resumes + 1 if resume else 0
        copy_run_files(run_dir, run_store(config, run_dir), RUN_START_FILES)
        trainer = build_trainer(config, plan, task, store, manifest, run_dir, list(callbacks), init_checkpoint, rules, resumes,
                                live)
        marks["trainer_built"] = startup.mark()
        result = trainer.fit()
        facts["checkpoint"] = checkpoints.display(result.checkpoint.path) if result.checkpoint else None
    except (KeyboardInterrupt, SystemExit):  # Ray Train's SIGINT handler aborted the workers and raised SystemExit
        latest, unreachable = latest_or_logged(checkpoints, run_dir)
        facts.update(status="interrupted", checkpoint=latest, error=f"stopped by {_signals.stopped_by().name}")
    except Exception as err:  # the run directory must still say what happened
        latest, unreachable = latest_or_logged(checkpoints, run_dir)
        facts.update(status="failed", error=_failure(err, config, plan, unreachable), checkpoint=latest)
    finally:
        if live is not None:
            live_tensorboard.stop(live)
    if unreachable is None:
        facts.update(_storage_facts(checkpoints, config, task))
    else:  # each would wait output.storage_retry_s (120 s by default) again for storage that did not answer just now
        facts.update(restarts=None, restarts_from_scratch=None)
        if config.train.best_checkpoints:
            facts["best_checkpoints"] = f"unknown: {unreachable}"
    skipped = samples.close() if samples else []
    facts["skipped_samples"] = {"count": len(skipped), "samples": skipped[:_SKIPPED_LISTED]}
    records = runs.read_metrics(run_dir)
    resumed_after = resume.progress.epoch + 1 if resume else 0
    worker_marks = next((r["startup"] for r in records if r["epoch"] > resumed_after and "startup" in r), None)
    if worker_marks and startup_marks:  # this session's first epoch, not a restart's
        facts["startup"] = startup.phases({**marks, **worker_marks})
    summary = summarise(
        records, task.monitor, config.train.epochs, task.monitor_mode, **facts, wall_time_s=time.time() - started,
        metric_modes=getattr(task, "metric_modes", {}),
        run_dir=str(run_dir), data={"uri": store.uri, **{s: v["rows"] for s, v in manifest["splits"].items()}},
    )
    if not summary_written_since(run_dir, started):
        runs.write_json(run_dir / runs.SUMMARY, summary)
    if unreachable is None:
        copy_run(config, run_dir)
    elif config.output.storage is not None:
        print(f"the run's files were not copied to {config.output.storage} ({unreachable}); they are complete in {run_dir}",
              file=sys.stderr)
    return run_dir, summary


def _storage_facts(checkpoints: CheckpointStorage, config: ExperimentConfig, task: Task) -> dict[str, Any]:
    """summary.json's counts of restarts, and its list of the best checkpoints, from the run's checkpoint storage."""
    facts: dict[str, Any] = {}
    try:
        facts.update(restarts(checkpoints))
    except Exception:  # the storage did not answer (the error says so already): summary.json is written without the count
        facts.update(restarts=None, restarts_from_scratch=None)
    if config.train.best_checkpoints:
        facts["best_checkpoints"] = best_checkpoints(checkpoints, config.train.best_checkpoints, task)
    return facts


def summary_written_since(run_dir: Path, started: float) -> bool:
    """Whether someone else wrote the run's summary while it ran: only a sweep does, for a trial Tune ended
    (jobs._tune.sweep.write_trial_summaries). Tune can take the trial's placement group, and the run's Ray Train
    controller with it, before the trial's own thread has failed for it; that thread's summary would then
    overwrite the sweep's "completed" with the controller's death. A resumed run's older summary is rewritten."""
    path = run_dir / runs.SUMMARY
    return path.is_file() and path.stat().st_mtime >= started


def _failure(err: Exception, config: ExperimentConfig, plan: ResourcePlan, unreachable: str | None) -> str:
    """The error for summary.json, said in terms of its cause where that is known: checkpoint storage
    that stopped answering, or a cluster that lost nodes the plan needs, or a bad sample."""
    bad_data = _dataset_error(err)
    if bad_data is not None:
        return f"DatasetError: {bad_data}"
    if unreachable is not None:
        last_line = str(err).strip().splitlines()[-1] if str(err).strip() else ""
        return (f"checkpoint storage {unreachable} within output.storage_retry_s={config.output.storage_retry_s:g} s; "
                f"the run stopped on {type(err).__name__}: {last_line}. The checkpoints registered before stay there: "
                f"--resume goes on from the latest once the storage answers")
    missing = shortfall(plan, node_resources())
    if missing is None:
        return f"{type(err).__name__}: {err}"
    return (f"the cluster no longer has the resources this run needs: {missing.rstrip('.')}. Ray Train waited up to "
            f"failure.resource_wait_s={config.failure.resource_wait_s:g} s for them; bring the nodes back and go on with --resume")


def _dataset_error(err: BaseException) -> DatasetError | None:
    """The DatasetError that ended the run (a bad sample, a shard gone), found where Ray wraps it: among
    the worker failures of Ray Train's WorkerGroupError, as the cause of a RayTaskError, or as an
    exception's cause. Its message names the shard, row and sample; Ray's own text of the failure cuts
    long worker tracebacks short."""
    seen, todo = set(), [err]
    while todo:
        found = todo.pop()
        if found is None or id(found) in seen:
            continue
        seen.add(id(found))
        if isinstance(found, DatasetError) and not isinstance(found, RayError):  # RayTaskError(DatasetError) is both
            return found
        todo += [*getattr(found, "worker_failures", {}).values(), getattr(found, "cause", None), found.__cause__, found.__context__]
    return None
