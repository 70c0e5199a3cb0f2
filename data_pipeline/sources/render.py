"""Render a terrain Scene from aerial cameras with PyTorch3D's mesh rasterizer.

One rasterization gives, per pixel, the face hit and its camera-space depth; RGB (flat face colour
under a sun), semantic labels and dense depth are all read from it, so the three always agree.
Cameras follow PyTorch3D's conventions (FoVPerspectiveCameras, world-to-view X_view = X_world R + T,
+X left and +Y up in NDC); the stored intrinsics K are in pixels of the rendered image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pytorch3d.renderer import FoVPerspectiveCameras, MeshRasterizer, RasterizationSettings, look_at_view_transform
from pytorch3d.structures import Meshes

from data_pipeline.sources.terrain import METRES_PER_UNIT, Scene

FOV_DEGREES = 40.0
IGNORE_LABEL = 255
LIDAR_ROW_STEP = 3
LIDAR_KEEP = 0.15
LIDAR_NOISE_M = 0.05


@dataclass(frozen=True)
class View:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres, 0 where nothing was hit
    sparse_depth: np.ndarray  # (H, W) float32 metres, 0 where no LiDAR return
    labels: np.ndarray  # (H, W) uint8 class ids, IGNORE_LABEL where nothing was hit
    intrinsics: np.ndarray  # (3, 3) float32, pixels
    rotation: np.ndarray  # (3, 3) float32, PyTorch3D R
    translation: np.ndarray  # (3,) float32, PyTorch3D T, world units


def render_views(scene: Scene, rng: np.random.Generator, num_views: int, image_size: int) -> list[View]:
    rotation, translation = _aerial_poses(rng, num_views)
    cameras = FoVPerspectiveCameras(R=rotation, T=translation, fov=FOV_DEGREES)
    meshes = Meshes(verts=[torch.from_numpy(scene.verts)] * num_views, faces=[torch.from_numpy(scene.faces)] * num_views)
    settings = RasterizationSettings(image_size=image_size, blur_radius=0.0, faces_per_pixel=1)
    with torch.no_grad():
        fragments = MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
    faces_hit = fragments.pix_to_face[..., 0].numpy()
    zbuf = fragments.zbuf[..., 0].numpy()
    normals = meshes.faces_normals_list()[0].numpy()

    views = []
    for i in range(num_views):
        hit = faces_hit[i] >= 0
        face = np.where(hit, faces_hit[i] - i * len(scene.faces), 0)
        depth = np.where(hit, zbuf[i] * METRES_PER_UNIT, 0.0).astype(np.float32)
        views.append(
            View(
                rgb=_shade(scene, normals, face, hit, rng),
                depth=depth,
                sparse_depth=_lidar(depth, rng),
                labels=np.where(hit, scene.face_labels[face], IGNORE_LABEL).astype(np.uint8),
                intrinsics=_intrinsics(image_size),
                rotation=rotation[i].numpy(),
                translation=translation[i].numpy(),
            )
        )
    return views


def _aerial_poses(rng: np.random.Generator, num_views: int) -> tuple[torch.Tensor, torch.Tensor]:
    eye = np.stack(
        [rng.uniform(-0.15, 0.15, num_views), rng.uniform(1.8, 2.3, num_views), rng.uniform(-0.15, 0.15, num_views)], -1
    )
    at = eye * np.array([1.0, 0.0, 1.0]) + np.stack(
        [rng.uniform(-0.15, 0.15, num_views), np.zeros(num_views), rng.uniform(-0.15, 0.15, num_views)], -1
    )
    up = np.tile([0.0, 0.0, 1.0], (num_views, 1))
    rotation, translation = look_at_view_transform(
        eye=torch.tensor(eye, dtype=torch.float32), at=torch.tensor(at, dtype=torch.float32), up=torch.tensor(up, dtype=torch.float32)
    )
    return rotation.float(), translation.float()


def _shade(scene: Scene, normals: np.ndarray, face: np.ndarray, hit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # |n . sun| rather than a clamp: face winding differs between ground, walls and cones.
    light = 0.35 + 0.65 * np.abs(normals[face] @ scene.light_dir)
    rgb = scene.face_colors[face] * light[..., None] + rng.normal(0.0, 0.02, size=face.shape + (3,))
    rgb = np.where(hit[..., None], rgb, 0.0)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _lidar(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scan-line returns: every LIDAR_ROW_STEP-th row, a random share of its pixels, with range noise."""
    keep = rng.random(depth.shape) < LIDAR_KEEP
    keep[np.arange(depth.shape[0]) % LIDAR_ROW_STEP != 0] = False
    noisy = depth + rng.normal(0.0, LIDAR_NOISE_M, size=depth.shape)
    return np.where(keep & (depth > 0), np.maximum(noisy, 0.01), 0.0).astype(np.float32)


def _intrinsics(image_size: int) -> np.ndarray:
    focal = (image_size / 2.0) / np.tan(np.radians(FOV_DEGREES) / 2.0)
    centre = image_size / 2.0
    return np.array([[focal, 0.0, centre], [0.0, focal, centre], [0.0, 0.0, 1.0]], dtype=np.float32)
