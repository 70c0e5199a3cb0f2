"""Volumetric lighting (Lighthouse): one image and its depth -> an RGBA volume -> environment maps anywhere in the scene.

The network (core.models.lighting) predicts the volume in the camera's frame and renders it where
the targets were seen. Losses, each on or off by weight, named as the team's ablation table names them:
- `split`: the emitter share of each voxel against the true volume's (squared error, the room's
  solid voxels and its emitter voxels weighed as two equal halves). It separates what emits from
  what reflects, so that the HDR part of a colour sits where the lights are.
- `layer`: along each ray of the input view, sampled on planes at increasing depth, the alpha of
  every plane the ray crosses before the true depth (minus a voxel) should be 0 and the opacity
  gathered by a voxel past it should be 1 (squared errors). The depth map alone says this much: free
  space in front of each seen surface, and the surface itself.
- `direct`: the predicted volume against the true one: alpha (squared error) and colour where the
  truth is solid (squared error weighted by the true alpha). It is the only loss that needs 3D
  ground truth.
- `self_view`: the input view rendered from the volume against the input image (squared error; the
  render clipped at white, as the image is). It ties the volume to what was seen, with no 3D truth.
- `envmap`: the environment map rendered at each probe against the true HDR map (squared error): the
  task's aim, supervised by renders alone.
- `novel_view`: the view from the nearby second pose rendered against its image, as self_view: it
  makes the volume hold its geometry where a single view cannot tell.
- `ssim`: 1 - SSIM on the renders (the input view, the novel view and the environment maps clipped
  to [0, 1]), averaged: structure rather than mean colour.
Each is zero for a perfect prediction. The rendered views are compared at the task's view size,
the images averaged down to it.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.evaluation import lpips
from core.evaluation.lighting_metrics import LightingMetrics, novel_truth, ssim
from core.models.lighting import LightingVolumeNet
from core.tasks.base import loss_weights
from core.tasks.columns import Column, Kind
from core.tasks.image_inputs import ImageInputs
from core.tasks.lighting.config import LightingConfig
from core.tasks.lighting.geometry import voxel_size
from core.tasks.registry import TASKS

DEFAULT_WEIGHTS = {"split": 0.0, "layer": 0.0, "direct": 0.0, "self_view": 0.0, "envmap": 1.0, "novel_view": 0.0, "ssim": 0.0}
PREVIEW_SIDE = 64


@TASKS.register("lighting")
class LightingTask:
    monitor, monitor_mode = "val/envmap_rmse", "min"
    metric_modes = {"val/envmap_rmse": "min", "val/envmap_psnr": "max", "val/envmap_ssim": "max", "val/novel_psnr": "max",
                    "val/novel_ssim": "max", "val/novel_lpips": "min"}  # jobs.report marks each one's best by these
    config_class = LightingConfig
    loss_names = tuple(DEFAULT_WEIGHTS)

    def __init__(self, config: LightingConfig, manifest: dict[str, Any]):
        if "mean_envmap" not in manifest["stats"]:
            raise ValueError(f"data set {manifest.get('name')!r} has no environment maps (no mean_envmap in its manifest): the "
                             "lighting task trains on data.synthetic.kind=rooms or a converter that writes the same columns")
        self.config, self.inputs = config.lighting, list(config.inputs)
        self.loss_weights = loss_weights(config.loss.weights or DEFAULT_WEIGHTS, self.loss_names, "lighting")
        self.extent, self.stored_resolution = manifest["volume"]["extent_m"], manifest["volume"]["resolution"]
        envmap = manifest["envmap"]
        self.envmap_shape = (envmap["probes"], envmap["height"], envmap["width"], 3)
        self.columns = [Column("rgb", Kind.IMAGE, (3,)), Column("depth", Kind.DEPTH_MAP), Column("intrinsics", Kind.CAMERA),
                        Column("rgb_novel", Kind.IMAGE, (3,)), Column("novel_camera", Kind.MATRIX, (4, 3)),
                        Column("probes", Kind.MATRIX, (envmap["probes"], 3)),
                        Column("envmaps", Kind.MATRIX, (envmap["probes"], envmap["height"] * envmap["width"] * 3)),
                        Column("volume", Kind.MATRIX, (self.stored_resolution**3, 5))]
        self.images = ImageInputs(manifest["stats"])
        self.mean_envmap = torch.tensor(manifest["stats"]["mean_envmap"], dtype=torch.float32)
        self.lpips_missing = lpips.unavailable_reason()
        if self.lpips_missing:
            print(self.lpips_missing, file=sys.stderr)

    def build_model(self) -> nn.Module:
        c = self.config
        return LightingVolumeNet(3 + len(self.inputs) - 1, c.features, c.volume_channels, c.resolution, self.extent,
                                 "depth" in self.inputs, c.samples_per_ray, c.view_size, self.envmap_shape[1])

    def split_batch(self, batch: dict[str, torch.Tensor], device: torch.device) -> tuple[dict, dict]:
        depth = ImageInputs.depth(batch["depth"], "depth")
        images = [self.images.rgb(batch["rgb"])] + ([depth / self.extent] if "depth" in self.inputs else [])
        inputs = {"images": torch.cat(images, 1), "intrinsics": batch["intrinsics"].float(), "probes": batch["probes"].float(),
                  "novel_camera": batch["novel_camera"].float()}
        if "depth" in self.inputs:
            inputs["depth"] = depth[:, 0]
        r = self.stored_resolution
        targets = {"envmaps": batch["envmaps"].float().view(-1, *self.envmap_shape), "rgb": batch["rgb"], "rgb_novel": batch["rgb_novel"],
                   "depth": depth[:, 0], "volume": batch["volume"].float().view(-1, r, r, r, 5).permute(0, 4, 1, 2, 3)}
        return ({k: v.to(device) for k, v in inputs.items()}, {k: v.to(device) for k, v in targets.items()})

    def losses(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor]:
        size = outputs["self_view"].shape[1]
        truth = _resampled(targets["volume"], outputs["alpha"].shape[-1])
        terms = {"split": lambda: _split(outputs["emitter"].float(), truth),
                 "layer": lambda: self._layer(outputs, targets),
                 "direct": lambda: _direct(outputs, truth),
                 "self_view": lambda: F.mse_loss(_as_photo(outputs["self_view"]), novel_truth(targets["rgb"], size)),
                 "envmap": lambda: F.mse_loss(outputs["envmaps"].float(), targets["envmaps"]),
                 "novel_view": lambda: F.mse_loss(_as_photo(outputs["novel_view"]), novel_truth(targets["rgb_novel"], size)),
                 "ssim": lambda: _ssim_loss(outputs, targets, size)}
        return {name: terms[name]() for name in self.loss_weights}

    def _layer(self, outputs: dict, targets: dict) -> torch.Tensor:
        size = outputs["view_alphas"].shape[1]
        depth = F.interpolate(targets["depth"][:, None], size=(size, size), mode="nearest")[:, 0, ..., None]
        planes, alphas = outputs["view_depths"], outputs["view_alphas"].float()
        margin = voxel_size(outputs["alpha"].shape[-1], self.extent)
        seen = depth > 0
        free = (planes < depth - margin) & seen
        behind = (planes <= depth + margin) & seen
        transmittance = torch.prod(torch.where(behind, 1 - alphas, torch.ones_like(alphas)), dim=-1)
        free_error = (alphas**2 * free).sum() / free.sum().clamp(min=1)
        return free_error + (transmittance**2 * seen[..., 0]).sum() / seen.sum().clamp(min=1)

    def new_metrics(self) -> LightingMetrics:
        return LightingMetrics(self.mean_envmap, None if self.lpips_missing else lpips.Lpips())

    def previews(self, inputs: dict, outputs: dict, targets: dict) -> list[np.ndarray]:
        """input | true environment map over the predicted one | true novel view | rendered novel view | the volume's
        alpha averaged along the camera's axis, each PREVIEW_SIDE pixels high."""
        panels = [self.images.rgb_image(inputs["images"][:, :3]).astype(np.float32) / 255.0,
                  torch.cat([targets["envmaps"][:, 0], outputs["envmaps"][:, 0]], 1),
                  targets["rgb_novel"].float() / 255.0, outputs["novel_view"],
                  outputs["alpha"][:, 0].mean(1).flip(1, 2)[..., None].expand(-1, -1, -1, 3)]
        shown = [_panel(torch.as_tensor(panel).detach().float().cpu()) for panel in panels]
        return list(np.concatenate(shown, axis=2))


