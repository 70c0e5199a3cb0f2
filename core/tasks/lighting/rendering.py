"""Rendering an RGBA volume through PyTorch3D's volume machinery: environment maps at probes, and camera views.

The volume is a pytorch3d.structures.Volumes over the cube of core.tasks.lighting.geometry (its
corner voxels' centres at -extent + half a voxel and extent - half a voxel, align_corners=True).
Rays are a RayBundle; VolumeSampler reads the volume trilinearly at each ray's sample points (zero
outside the cube) and EmissionAbsorptionRaymarcher composites them front to back: a sample's
alpha (the volume's density, kept in [0, 1]) is its opacity, whatever the step, so a voxel of alpha
1 hides everything behind it. Camera rays point through pixel centres with z = 1 in their camera's
frame, so the lengths along them are depths and their sample points lie on fronto-parallel planes.
"""
from __future__ import annotations

import math

import torch
from pytorch3d.renderer import EmissionAbsorptionRaymarcher, RayBundle, VolumeSampler
from pytorch3d.structures import Volumes

from core.tasks.lighting.geometry import equirect_directions, pixel_directions, voxel_size

NEAR = 0.05  # metres: where a camera ray's first sample lies


def volumes(colour: torch.Tensor, alpha: torch.Tensor, extent: float) -> Volumes:
    """colour (B, C, R, R, R) and alpha (B, 1, R, R, R) in [0, 1], indexed (z, y, x), as PyTorch3D volumes."""
    return Volumes(densities=alpha, features=colour, voxel_size=voxel_size(alpha.shape[-1], extent))


def march(volume: Volumes, origins: torch.Tensor, directions: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rays (B, N, 3) sampled at lengths (B, N, K): their composite colour (B, N, C), opacity (B, N), and each
    sample's alpha (B, N, K)."""
    bundle = RayBundle(origins=origins, directions=directions, lengths=lengths, xys=origins[..., :2])
    alphas, features = VolumeSampler(volume, sample_mode="bilinear")(bundle)
    alphas = alphas.clamp(0.0, 1.0)  # trilinear weights of values in [0, 1] stay there, up to rounding
    composite = EmissionAbsorptionRaymarcher()(alphas, features)
    return {"colour": composite[..., :-1], "opacity": composite[..., -1], "alphas": alphas[..., 0]}


def lengths_to(far: float, count: int, rays: tuple[int, int], start: float, device: torch.device) -> torch.Tensor:
    """(B, N, count) evenly spaced lengths from start to far."""
    return torch.linspace(start, far, count, device=device).expand(*rays, count)


def reach(extent: float, origins: torch.Tensor) -> float:
    """How far a ray from any of origins can still be inside the volume."""
    return math.sqrt(3.0) * extent + float(origins.detach().norm(dim=-1).max())


def environment_maps(volume: Volumes, probes: torch.Tensor, height: int, samples: int, extent: float) -> torch.Tensor:
    """(B, P, H, 2H, C) the volume seen from each probe (B, P, 3) in every direction."""
    batch, count = probes.shape[:2]
    directions = equirect_directions(height, 2 * height).to(probes.device).view(1, 1, -1, 3)
    origins = probes[:, :, None].expand(-1, -1, directions.shape[2], -1).reshape(batch, -1, 3)
    directions = directions.expand(batch, count, -1, -1).reshape(batch, -1, 3)
    lengths = lengths_to(reach(extent, probes), samples, origins.shape[:2], 0.0, probes.device)
    colour = march(volume, origins, directions, lengths)["colour"]
    return colour.view(batch, count, height, 2 * height, -1)


def camera_view(volume: Volumes, intrinsics: torch.Tensor, size: int, samples: int, extent: float,
                pose: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The volume seen by a camera of intrinsics (B, 3, 3) (pixels of a size x size image): the input camera, or
    with pose (B, 4, 3) (rows R then T: X_camera = X R + T) another. colour (B, S, S, C), alphas (B, S, S, K) and
    the sample depths (K,)."""
    batch = len(intrinsics)
    directions = pixel_directions(intrinsics, size, size).reshape(batch, -1, 3)
    origins = torch.zeros_like(directions)
    if pose is not None:
        rotation, translation = pose[:, :3], pose[:, 3]
        directions = directions @ rotation.transpose(1, 2)
        origins = (-translation[:, None] @ rotation.transpose(1, 2)).expand(-1, directions.shape[1], -1)
    depths = torch.linspace(NEAR, reach(extent, origins[:, :1]), samples, device=intrinsics.device)
    rendered = march(volume, origins, directions, depths.expand(batch, directions.shape[1], samples))
    return {"colour": rendered["colour"].view(batch, size, size, -1), "alphas": rendered["alphas"].view(batch, size, size, samples),
            "depths": depths}
