"""Segmentation metrics from per-class pixel counts (true positives, false positives, false negatives) that add up
across batches and workers.

The counts come from segmentation-models-pytorch's `metrics.get_stats`: the same figures as a
bincount over (truth, prediction) pairs, at a quarter of its time on 4 x 512 x 1024 label maps of 19
classes (0.08 s against 0.30 s on this project's 2-core CPU).
"""
from __future__ import annotations

import torch

from core.engine.distributed import all_reduce_sum


class IoUStats:
    """counts[0, c], counts[1, c], counts[2, c]: labelled pixels of class c predicted as c, predicted as c but of
    another class, of class c predicted as another."""

    def __init__(self, num_classes: int, ignore_index: int):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.counts = torch.zeros(3, num_classes, dtype=torch.int64)

    def update(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        # Imported here: smp pulls in timm and torchvision, which a driver that only plans a run does not need.
        from segmentation_models_pytorch.metrics import get_stats

        true_positive, false_positive, false_negative, _ = get_stats(
            predicted.long().cpu(), target.long().cpu(), mode="multiclass", num_classes=self.num_classes,
            ignore_index=self.ignore_index)
        self.counts += torch.stack([true_positive.sum(0), false_positive.sum(0), false_negative.sum(0)])

    def all_reduce(self) -> "IoUStats":
        all_reduce_sum(self.counts)
        return self

    @property
    def truth_pixels(self) -> torch.Tensor:
        """Labelled pixels of each true class."""
        return self.counts[0] + self.counts[2]

    def compute(self, class_names: list[str]) -> dict[str, float]:
        iou = iou_per_class(*self.counts)
        labelled = max(self.truth_pixels.sum().item(), 1)
        metrics = {"miou": _nanmean(iou), "pixel_acc": self.counts[0].sum().item() / labelled}
        metrics.update({f"iou/{name}": float(value) for name, value in zip(class_names, iou)})
        return metrics


def iou_per_class(true_positive: torch.Tensor, false_positive: torch.Tensor, false_negative: torch.Tensor) -> torch.Tensor:
    """IoU of each class; NaN for a class absent from both truth and prediction."""
    union = (true_positive + false_positive + false_negative).double()
    return torch.where(union > 0, true_positive.double() / union.clamp(min=1), torch.full_like(union, float("nan")))


def constant_prediction_miou(truth_pixels: torch.Tensor, predicted_class: int) -> float:
    """mIoU of a model that predicts `predicted_class` everywhere, on pixels of these true classes."""
    true_positive = torch.zeros_like(truth_pixels)
    true_positive[predicted_class] = truth_pixels[predicted_class]
    false_positive = torch.zeros_like(truth_pixels)
    false_positive[predicted_class] = truth_pixels.sum() - truth_pixels[predicted_class]
    return _nanmean(iou_per_class(true_positive, false_positive, truth_pixels - true_positive))


def _nanmean(values: torch.Tensor) -> float:
    present = values[~values.isnan()]
    return float(present.mean()) if len(present) else float("nan")
