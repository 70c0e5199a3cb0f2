"""How a backward pass and an optimizer step happen: under PyTorch (one process or DDP), or inside a DeepSpeed engine.

Both take every batch's loss and act on accumulation-group boundaries; both put the numerics guard
where every worker reaches the same decision, so no worker skips a collective the others enter.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from core.engine.distributed import all_reduce_sum
from core.engine.numerics import NumericsGuard


@dataclass(frozen=True)
class StepRules:
    """How batches become optimizer steps (the train.* keys of the same names)."""

    grad_accumulation: int = 1
    grad_clip: float | None = None
    precision: str = "fp32"


class TorchStepper:
    """Gradients accumulate over the group (DDP averages them on its last backward pass), then one clipped step.

    The loss scaler (disabled unless fp16) scales each backward pass and unscales before clipping, so the
    clipping norm and the guard see true gradients; it skips a step whose gradients overflowed."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, rules: StepRules, guard: NumericsGuard,
                 scaler: torch.amp.GradScaler):
        self.model, self.optimizer, self.rules, self.guard, self.scaler = model, optimizer, rules, guard, scaler
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.starts_group = True

    def backward(self, loss: torch.Tensor, losses: dict[str, torch.Tensor], step: int, ends_group: bool) -> None:
        if self.starts_group:
            # The last group's gradients are freed here, after the forward pass, not right after their step:
            # this backward pass then allocates its gradients in the memory just freed. Freed before the
            # forward pass, that memory went to activations, and on the CPU every step paid for fresh pages
            # (interleaved in one process, 2 threads: the engine ran at 0.72 of a plain loop that frees them here).
            self.optimizer.zero_grad(set_to_none=True)
        self.starts_group = ends_group
        syncing = ends_group or not hasattr(self.model, "no_sync")
        with nullcontext() if syncing else self.model.no_sync():
            self.scaler.scale(loss / self.rules.grad_accumulation).backward()
        if ends_group:
            self.scaler.unscale_(self.optimizer)
            # The norm of gradients DDP already averaged: every worker sees the same one.
            norm = clipped_norm(self.trainable, self.rules.grad_clip)
            if self.guard.check(step, losses, norm, self.scaler):
                self.scaler.step(self.optimizer)
            self.scaler.update()  # after any unscaled group, taken or skipped: halves the scale on non-finite gradients


def clipped_norm(parameters: list[nn.Parameter], max_norm: float | None) -> torch.Tensor:
    """The gradients' total L2 norm, for the guard; with max_norm, the gradients scaled down to it.

    clip_grad_norm_ with an infinite max_norm would still multiply every gradient by 1, a second pass
    over them each step (bench.overhead: a tenth of the quickstart's step on a 2-core machine)."""
    norm = torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])
    if max_norm:
        torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, norm)
    return norm


class DeepSpeedStepper:
    """The engine scales (by its gradient_accumulation_steps), accumulates, clips and steps at the boundaries the loop
    gives it, a short last group included; under fp16 it skips steps whose gradients overflowed, which the guard counts."""

    def __init__(self, engine: Any, rules: StepRules, guard: NumericsGuard):
        self.engine, self.guard = engine, guard

    def backward(self, loss: torch.Tensor, losses: dict[str, torch.Tensor], step: int, ends_group: bool) -> None:
        # ZeRO offers no gradient norm before it steps, so the guard looks at the loss summed over workers:
        # every worker decides alike, and a skipped batch is skipped everywhere.
        total = all_reduce_sum(loss.detach().float().reshape(1).cpu().clone())
        if self.guard.check(step, losses, total[0]):
            skipped = self.engine.skipped_steps
            # The group's end is the loop's to say: the engine's own count of micro-batches would leave a short last
            # group of the epoch unstepped, its gradients carried into the next epoch's first group.
            self.engine.set_gradient_accumulation_boundary(ends_group)
            self.engine.backward(loss)
            self.engine.step()
            self.guard.overflows += self.engine.skipped_steps - skipped


def stepper_for(model: nn.Module, optimizer: torch.optim.Optimizer, rules: StepRules, guard: NumericsGuard,
                scaler: torch.amp.GradScaler):
    """scaler: used under PyTorch only; DeepSpeed scales fp16 losses itself (its fp16 setting, jobs._train.strategy)."""
    if is_deepspeed(model):
        return DeepSpeedStepper(model, rules, guard)
    return TorchStepper(model, optimizer, rules, guard, scaler)


def is_deepspeed(model: nn.Module) -> bool:
    return hasattr(model, "backward") and hasattr(model, "save_checkpoint")
