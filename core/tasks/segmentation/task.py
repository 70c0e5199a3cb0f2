"""Semantic segmentation: image channels in, per-pixel class logits out."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from core.models.distillation import Distilled, pair_affinity, pixel_kl
from core.models.losses import cross_entropy, focal_loss
from core.evaluation import tta
from core.evaluation.segmentation_metrics import IoUStats, constant_prediction_miou
from core.models.segmentation import INPUT_MULTIPLE, build_segmentation_model
from core.tasks.base import loss_weights
from core.tasks.columns import Column, Kind
from core.tasks.image_inputs import ImageInputs
from core.tasks.segmentation.config import SegmentationConfig
from core.tasks.registry import TASKS

INPUT_COLUMNS = {"rgb": Column("rgb", Kind.IMAGE, (3,)), "depth": Column("depth", Kind.DEPTH_MAP),
                 "sparse_depth": Column("sparse_depth", Kind.DEPTH_MAP)}


@TASKS.register("segmentation")
class SegmentationTask:
    config_class = SegmentationConfig
    monitor, monitor_mode = "val/miou", "max"
    loss_names = ("cross_entropy", "focal")
    distill_losses = ("kd_pixel", "kd_pair")

    def __init__(self, config: SegmentationConfig, manifest: dict[str, Any]):
        self.config = config
        self.class_names = [c["name"] for c in manifest["classes"]]
        self.colors = np.array([c["color"] for c in manifest["classes"]], dtype=np.uint8)
        self.ignore_index = manifest["ignore_index"]
        self.majority_class = int(np.argmax(manifest["stats"]["class_pixels"]))
        stats = manifest["stats"]
        self.images = ImageInputs(stats)
        self.depth_mean, self.depth_std = stats["depth_mean_m"], stats["depth_std_m"]
        self.loss_weights = loss_weights(config.loss.weights or {"cross_entropy": 1.0}, self.loss_names, "segmentation")
        if config.distill is not None:
            self.loss_weights.update(kd_pixel=config.distill.weights.pixel, kd_pair=config.distill.weights.pair)
        self.manifest = manifest
        self.inputs = config.inputs
        self.columns = [INPUT_COLUMNS[name] for name in dict.fromkeys(self.inputs)] + [Column("labels", Kind.LABEL_MAP)]
        height, width = manifest["image_size"]
        if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
            raise ValueError(f"images are {height}x{width}; the segmentation encoders need sides divisible by {INPUT_MULTIPLE}")

    def build_model(self) -> nn.Module:
        in_channels = sum(3 if name == "rgb" else 1 for name in self.inputs)
        model = build_segmentation_model(self.config.model.decoder, self.config.model.encoder, in_channels, len(self.class_names))
        if self.config.distill is None:
            return model
        from core.tasks.segmentation.teacher import load_teacher

        return Distilled(model, load_teacher(self.config.distill, self.manifest))

    def split_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        channels = [self._channel(name, batch[name]) for name in self.inputs]
        return torch.cat(channels, dim=1).to(device), batch["labels"].long().to(device)

    def _channel(self, name: str, values: torch.Tensor) -> torch.Tensor:
        if name == "rgb":
            return self.images.rgb(values)
        depth = self.images.depth(values, name)
        # Missing depth (0) becomes 0 after normalisation too, the mean depth, instead of an outlier.
        return torch.where(depth > 0, (depth - self.depth_mean) / self.depth_std, torch.zeros_like(depth))

    def losses(self, outputs: torch.Tensor | dict, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """outputs: the logits, or while a student trains, {"logits", "teacher"} (core.models.distillation.Distilled)."""
        config, distill = self.config.loss, self.config.distill
        logits, teacher = (outputs["logits"], outputs["teacher"]) if isinstance(outputs, dict) else (outputs, None)
        terms = {"cross_entropy": lambda: cross_entropy(logits, targets, self.ignore_index),
                 "focal": lambda: focal_loss(logits, targets, config.focal_gamma, config.focal_alpha, self.ignore_index),
                 "kd_pixel": lambda: pixel_kl(logits, teacher, distill.temperature),
                 "kd_pair": lambda: pair_affinity(logits, teacher, distill.pair_pool)}
        return {name: terms[name]() for name in self.loss_weights}

    exported = Kind.LABEL_MAP  # what jobs.evaluate --export writes
    test_time_augmentation = tta.Support(tta.PROBABILITIES, scales=True, multiple=INPUT_MULTIPLE)

    def exported_predictions(self, outputs: torch.Tensor) -> np.ndarray:
        """(B, H, W) uint8 class ids."""
        return outputs.argmax(1).cpu().numpy().astype(np.uint8)

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
        self.confusion = IoUStats(len(class_names), ignore_index)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.confusion.update(outputs.argmax(1), targets)

    def all_reduce(self) -> "SegmentationMetrics":
        self.confusion.all_reduce()
        return self

    def compute(self) -> dict[str, float]:
        return self.confusion.compute(self.class_names)

    def baselines(self) -> dict[str, float]:
        """mIoU of always predicting the train split's majority class, on the same pixels."""
        return {"majority_class_miou": constant_prediction_miou(self.confusion.truth_pixels, self.majority_class)}
