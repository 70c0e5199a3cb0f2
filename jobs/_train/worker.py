"""What each Ray Train worker runs: build the task's model, then run its stages, wrapping the model anew for each.

Everything arrives through the loop config (nothing through module globals). Rank 0 saves the
checkpoint each epoch, with the run's Progress; every rank reports, as Ray Train requires.
"""
from __future__ import annotations

import itertools
import logging
import random
import tempfile
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import ray.train
import ray.train.torch
import torch
from botocore.exceptions import BotoCoreError
from ray.data.collate_fn import NumpyBatchCollateFn

from cluster.connect import node_resources
from cluster.resources import ResourcePlan, shortfall
from core.engine import checkpoint
from core.profiling import memory, startup
from core.augmentation.augment import augment_batch
from core.config.sections import AugmentConfig
from core.config.schema import ExperimentConfig
from core.engine.distributed import largest
from core.engine.steps import EpochStats, Evaluation, evaluate, train_epoch
from core.engine.numerics import NumericsGuard, loss_scaler
from core.engine.steppers import StepRules
from core.engine.optim import apply_hyperparameters, build_plateau
from core.engine.progress import Progress
from core.engine.stages import PREVIOUS, Stage, freeze, plan_stages
from core.engine.steppers import is_deepspeed
from core.tasks.catalog import build_task
from core.tasks.columns import Column
from jobs._train.dashboard_metrics import DashboardMetrics
from jobs._train.starts import SCRATCH, record_start
from jobs._train.strategy import full_weights, load_shards, loss_scale, save_shards, wrap


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    entered = startup.mark()
    config = ExperimentConfig.model_validate(loop_config["config"])
    context = ray.train.get_context()
    # Ray Train logs each report of each worker at INFO (through loggers named by file path, so only
    # the root level reaches them); those lines would bury the one line per epoch the run prints.
    logging.getLogger().setLevel(logging.WARNING)
    torch.set_num_threads(loop_config["torch_threads"])
    _check_cluster(ResourcePlan(**loop_config["plan"]))
    _seed(config.seed + context.get_world_rank())

    stages = plan_stages(config)
    point = _restore_point(loop_config, config)
    if context.get_world_rank() == 0:
        record_start(context.get_storage(), loop_config.get("resumes", 0), point.origin if point else SCRATCH)
    progress = point.progress if point else Progress()
    run = _Run(loop_config, context.get_world_rank(), context.get_world_size())
    if progress.stage < len(stages):
        run.early = _EarlyBatches(_train_batches(stages[progress.stage].config, progress.epoch + 1, run), progress.epoch + 1)
    module = build_task(config.task, loop_config["manifest"]).build_model()
    saved_optimizer = _restore(module, point, config)
    run.startup = {"worker_entered": entered, "model_built": startup.mark()}
    while progress.stage < len(stages):
        stage = stages[progress.stage]
        going_on = progress.stage_epochs > 0 or stage.keep_optimizer
        saved_optimizer = _run_stage(stage, module, progress, saved_optimizer if going_on else None, run)


def _check_cluster(plan: ResourcePlan) -> None:
    """A group restarted after a node was lost may fit the nodes left yet leave Ray Data no CPU, and
    wait for data forever; it fails here instead, naming what is missing."""
    missing = shortfall(plan, node_resources())
    if missing is not None:
        raise RuntimeError(f"the cluster no longer has the resources this run needs: {missing}")


class _Run:
    """What every stage of this worker shares: its place in the group, its data and its dashboard gauges."""

    def __init__(self, loop_config: dict[str, Any], rank: int, world_size: int):
        self.loop_config, self.rank, self.world_size = loop_config, rank, world_size
        self.manifest = loop_config["manifest"]
        self.staged = bool(loop_config["config"]["stages"])
        self.startup: dict[str, float] = {}  # core.profiling.startup marks of this worker, sent with the run's first record
        self.device = ray.train.torch.get_device()
        self.dashboard = DashboardMetrics(loop_config["run_name"], rank)
        self.train_data = ray.train.get_dataset_shard("train")
        self.early: _EarlyBatches | None = None  # the first epoch's batches, started before the model was built

    @cached_property
    def val_data(self):
        """Asked for at the first evaluation: Ray Data's split of val starts a coordinator actor, whose
        process would otherwise start while the workers build their models (bench.startup)."""
        return ray.train.get_dataset_shard("val")


class _EarlyBatches:
    """An epoch's training batches, their first one pulled in a thread from the start.

    Ray Data's execution begins with the first request for a batch: its read tasks start and its
    first blocks decode while this worker imports the model code and builds the model, instead of after.
    """

    def __init__(self, batches: Iterable, epoch: int):
        self.epoch, self._batches = epoch, iter(batches)
        self._first: list = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._pull, name="first-batch", daemon=True)
        self._thread.start()

    def _pull(self) -> None:
        try:
            self._first.append(next(self._batches))
        except StopIteration:
            pass
        except BaseException as err:  # raised where the batches are taken, as iterating would have
            self._error = err

    def batches(self) -> Iterator:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return itertools.chain(self._first, self._batches)


