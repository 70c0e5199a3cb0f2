"""What each Ray Train worker runs: the loop of core.engine.trainer, adapted to Ray Train.

Everything arrives through the loop config (nothing through module globals). The worker restores
its checkpoint (Ray Train's latest after a failure or on --resume, or a Tune trial's init
checkpoint), builds the task's model and hands the loop a RayBackend: this worker's dataset shards
in, ray.train.report out, the model wrapped by DDP or DeepSpeed, per-step gauges for the dashboard.
"""
from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, ContextManager, Iterable, Iterator

import numpy as np
import ray.train
import ray.train.torch
import torch

from cluster.connect import node_resources
from cluster.resources import ResourcePlan, shortfall
from core.config.schema import ExperimentConfig
from core.engine import checkpoint
from core.engine.epoch_order import Batching
from core.engine.mid_epoch import resumed_inside
from core.engine.progress import Progress
from core.engine.stages import plan_stages
from core.engine.steps import StepTiming
from core.engine.trainer import Restored, Trainer
from core.profiling import startup
from core.tasks.catalog import build_task
from core.tasks.columns import Column, Kind
from data_pipeline.readers.epoch_collate import EpochCollate
from jobs._train.checkpoint_uploads import CheckpointUploads
from jobs._train.dashboard_metrics import DashboardMetrics
from jobs._train.starts import SCRATCH, record_start
from jobs._train.strategy import wrap


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    entered = startup.mark()
    config = ExperimentConfig.model_validate(loop_config["config"])
    context = ray.train.get_context()
    # Ray Train logs each report of each worker at INFO (through loggers named by file path, so only
    # the root level reaches them); those lines would bury the one line per epoch the run prints.
    logging.getLogger().setLevel(logging.WARNING)
    torch.set_num_threads(loop_config["torch_threads"])
    _check_cluster(replace(ResourcePlan(**loop_config["plan"]), num_workers=context.get_world_size()))
    _seed(config.seed + context.get_world_rank())

    point = _restore_point(loop_config, config)
    progress = point.progress if point else Progress()
    if context.get_world_rank() == 0:
        at = {"epoch": progress.epoch + 1, "epoch_samples": (progress.inside or {}).get("samples", 0), "step": progress.steps}
        record_start(context.get_storage(), loop_config.get("resumes", 0), point.origin if point else SCRATCH,
                     context.get_world_size(), at)
    backend = RayBackend(loop_config, context.get_world_rank(), context.get_world_size())
    stages = plan_stages(config)
    if progress.stage < len(stages):
        epoch = progress.epoch + 1
        start, _ = resumed_inside(progress.inside, epoch)
        backend.early = _EarlyBatches(backend.train_batches(stages[progress.stage].config, epoch, start), epoch, start)
    module = build_task(config.task, loop_config["manifest"]).build_model()
    restored = _restore(module, point, config, loop_config)
    backend.startup = {"worker_entered": entered, "model_built": startup.mark()}
    Trainer(config, loop_config["manifest"], backend, loop_config["run_name"]).run(module, restored)


def _check_cluster(plan: ResourcePlan) -> None:
    """A group restarted after a node was lost (or an elastic one grown) may fit the nodes yet leave Ray Data no
    CPU, and wait for data forever; it fails here instead, naming what is missing."""
    missing = shortfall(plan, node_resources())
    if missing is not None:
        raise RuntimeError(f"the cluster no longer has the resources this run needs: {missing}")