def _resampled(volume: torch.Tensor, resolution: int) -> torch.Tensor:
    """The stored volume (B, 5, R, R, R) on the model's grid (both cover the same cube, centre to centre)."""
    if volume.shape[-1] == resolution:
        return volume
    return F.interpolate(volume, size=(resolution,) * 3, mode="trilinear", align_corners=False)


def _split(emitter: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    error = (emitter - truth[:, 4:5]) ** 2
    solid, emitting = truth[:, 3:4] > 0, truth[:, 4:5] > 0
    return (error * solid).sum() / solid.sum().clamp(min=1) + (error * emitting).sum() / emitting.sum().clamp(min=1)


def _direct(outputs: dict, truth: torch.Tensor) -> torch.Tensor:
    alpha = truth[:, 3:4]
    colour_error = (alpha * (outputs["colour"].float() - truth[:, :3]) ** 2).mean()
    return F.mse_loss(outputs["alpha"].float(), alpha) + colour_error


def _as_photo(render: torch.Tensor) -> torch.Tensor:
    return render.float().clamp(max=1.0)


def _ssim_loss(outputs: dict, targets: dict, size: int) -> torch.Tensor:
    envmaps = outputs["envmaps"].float().flatten(0, 1).clamp(0, 1)
    pairs = [(_as_photo(outputs["self_view"]), novel_truth(targets["rgb"], size)),
             (_as_photo(outputs["novel_view"]), novel_truth(targets["rgb_novel"], size)),
             (envmaps, targets["envmaps"].flatten(0, 1).clamp(0, 1))]
    return torch.stack([(1 - ssim(predicted, truth)).mean() for predicted, truth in pairs]).mean()


def _panel(images: torch.Tensor) -> np.ndarray:
    """(B, h, w, 3) values in [0, 1] (HDR clipped) -> (B, PREVIEW_SIDE, PREVIEW_SIDE * w / h, 3) uint8, nearest pixels."""
    height, width = images.shape[1:3]
    size = (PREVIEW_SIDE, PREVIEW_SIDE * width // height)
    scaled = F.interpolate(images.permute(0, 3, 1, 2), size=size, mode="nearest").permute(0, 2, 3, 1)
    return (scaled.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
