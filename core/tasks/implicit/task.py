"""Pixel-aligned implicit surfaces (PIFu, with PAMIR/ICON's body prior): one image (and normal maps) -> occupancy -> a mesh.

Losses, each on or off by weight: `mse` (PIFu's) between the predicted occupancy and the exact
labels of the training points, and `bce`, binary cross-entropy on the same, from the logits.

Training points are drawn per epoch on the data side (draw_train, in the reader's collate): near
the surface and uniform in the box, from (seed, epoch, sample), so a resumed epoch draws exactly
the points it drew before. Validation scores on the points stored with each sample. With
prior: skeleton_sdf, the skeleton's joints are moved by N(0, prior_noise) metres, drawn from the
sample alone (an estimated body fit is wrong the same way every time it is looked at).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.augmentation.sample_key import SAMPLE_KEY
from core.evaluation import surfaces
from core.evaluation.implicit_metrics import ImplicitMetrics
from core.models.implicit import PixelAlignedNet
from core.tasks.base import loss_weights
from core.tasks.columns import Column, Kind
from core.tasks.image_inputs import ImageInputs
from core.tasks.implicit.body_field import JOINTS, PRIMITIVE_WIDTH, draw_points
from core.tasks.implicit.config import ImplicitConfig
from core.tasks.registry import TASKS

DEFAULT_WEIGHTS = {"mse": 1.0, "bce": 0.0}
PRIOR_STREAM = 7919  # keeps the prior's noise apart from every other draw seeded by a sample key


@TASKS.register("implicit")
class ImplicitTask:
    monitor, monitor_mode = "val/chamfer_cm", "min"
    config_class = ImplicitConfig
    loss_names = tuple(DEFAULT_WEIGHTS)
    exported = "mesh"

    def __init__(self, config: ImplicitConfig, manifest: dict[str, Any]):
        if "mean_occupancy" not in manifest["stats"]:
            raise ValueError(f"data set {manifest.get('name')!r} has no bodies (no mean occupancy in its manifest): the implicit "
                             "task trains on data.synthetic.kind=bodies or a converter that writes the same columns")
        self.config, self.inputs = config.implicit, list(config.inputs)
        self.loss_weights = loss_weights(config.loss.weights or DEFAULT_WEIGHTS, self.loss_names, "implicit")
        stored, parts = manifest["points_per_sample"], manifest["body_parts"]
        self.columns = [Column(name, Kind.IMAGE, (3,)) for name in dict.fromkeys(["rgb", "normal_front", *self.inputs])] + [
            Column("mask", Kind.LABEL_MAP), Column("camera", Kind.MATRIX, (3, 4)), Column("joints", Kind.MATRIX, (len(JOINTS), 3)),
            Column("primitives", Kind.MATRIX, (parts, PRIMITIVE_WIDTH)), Column("surface_points", Kind.MATRIX, (stored, 3)),
            Column("points", Kind.MATRIX, (stored, 3)), Column("occupancy", Kind.VECTOR, (stored,))]
        self.images = ImageInputs(manifest["stats"])
        self.mean_occupancy = manifest["stats"]["mean_occupancy"]
        self.image_size = manifest["image_size"][0]
        self.baseline_cache: dict[int, torch.Tensor] = {}  # see ImplicitMetrics

    def build_model(self) -> nn.Module:
        c = self.config
        return PixelAlignedNet(3 * len(self.inputs), c.features, c.levels, c.mlp, c.prior == "skeleton_sdf", c.resolution, c.chunk)

    def draw_train(self, batch: dict[str, np.ndarray], seed: int, epoch: int) -> dict[str, np.ndarray]:
        """The batch with this epoch's training points in place of the stored ones (see the module's docstring)."""
        drawn = [draw_points(surface, primitives, np.random.default_rng([seed, epoch, int(key) & 0x7FFFFFFFFFFFFFFF]),
                             self.config.points, self.config.sigma)
                 for surface, primitives, key in zip(batch["surface_points"], batch["primitives"], batch[SAMPLE_KEY])]
        return {**batch, "points": np.stack([p for p, _ in drawn]), "occupancy": np.stack([o for _, o in drawn])}

    def split_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> tuple[dict, dict]:
        images = [self.images.rgb(batch["rgb"])] + [_normals(batch[name]).permute(0, 3, 1, 2) for name in self.inputs[1:]]
        camera = batch["camera"].float()
        inputs = {"images": torch.cat(images, 1), "points": batch["points"].float(), "camera": camera}
        if self.config.prior == "skeleton_sdf":
            inputs["joints"] = batch["joints"].float() + self._prior_noise(batch[SAMPLE_KEY], batch["joints"].shape[1:])
        targets = {"occupancy": batch["occupancy"].float(), "surface_points": batch["surface_points"].float(),
                   "normal_front": _normals(batch["normal_front"]), "mask": batch["mask"].long(), "camera": camera,
                   "points": inputs["points"], "key": batch[SAMPLE_KEY]}
        return ({k: v.to(device) for k, v in inputs.items()}, {k: v.to(device) for k, v in targets.items()})

    def _prior_noise(self, keys: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        noise = [np.random.default_rng([PRIOR_STREAM, int(key) & 0x7FFFFFFFFFFFFFFF]).normal(0.0, self.config.prior_noise, shape)
                 for key in keys.tolist()]
        return torch.from_numpy(np.stack(noise)).float()

    def losses(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor]:
        logits, truth = outputs["logits"].float(), targets["occupancy"]
        terms = {"mse": lambda: F.mse_loss(torch.sigmoid(logits), truth),
                 "bce": lambda: F.binary_cross_entropy_with_logits(logits, truth)}
        return {name: terms[name]() for name in self.loss_weights}

    def new_metrics(self) -> ImplicitMetrics:
        return ImplicitMetrics(self.mean_occupancy, self.config.resolution, self.config.metric_points, self.baseline_cache)

    def previews(self, inputs: dict, outputs: dict, targets: dict) -> list[np.ndarray]:
        """RGB | true front normals | normals of the reconstruction, as the camera sees them."""
        rgb = self.images.rgb_image(inputs["images"][:, :3])
        truth = _normal_image(targets["normal_front"].cpu())
        predicted = [_normal_image(surfaces.seen_normals(*mesh, image_size=self.image_size)[None])[0]
                     for mesh in surfaces.reconstructions(outputs)]
        return [np.concatenate([image, t, p], axis=1) for image, t, p in zip(rgb, truth, predicted)]

    def preview_meshes(self, outputs: dict) -> list[dict[str, np.ndarray]]:
        """Each reconstruction for TensorBoard's add_mesh, its vertices coloured by their normals."""
        shown = []
        for verts, faces in surfaces.reconstructions(outputs):
            if surfaces.is_empty(verts, faces):
                continue
            normals = surfaces.vertex_normals(verts, faces)
            shown.append({"verts": verts.numpy().astype(np.float32), "faces": faces.numpy().astype(np.int32),
                          "colors": ((normals.numpy() + 1) * 127.5).astype(np.uint8)})
        return shown

    def exported_meshes(self, outputs: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return surfaces.reconstructions(outputs)


def _normals(values: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 normal maps -> unit vectors (the zero normal where none was seen)."""
    normals = values.float() / 127.5 - 1.0
    length = normals.norm(dim=-1, keepdim=True)
    return torch.where(length > 0.5, normals / length.clamp(min=1e-6), torch.zeros_like(normals))


def _normal_image(normals: torch.Tensor) -> np.ndarray:
    return ((normals.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
