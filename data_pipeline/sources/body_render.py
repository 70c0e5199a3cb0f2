"""A body's ground-truth mesh and its pictures, with PyTorch3D: RGB, silhouette, front and back normal maps.

The mesh is marching cubes (pytorch3d.ops.marching_cubes) of the analytic field on a fine grid.
The camera is orthographic, fixed, looking along +Z from -Z: a point (x, y, z) of the box lands at
grid_sample position (-x, -y) of the image, and its normalised depth is z (CAMERA, the projection
every sample stores). The front normal map holds the normal of the surface the camera sees; the
back one, pixel-aligned with it, the normal of the farthest surface on the same ray (PIFuHD's
back map), rasterized from the mirrored mesh. Normals are stored as uint8 RGB, (n + 1) / 2 x 255,
in the camera's frame; where no surface is seen the map holds the zero normal (128, 128, 128).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pytorch3d.ops import sample_points_from_meshes
from pytorch3d.structures import Meshes

from core.evaluation import surfaces
from core.tasks.implicit.body_field import BOX, grid_points, part_distances, signed_distance
from data_pipeline.sources.bodies import Body

CAMERA = np.array([[-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]], dtype=np.float32)
BACKGROUND = (0.55, 0.57, 0.6)


@dataclass(frozen=True)
class BodyViews:
    verts: np.ndarray  # (V, 3) float32, the ground-truth mesh
    faces: np.ndarray  # (F, 3) int32
    rgb: np.ndarray  # (S, S, 3) uint8
    mask: np.ndarray  # (S, S) uint8, 1 where the body is seen
    normal_front: np.ndarray  # (S, S, 3) uint8
    normal_back: np.ndarray  # (S, S, 3) uint8
    surface_points: np.ndarray  # (N, 3) float32, sampled uniformly on the mesh's area


def body_mesh(body: Body, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    field = signed_distance(grid_points(resolution), body.primitives).reshape(resolution, resolution, resolution)
    verts, faces = surfaces.surface(torch.from_numpy(-field), 0.0)
    return verts.numpy() * BOX, faces.numpy().astype(np.int32)


def render_body(body: Body, rng: np.random.Generator, resolution: int, image_size: int, surface_count: int) -> BodyViews:
    verts, faces = body_mesh(body, resolution)
    mesh = Meshes(verts=[torch.from_numpy(verts)], faces=[torch.from_numpy(faces).long()])
    normals = mesh.verts_normals_packed()
    colours = torch.from_numpy(body.colours[body.part_groups[part_distances(verts, body.primitives).argmin(1)]])
    front, seen = _seen(verts, faces, image_size, torch.cat([normals, colours], 1))
    back, _ = _seen(verts * np.array([1, 1, -1], np.float32), faces, image_size, normals)  # the mirror's nearest is the far side
    light = _light(rng)
    shade = 0.35 + 0.65 * np.clip(front[..., :3] @ light, 0.0, None)
    rgb = np.where(seen[..., None], front[..., 3:] * shade[..., None], BACKGROUND) + rng.normal(0.0, 0.015, front[..., :3].shape)
    torch.manual_seed(int(rng.integers(2**31)))  # sample_points_from_meshes draws from torch's generator
    surface = sample_points_from_meshes(mesh, surface_count)[0].numpy()
    return BodyViews(verts.astype(np.float32), faces, _bytes(rgb), seen.astype(np.uint8),
                     _normal_bytes(front[..., :3], seen), _normal_bytes(back, seen), surface.astype(np.float32))


def _seen(verts: np.ndarray, faces: np.ndarray, image_size: int, attributes: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    values, seen = surfaces.seen_attributes(torch.from_numpy(verts).float(), torch.from_numpy(faces).long(), attributes, image_size)
    return values.numpy(), seen.numpy()


def _light(rng: np.random.Generator) -> np.ndarray:
    """A direction towards the light, from the camera's side (-Z) and above."""
    direction = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.1, 0.8), -1.0])
    return direction / np.linalg.norm(direction)


def _normal_bytes(normals: np.ndarray, seen: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    unit = np.where(seen[..., None] & (length > 1e-8), normals / np.maximum(length, 1e-8), 0.0)
    return _bytes((unit + 1.0) / 2.0)


def _bytes(values: np.ndarray) -> np.ndarray:
    return (np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
