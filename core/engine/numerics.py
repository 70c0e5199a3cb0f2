"""The numerics guard and fp16's loss scale: non-finite steps skipped and counted, or the run stopped naming the term.

Every worker reaches the same decision (losses and gradient norms are already reduced), so no
worker skips a collective the others enter.
"""
from __future__ import annotations

from typing import Any

import torch

from core.engine.distributed import all_reduce_sum

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

    def state_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped, "overflows": self.overflows}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.skipped, self.overflows = state.get("skipped", 0), state.get("overflows", 0)

    def _overflowed(self, scale: float, where: str) -> bool:
        if scale < MIN_LOSS_SCALE:
            raise NonFiniteError(f"non-finite gradient (every loss term finite) {where} at fp16 loss scale {scale:g}, "
                                 f"below {MIN_LOSS_SCALE:g}: not an overflow the scale can fix; the run stops and its "
                                 f"last checkpoint is the last good state")
        self.overflows += 1
        return True



def _non_finite_terms(losses: dict[str, torch.Tensor]) -> list[str]:
    """The loss terms that are not finite on any worker."""
    names = sorted(losses)
    flags = torch.tensor([0.0 if torch.isfinite(losses[n]) else 1.0 for n in names], dtype=torch.float64)
    all_reduce_sum(flags)
    return [name for name, flag in zip(names, flags) if flag > 0]
