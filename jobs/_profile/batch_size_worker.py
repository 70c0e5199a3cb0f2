"""What each Ray Train worker runs to find the largest per-worker batch: double, then bisect.

A probe is one full step (forward, backward, optimizer step) on one real sample repeated to the
batch size, under DDP's no_sync so that a worker that runs out of memory cannot leave the others
waiting inside a gradient allreduce; the workers then agree through one small allreduce. A batch
fits when every worker ran it with its peak memory inside the budget less the safety margin. The
chosen batch is confirmed with one synchronised DDP step.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any

import ray.train
import ray.train.torch
import torch

from core.profiling import memory
from core.config.schema import ExperimentConfig
from core.engine.distributed import all_reduce_sum, world_size
from core.engine.optim import build_optimizer
from core.tasks.catalog import build_task
from core.tasks.base import weighted_sum

# On the CPU a probe that overshoots does not fail cleanly, it swaps the machine: a batch whose
# extrapolated peak is this far over the budget is counted as not fitting without being run.
_SKIP_ABOVE_BUDGET = 1.25


def find_batch_size_per_worker(loop_config: dict[str, Any]) -> None:
    config = ExperimentConfig.model_validate(loop_config["config"])
    logging.getLogger().setLevel(logging.WARNING)
    torch.set_num_threads(loop_config["torch_threads"])
    task = build_task(config.task, loop_config["manifest"])
    model = ray.train.torch.prepare_model(task.build_model())
    device = ray.train.torch.get_device()
    optimizer = build_optimizer(config.train.optimizer, model.parameters())
    sample = {name: torch.as_tensor(values) for name, values in loop_config["sample"].items()}
    budget = loop_config["budget_bytes"] or _default_budget(device)
    search = _Search(model, optimizer, task, sample, device, limit=budget * (1 - loop_config["margin"]))
    best = search.run(loop_config["max_batch_size"])
    confirmed_peak = _step(model, optimizer, task, sample, best, device, synchronised=True) if best else None
    ray.train.report({"batch_size": best, "peak_memory_bytes": confirmed_peak, "budget_bytes": budget,
                      "margin": loop_config["margin"], "probes": search.probes})


class _Search:
    def __init__(self, model, optimizer, task, sample, device, limit: float):
        self.model, self.optimizer, self.task, self.sample, self.device = model, optimizer, task, sample, device
        self.limit = limit
        self.base = memory.current_bytes(device)
        self.probes: list[dict[str, Any]] = []

    def run(self, max_batch: int) -> int:
        """The largest batch that fits (0 if not even 1 does); doubles from 2, then bisects.

        From 2 because batch norm cannot train on one sample whose features shrink to 1x1.
        """
        good, bad = 0, max_batch + 1
        batch = min(2, max_batch)
        while batch <= max_batch and self.fits(batch):
            good, batch = batch, batch * 2
        bad = min(bad, batch)
        while bad - good > 1:
            middle = (good + bad) // 2
            good, bad = (middle, bad) if self.fits(middle) else (good, middle)
        return good

    def fits(self, batch: int) -> bool:
        expected = self._extrapolate(batch)
        if expected is not None and expected > self.limit * _SKIP_ABOVE_BUDGET:
            peak, outcome = None, f"skipped: about {expected / 2**20:.0f} MB expected"
        else:
            peak, outcome = self._try(batch)
        ok = outcome == "ran" and peak <= self.limit
        # Every worker must agree, or the next probe would be a different batch on different workers.
        failures = all_reduce_sum(torch.tensor([0.0 if ok else 1.0]))
        everyone = failures.item() == 0
        self.probes.append({"batch_size": batch, "outcome": outcome, "peak_memory_bytes": peak, "fits": everyone})
        return everyone

    def _try(self, batch: int) -> tuple[int | None, str]:
        try:
            return _step(self.model, self.optimizer, self.task, self.sample, batch, self.device, synchronised=False), "ran"
        except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
            if not memory.is_out_of_memory(err):
                raise
            memory.release(self.device)
            return None, "out of memory"

    def _extrapolate(self, batch: int) -> float | None:
        measured = [(p["batch_size"], p["peak_memory_bytes"]) for p in self.probes if p["peak_memory_bytes"]]
        if not measured:
            return None
        points = [(0, self.base), *measured][-2:]
        (b0, m0), (b1, m1) = points
        return m1 + (m1 - m0) / (b1 - b0) * (batch - b1)


def _step(model, optimizer, task, sample: dict, batch: int, device: torch.device, synchronised: bool) -> int:
    """One full training step at this batch; returns its peak memory on this worker."""
    tiled = {name: values.repeat(batch, *[1] * (values.dim() - 1)) for name, values in sample.items()}
    memory.reset_peak(device)
    quiet = model.no_sync() if not synchronised and world_size() > 1 else contextlib.nullcontext()
    with quiet:
        inputs, targets = task.split_batch(tiled, device)
        losses = task.losses(model(inputs), targets)
        weighted_sum(losses, task.loss_weights).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    peak = memory.peak_bytes(device)
    del tiled, inputs, targets, losses
    return peak


def _default_budget(device: torch.device) -> int:
    """A GPU's whole memory; on the CPU this worker's share of what the host has free, plus what it holds."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    local_workers = ray.train.get_context().get_local_world_size()
    return memory.current_bytes(device) + memory.available_bytes(device) // local_workers
