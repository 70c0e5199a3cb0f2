"""Progress inside an epoch: when a console line is due, what it says, and the ETA of the epoch and of the run.

On real data an epoch takes hours, and the one line per epoch leaves the console silent in
between. A line is due every `every_s` seconds, and at each tenth of the epoch when the epoch is
long enough to need lines at all (longer than `every_s`): a quickstart epoch of seconds stays quiet.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from core.engine.steps import StepTiming

TENTHS = 10


@dataclass(frozen=True)
class EpochPlan:
    """What the lines count against: the epoch's steps on this worker and the epochs the run has left after it."""

    stage: str
    epoch: int  # 0-based, over the whole run
    epochs: int  # of the whole run
    steps: int  # expected optimizer steps of this worker's epoch
    world_size: int


class EpochProgress:
    """Fed every step of one epoch; says when a line is due and writes it."""

    def __init__(self, plan: EpochPlan, every_s: float, last_epoch_s: float | None, clock=time.perf_counter):
        self.plan, self.every_s, self.last_epoch_s, self._clock = plan, every_s, last_epoch_s, clock
        self.started = self._last_line = clock()
        self._tenth = 0
        self._window_samples, self._window_start = 0, self.started

    def step(self, timing: StepTiming, learning_rate: float) -> str | None:
        """The line for this step, or None when none is due."""
        now = self._clock()
        self._window_samples += timing.samples
        tenth = min(TENTHS, timing.step * TENTHS // max(self.plan.steps, 1))
        new_tenth = tenth > self._tenth
        self._tenth = max(self._tenth, tenth)
        if not (now - self._last_line >= self.every_s or (new_tenth and self._epoch_estimate_s(timing.step, now) > self.every_s)):
            return None
        line = self._line(timing, learning_rate, now)
        self._last_line, self._window_samples, self._window_start = now, 0, now
        return line

    def _epoch_estimate_s(self, step: int, now: float) -> float:
        """The whole epoch's training time, from the steps so far (or the last epoch's wall time, evaluation included)."""
        if self.last_epoch_s is not None:
            return self.last_epoch_s
        return (now - self.started) / step * self.plan.steps

    def _line(self, timing: StepTiming, learning_rate: float, now: float) -> str:
        plan = self.plan
        elapsed = now - self.started
        epoch_left = max(0.0, elapsed / timing.step * (plan.steps - timing.step))
        per_epoch = self.last_epoch_s if self.last_epoch_s is not None else elapsed + epoch_left
        run_left = epoch_left + per_epoch * (plan.epochs - plan.epoch - 1)
        rate = self._window_samples * plan.world_size / max(now - self._window_start, 1e-9)
        percent = 100 * timing.step / max(plan.steps, 1)
        return (f"{plan.stage} epoch {plan.epoch + 1}/{plan.epochs}  step {timing.step}/{plan.steps} ({percent:.0f}%)  "
                f"{rate:.1f} samples/s  loss {timing.loss:.4g}  lr {learning_rate:.3g}  "
                f"ETA epoch {_clock_text(epoch_left)}, run {_clock_text(run_left)}")


def steps_per_epoch(rows: int, batch_size: int, world_size: int, grad_accumulation: int) -> int:
    """The optimizer steps of one worker's epoch when the rows are split evenly among the workers."""
    batches = -(-(rows // world_size) // batch_size)
    return max(1, -(-batches // grad_accumulation))


def _clock_text(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
