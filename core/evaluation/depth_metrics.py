"""KITTI depth-completion metrics, as the benchmark's devkit defines them, summable across workers.

For each image, over its pixels with ground truth (depth > 0): RMSE and MAE in millimetres, iRMSE
and iMAE in 1/km; the reported figure is the mean over images. Images without a single ground-truth
pixel are not scored (the devkit has none). Predicted depths below 1 mm count as 1 mm in the
inverse metrics, which would otherwise divide by zero. Workers add up per-image figures and image
counts, so the result does not depend on how many workers scored the split.
"""
from __future__ import annotations

import torch

from core.engine.distributed import all_reduce_sum

NAMES = ("rmse", "mae", "irmse", "imae")
_MIN_DEPTH_M = 1e-3


def per_image(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(N, 4) rmse mm, mae mm, irmse 1/km, imae 1/km for the N images (B,[1,]H,W) with ground truth."""
    predicted = predicted.reshape(len(predicted), -1).double()
    truth = truth.reshape(len(truth), -1).double()
    valid = truth > 0
    count = valid.sum(1)
    scored = count > 0
    predicted, truth, valid, count = predicted[scored], truth[scored], valid[scored], count[scored]
    error_mm = (predicted - truth) * 1000.0 * valid
    inverse_km = (1000.0 / predicted.clamp(min=_MIN_DEPTH_M) - 1000.0 / truth.clamp(min=_MIN_DEPTH_M)) * valid
    return torch.stack([
        (error_mm.square().sum(1) / count).sqrt(), error_mm.abs().sum(1) / count,
        (inverse_km.square().sum(1) / count).sqrt(), inverse_km.abs().sum(1) / count,
    ], dim=1)


class DepthErrors:
    """Running sums of per-image figures for one predictor."""

    def __init__(self):
        self.sums = torch.zeros(len(NAMES) + 1, dtype=torch.float64)  # the last entry counts images

    def update(self, predicted: torch.Tensor, truth: torch.Tensor) -> None:
        figures = per_image(predicted.detach().cpu(), truth.detach().cpu())
        self.sums += torch.cat([figures.sum(0), torch.tensor([float(len(figures))], dtype=torch.float64)])

    def all_reduce(self) -> "DepthErrors":
        all_reduce_sum(self.sums)
        return self

    def compute(self, prefix: str = "") -> dict[str, float]:
        images = self.sums[-1].item()
        if images == 0:
            raise ValueError("no image of the split has a ground-truth depth pixel; the depth metrics are undefined")
        return {f"{prefix}{name}": float(value) / images for name, value in zip(NAMES, self.sums[:-1])}