def _run_stage(stage: Stage, module: torch.nn.Module, progress: Progress, saved_optimizer: dict | None, run: _Run) -> dict:
    """The stage's epochs from where progress stands; returns the optimizer's state at its end.

    saved_optimizer: the state to go on with (resuming inside the stage, or keep_optimizer)."""
    config = stage.config
    if progress.stage_epochs == 0 and stage.start_from != PREVIOUS:
        checkpoint.load(Path(stage.start_from), module)
    freeze(module, stage.freeze)
    task = build_task(config.task, run.manifest)
    model, optimizer = wrap(module, config)
    plateau = build_plateau(config.train.plateau, optimizer, task.monitor_mode)
    if isinstance(saved_optimizer, Path):
        load_shards(model, saved_optimizer)
    elif saved_optimizer is not None:
        optimizer.load_state_dict(saved_optimizer)
    if saved_optimizer is not None:
        if (run.loop_config["init_checkpoint"] or {}).get("hyperparameters") == "config":
            apply_hyperparameters(config.train.optimizer, optimizer)  # PBT's exploit: the donor's state, this trial's values
        elif plateau is not None and progress.plateau:
            plateau.load_state_dict(progress.plateau)
    rules = StepRules(config.train.grad_accumulation, config.train.grad_clip, config.train.precision)
    guard = NumericsGuard(config.train.skip_nonfinite_steps, progress.skipped_steps, stage.name,
                          overflows=progress.overflow_steps)
    scaler = loss_scaler(config.train.precision == "fp16" and not is_deepspeed(model), run.device, progress.loss_scale)
    ended = None
    while ended is None:
        epoch, first_of_stage = progress.epoch + 1, progress.stage_epochs == 0
        guard.epoch = epoch
        stats, result = _train_and_evaluate(model, optimizer, task, config, epoch, rules, guard, scaler, run)
        progress.skipped_steps, progress.overflow_steps = guard.skipped, guard.overflows
        progress.loss_scale = scaler.state_dict() or None
        monitored = result.metrics.get(task.monitor.removeprefix("val/"))
        learning_rate = optimizer.param_groups[0]["lr"]  # the one this epoch trained with
        if plateau is not None and monitored is not None:
            plateau.step(monitored)
        ended = progress.finish_epoch(stage, monitored, task.monitor_mode)
        if ended is None and plateau is not None:
            progress.plateau = plateau.state_dict()
        record = _record(epoch, stage, progress, task, stats, result, learning_rate, run)
        if config.train.precision == "fp16":
            record.update(overflow_steps=progress.overflow_steps, loss_scale=loss_scale(model, scaler))
        if run.staged:
            record["stage_event"] = _stage_event(first_of_stage, ended)
        if run.startup:
            record["startup"], run.startup = run.startup, {}
        progress.save_rng()
        _report(record, run, model, optimizer, progress, result)
    return None if is_deepspeed(model) else optimizer.state_dict()


def _train_and_evaluate(model, optimizer, task, config: ExperimentConfig, epoch: int, rules: StepRules, guard: NumericsGuard,
                        scaler: torch.amp.GradScaler, run: _Run) -> tuple[EpochStats, Evaluation]:
    early, run.early = run.early, None
    batches = early.batches() if early is not None and early.epoch == epoch else _train_batches(config, epoch, run)

    def on_step(timing):
        if run.startup and "first_step" not in run.startup:  # this worker session's first step; emptied once reported
            run.startup["first_step"] = startup.mark()
        run.dashboard.on_step(timing, optimizer.param_groups[0]["lr"])

    stats = train_epoch(model, optimizer, batches, task, run.device, rules=rules, guard=guard, scaler=scaler, on_step=on_step)
    result = evaluate(model, run.val_data.iter_torch_batches(batch_size=config.train.batch_size), task, run.device,
                      num_previews=config.train.log_images if run.rank == 0 else 0)
    return stats, result


def _train_batches(config: ExperimentConfig, epoch: int, run: _Run) -> Iterable[dict[str, torch.Tensor]]:
    augment = config.data.augment
    columns = build_task(config.task, run.manifest).columns
    collate = _Augmenting(augment, columns, config.seed, epoch, run.manifest["ignore_index"]) if augment else None
    return run.train_data.iter_torch_batches(
        batch_size=config.train.batch_size, local_shuffle_buffer_size=config.data.shuffle_buffer or None,
        local_shuffle_seed=config.seed * 100_003 + epoch * 101 + run.rank, collate_fn=collate,
    )


