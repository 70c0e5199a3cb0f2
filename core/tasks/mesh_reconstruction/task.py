"""Mesh reconstruction: RGB + sparse depth + camera -> a labelled mesh of the scene in the camera's view.

Losses: L1 between the rendered and the ground-truth depth on pixels with ground truth; Chamfer
distance between points sampled on the mesh and the ground-truth depth unprojected; Laplacian and
edge regularisers (on the mesh scaled by the data set's mean depth, so their weights do not depend
on the scene's size); cross-entropy of the rendered per-vertex semantic logits against the labels.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from pytorch3d.loss import chamfer_distance, mesh_edge_loss, mesh_laplacian_smoothing
from pytorch3d.ops import sample_points_from_meshes
from torch import nn

from core.engine.distributed import all_reduce_sum
from core.models.losses import cross_entropy
from core.evaluation.segmentation_metrics import IoUStats, constant_prediction_miou
from core.models.mesh_reconstruction import MeshReconstructionNet, unproject
from core.tasks.base import loss_weights
from core.tasks.columns import Column, Kind
from core.tasks.image_inputs import ImageInputs
from core.tasks.mesh_reconstruction.config import MeshReconstructionConfig
from core.tasks.registry import TASKS

DEFAULT_WEIGHTS = {"depth_l1": 1.0, "chamfer": 0.1, "laplacian": 1.0, "edge": 1.0, "semantic_ce": 1.0}


@TASKS.register("mesh_reconstruction")
class MeshReconstructionTask:
    monitor, monitor_mode = "val/depth_mae", "min"
    config_class = MeshReconstructionConfig
    loss_names = tuple(DEFAULT_WEIGHTS)
    columns = [Column("rgb", Kind.IMAGE, (3,)), Column("sparse_depth", Kind.DEPTH_MAP), Column("intrinsics", Kind.CAMERA),
               Column("depth", Kind.DEPTH_MAP), Column("labels", Kind.LABEL_MAP)]

    def __init__(self, config: MeshReconstructionConfig, manifest: dict[str, Any]):
        if config.inputs != ["rgb", "sparse_depth"]:
            raise ValueError(f"task.inputs = {config.inputs}: mesh reconstruction takes rgb and sparse_depth (and the camera)")
        self.inputs = ["rgb", "sparse_depth"]
        self.config = config.mesh
        self.loss_weights = loss_weights(config.loss.weights or DEFAULT_WEIGHTS, self.loss_names, "mesh_reconstruction")
        self.class_names = [c["name"] for c in manifest["classes"]]
        self.colors = np.array([c["color"] for c in manifest["classes"]], dtype=np.uint8)
        self.ignore_index = manifest["ignore_index"]
        stats = manifest["stats"]
        self.majority_class = int(np.argmax(stats["class_pixels"]))
        self.images = ImageInputs(stats)
        self.depth_mean, self.depth_std = float(stats["depth_mean_m"]), float(stats["depth_std_m"])

    def build_model(self) -> nn.Module:
        mesh = self.config
        return MeshReconstructionNet(len(self.class_names), mesh.grid, mesh.stages, mesh.hidden, self.depth_mean, self.depth_std,
                                     mesh.smoothness)

    def split_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> tuple[dict, dict]:
        inputs = {"rgb": self.images.rgb(batch["rgb"]), "sparse": self.images.depth(batch["sparse_depth"], "sparse_depth"),
                  "intrinsics": batch["intrinsics"].float().reshape(-1, 3, 3)}
        targets = {"depth": batch["depth"].float().unsqueeze(1), "labels": batch["labels"].long(), "intrinsics": inputs["intrinsics"]}
        return ({k: v.to(device) for k, v in inputs.items()}, {k: v.to(device) for k, v in targets.items()})

    def losses(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor]:
        terms = {
            "depth_l1": lambda: depth_l1(outputs["depth"], targets["depth"]),
            "chamfer": lambda: mesh_chamfer(outputs["meshes"], targets, self.config.chamfer_points),
            "laplacian": lambda: mesh_laplacian_smoothing(outputs["meshes"].scale_verts(1.0 / self.depth_mean), method="uniform"),
            "edge": lambda: mesh_edge_loss(outputs["meshes"].scale_verts(1.0 / self.depth_mean)),
            "semantic_ce": lambda: cross_entropy(outputs["semantic"], _covered_labels(targets["labels"], outputs, self.ignore_index),
                                                 self.ignore_index),
        }
        return {name: terms[name]() for name in self.loss_weights}

    def new_metrics(self) -> "MeshMetrics":
        return MeshMetrics(self.class_names, self.ignore_index, self.majority_class, self.config.chamfer_points)

    def previews(self, inputs: dict, outputs: dict, targets: dict) -> list[np.ndarray]:
        """RGB | ground-truth depth | rendered depth | ground-truth labels | rendered semantics."""
        rgb = self.images.rgb_image(inputs["rgb"])
        truth, rendered = targets["depth"][:, 0].cpu().numpy(), outputs["depth"][:, 0].detach().cpu().numpy()
        top = max(float(truth.max(initial=0)), 1e-6)
        palette = np.concatenate([self.colors, np.zeros((256 - len(self.colors), 3), np.uint8)])
        labels, predicted = palette[targets["labels"].cpu().numpy()], palette[outputs["semantic"].argmax(1).cpu().numpy()]
        return [np.concatenate([image, _colour(t, top), _colour(r, top), label, guess], axis=1)
                for image, t, r, label, guess in zip(rgb, truth, rendered, labels, predicted)]


    def preview_meshes(self, outputs: dict) -> list[dict[str, np.ndarray]]:
        """Each predicted mesh with its vertices coloured by their most likely class, for TensorBoard's add_mesh."""
        colours = self.colors[outputs["vertex_logits"].argmax(-1).cpu().numpy()]
        return [{"verts": verts.detach().cpu().numpy().astype(np.float32), "faces": faces.cpu().numpy().astype(np.int32),
                 "colors": colour} for verts, faces, colour in zip(outputs["meshes"].verts_list(), outputs["meshes"].faces_list(), colours)]


