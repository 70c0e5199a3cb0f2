"""What each Ray Train worker runs: build the task's model, wrap it, and run the epochs.

Everything arrives through the loop config (nothing through module globals). Rank 0 saves the
checkpoint each epoch; every rank reports, as Ray Train requires.
"""
from __future__ import annotations

import logging
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import torch
from ray.data.collate_fn import NumpyBatchCollateFn

from core import checkpoint
from core.augment import augment_batch
from core.config import AugmentConfig, ExperimentConfig
from core.engine import Evaluation, evaluate, train_epoch
from core.optim import apply_hyperparameters, build_optimizer, build_plateau
from core.tasks import build_task
from jobs._dashboard_metrics import DashboardMetrics


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    config = ExperimentConfig.model_validate(loop_config["config"])
    rank = ray.train.get_context().get_world_rank()
    # Ray Train logs each report of each worker at INFO (through loggers named by file path, so only
    # the root level reaches them); those lines would bury the one line per epoch the run prints.
    logging.getLogger().setLevel(logging.WARNING)
    torch.set_num_threads(loop_config["torch_threads"])
    _seed(config.seed + rank)

    task = build_task(config.task, loop_config["manifest"])
    model = ray.train.torch.prepare_model(task.build_model())
    device = ray.train.torch.get_device()
    optimizer = build_optimizer(config.train.optimizer, model.parameters())
    plateau = build_plateau(config.train.plateau, optimizer, task.monitor_mode)
    first_epoch, restarts = _restore(model, optimizer, plateau, config, loop_config.get("init_checkpoint"))

    dashboard = DashboardMetrics(loop_config["run_name"], rank)
    train_data = ray.train.get_dataset_shard("train")
    val_data = ray.train.get_dataset_shard("val")
    batch_size = config.train.batch_size
    for epoch in range(first_epoch, config.train.epochs):
        augment = config.data.augment
        collate = _Augmenting(augment, config.seed, epoch, loop_config["manifest"]["ignore_index"]) if augment else None
        batches = train_data.iter_torch_batches(
            batch_size=batch_size, local_shuffle_buffer_size=config.data.shuffle_buffer or None,
            local_shuffle_seed=config.seed * 100_003 + epoch * 101 + rank, collate_fn=collate,
        )
        stats = train_epoch(model, optimizer, batches, task, device,
                            on_step=lambda timing: dashboard.on_step(timing, optimizer.param_groups[0]["lr"]))
        result = evaluate(model, val_data.iter_torch_batches(batch_size=batch_size), task, device,
                          num_previews=config.train.log_images if rank == 0 else 0)
        metrics = {
            "epoch": epoch + 1,
            "run": loop_config["run_name"],
            "restarts_from_checkpoint": restarts,
            "lr": optimizer.param_groups[0]["lr"],
            **{f"train/{name}": value for name, value in stats.losses.items()},
            "train/loss": sum(task.loss_weights[name] * value for name, value in stats.losses.items()),
            **{f"loss_weight/{name}": weight for name, weight in task.loss_weights.items()},
            "train/samples_per_s": stats.samples * ray.train.get_context().get_world_size() / stats.seconds,
            "train/data_wait_share": stats.data_wait_seconds / stats.seconds,
            **{f"val/{name}": value for name, value in result.metrics.items()},
            **{f"baseline/{name}": value for name, value in result.baselines.items()},
        }
        if plateau is not None:
            plateau.step(metrics[task.monitor])
        train_state = {"epoch": epoch, "restarts": restarts, "plateau": plateau.state_dict() if plateau else None}
        _report(metrics, rank, model, optimizer, train_state, result)


def _restore(model: torch.nn.Module, optimizer: torch.optim.Optimizer, plateau, config: ExperimentConfig,
             init: dict[str, str] | None) -> tuple[int, int]:
    """(first epoch to run, restarts so far).

    Ray Train restarting this run after a failure hands back its latest checkpoint; otherwise the run
    may start from init_checkpoint: {"path", "hyperparameters": "checkpoint" | "config"}. "config"
    is PBT's exploit: the donor's weights and optimizer moments with this trial's hyperparameters.
    """
    saved = ray.train.get_checkpoint()
    if saved is not None:
        with saved.as_directory() as folder:
            state = checkpoint.load(Path(folder), _unwrap(model), optimizer)
        _load_plateau(plateau, state)
        return state["epoch"] + 1, state["restarts"] + 1
    if init is None:
        return 0, 0
    state = checkpoint.load(Path(init["path"]), _unwrap(model), optimizer)
    if init["hyperparameters"] == "config":
        apply_hyperparameters(config.train.optimizer, optimizer)
    else:
        _load_plateau(plateau, state)
    return state["epoch"] + 1, state["restarts"]


def _load_plateau(plateau, state: dict[str, Any]) -> None:
    if plateau is not None and state.get("plateau"):
        plateau.load_state_dict(state["plateau"])


def _report(metrics: dict[str, float], rank: int, model, optimizer, train_state: dict, result: Evaluation) -> None:
    with tempfile.TemporaryDirectory() as folder:
        saved = None
        if rank == 0:
            checkpoint.save(Path(folder), _unwrap(model), optimizer, train_state, result.previews, result.meshes)
            saved = ray.train.Checkpoint.from_directory(folder)
        ray.train.report(metrics, checkpoint=saved)


class _Augmenting(NumpyBatchCollateFn):
    """Augments in the iterator's prefetch thread, so the step does not wait for it."""

    def __init__(self, config: AugmentConfig, seed: int, epoch: int, ignore_index: int):
        self.config, self.seed, self.epoch, self.ignore_index = config, seed, epoch, ignore_index

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return augment_batch(batch, self.config, self.seed, self.epoch, self.ignore_index)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