def _record(epoch: int, stage: Stage, progress: Progress, task, stats: EpochStats, result: Evaluation, learning_rate: float,
            run: _Run) -> dict[str, Any]:
    return {
        "epoch": epoch + 1,
        "run": run.loop_config["run_name"],
        "stage": stage.name,
        "stage_index": stage.index,
        "restarts_from_checkpoint": progress.restarts,
        "resumes": progress.resumes,
        "skipped_steps": progress.skipped_steps,
        "lr": learning_rate,
        "batch_size": stage.config.train.batch_size,
        **{f"train/{name}": value for name, value in stats.losses.items()},
        "train/loss": sum(task.loss_weights[name] * value for name, value in stats.losses.items() if task.loss_weights[name] > 0),
        **{f"loss_weight/{name}": weight for name, weight in task.loss_weights.items()},
        "train/samples_per_s": stats.samples * run.world_size / stats.seconds,
        "memory/worker_peak_mb": largest(memory.peak_bytes(run.device) / 2**20, run.device),
        "train/data_wait_share": stats.data_wait_seconds / stats.seconds,
        **{f"val/{name}": value for name, value in result.metrics.items()},
        **{f"baseline/{name}": value for name, value in result.baselines.items()},
    }


def _stage_event(first: bool, ended: str | None) -> str | None:
    events = (["started"] if first else []) + ([f"ended ({ended})"] if ended else [])
    return ", ".join(events) or None


@dataclass
class _RestorePoint:
    state: dict[str, Any]  # checkpoint.read's
    folder: Path
    progress: Progress
    origin: str  # what the worker group started from, for jobs._train.starts


def _restore_point(loop_config: dict[str, Any], config: ExperimentConfig) -> _RestorePoint | None:
    """The checkpoint this worker goes on from, read; None for a run that starts afresh.

    Ray Train hands back the run's latest checkpoint after a failure and when `jobs.train --resume`
    starts the run again (loop_config["resumes"] tells them apart). A new run may instead start
    from init_checkpoint (a Tune trial's own or, for PBT, a donor's).
    """
    saved, init = ray.train.get_checkpoint(), loop_config.get("init_checkpoint")
    if saved is None and init is None:
        return None
    deepspeed = config.scaling.strategy == "deepspeed"
    # DeepSpeed reads its shards once its engine exists, so under it the folder must outlive this function.
    with nullcontext(init["path"]) if saved is None else nullcontext(saved.to_directory()) if deepspeed \
            else saved.as_directory() as local:
        folder = Path(local)
        state = checkpoint.read(folder)
    progress = Progress.from_state(state["train_state"])
    if saved is not None and loop_config.get("resumes", 0) > progress.resumes:
        progress.resumes = loop_config["resumes"]
    elif saved is not None:
        progress.restarts += 1
    origin = "init_checkpoint" if saved is None else f"checkpoint epoch {progress.epoch + 1}"
    return _RestorePoint(state, folder, progress, origin)


def _restore(module: torch.nn.Module, point: _RestorePoint | None, config: ExperimentConfig) -> dict | Path | None:
    """The saved weights into module, the random state as it was saved; returns the optimizer state to
    go on with: a state dict, or under DeepSpeed the checkpoint folder."""
    if point is None:
        return None
    checkpoint.load_weights(module, point.state["model"], point.folder)
    point.progress.restore_rng()
    return point.folder if config.scaling.strategy == "deepspeed" else point.state["optimizer"]


def _report(metrics: dict[str, Any], run: _Run, model, optimizer, progress: Progress, result: Evaluation) -> None:
    """Rank 0 writes state.pt; under DeepSpeed every rank also writes (and reports) its own shard."""
    weights = full_weights(model)
    with tempfile.TemporaryDirectory() as folder:
        save_shards(model, Path(folder))
        if run.rank == 0:
            checkpoint.save(Path(folder), weights, None if is_deepspeed(model) else optimizer, progress.state(),
                            result.previews, result.meshes)
        shared = run.rank == 0 or is_deepspeed(model)
        try:
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder) if shared else None)
        except (OSError, BotoCoreError) as err:  # the upload, after the storage's own retries
            raise OSError(f"the checkpoint of epoch {metrics['epoch']} could not be written to {run.loop_config['checkpoints']}: "
                          f"{type(err).__name__}: {err}. Ray Train registered the checkpoints before it; --resume goes on from the latest") from err


class _Augmenting(NumpyBatchCollateFn):
    """Augments in the iterator's prefetch thread, so the step does not wait for it."""

    def __init__(self, config: AugmentConfig, columns: list[Column], seed: int, epoch: int, ignore_index: int):
        self.config, self.columns, self.seed, self.epoch, self.ignore_index = config, columns, seed, epoch, ignore_index

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return augment_batch(batch, self.columns, self.config, self.seed, self.epoch, self.ignore_index)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