def depth_l1(rendered: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean absolute depth error in metres over pixels with ground truth; 0 (with a graph) if none has."""
    valid = truth > 0
    if not valid.any():
        return rendered.sum() * 0.0
    return (rendered - truth)[valid].abs().mean()


def truth_points(depth: torch.Tensor, intrinsics: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, count, 3) view-space points from ground-truth depth (every k-th valid pixel), and how many each image has."""
    batch, _, height, width = depth.shape
    points = torch.zeros(batch, count, 3, device=depth.device)
    lengths = torch.zeros(batch, dtype=torch.long, device=depth.device)
    for index, image in enumerate(depth[:, 0]):
        ys, xs = (image > 0).nonzero(as_tuple=True)
        if len(ys) == 0:
            continue
        keep = torch.linspace(0, len(ys) - 1, min(count, len(ys)), device=depth.device).long()
        pixels = torch.stack([xs[keep] + 0.5, ys[keep] + 0.5], -1).float().unsqueeze(0)
        found = unproject(intrinsics[index : index + 1], pixels, image[ys[keep], xs[keep]].unsqueeze(0))[0]
        points[index, : len(found)], lengths[index] = found, len(found)
    return points, lengths


def mesh_chamfer(meshes, targets: dict, count: int, per_image: bool = False) -> torch.Tensor:
    """Chamfer distance (m^2) between points sampled on each mesh and its ground-truth points; images
    without ground truth are left out (a loss of 0 with a graph when no image has any)."""
    truth, lengths = truth_points(targets["depth"], targets["intrinsics"], count)
    scored = lengths > 0
    sampled = sample_points_from_meshes(meshes, count)
    if not scored.any():
        zero = sampled.sum() * 0.0
        return zero.expand(len(lengths)) if per_image else zero
    distances, _ = chamfer_distance(sampled[scored], truth[scored], y_lengths=lengths[scored],
                                    batch_reduction=None if per_image else "mean")
    return distances


def _covered_labels(labels: torch.Tensor, outputs: dict, ignore_index: int) -> torch.Tensor:
    return torch.where(outputs["covered"][:, 0], labels, torch.full_like(labels, ignore_index))


def _colour(values: np.ndarray, top: float) -> np.ndarray:
    return (colormaps["magma"](np.clip(values / top, 0, 1))[..., :3] * 255).astype(np.uint8)


class MeshMetrics:
    """Rendered depth MAE (m), Chamfer distance (m^2, mean over images) and mIoU of the rendered
    semantics, beside the same figures for the initial mesh fitted to the sparse depth (and, for
    mIoU, always predicting the train split's majority class)."""

    def __init__(self, class_names: list[str], ignore_index: int, majority_class: int, chamfer_points: int):
        self.class_names, self.ignore_index, self.majority_class = class_names, ignore_index, majority_class
        self.chamfer_points = chamfer_points
        self.sums = torch.zeros(6, dtype=torch.float64)  # |error| model, |error| initial, pixels, chamfer model, initial, images
        self.confusion = IoUStats(len(class_names), ignore_index)

    def update(self, outputs: dict, targets: dict) -> None:
        truth = targets["depth"]
        valid = truth > 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same points sampled on the same mesh, epoch after epoch
            chamfer = mesh_chamfer(outputs["meshes"], targets, self.chamfer_points, per_image=True)
            initial = mesh_chamfer(outputs["initial_meshes"], targets, self.chamfer_points, per_image=True)
        scored = float((truth.flatten(1) > 0).any(1).sum())
        self.sums += torch.tensor([
            (outputs["depth"] - truth)[valid].abs().sum().item(), (outputs["initial_depth"] - truth)[valid].abs().sum().item(),
            float(valid.sum()), float(chamfer.sum()), float(initial.sum()), scored], dtype=torch.float64)
        self.confusion.update(outputs["semantic"].argmax(1), _covered_labels(targets["labels"], outputs, self.ignore_index))

    def all_reduce(self) -> "MeshMetrics":
        all_reduce_sum(self.sums)
        self.confusion.all_reduce()
        return self

    def compute(self) -> dict[str, float]:
        pixels, images = self.sums[2].item(), self.sums[5].item()
        if pixels == 0:
            raise ValueError("no image of the split has a ground-truth depth pixel; the mesh metrics are undefined")
        semantic = self.confusion.compute(self.class_names)
        return {"depth_mae": self.sums[0].item() / pixels, "chamfer": self.sums[3].item() / images, "miou": semantic["miou"]}

    def baselines(self) -> dict[str, float]:
        pixels, images = self.sums[2].item(), self.sums[5].item()
        return {"initial_mesh_depth_mae": self.sums[1].item() / pixels, "initial_mesh_chamfer": self.sums[4].item() / images,
                "majority_class_miou": constant_prediction_miou(self.confusion.truth_pixels, self.majority_class)}
