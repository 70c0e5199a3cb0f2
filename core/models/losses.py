"""Pixel-wise classification losses."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float, alpha: float | None, ignore_index: int) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_t)^gamma, optionally by alpha.

    alpha weighs every class but the first (background) by alpha and the first by 1 - alpha,
    the multi-class reading of the paper's binary alpha. Mean over labelled pixels.
    """
    keep = target != ignore_index
    safe_target = torch.where(keep, target, torch.zeros_like(target))
    log_p = F.log_softmax(logits, dim=1).gather(1, safe_target.unsqueeze(1)).squeeze(1)
    loss = -((1.0 - log_p.exp()) ** gamma) * log_p
    if alpha is not None:
        loss = loss * torch.where(safe_target == 0, 1.0 - alpha, alpha)
    return (loss * keep).sum() / keep.sum().clamp(min=1)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels; 0 (with a gradient path) when no pixel is labelled."""
    keep = target != ignore_index
    if not keep.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=ignore_index)
