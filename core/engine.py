"""The step loop: one training epoch and one evaluation pass, for any task, with or without workers.

The loop sums the task's named losses, steps the optimizer, and times how long each step waited
for its batch. Distribution enters only through core.distributed (a no-op in one process) and
through whatever wrapper the caller put around the model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from core.distributed import all_reduce_sum, world_size
from core.stages import hold_frozen_norms
from core.steppers import is_deepspeed, stepper_for
from core.tasks.base import Task, batch_length


@dataclass
class EpochStats:
    losses: dict[str, float]
    steps: int
    samples: int
    seconds: float
    data_wait_seconds: float


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


@dataclass(frozen=True)
class StepRules:
    """How batches become optimizer steps (the train.* keys of the same names)."""

    grad_accumulation: int = 1
    grad_clip: float | None = None
    precision: str = "fp32"


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# fairseq's floor: a gradient that still overflows at a scale this small is not the scale's fault.
MIN_LOSS_SCALE = 1e-4


def loss_scaler(enabled: bool, device: torch.device, state: dict[str, Any] | None = None) -> torch.amp.GradScaler:
    """fp16's dynamic loss scale, from its saved state. Disabled, every call passes through: fp32 and bf16 (whose
    exponent range needs no scale) and DeepSpeed (which scales itself)."""
    scaler = torch.amp.GradScaler(device.type, enabled=enabled)
    if state:
        scaler.load_state_dict(state)
    return scaler


class NonFiniteError(FloatingPointError):
    """A non-finite loss or gradient, past what the run may skip."""


class NumericsGuard:
    """Skips up to `allowed` steps whose loss or gradient is not finite, counting them; the next one stops the run.

    Under fp16 a non-finite gradient of finite losses is the loss scale's overflow, routine while the scale
    finds its level: the scaler skips that step and halves the scale, and the guard only counts it (overflows),
    until the scale falls below MIN_LOSS_SCALE."""

    def __init__(self, allowed: int, skipped: int = 0, stage: str = "train", epoch: int = 0, overflows: int = 0):
        self.allowed, self.skipped, self.stage, self.epoch, self.overflows = allowed, skipped, stage, epoch, overflows

    def check(self, step: int, losses: dict[str, torch.Tensor], gradient_norm: torch.Tensor,
              scaler: torch.amp.GradScaler | None = None) -> bool:
        """True when the step may be taken (the scaler may still skip it). Every worker decides alike: the
        gradients are already averaged."""
        if torch.isfinite(gradient_norm):
            return True
        terms = _non_finite_terms(losses)
        where = f"at step {step} of epoch {self.epoch + 1} in stage {self.stage!r}"
        if not terms and scaler is not None and scaler.is_enabled():
            return self._overflowed(scaler.get_scale(), where)
        what = f"loss term(s) {', '.join(terms)}" if terms else "gradient (every loss term finite)"
        if self.skipped >= self.allowed:
            raise NonFiniteError(f"non-finite {what} {where}; the run stops and its last checkpoint is the last good state "
                                 f"({self.skipped} of train.skip_nonfinite_steps={self.allowed} steps skipped before)")
        self.skipped += 1
        return False

    def _overflowed(self, scale: float, where: str) -> bool:
        if scale < MIN_LOSS_SCALE:
            raise NonFiniteError(f"non-finite gradient (every loss term finite) {where} at fp16 loss scale {scale:g}, "
                                 f"below {MIN_LOSS_SCALE:g}: not an overflow the scale can fix; the run stops and its "
                                 f"last checkpoint is the last good state")
        self.overflows += 1
        return True


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[dict], task: Task,
                device: torch.device, on_step: Callable[[StepTiming], None] | None = None, rules: StepRules = StepRules(),
                guard: NumericsGuard | None = None, scaler: torch.amp.GradScaler | None = None) -> EpochStats:
    """scaler: fp16's loss scale, carried from epoch to epoch by the caller; a new one when not given."""
    model.train()
    hold_frozen_norms(model)
    guard = guard or NumericsGuard(0)
    scaler = scaler or loss_scaler(rules.precision == "fp16" and not is_deepspeed(model), device)
    stepper = stepper_for(model, optimizer, rules, guard, scaler)
    autocast_dtype = AUTOCAST_DTYPES.get(rules.precision)
    totals: dict[str, torch.Tensor] = {}
    steps = samples = micro = 0
    start = time.perf_counter()
    timer = _WaitTimer(batches)
    step_start, waited_before, samples_before = start, 0.0, 0
    for batch, is_last in _flag_last(timer):
        inputs, targets = task.split_batch(batch, device)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            losses = task.losses(model(inputs), targets)
            loss = sum(task.loss_weights[name] * value for name, value in losses.items())
        micro += 1
        ends_group = micro % rules.grad_accumulation == 0 or is_last
        stepper.backward(loss, losses, steps + 1, ends_group)
        for name, value in losses.items():
            totals[name] = totals.get(name, 0.0) + value.detach().float()
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
    averaged = _mean_over_workers({name: value / micro for name, value in totals.items()})
    return EpochStats(averaged, steps, samples, time.perf_counter() - start, timer.waited)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[dict], task: Task, device: torch.device, num_previews: int = 0,
             on_batch: Callable[[dict, Any], None] | None = None) -> Evaluation:
    """on_batch(batch, outputs): sees every batch's predictions (jobs.evaluate exports them)."""
    model.eval()
    state = task.new_metrics()
    previews: list[np.ndarray] = []
    meshes: list[dict[str, np.ndarray]] = []
    for batch in batches:
        inputs, targets = task.split_batch(batch, device)
        outputs = model(inputs)
        state.update(outputs, targets)
        if on_batch is not None:
            on_batch(batch, outputs)
        if len(previews) < num_previews:
            previews += task.previews(inputs, outputs, targets)[: num_previews - len(previews)]
            if hasattr(task, "preview_meshes"):
                meshes += task.preview_meshes(outputs)[: num_previews - len(meshes)]
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


def _non_finite_terms(losses: dict[str, torch.Tensor]) -> list[str]:
    """The loss terms that are not finite on any worker."""
    names = sorted(losses)
    flags = torch.tensor([0.0 if torch.isfinite(losses[n]) else 1.0 for n in names], dtype=torch.float64)
    all_reduce_sum(flags)
    return [name for name, flag in zip(names, flags) if flag > 0]


def _mean_over_workers(values: dict[str, torch.Tensor]) -> dict[str, float]:
    names = sorted(values)
    stacked = torch.stack([torch.as_tensor(values[n], dtype=torch.float64).cpu() for n in names])
    all_reduce_sum(stacked)
    return {name: float(v) / world_size() for name, v in zip(names, stacked)}


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