class RayBackend:
    """The loop's Backend on a Ray Train worker: its place in the group, its data shards, its reports and gauges."""

    def __init__(self, loop_config: dict[str, Any], rank: int, world_size: int):
        self.loop_config, self.rank, self.world_size = loop_config, rank, world_size
        self.manifest = loop_config["manifest"]
        # What a batch holds is the task's, the same in every stage (stages change loss weights, not columns).
        self.config = ExperimentConfig.model_validate(loop_config["config"])
        self.task = build_task(self.config.task, self.manifest)
        self.columns = self.task.columns
        self.startup: dict[str, float] = {}  # core.profiling.startup marks of this worker, sent with the run's first record
        self.device = ray.train.torch.get_device()
        self.dashboard = DashboardMetrics(loop_config["run_name"], rank)
        self.early: _EarlyBatches | None = None  # the first epoch's batches, started before the model was built
        self.uploads = CheckpointUploads(self.config.train.checkpoint_upload, loop_config["checkpoints"])

    @cached_property
    def val_data(self):
        """Asked for at the first evaluation: Ray Data's split of val starts a coordinator actor, whose
        process would otherwise start while the workers build their models (bench.startup)."""
        return ray.train.get_dataset_shard("val")

    @cached_property
    def train_data(self):
        """Ray Train's split of the train stream (without train.checkpoint_every, which reads each worker's share itself)."""
        return ray.train.get_dataset_shard("train")

    def wrap(self, module: torch.nn.Module, config: ExperimentConfig):
        return wrap(module, config)

    def train_batches(self, config: ExperimentConfig, epoch: int, start: int = 0) -> Iterable[dict[str, torch.Tensor]]:
        early, self.early = self.early, None
        if early is not None and (early.epoch, early.start) == (epoch, start):
            return early.batches()
        augment = config.data.augment
        collate = EpochCollate.of(self.task, augment, config.seed, epoch, self.manifest["ignore_index"])
        if config.train.checkpoint_every is not None:
            batches = self._share_batches(config, epoch, start, collate)
        else:
            batches = self.train_data.iter_torch_batches(
                batch_size=config.train.batch_size, local_shuffle_buffer_size=config.data.shuffle_buffer or None,
                local_shuffle_seed=config.seed * 100_003 + epoch * 101 + self.rank, collate_fn=collate,
            )
        actor, rgb = self.loop_config.get("live_tensorboard"), _rgb_column(self.columns)
        if augment and self.rank == 0 and actor is not None and rgb is not None:
            return _showing_first(batches, lambda batch: actor.add_images.remote(epoch + 1, "train/augmented_input",
                                                                                  list(batch[rgb][:SHOWN_INPUTS].numpy())))
        return batches

    def _share_batches(self, config: ExperimentConfig, epoch: int, start: int, collate) -> Iterator[dict[str, torch.Tensor]]:
        reader = self.loop_config["share_reader"]
        return reader.epoch_batches(config.seed, epoch, config.data.shuffle_buffer, start, Batching.of(config, self.world_size),
                                    self.rank, collate)

    def val_batches(self, config: ExperimentConfig) -> Iterable[dict[str, torch.Tensor]]:
        return self.val_data.iter_torch_batches(batch_size=config.train.batch_size)

    def on_step(self, timing: StepTiming, learning_rate: float) -> None:
        if self.startup and "first_step" not in self.startup:  # this worker session's first step; emptied once reported
            self.startup["first_step"] = startup.mark()
        self.dashboard.on_step(timing, learning_rate)

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """To the run's LiveTensorBoard actor (jobs._train.live_tensorboard), not waiting for it."""
        actor = self.loop_config.get("live_tensorboard")
        if actor is not None:
            actor.add.remote(step, scalars)

    def checkpoint_folder(self) -> ContextManager[Path]:
        return self.uploads.folder()

    def report(self, record: dict[str, Any], folder: Path | None) -> None:
        # Reported, not added by the driver's callback: Ray Train keeps it with the checkpoint, where a record lost on the way is restored from
        record["wall_time_s"] = round(time.time() - self.loop_config["clock"], 1)
        if self.startup and "inside_epoch" not in record:  # with the epoch's record, which metrics.jsonl keeps
            record["startup"], self.startup = self.startup, {}
        self.uploads.report(record, folder)


SHOWN_INPUTS = 4  # augmented training inputs sent to TensorBoard each epoch


def _rgb_column(columns: list[Column]) -> str | None:
    return next((c.name for c in columns if c.kind is Kind.IMAGE and c.shape == (3,)), None)


def _showing_first(batches: Iterable[dict], show) -> Iterator[dict]:
    """The batches, the first one also handed to show (the epoch's augmented inputs on their way to TensorBoard)."""
    for index, batch in enumerate(batches):
        if index == 0:
            show(batch)
        yield batch


class _EarlyBatches:
    """An epoch's training batches, their first one pulled in a thread from the start.

    Ray Data's execution begins with the first request for a batch: its read tasks start and its
    first blocks decode while this worker imports the model code and builds the model, instead of after.
    """

    def __init__(self, batches: Iterable, epoch: int, start: int = 0):
        self.epoch, self.start, self._batches = epoch, start, iter(batches)
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


def _restore(module: torch.nn.Module, point: _RestorePoint | None, config: ExperimentConfig,
             loop_config: dict[str, Any]) -> Restored | None:
    """The saved weights into module, the random state as it was saved, and what the loop goes on from: the
    optimizer's state dict, or under DeepSpeed the checkpoint folder."""
    if point is None:
        return None
    checkpoint.load_weights(module, point.state["model"], point.folder)
    point.progress.restore_rng()
    optimizer = point.folder if config.scaling.strategy == "deepspeed" else point.state["optimizer"]
    from_config = (loop_config["init_checkpoint"] or {}).get("hyperparameters") == "config"
    return Restored(point.progress, point.state["train_state"], optimizer, from_config)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
