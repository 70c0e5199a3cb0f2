"""Compose a Ray Train TorchTrainer from a validated config, its resource plan and its data."""
from __future__ import annotations

import math
import os
import posixpath
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray.data
from ray.data import ExecutionOptions, ExecutionResources
from ray.train import CheckpointConfig, DataConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from cluster.resources import ResourcePlan
from core.config.schema import ExperimentConfig
from core.config.sections import FailureSettings, TrainConfig
from core.runs.run_dir import TRAIN_STORAGE, read_metrics
from core.engine.stages import largest_batch
from core.tasks.base import Task
from data_pipeline.readers.ray_data import ShareReader, read_split, share_reader
from data_pipeline.storage.datastore import DataStore
from data_pipeline.format.validate import SampleRules
from jobs._train.run_storage import checkpoint_storage, checkpoint_store, run_store
from jobs._train.best_checkpoints import BestCheckpoints
from jobs._train.run_logging import RunDirCallback
from jobs._train.worker import train_loop_per_worker


def build_trainer(config: ExperimentConfig, plan: ResourcePlan, task: Task, store: DataStore,
                  manifest: dict[str, Any], run_dir: Path, extra_callbacks: list = (),
                  init_checkpoint: dict[str, str] | None = None, rules: SampleRules | None = None, resumes: int = 0,
                  live_tensorboard=None) -> TorchTrainer:
    """init_checkpoint: where a new run starts from (see jobs._train.worker._restore); Ray Train's own
    restarts after a failure, and resumes (the resumes-th time, in a run directory that has one),
    take the run's latest checkpoint instead. live_tensorboard: the run's jobs._train.live_tensorboard actor, or None."""
    checkpoints = checkpoint_store(config, run_dir)
    if config.train.checkpoint_every is not None:
        poll_workers_often()
    dataset_config = data_config(plan, config.data.preserve_order)  # first: datasets take the DataContext as it is when they are made
    # With checkpoint_every each worker reads its own share of the epoch's order (jobs._train.worker); Ray Train splits val only.
    exact = config.train.checkpoint_every is not None
    splits = ("val",) if exact else ("train", "val")
    return TorchTrainer(
        train_loop_per_worker=train_loop_per_worker,
        train_loop_config={"config": config.model_dump(mode="json"), "manifest": manifest, "torch_threads": plan.torch_threads, "plan": asdict(plan),
                           "run_name": run_dir.name, "checkpoints": checkpoints.uri, "init_checkpoint": init_checkpoint, "resumes": resumes,
                           "live_tensorboard": live_tensorboard, "clock": time.time() - _trained_for(run_dir),
                           "share_reader": _share_reader(plan, task, store, manifest, rules) if exact else None},
        scaling_config=scaling_config(plan),
        datasets={split: read_split(store, manifest, split, task.columns, plan.data_task_cpus, plan.data_tasks_at_once, rules,
                                    batch_rows=largest_batch(config)) for split in splits},
        dataset_config=dataset_config,
        run_config=RunConfig(
            name=TRAIN_STORAGE,
            storage_path=posixpath.dirname(checkpoints.root),
            storage_filesystem=checkpoints.arrow_fs() if checkpoints.is_s3 else None,
            failure_config=failure_config(config.failure, plan.elastic),
            checkpoint_config=checkpoint_config(config.train, task),
            callbacks=[_run_dir_callback(config, task, run_dir), *extra_callbacks],
            # Ray Train's INFO lines of every epoch ("Checkpoint successfully created at ...") go to its log
            # files under the session's logs/train/, not to the console, where the run's own lines are.
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
    )


def poll_workers_often() -> None:
    """Ray Train's controller registers a reported checkpoint when it next polls the workers, every 2 s by default;
    a driver stopped in between loses that checkpoint and the steps after it (bench.recovery --stop driver: 5 and 7
    steps redone with checkpoints every 4). Read by the controller from the driver's environment, as the start timeout."""
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", f"{POLL_S:g}")


POLL_S = 0.5


def _share_reader(plan: ResourcePlan, task: Task, store: DataStore, manifest: dict[str, Any], rules: SampleRules | None) -> ShareReader:
    """Each worker reads with its part of the CPUs the plan keeps for data, so that the workers' reads together take no more."""
    per_worker = plan.data_cpus / (plan.max_workers or plan.num_workers)
    task_cpus = min(plan.data_task_cpus, per_worker)
    return share_reader(store, manifest, task.columns, task_cpus, per_worker, max(1, int(per_worker / task_cpus + 1e-9)), rules)


def _trained_for(run_dir: Path) -> float:
    """The wall time the run's kept records reached, 0 for a new run: a resumed run's goes on from there,
    without the time it was down."""
    records = read_metrics(run_dir)
    return float(records[-1].get("wall_time_s") or 0) if records else 0.0


def _run_dir_callback(config: ExperimentConfig, task: Task, run_dir: Path) -> RunDirCallback:
    checkpoints = checkpoint_storage(config, run_dir)
    keep = config.train.best_checkpoints
    best = BestCheckpoints(checkpoints, keep, task.monitor, task.monitor_mode) if keep else None
    return RunDirCallback(run_dir, checkpoints, run_store(config, run_dir), best, task.monitor)


def checkpoint_config(train: TrainConfig, task: Task) -> CheckpointConfig:
    """Ray Train keeps the best num_to_keep by one reported figure, and always the latest; ranked by
    epoch, that is the last num_to_keep. Both at once Ray cannot keep: it refuses to restore a run
    whose list names a folder pruned behind its back."""
    if train.checkpoints_kept_by == "epoch" or train.checkpoint_every is not None:  # a mid-epoch record has no metric
        return CheckpointConfig(num_to_keep=train.checkpoints_to_keep, checkpoint_score_attribute="epoch", checkpoint_score_order="max")
    return CheckpointConfig(num_to_keep=train.checkpoints_to_keep, checkpoint_score_attribute=task.monitor,
                            checkpoint_score_order=task.monitor_mode)


def failure_config(settings: FailureSettings, elastic: bool = False) -> FailureConfig:
    """Ray Train retries a worker group it cannot place forever by default, so a run that lost a node
    for good would hang; here it waits failure.resource_wait_s, then fails. The wait is read by Ray
    Train's controller from this environment variable, which it copies from the driver's.

    An elastic run sizes each new group from Ray Data's AutoscalingCoordinator, which looks at the
    nodes every COORDINATOR_TICK_S: just after a node loss it still counts the lost node and asks for
    a group that cannot be placed. Such a start gives up after ELASTIC_START_S and is retried (a
    controller failure), sized afresh, for the coordinator's tick and failure.resource_wait_s in all."""
    attempt = min(settings.resource_wait_s, ELASTIC_START_S) if elastic else settings.resource_wait_s
    os.environ[START_TIMEOUT] = f"{attempt:g}"
    retries = math.ceil((COORDINATOR_TICK_S + settings.resource_wait_s) / attempt) - 1 if elastic else 0
    return FailureConfig(max_failures=settings.max_failures, controller_failure_limit=retries)


START_TIMEOUT = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"  # Ray Train's, per start of a worker group

COORDINATOR_TICK_S = 20.0  # ray.data's _AutoscalingCoordinatorActor.TICK_INTERVAL_S
# The timeout covers only the placement of the group's resources, which takes well under a second when
# they are free: a start waiting longer was sized from the coordinator's stale view. With 30 s, every
# shrink after a node loss waited the whole 30 s; with 10 s it is sized again soon after the next tick.
ELASTIC_START_S = 10.0


def scaling_config(plan: ResourcePlan) -> ScalingConfig:
    workers = (plan.num_workers, plan.max_workers) if plan.elastic else plan.num_workers
    return ScalingConfig(num_workers=workers, use_gpu=plan.use_gpu, resources_per_worker=plan.resources_per_worker(),
                         elastic_resize_monitor_interval_s=plan.resize_check_s)


def data_config(plan: ResourcePlan, preserve_order: bool = False) -> DataConfig:
    quiet_ray_data()
    # Ray Data gets exactly the CPUs the plan reserved for it, so concurrent runs (sweep trials)
    # each keep their share instead of all sizing themselves from the whole cluster.
    limits = ExecutionResources(cpu=plan.data_cpus)
    return DataConfig(execution_options=ExecutionOptions(resource_limits=limits, preserve_order=preserve_order))


def quiet_ray_data() -> None:
    """Per-block progress bars and per-epoch plan printouts would bury the lines the jobs print."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
