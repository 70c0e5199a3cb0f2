"""Semantic segmentation: image channels in, per-pixel class logits out."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from core.config.schema import TaskConfig
from core.models.losses import cross_entropy, focal_loss
from core.evaluation.segmentation_metrics import ConfusionMatrix, constant_prediction_miou
from core.models.segmentation import INPUT_MULTIPLE, build_segmentation_model
from core.tasks.registry import TASKS
from core.tasks.base import active_losses
from core.tasks.image_inputs import ImageInputs


@TASKS.register("segmentation")
class SegmentationTask:
    monitor, monitor_mode = "val/miou", "max"
    loss_names = ("cross_entropy", "focal")

    def __init__(self, config: TaskConfig, manifest: dict[str, Any]):
        self.config = config
        self.class_names = [c["name"] for c in manifest["classes"]]
        self.colors = np.array([c["color"] for c in manifest["classes"]], dtype=np.uint8)
        self.ignore_index = manifest["ignore_index"]
        self.majority_class = int(np.argmax(manifest["stats"]["class_pixels"]))
        stats = manifest["stats"]
        self.images = ImageInputs(stats)
        self.depth_mean, self.depth_std = stats["depth_mean_m"], stats["depth_std_m"]
        self.loss_weights = active_losses(config.loss.weights or {"cross_entropy": 1.0}, self.loss_names, "segmentation")
        self.inputs = config.inputs or ["rgb"]
        if "labels" in self.inputs:
            raise ValueError("task.inputs names labels, the segmentation task's target; inputs can be rgb, depth, sparse_depth")
        self.columns = list(dict.fromkeys([*self.inputs, "labels"]))
        height, width = manifest["image_size"]
        if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
            raise ValueError(f"images are {height}x{width}; the segmentation encoders need sides divisible by {INPUT_MULTIPLE}")

    def build_model(self) -> nn.Module:
        in_channels = sum(3 if name == "rgb" else 1 for name in self.inputs)
        return build_segmentation_model(self.config.model, in_channels, len(self.class_names))

    def split_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        channels = [self._channel(name, batch[name]) for name in self.inputs]
        return torch.cat(channels, dim=1).to(device), batch["labels"].long().to(device)

    def _channel(self, name: str, values: torch.Tensor) -> torch.Tensor:
        if name == "rgb":
            return self.images.rgb(values)
        depth = self.images.depth(values, name)
        # Missing depth (0) becomes 0 after normalisation too, the mean depth, instead of an outlier.
        return torch.where(depth > 0, (depth - self.depth_mean) / self.depth_std, torch.zeros_like(depth))

    def losses(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        config, losses = self.config.loss, {}
        if "cross_entropy" in self.loss_weights:
            losses["cross_entropy"] = cross_entropy(outputs, targets, self.ignore_index)
        if "focal" in self.loss_weights:
            losses["focal"] = focal_loss(outputs, targets, config.focal_gamma, config.focal_alpha, self.ignore_index)
        return losses

    def new_metrics(self) -> "SegmentationMetrics":
        return SegmentationMetrics(self.class_names, self.ignore_index, self.majority_class)

    def previews(self, inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> list[np.ndarray]:
        rgb = self.images.rgb_image(inputs[:, :3])
        palette = np.concatenate([self.colors, np.zeros((256 - len(self.colors), 3), np.uint8)])
        truth = palette[targets.cpu().numpy()]
        predicted = palette[outputs.argmax(1).cpu().numpy()]
        return [np.concatenate(triple, axis=1) for triple in zip(rgb, truth, predicted)]


class SegmentationMetrics:
    def __init__(self, class_names: list[str], ignore_index: int, majority_class: int):
        self.class_names, self.majority_class = class_names, majority_class
        self.confusion = ConfusionMatrix(len(class_names), ignore_index)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.confusion.update(outputs.argmax(1), targets)

    def all_reduce(self) -> "SegmentationMetrics":
        self.confusion.all_reduce()
        return self

    def compute(self) -> dict[str, float]:
        return self.confusion.compute(self.class_names)

    def baselines(self) -> dict[str, float]:
        """mIoU of always predicting the train split's majority class, on the same pixels."""
        return {"majority_class_miou": constant_prediction_miou(self.confusion.counts, self.majority_class)}
