"""The training loop: a run's stages, each a series of epochs of steps, with its components around them.

    for each stage, from where the run stands:
        wrap the model for the stage (Backend.wrap), restore the optimizer and the components
        for each epoch of the stage (from inside it, where a mid-epoch checkpoint left it):
            train_epoch (the numerics guard and the loss scale act inside each step; with
                         train.checkpoint_every, a checkpoint after the steps it names)
            evaluate
            plateau.step(monitored); early_stopping.update(monitored)
            write the checkpoint: the weights, the optimizer, the train state; report it with the epoch's record

The loop knows no Ray. Where it runs is a Backend: the Ray Train worker (jobs._train.worker) hands
in its dataset shards and reports through ray.train.report; LocalBackend runs it in one process.
Every component saves its state in the checkpoint's train_state under a fixed key (COMPONENTS), beside
the Progress fields; plateau and early stopping start afresh with each stage.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager, Iterable, Protocol

import torch
from torch import nn

from core.config.schema import ExperimentConfig
from core.engine import checkpoint, early_stopping
from core.engine.distributed import largest
from core.engine.early_stopping import EarlyStopping
from core.engine.epoch_order import Batching, EpochShare
from core.engine.epoch_progress import EpochPlan, EpochProgress, steps_per_epoch
from core.engine.epoch_tally import EpochTally
from core.engine.mid_epoch import MidEpochSchedule, resumed_inside, split_key
from core.engine.model_state import full_weights, load_shards, loss_scale, save_shards
from core.engine.numerics import NumericsGuard, loss_scaler
from core.engine.optim import apply_hyperparameters, build_plateau
from core.engine.progress import Progress
from core.engine.stages import PREVIOUS, Stage, freeze, plan_stages
from core.engine.steppers import StepRules, is_deepspeed
from core.engine.steps import EpochStats, Evaluation, StepTiming, evaluate, train_epoch
from core.profiling import memory
from core.tasks.catalog import build_task

PLATEAU, NUMERICS, LOSS_SCALE = "plateau", "numerics", "loss_scale"
COMPONENTS = (early_stopping.KEY, PLATEAU, NUMERICS, LOSS_SCALE)


class Backend(Protocol):
    """Where the loop runs: its device and place in the group, its data, its reports."""

    device: torch.device
    rank: int
    world_size: int

    def wrap(self, module: nn.Module, config: ExperimentConfig) -> tuple[nn.Module, torch.optim.Optimizer]:
        """The model to train (DDP, a DeepSpeed engine, or the module itself) and its optimizer."""

    def train_batches(self, config: ExperimentConfig, epoch: int, start: int) -> Iterable[dict]:
        """The epoch's batches for this rank; start > 0 (train.checkpoint_every only): from that position of the epoch's
        order (core.engine.epoch_order) on."""

    def val_batches(self, config: ExperimentConfig) -> Iterable[dict]: ...

    def on_step(self, timing: StepTiming, learning_rate: float) -> None: ...

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """Step-level figures for TensorBoard (rank 0's, every train.step_scalars_every steps)."""

    def checkpoint_folder(self) -> ContextManager[Path]:
        """A new folder for a checkpoint, to hand to report; gone once the checkpoint is stored (perhaps later)."""

    def report(self, record: dict[str, Any], folder: Path | None) -> None:
        """The epoch's record, with this rank's checkpoint folder (None where the rank writes none); every rank calls it."""


@dataclass
class Restored:
    """What a run goes on from: a checkpoint's train state, and the optimizer's (a state dict, or under
    DeepSpeed the checkpoint folder holding every worker's shard)."""

    progress: Progress
    train_state: dict[str, Any] = field(default_factory=dict)
    optimizer: dict | Path | None = None
    hyperparameters_from_config: bool = False  # PBT's exploit: the donor's state, this trial's values


class Trainer:
    def __init__(self, config: ExperimentConfig, manifest: dict[str, Any], backend: Backend, run_name: str):
        self.config, self.manifest, self.backend, self.run_name = config, manifest, backend, run_name
        self.stages = plan_stages(config)
        self._epoch_started: float | None = None
        self._last_epoch_s: float | None = None  # wall time of the epoch before, evaluation and checkpoint included

    def run(self, module: nn.Module, restored: Restored | None = None) -> Progress:
        """Every stage from where `restored` stands (the start of the run when None); returns where the run ended."""
        progress = restored.progress if restored else Progress()
        saved = restored.train_state if restored else {}
        optimizer_state = restored.optimizer if restored else None
        while progress.stage < len(self.stages):
            stage = self.stages[progress.stage]
            going_on = progress.stage_epochs > 0 or stage.keep_optimizer
            optimizer_state, saved = self._run_stage(stage, module, progress, saved, optimizer_state if going_on else None,
                                                     bool(restored and restored.hyperparameters_from_config))
        return progress

    def _run_stage(self, stage: Stage, module: nn.Module, progress: Progress, saved: dict[str, Any],
                   optimizer_state: dict | Path | None, hyperparameters_from_config: bool) -> tuple[dict | None, dict]:
        """The stage's epochs from where progress stands; returns the optimizer's state at its end (None under DeepSpeed)
        and what of the components' state the next stage goes on with."""
        config, backend = stage.config, self.backend
        if progress.stage_epochs == 0 and stage.start_from != PREVIOUS:
            checkpoint.load(Path(stage.start_from), module)
        freeze(module, stage.freeze)
        task = build_task(config.task, self.manifest)
        model, optimizer = backend.wrap(module, config)
        components = _Components(config, task, optimizer, stage, backend.device, is_deepspeed(model), self.batching(config))
        components.load(saved, resuming=optimizer_state is not None and not hyperparameters_from_config)
        if isinstance(optimizer_state, Path):
            load_shards(model, optimizer_state)
        elif optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        if optimizer_state is not None and hyperparameters_from_config:
            apply_hyperparameters(config.train.optimizer, optimizer)
        ended = None
        while ended is None:
            epoch, first_of_stage = progress.epoch + 1, progress.stage_epochs == 0
            components.guard.epoch = epoch
            stats, result = self._train_and_evaluate(model, optimizer, task, stage, progress, components)
            monitored = result.metrics.get(task.monitor.removeprefix("val/"))
            learning_rate = optimizer.param_groups[0]["lr"]  # the one this epoch trained with
            ended = progress.finish_epoch(stage, components.after_epoch(monitored))
            record = self._record(epoch, stage, progress, task, stats, result, learning_rate, components)
            if config.train.precision == "fp16":
                record.update(overflow_steps=components.guard.overflows, loss_scale=loss_scale(model, components.scaler))
            if self.config.stages:
                record["stage_event"] = _stage_event(first_of_stage, ended)
            progress.save_rng()
            self._save_and_report(record, model, optimizer, {**progress.state(), **components.state(ended)}, result)
        return None if is_deepspeed(model) else optimizer.state_dict(), components.state(ended)

    def _train_and_evaluate(self, model, optimizer, task, stage: Stage, progress: Progress,
                            components: "_Components") -> tuple[EpochStats, Evaluation]:
        config, epoch, backend = stage.config, progress.epoch + 1, self.backend
        start, tally = resumed_inside(progress.inside, epoch)
        progress.inside = None
        lines = self._epoch_progress(stage, epoch, start) if backend.rank == 0 else None
        every = config.train.step_scalars_every
        schedule = self._mid_epoch_schedule(config, start)

        def on_step(timing: StepTiming) -> None:
            learning_rate = optimizer.param_groups[0]["lr"]
            progress.steps += 1
            backend.on_step(timing, learning_rate)
            line = lines.step(timing, learning_rate) if lines is not None else None
            if line is not None:
                print(line, flush=True)
            if backend.rank == 0 and every and progress.steps % every == 0:
                backend.log_scalars(progress.steps, _step_scalars(timing, learning_rate, backend.world_size))
            position = schedule.due(progress.steps, timing.step) if schedule is not None else None
            if position is not None:
                self._save_inside_epoch(model, optimizer, stage, progress, components, position, tally)

        stats = train_epoch(model, optimizer, backend.train_batches(config, epoch, start), task, backend.device,
                            rules=components.rules, guard=components.guard, scaler=components.scaler, on_step=on_step,
                            tally=tally)
        result = evaluate(model, self.backend.val_batches(config), task, self.backend.device,
                          num_previews=config.train.log_images if self.backend.rank == 0 else 0)
        return stats, result

    def _mid_epoch_schedule(self, config: ExperimentConfig, start: int) -> MidEpochSchedule | None:
        every = config.train.checkpoint_every
        if every is None:
            return None
        batching = self.batching(config)
        share = EpochShare.plan(self._train_rows(), start, batching)
        return MidEpochSchedule(every, share, batching.accumulation, self.backend.device)

    def batching(self, config: ExperimentConfig) -> Batching:
        """The stage's batches at this world size (the configured global batch; see core.engine.epoch_order)."""
        return Batching.of(config, self.backend.world_size)

    def _train_rows(self) -> int:
        return self.manifest["splits"]["train"]["rows"]

    def _save_inside_epoch(self, model, optimizer, stage: Stage, progress: Progress, components: "_Components", position: int,
                           tally: EpochTally) -> None:
        """A checkpoint after this step, its record only saying where in the epoch the run stands."""
        rows, epoch = self._train_rows(), progress.epoch + 1
        progress.inside = {"epoch": epoch, "samples": position, "tally": tally.gathered().state_dict(),
                           "data": split_key(self.manifest)}
        progress.save_rng()
        record = {"epoch": epoch + position / rows, "inside_epoch": epoch + 1, "epoch_samples": position, "epoch_rows": rows,
                  "run": self.run_name, "stage": stage.name, "world_size": self.backend.world_size,
                  "restarts_from_checkpoint": progress.restarts, "resumes": progress.resumes}
        self._save_and_report(record, model, optimizer, {**progress.state(), **components.state(None)}, Evaluation({}, {}))
        progress.inside = None

    def _epoch_progress(self, stage: Stage, epoch: int, start: int) -> EpochProgress | None:
        """The epoch's progress lines; None where the manifest does not say how many rows the epoch has."""
        now = time.perf_counter()
        if self._epoch_started is not None:
            self._last_epoch_s = now - self._epoch_started
        self._epoch_started = now
        rows = self.manifest.get("splits", {}).get("train", {}).get("rows")
        if not rows:
            return None
        batching = self.batching(stage.config)
        steps = steps_per_epoch(rows - start, batching.batch_size, self.backend.world_size, batching.accumulation)
        plan = EpochPlan(stage.name, epoch, sum(s.epochs for s in self.stages), steps, self.backend.world_size)
        return EpochProgress(plan, stage.config.train.progress_every_s, self._last_epoch_s)

    def _record(self, epoch: int, stage: Stage, progress: Progress, task, stats: EpochStats, result: Evaluation,
                learning_rate: float, components: "_Components") -> dict[str, Any]:
        on = {name: weight for name, weight in task.loss_weights.items() if weight > 0}
        batching = self.batching(stage.config)
        return {
            "epoch": epoch + 1,
            "run": self.run_name,
            "stage": stage.name,
            "stage_index": stage.index,
            "restarts_from_checkpoint": progress.restarts,
            "resumes": progress.resumes,
            "skipped_steps": components.guard.skipped,
            "lr": learning_rate,
            "batch_size": batching.batch_size,
            "grad_accumulation": batching.accumulation,
            "global_batch": batching.global_batch,
            **{f"train/{name}": value for name, value in stats.losses.items()},
            "train/loss": sum(weight * stats.losses[name] for name, weight in on.items()),
            **{f"loss_weight/{name}": weight for name, weight in task.loss_weights.items()},
            "train/samples_per_s": stats.samples * self.backend.world_size / stats.seconds,
            "train/samples": stats.epoch_samples,
            "train/sample_digest": f"{stats.sample_digest:016x}",
            "world_size": self.backend.world_size,
            "memory/worker_peak_mb": largest(memory.peak_bytes(self.backend.device) / 2**20, self.backend.device),
            "train/data_wait_share": stats.data_wait_seconds / stats.seconds,
            **{f"val/{name}": value for name, value in result.metrics.items()},
            **{f"baseline/{name}": value for name, value in result.baselines.items()},
        }

    def _save_and_report(self, record: dict[str, Any], model: nn.Module, optimizer, train_state: dict[str, Any],
                         result: Evaluation) -> None:
        """Rank 0 writes state.pt; under DeepSpeed every rank also writes (and reports) its own shard."""
        weights = full_weights(model)  # a collective under ZeRO 3
        with self.backend.checkpoint_folder() as folder:
            save_shards(model, folder)
            if self.backend.rank == 0:
                checkpoint.save(folder, weights, None if is_deepspeed(model) else optimizer, train_state,
                                result.previews, result.meshes)
            shared = self.backend.rank == 0 or is_deepspeed(model)
            self.backend.report(record, folder if shared else None)


class _Components:
    """A stage's plateau, early stopping, numerics guard and loss scale, each saved under its key."""

    def __init__(self, config: ExperimentConfig, task, optimizer, stage: Stage, device: torch.device, deepspeed: bool,
                 batching: Batching):
        train = config.train
        self.rules = StepRules(batching.accumulation, train.grad_clip, train.precision)
        self.plateau = build_plateau(train.plateau, optimizer, task.monitor_mode)
        self.stopping = EarlyStopping(stage.early_stopping, task.monitor_mode)
        self.guard = NumericsGuard(train.skip_nonfinite_steps, stage=stage.name)
        self.scaler = loss_scaler(train.precision == "fp16" and not deepspeed, device)

    def load(self, saved: dict[str, Any], resuming: bool) -> None:
        """The guard and the loss scale go on across stages; plateau and early stopping only inside their stage."""
        self.guard.load_state_dict(saved.get(NUMERICS) or {})
        if saved.get(LOSS_SCALE):
            self.scaler.load_state_dict(saved[LOSS_SCALE])
        if resuming and self.plateau is not None and saved.get(PLATEAU):
            self.plateau.load_state_dict(saved[PLATEAU])
        if saved.get(early_stopping.KEY):
            self.stopping.load_state_dict(saved[early_stopping.KEY])

    def after_epoch(self, monitored: float | None) -> bool:
        """The plateau and early stopping take the epoch's monitored value; True: the stage stops early."""
        if self.plateau is not None and monitored is not None:
            self.plateau.step(monitored)
        return self.stopping.update(monitored)

    def state(self, stage_ended: str | None) -> dict[str, Any]:
        """What the checkpoint keeps of them; where the stage ended, the next one starts its plateau and patience afresh."""
        inside = stage_ended is None
        return {early_stopping.KEY: self.stopping.state_dict() if inside else None,
                PLATEAU: self.plateau.state_dict() if inside and self.plateau is not None else None,
                NUMERICS: self.guard.state_dict(), LOSS_SCALE: self.scaler.state_dict() or None}


def _step_scalars(timing: StepTiming, learning_rate: float, world_size: int) -> dict[str, float]:
    return {"step/loss": timing.loss, "step/lr": learning_rate,
            "step/samples_per_s": timing.samples * world_size / timing.seconds,
            "step/data_wait_share": timing.data_wait_seconds / timing.seconds}


def _stage_event(first: bool, ended: str | None) -> str | None:
    events = (["started"] if first else []) + ([f"ended ({ended})"] if ended else [])
    return ", ".join(events) or None
