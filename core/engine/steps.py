"""The step loop: one training epoch and one evaluation pass, for any task, with or without workers.

The loop sums the task's named losses, steps the optimizer, and times how long each step waited
for its batch. Distribution enters only through core.engine.distributed (a no-op in one process) and
through whatever wrapper the caller put around the model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from core.augmentation.sample_key import SAMPLE_KEY
from core.engine.epoch_tally import EpochTally
from core.engine.numerics import AUTOCAST_DTYPES, NumericsGuard, loss_scaler
from core.engine.stages import hold_frozen_norms
from core.engine.steppers import StepRules, is_deepspeed, stepper_for
from core.tasks.base import Task, batch_length, weighted_sum


@dataclass
class EpochStats:
    losses: dict[str, float]
    steps: int
    samples: int
    seconds: float
    data_wait_seconds: float
    epoch_samples: int = 0  # over all workers and every session of the epoch (core.engine.epoch_tally)
    sample_digest: int = 0


@dataclass(frozen=True)
class StepTiming:
    """What one optimizer step cost; handed to the on_step hook of train_epoch."""

    step: int
    samples: int
    seconds: float  # from asking for the batch to the end of the optimizer step
    data_wait_seconds: float
    loss: float


@dataclass
class Evaluation:
    metrics: dict[str, float]
    baselines: dict[str, float]
    previews: list[np.ndarray] = field(default_factory=list)
    meshes: list[dict[str, np.ndarray]] = field(default_factory=list)  # {"verts", "faces", "colors"}, from 3D tasks


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[dict], task: Task,
                device: torch.device, on_step: Callable[[StepTiming], None] | None = None, rules: StepRules = StepRules(),
                guard: NumericsGuard | None = None, scaler: torch.amp.GradScaler | None = None,
                tally: EpochTally | None = None) -> EpochStats:
    """scaler: fp16's loss scale, carried from epoch to epoch by the caller; a new one when not given. tally: what the
    epoch trained before (a mid-epoch checkpoint's), added to as it goes."""
    model.train()
    hold_frozen_norms(model)
    guard = guard or NumericsGuard(0)
    scaler = scaler or loss_scaler(rules.precision == "fp16" and not is_deepspeed(model), device)
    stepper = stepper_for(model, optimizer, rules, guard, scaler)
    autocast_dtype = AUTOCAST_DTYPES.get(rules.precision)
    tally = tally if tally is not None else EpochTally()
    steps = samples = micro = 0
    start = time.perf_counter()
    timer = _WaitTimer(batches)
    step_start, waited_before, samples_before = start, 0.0, 0
    for batch, is_last in _flag_last(timer):
        inputs, targets = task.split_batch(batch, device)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            losses = task.losses(model(inputs), targets)
            loss = weighted_sum(losses, task.loss_weights)
        micro += 1
        ends_group = micro % rules.grad_accumulation == 0 or is_last
        stepper.backward(loss, {n: v for n, v in losses.items() if task.loss_weights[n] > 0}, steps + 1, ends_group)
        tally.add(losses, batch_length(inputs), batch.get(SAMPLE_KEY))
        samples += batch_length(inputs)
        if not ends_group:
            continue
        steps += 1
        if on_step is not None:
            if device.type == "cuda":  # kernels run asynchronously: the step ends when the device is done
                torch.cuda.synchronize(device)
            now = time.perf_counter()
            on_step(StepTiming(steps, samples - samples_before, now - step_start, timer.waited - waited_before, loss.item()))
            step_start, waited_before, samples_before = now, timer.waited, samples
    if steps == 0:
        raise RuntimeError("this worker received no training batch: the train split has fewer rows than workers")
    optimizer.zero_grad(set_to_none=True)  # evaluation and checkpoints need no gradients: their memory is free again
    whole = tally.gathered()
    return EpochStats(whole.mean_losses(), steps, samples, time.perf_counter() - start, timer.waited, whole.samples, whole.digest)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[dict], task: Task, device: torch.device, num_previews: int = 0,
             on_batch: Callable[[dict, Any], None] | None = None, score: bool = True) -> Evaluation:
    """on_batch(batch, outputs): sees every batch's predictions (jobs.evaluate exports them). score=False: predictions
    only, for a split without ground truth; the Evaluation's metrics and baselines are then empty."""
    model.eval()
    state = task.new_metrics()
    previews: list[np.ndarray] = []
    meshes: list[dict[str, np.ndarray]] = []
    for batch in batches:
        inputs, targets = task.split_batch(batch, device)
        outputs = model(inputs)
        if score:
            state.update(outputs, targets)
        if on_batch is not None:
            on_batch(batch, outputs)
        if len(previews) < num_previews:
            previews += task.previews(inputs, outputs, targets)[: num_previews - len(previews)]
            if hasattr(task, "preview_meshes"):
                meshes += task.preview_meshes(outputs)[: num_previews - len(meshes)]
    if not score:
        return Evaluation({}, {}, previews, meshes)
    state.all_reduce()
    return Evaluation(state.compute(), state.baselines(), previews, meshes)


def _flag_last(items: Iterable[dict]) -> Iterator[tuple[dict, bool]]:
    """Each item with whether it is the last, so that a short last accumulation group still ends in a step."""
    iterator = iter(items)
    current = next(iterator, None)
    while current is not None:
        following = next(iterator, None)
        yield current, following is None
        current = following


class _WaitTimer:
    """Iterates batches and adds up the seconds spent waiting for the next one."""

    def __init__(self, batches: Iterable[dict]):
        self._iterator: Iterator[dict] = iter(batches)
        self.waited = 0.0

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        start = time.perf_counter()
        try:
            return next(self._iterator)
        finally:
            self.waited += time.perf_counter() - start
