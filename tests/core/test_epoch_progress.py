"""Progress lines inside an epoch: when they come, and what their ETA says, on a clock the test turns."""
import re

from core.engine.epoch_progress import EpochPlan, EpochProgress, steps_per_epoch
from core.engine.steps import StepTiming


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _epoch(progress: EpochProgress, clock: Clock, steps: int, step_s: float) -> list[tuple[int, str]]:
    lines = []
    for step in range(1, steps + 1):
        clock.now += step_s
        line = progress.step(StepTiming(step, samples=8, seconds=step_s, data_wait_seconds=0.0, loss=1.0 / step), 1e-3)
        if line is not None:
            lines.append((step, line))
    return lines


def _eta(line: str) -> tuple[int, int]:
    found = re.search(r"ETA epoch (\d+):(\d\d):(\d\d), run (\d+):(\d\d):(\d\d)", line)
    h, m, s, rh, rm, rs = map(int, found.groups())
    return h * 3600 + m * 60 + s, rh * 3600 + rm * 60 + rs


def test_a_long_epoch_gets_a_line_every_interval_and_at_each_tenth_with_its_eta():
    clock = Clock()
    plan = EpochPlan("main", epoch=1, epochs=4, steps=100, world_size=2)
    lines = _epoch(EpochProgress(plan, every_s=30.0, last_epoch_s=None, clock=clock), clock, steps=100, step_s=1.0)
    steps = [step for step, _ in lines]
    assert {10, 20, 30, 40, 50, 60, 70, 80, 90, 100} <= set(steps)
    assert all(later - earlier <= 30 for earlier, later in zip([0, *steps], steps))
    step, line = next((s, text) for s, text in lines if s == 40)
    assert line.startswith("main epoch 2/4  step 40/100 (40%)  16.0 samples/s  loss 0.025  lr 0.001")
    epoch_left, run_left = _eta(line)
    assert epoch_left == 60 and run_left == 60 + 2 * 100  # two more epochs after this one, each as long
    assert _eta(lines[-1][1])[0] == 0


def test_the_run_eta_counts_the_last_epoch_whole_evaluation_included():
    clock = Clock()
    plan = EpochPlan("train", epoch=0, epochs=3, steps=10, world_size=1)
    lines = _epoch(EpochProgress(plan, every_s=1.0, last_epoch_s=25.0, clock=clock), clock, steps=10, step_s=2.0)
    assert len(lines) == 10
    assert _eta(lines[4][1]) == (10, 10 + 2 * 25)


def test_an_epoch_shorter_than_the_interval_stays_quiet():
    clock = Clock()
    plan = EpochPlan("train", epoch=0, epochs=6, steps=16, world_size=2)
    assert _epoch(EpochProgress(plan, every_s=30.0, last_epoch_s=None, clock=clock), clock, steps=16, step_s=0.5) == []


def test_steps_per_epoch_split_the_rows_among_workers_and_count_accumulated_batches_once():
    assert steps_per_epoch(256, batch_size=8, world_size=2, grad_accumulation=1) == 16
    assert steps_per_epoch(250, batch_size=8, world_size=2, grad_accumulation=1) == 16  # 125 rows: 15 full batches and one of 5
    assert steps_per_epoch(256, batch_size=8, world_size=2, grad_accumulation=4) == 4
    assert steps_per_epoch(3, batch_size=8, world_size=4, grad_accumulation=1) == 1
