"""Depth completion: RGB + sparse depth (+ the semantic map where the data has one) -> dense depth."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from torch import nn

from core.evaluation import tta
from core.evaluation.depth_metrics import DepthErrors
from core.models.depth_completion import DepthCompletionNet
from core.models.sparse_fill import nearest_fill
from core.tasks.base import loss_weights
from core.tasks.columns import Column, Kind
from core.tasks.image_inputs import ImageInputs
from core.tasks.depth_completion.config import DepthCompletionConfig
from core.tasks.registry import TASKS

COLUMNS = {"rgb": Column("rgb", Kind.IMAGE, (3,)), "sparse_depth": Column("sparse_depth", Kind.DEPTH_MAP),
           "labels": Column("labels", Kind.LABEL_MAP), "depth": Column("depth", Kind.DEPTH_MAP)}


@TASKS.register("depth_completion")
class DepthCompletionTask:
    monitor, monitor_mode = "val/rmse", "min"
    config_class = DepthCompletionConfig
    loss_names = ("l2", "l1", "coarse_l2")  # coarse_l2: the branches' fused depth, before CSPN++ (its first training stage)

    def __init__(self, config: DepthCompletionConfig, manifest: dict[str, Any]):
        self.config = config
        self.inputs = config.inputs
        if not {"rgb", "sparse_depth"} <= set(self.inputs):
            raise ValueError(f"task.inputs = {self.inputs}: depth completion takes rgb and sparse_depth, and labels "
                             "(the semantic map) where the data has one; depth is its target")
        self.loss_weights = loss_weights(config.loss.weights or {"l2": 1.0}, self.loss_names, "depth_completion")
        self.columns = [COLUMNS[name] for name in dict.fromkeys([*self.inputs, "depth"])]
        self.num_classes = len(manifest["classes"]) if "labels" in self.inputs else 0
        stats = manifest["stats"]
        self.images = ImageInputs(stats)
        self.mean_depth, self.depth_std = float(stats["depth_mean_m"]), float(stats["depth_std_m"])

    def build_model(self) -> nn.Module:
        model = self.config.completion
        return DepthCompletionNet(self.num_classes, model.width, self.mean_depth, self.depth_std, model.cspn_kernels,
                                  model.cspn_iterations)

    def split_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> tuple[dict, dict]:
        sparse = self.images.depth(batch["sparse_depth"], "sparse_depth")
        inputs = {"rgb": self.images.rgb(batch["rgb"]), "sparse": sparse}
        if self.num_classes:
            labels = batch["labels"].long()
            known = labels < self.num_classes  # the ignore label becomes an all-zero vector
            inputs["semantic"] = (F.one_hot(labels.clamp(max=self.num_classes - 1), self.num_classes) * known.unsqueeze(-1)
                                  ).permute(0, 3, 1, 2).float().contiguous()  # as ImageInputs.rgb explains
        targets = {"depth": batch["depth"].float().unsqueeze(1), "sparse": sparse}
        return ({k: v.to(device) for k, v in inputs.items()}, {k: v.to(device) for k, v in targets.items()})

    def losses(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor]:
        """Over pixels with ground truth only; a batch without any is a loss of 0 that keeps the graph."""
        predicted, truth = outputs["depth"], targets["depth"]
        valid = truth > 0
        if not valid.any():
            zero = predicted.sum() * 0.0 + outputs["coarse"].sum() * 0.0
            return {name: zero for name in self.loss_weights}
        error = (predicted - truth)[valid]
        terms = {"l2": lambda: error.square().mean(), "l1": lambda: error.abs().mean(),
                 "coarse_l2": lambda: (outputs["coarse"] - truth)[valid].square().mean()}
        return {name: terms[name]() for name in self.loss_weights}

    exported = Kind.DEPTH_MAP  # what jobs.evaluate --export writes
    test_time_augmentation = tta.Support(tta.VALUES, scales=False)

    def exported_predictions(self, outputs: dict) -> np.ndarray:
        """(B, H, W) float32 metres."""
        return outputs["depth"][:, 0].detach().cpu().numpy()

    def new_metrics(self) -> "DepthCompletionMetrics":
        return DepthCompletionMetrics(self.mean_depth)

    def previews(self, inputs: dict, outputs: dict, targets: dict) -> list[np.ndarray]:
        """RGB | ground truth | prediction | absolute error (ground-truth pixels only), colourised."""
        rgb = self.images.rgb_image(inputs["rgb"])
        truth, predicted = targets["depth"][:, 0].cpu().numpy(), outputs["depth"][:, 0].detach().cpu().numpy()
        top = max(float(truth.max(initial=0)), 1e-6)
        error = np.abs(predicted - truth) * (truth > 0)
        return [np.concatenate([image, _colour(t, top, "magma"), _colour(p, top, "magma"),
                                _colour(e, max(float(e.max(initial=0)), 1e-6), "inferno")], axis=1)
                for image, t, p, e in zip(rgb, truth, predicted, error)]


def _colour(values: np.ndarray, top: float, name: str) -> np.ndarray:
    return (colormaps[name](np.clip(values / top, 0, 1))[..., :3] * 255).astype(np.uint8)


class DepthCompletionMetrics:
    """The model's KITTI errors beside two trivial predictors on the same images: the train split's
    mean depth everywhere, and nearest-neighbour interpolation of the sparse depth."""

    def __init__(self, mean_depth: float):
        self.mean_depth = mean_depth
        self.model, self.mean, self.nearest = DepthErrors(), DepthErrors(), DepthErrors()

    def update(self, outputs: dict, targets: dict) -> None:
        truth = targets["depth"].cpu()
        self.model.update(outputs["depth"], truth)
        self.mean.update(torch.full_like(truth, self.mean_depth), truth)
        self.nearest.update(nearest_fill(targets["sparse"].cpu()), truth)

    def all_reduce(self) -> "DepthCompletionMetrics":
        for errors in (self.model, self.mean, self.nearest):
            errors.all_reduce()
        return self

    def compute(self) -> dict[str, float]:
        return self.model.compute()

    def baselines(self) -> dict[str, float]:
        return {**self.mean.compute("mean_depth_"), **self.nearest.compute("nearest_sparse_")}
