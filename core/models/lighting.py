"""Lighthouse's idea on one image and its depth: a 2D encoder, its features lifted into a voxel grid around the camera, a 3D network to an RGBA volume.

Each voxel (core.tasks.lighting.geometry) is projected into the image: it takes the encoder's
feature there, the feature averaged over the whole image (the room's tint and brightness reach the
voxels no pixel sees), the seen depth minus its own depth in voxels (positive in the free space in front
of the surface, negative behind it; clipped to +-3), whether the image sees it at all, and its
position. A small 3D U-Net turns that into the volume, completing what the camera does not see:
alpha (sigmoid), a reflected colour (sigmoid, at most white), an emitter share (sigmoid; the
`split` loss supervises it) and an emitted colour (softplus, HDR); the voxel's colour is the
reflected and the emitted colour mixed by the emitter share. Without depth in the inputs the
depth feature is absent. The forward then renders the volume where the targets were seen: the
environment map at each probe, the input view and the novel view (core.tasks.lighting.rendering).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.tasks.lighting import rendering
from core.tasks.lighting.geometry import project, voxel_centres, voxel_size

DEPTH_CLIP = 3.0  # voxels: beyond this the seen depth tells a voxel only "in front" or "behind"
EMITTER_PRIOR = -4.0  # the emitter share's starting logit: sigmoid(-4) = 0.018


class LightingVolumeNet(nn.Module):
    """inputs: {"images" (B, C, H, W), "intrinsics" (B, 3, 3), "probes" (B, P, 3), "novel_camera" (B, 4, 3), and
    "depth" (B, H, W) metres with depth among the inputs}."""

    def __init__(self, in_channels: int, features: int, channels: int, resolution: int, extent: float, use_depth: bool,
                 samples: int, view_size: int, envmap_height: int):
        super().__init__()
        self.encoder = nn.Sequential(_conv2d(in_channels, features, 1), _conv2d(features, features, 2), _conv2d(features, features, 1))
        self.use_depth, self.extent, self.resolution = use_depth, extent, resolution
        self.samples, self.view_size, self.envmap_height = samples, view_size, envmap_height
        self.register_buffer("centres", voxel_centres(resolution, extent).view(1, -1, 3), persistent=False)
        self.volume_net = VolumeUNet(2 * features + 4 + int(use_depth), channels, 8)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raw = self.volume_net(self.lift(inputs))
        alpha, reflected, share, emitted = torch.sigmoid(raw[:, :1]), torch.sigmoid(raw[:, 1:4]), raw[:, 4:5], F.softplus(raw[:, 5:])
        emitter = torch.sigmoid(share)
        colour = (1 - emitter) * reflected + emitter * emitted
        return {"alpha": alpha, "colour": colour, "emitter": emitter, **self.render(colour, alpha, inputs)}

    def lift(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, C, R, R, R): each voxel's image feature, the whole image's, its seen-depth offset, visibility and position."""
        images = inputs["images"]
        features = self.encoder(images)
        batch, (height, width) = len(images), images.shape[-2:]
        centres = self.centres.expand(batch, -1, -1)
        grid, depth = project(centres, inputs["intrinsics"], height, width)
        seen = ((grid.abs() <= 1).all(-1) & (depth > 0)).to(features.dtype)
        context = features.mean((2, 3))[..., None].expand(-1, -1, centres.shape[1])
        parts = [_sample(features, grid) * seen[:, None], context, seen[:, None], (centres / self.extent).transpose(1, 2).to(features.dtype)]
        if self.use_depth:
            seen_depth = _sample(inputs["depth"][:, None].to(features.dtype), grid, mode="nearest")[:, 0]
            offset = ((seen_depth - depth) / voxel_size(self.resolution, self.extent)).clamp(-DEPTH_CLIP, DEPTH_CLIP)
            parts.append((offset * seen)[:, None])
        r = self.resolution
        return torch.cat(parts, 1).view(batch, -1, r, r, r)

    def render(self, colour: torch.Tensor, alpha: torch.Tensor, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        volume = rendering.volumes(colour.float(), alpha.float(), self.extent)
        scale = self.view_size / inputs["images"].shape[-1]
        intrinsics = inputs["intrinsics"].float() * torch.tensor([[scale], [scale], [1.0]], device=alpha.device)
        own = rendering.camera_view(volume, intrinsics, self.view_size, self.samples, self.extent)
        novel = rendering.camera_view(volume, intrinsics, self.view_size, self.samples, self.extent, inputs["novel_camera"].float())
        envmaps = rendering.environment_maps(volume, inputs["probes"].float(), self.envmap_height, self.samples, self.extent)
        return {"envmaps": envmaps, "self_view": own["colour"], "novel_view": novel["colour"], "view_alphas": own["alphas"],
                "view_depths": own["depths"]}


class VolumeUNet(nn.Module):
    """Two halvings and back, with skips: R -> R/2 -> R/4 -> R."""

    def __init__(self, in_channels: int, channels: int, out_channels: int):
        super().__init__()
        wide = 2 * channels
        self.top = nn.Sequential(_conv3d(in_channels, channels, 1), _conv3d(channels, channels, 1))
        self.middle = nn.Sequential(_conv3d(channels, wide, 2), _conv3d(wide, wide, 1))
        self.bottom = nn.Sequential(_conv3d(wide, wide, 2), _conv3d(wide, wide, 1))
        self.up_middle = _conv3d(2 * wide, wide, 1)
        self.up_top = _conv3d(wide + channels, channels, 1)
        self.out = nn.Conv3d(channels, out_channels, 1)
        with torch.no_grad():
            self.out.bias[4] = EMITTER_PRIOR  # emitters are rare: a voxel starts as a reflector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = self.top(x)
        middle = self.middle(top)
        bottom = self.bottom(middle)
        middle = self.up_middle(torch.cat([F.interpolate(bottom, size=middle.shape[-3:], mode="trilinear"), middle], 1))
        return self.out(self.up_top(torch.cat([F.interpolate(middle, size=top.shape[-3:], mode="trilinear"), top], 1)))


def _sample(maps: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """(B, C, N): maps (B, C, H, W) read at grid positions (B, N, 2), zero outside."""
    return F.grid_sample(maps, grid[:, :, None].to(maps.dtype), mode=mode, padding_mode="zeros", align_corners=False)[..., 0]


def _conv2d(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.GroupNorm(min(8, out_channels), out_channels),
                         nn.ReLU(inplace=True))


def _conv3d(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(in_channels, out_channels, 3, stride, 1), nn.GroupNorm(min(8, out_channels), out_channels),
                         nn.ReLU(inplace=True))
