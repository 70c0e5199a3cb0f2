"""PIFu: an image encoder, and for each query point the feature at its projection plus its depth through an MLP to occupancy.

The encoder is a small hourglass (PIFu's stacked hourglass, one stack): a stride-2 stem, `levels`
downsamplings and the way back up with skip connections, giving a feature map at half the image's
resolution. A point's feature is sampled at its projection by grid_sample (bilinear, the image's
edges at -1 and 1, align_corners=False); its normalised depth and, with the skeleton prior (PAMIR,
ICON), its signed distance to the sample's skeleton join it at the MLP's input. A point whose
projection falls outside the image is outside the body: the camera frames the whole box, so such a
point cannot be inside it, and its occupancy is 0 by definition rather than whatever zero padding would give.

In eval mode the forward also evaluates the whole box on a grid (chunk by chunk) for the surface.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.tasks.implicit.body_field import BONES, grid_points

OUTSIDE_LOGIT = -20.0  # sigmoid(-20) = 2e-9: a point outside the image


class Hourglass(nn.Module):
    def __init__(self, in_channels: int, features: int, levels: int):
        super().__init__()
        self.stem = _block(in_channels, features, stride=2)
        self.down = nn.ModuleList([_block(features, features, stride=2) for _ in range(levels)])
        self.up = nn.ModuleList([_block(features, features, stride=1) for _ in range(levels)])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images)
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        for up, skip in zip(self.up, reversed(skips)):
            x = up(F.interpolate(x, size=skip.shape[-2:], mode="nearest") + skip)
        return x


class PixelAlignedNet(nn.Module):
    """inputs: {"images" (B, C, H, W), "points" (B, N, 3), "camera" (B, 3, 4), "joints" (B, J, 3) with the prior}."""

    def __init__(self, in_channels: int, features: int, levels: int, mlp: list[int], prior: bool, resolution: int, chunk: int):
        super().__init__()
        self.encoder = Hourglass(in_channels, features, levels)
        self.prior, self.resolution, self.chunk = prior, resolution, chunk
        self.mlp = SkipMLP(features + 1 + int(prior), mlp)
        self.register_buffer("bones", torch.tensor([[a, b] for a, b, _ in BONES]), persistent=False)
        self.register_buffer("bone_radii", torch.tensor([r for _, _, r in BONES]), persistent=False)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features = self.encoder(inputs["images"])
        logits = self.query(features, inputs["points"], inputs["camera"], inputs.get("joints"))
        out = {"logits": logits, "occupancy": torch.sigmoid(logits)}
        if not self.training:
            out["grid"] = self.grid(features, inputs["camera"], inputs.get("joints"))
        return out

    def query(self, features: torch.Tensor, points: torch.Tensor, camera: torch.Tensor, joints: torch.Tensor | None) -> torch.Tensor:
        """(B, N) occupancy logits of points (B, N, 3)."""
        projected = points @ camera[:, :, :3].transpose(1, 2) + camera[:, None, :, 3]
        xy, depth = projected[..., :2], projected[..., 2:]
        sampled = pixel_aligned(features, xy)
        parts = [sampled, depth.transpose(1, 2)]
        if self.prior:
            parts.append(skeleton_sdf(points, joints, self.bones, self.bone_radii).unsqueeze(1))
        logits = self.mlp(torch.cat(parts, 1).to(sampled.dtype))[:, 0]
        in_image = (xy.abs() <= 1).all(-1)
        return torch.where(in_image, logits, torch.full_like(logits, OUTSIDE_LOGIT))

    @torch.no_grad()
    def grid(self, features: torch.Tensor, camera: torch.Tensor, joints: torch.Tensor | None) -> torch.Tensor:
        """(B, R, R, R) occupancy over the box [-1, 1]^3, indexed z, y, x (marching cubes' order)."""
        r = self.resolution
        lattice = torch.from_numpy(grid_points(r)).to(features.device, torch.float32)
        batch = len(features)
        per_call = max(1, self.chunk // batch)
        logits = [self.query(features, part.expand(batch, -1, -1), camera, joints) for part in lattice.split(per_call)]
        return torch.sigmoid(torch.cat(logits, 1).float()).view(batch, r, r, r)


class SkipMLP(nn.Module):
    """PIFu's occupancy MLP (1x1 convolutions over points): every layer after the first sees the point's
    input again beside the previous layer's output, so the image feature is not washed out with depth."""

    def __init__(self, in_channels: int, hidden: list[int]):
        super().__init__()
        widths = [0, *hidden]
        self.layers = nn.ModuleList([nn.Conv1d(in_channels + a, b, 1) for a, b in zip(widths[:-1], widths[1:])])
        self.out = nn.Conv1d(in_channels + hidden[-1], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = None
        for layer in self.layers:
            h = F.leaky_relu(layer(x if h is None else torch.cat([x, h], 1)), 0.1)
        return self.out(torch.cat([x, h], 1))


def pixel_aligned(features: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """(B, C, N): the feature map (B, C, h, w) sampled bilinearly at grid positions xy (B, N, 2), x right and y down in [-1, 1]."""
    return F.grid_sample(features, xy.unsqueeze(2).to(features.dtype), mode="bilinear", padding_mode="border",
                         align_corners=False)[..., 0]


def skeleton_sdf(points: torch.Tensor, joints: torch.Tensor, bones: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """(B, N) signed distance of points (B, N, 3) to the skeleton's bones as capsules of a body model's radii."""
    a, b = joints[:, bones[:, 0]], joints[:, bones[:, 1]]  # (B, K, 3)
    along = b - a
    offset = points.unsqueeze(2) - a.unsqueeze(1)  # (B, N, K, 3)
    t = ((offset * along.unsqueeze(1)).sum(-1) / (along * along).sum(-1).clamp(min=1e-12).unsqueeze(1)).clamp(0, 1)
    nearest = a.unsqueeze(1) + t.unsqueeze(-1) * along.unsqueeze(1)
    return ((points.unsqueeze(2) - nearest).norm(dim=-1) - radii).min(-1).values


def _block(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.GroupNorm(min(8, out_channels), out_channels),
                         nn.ReLU(inplace=True), nn.Conv2d(out_channels, out_channels, 3, 1, 1), nn.ReLU(inplace=True))
