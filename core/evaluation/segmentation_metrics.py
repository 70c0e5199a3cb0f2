"""Segmentation metrics from a confusion matrix that can be summed across workers."""
from __future__ import annotations

import torch

from core.engine.distributed import all_reduce_sum


class ConfusionMatrix:
    """counts[t, p] = number of labelled pixels of true class t predicted as p."""

    def __init__(self, num_classes: int, ignore_index: int):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.counts = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        keep = target != self.ignore_index
        index = target[keep].long().cpu() * self.num_classes + predicted[keep].long().cpu()
        self.counts += torch.bincount(index, minlength=self.num_classes**2).view(self.num_classes, self.num_classes)

    def all_reduce(self) -> "ConfusionMatrix":
        all_reduce_sum(self.counts)
        return self

    def compute(self, class_names: list[str]) -> dict[str, float]:
        iou = iou_per_class(self.counts)
        metrics = {"miou": _nanmean(iou), "pixel_acc": self.counts.diag().sum().item() / max(self.counts.sum().item(), 1)}
        metrics.update({f"iou/{name}": float(value) for name, value in zip(class_names, iou)})
        return metrics


def iou_per_class(counts: torch.Tensor) -> torch.Tensor:
    """IoU of each class; NaN for a class absent from both truth and prediction."""
    counts = counts.double()
    true_positive = counts.diag()
    union = counts.sum(0) + counts.sum(1) - true_positive
    return torch.where(union > 0, true_positive / union.clamp(min=1), torch.full_like(union, float("nan")))


def constant_prediction_miou(counts: torch.Tensor, predicted_class: int) -> float:
    """mIoU of a model that predicts `predicted_class` everywhere, on the pixels counted in `counts`."""
    truth = counts.sum(1)
    constant = torch.zeros_like(counts)
    constant[:, predicted_class] = truth
    return _nanmean(iou_per_class(constant))


def _nanmean(values: torch.Tensor) -> float:
    present = values[~values.isnan()]
    return float(present.mean()) if len(present) else float("nan")
