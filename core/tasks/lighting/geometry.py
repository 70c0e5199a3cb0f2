"""The lighting task's frames: the camera, the volume in front of and around it, and environment-map directions.

Everything is in the input camera's frame, PyTorch3D's view frame: +X left, +Y up, +Z forward, in
metres. The volume is the cube [-extent, extent]^3 around the camera, `resolution` voxels a side,
indexed (z, y, x) as PyTorch3D's Volumes holds it (voxel [0, 0, 0] is the corner at -extent). A
camera's intrinsics are in pixels of its image with (0, 0) at the top-left corner of the top-left
pixel: a point (x, y, z) lands at column cx - fx x / z, row cy - fy y / z (the +X-left frame makes
image columns run towards -X). An environment map is equirectangular: its rows run from straight
up (+Y) to straight down, its columns from behind (-Z) through +X, forward (+Z, the middle
column) and -X back to behind, so that its middle shows what the camera sees, left and right as in the image.
"""
from __future__ import annotations

import math

import torch


def voxel_size(resolution: int, extent: float) -> float:
    return 2.0 * extent / resolution


def voxel_centres(resolution: int, extent: float) -> torch.Tensor:
    """(R, R, R, 3) xyz of each voxel's centre, indexed (z, y, x)."""
    axis = -extent + (torch.arange(resolution, dtype=torch.float32) + 0.5) * voxel_size(resolution, extent)
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([x, y, z], -1)


def equirect_directions(height: int, width: int) -> torch.Tensor:
    """(H, W, 3) unit directions of the pixels' centres of an environment map (see the module's docstring)."""
    polar = (torch.arange(height, dtype=torch.float64) + 0.5) / height * math.pi
    azimuth = (torch.arange(width, dtype=torch.float64) + 0.5) / width * 2 * math.pi - math.pi
    polar, azimuth = torch.meshgrid(polar, azimuth, indexing="ij")
    return torch.stack([-torch.sin(polar) * torch.sin(azimuth), torch.cos(polar), torch.sin(polar) * torch.cos(azimuth)], -1).float()


def pixel_directions(intrinsics: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H, W, 3) directions through the pixels' centres, scaled to z = 1 (a length along one is a depth)."""
    rows = torch.arange(height, dtype=torch.float32, device=intrinsics.device) + 0.5
    cols = torch.arange(width, dtype=torch.float32, device=intrinsics.device) + 0.5
    rows, cols = torch.meshgrid(rows, cols, indexing="ij")
    fx, fy, cx, cy = (intrinsics[:, i, j].view(-1, 1, 1) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    x, y = -(cols - cx) / fx, -(rows - cy) / fy
    return torch.stack([x, y, torch.ones_like(x)], -1)


def project(points: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """grid_sample positions (B, N, 2) of points (B, N, 3) in an image of height x width (align_corners=False),
    and their depths (B, N); a point at or behind the camera gets a position far outside the image."""
    depth = points[..., 2]
    safe = torch.where(depth > 1e-3, depth, torch.full_like(depth, 1e-3))
    fx, fy, cx, cy = (intrinsics[:, i, j].view(-1, 1) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    col = cx - fx * points[..., 0] / safe
    row = cy - fy * points[..., 1] / safe
    grid = torch.stack([2 * col / width - 1, 2 * row / height - 1], -1)
    return torch.where((depth > 1e-3)[..., None], grid, torch.full_like(grid, 4.0)), depth

