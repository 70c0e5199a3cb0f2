"""Surfaces of occupancy grids and their distances, on PyTorch3D: marching cubes, point-to-surface,
Chamfer, and per-pixel normals seen by the implicit task's orthographic camera.

Distances are in the box's units (metres for the synthetic bodies). A grid in which marching cubes
finds no surface gives an empty mesh; EMPTY_DISTANCE, the box's diagonal and so more than any
distance inside it, is what an empty reconstruction scores, never a NaN.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from pytorch3d.loss.point_mesh_distance import point_face_distance
from pytorch3d.ops import interpolate_face_attributes, knn_points, sample_points_from_meshes
from pytorch3d.ops.marching_cubes import marching_cubes
from pytorch3d.renderer import FoVOrthographicCameras, MeshRasterizer, RasterizationSettings
from pytorch3d.structures import Meshes

EMPTY_DISTANCE = 2 * math.sqrt(3)  # the diagonal of the box [-1, 1]^3


def surface(grid: torch.Tensor, level: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(verts (V, 3) in the box, faces (F, 3)) where grid (R, R, R: z, y, x over [-1, 1]^3) crosses level, the
    inside (values above level) on the side the faces' normals point away from; empty tensors for no surface.

    The grid is padded with a layer of outside first, so that a surface reaching the box's walls is closed
    there: a camera, or a Chamfer distance, would otherwise look into an open shell.
    """
    resolution = grid.shape[-1]
    padded = F.pad(-grid.float().cpu(), (1, 1, 1, 1, 1, 1), value=1.0 - level)  # negated: marching cubes orients faces
    verts, faces = marching_cubes(padded[None], -level, return_local_coords=True)   # outwards for a field growing outwards
    if len(faces[0]) == 0:  # PyTorch3D gives empty lists for a volume without a surface
        return torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long)
    return -1.0 + ((verts[0] + 1.0) * (resolution + 1) - 2.0) / (resolution - 1), faces[0]


def reconstructions(outputs: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each sample's surface (verts, faces) from the occupancy grids in a model's outputs ("grid", (B, R, R, R)),
    made once per batch and kept in the outputs for the metrics, previews and exports that follow."""
    if "surfaces" not in outputs:
        outputs["surfaces"] = [surface(largest_part(grid, 0.5), 0.5) for grid in outputs["grid"].detach().cpu()]
    return outputs["surfaces"]


def largest_part(grid: torch.Tensor, level: float) -> torch.Tensor:
    """The grid with every inside region but the largest (6-connected) set to outside: the clean-up of
    floating fragments that PIFu's and ICON's evaluations apply to a reconstruction before scoring it."""
    inside = (grid > level).numpy()
    labels, count = ndimage.label(inside)
    if count <= 1:
        return grid
    sizes = np.bincount(labels.ravel())[1:]
    keep = torch.from_numpy(labels == 1 + int(sizes.argmax()))
    return torch.where(keep | ~torch.from_numpy(inside), grid, torch.zeros_like(grid))


def is_empty(verts: torch.Tensor, faces: torch.Tensor) -> bool:
    return len(faces) == 0


def point_to_surface(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor) -> float:
    """Mean distance from points (N, 3) to the nearest face of the mesh (P2S)."""
    if is_empty(verts, faces):
        return EMPTY_DISTANCE
    triangles = verts[faces].float()
    first = torch.zeros(1, dtype=torch.long)
    squared = point_face_distance(points.float().contiguous(), first, triangles.contiguous(), first, len(points))
    return squared.sqrt().mean().item()


def distances(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor, count: int, seed: int = 0) -> tuple[float, float]:
    """(P2S, Chamfer) of the mesh against the truth's surface points (N, 3). Chamfer is the mean of both directions:
    P2S, and `count` points sampled on the mesh to their nearest truth point."""
    if is_empty(verts, faces):
        return EMPTY_DISTANCE, EMPTY_DISTANCE
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the same mesh is sampled alike whenever it is scored
        sampled = sample_points_from_meshes(Meshes(verts=[verts.float()], faces=[faces]), count)
    back = knn_points(sampled, points.float()[None], K=1).dists[0, :, 0].sqrt().mean().item()
    p2s = point_to_surface(points, verts, faces)
    return p2s, 0.5 * (p2s + back)


def seen_attributes(verts: torch.Tensor, faces: torch.Tensor, attributes: torch.Tensor,
                    image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-vertex attributes (V, C) interpolated on the nearest surface at each pixel of the orthographic
    camera looking along +Z (box point (x, y) at grid position (-x, -y)): (S, S, C), and (S, S) where a face was hit."""
    if is_empty(verts, faces):
        return torch.zeros(image_size, image_size, attributes.shape[1]), torch.zeros(image_size, image_size, dtype=torch.bool)
    mesh = Meshes(verts=[verts.float()], faces=[faces.long()])
    cameras = FoVOrthographicCameras(T=torch.tensor([[0.0, 0.0, 3.0]]), znear=0.5, zfar=6.0)
    settings = RasterizationSettings(image_size=image_size, blur_radius=0.0, faces_per_pixel=1)
    with torch.no_grad():
        fragments = MeshRasterizer(cameras=cameras, raster_settings=settings)(mesh)
        values = interpolate_face_attributes(fragments.pix_to_face, fragments.bary_coords, attributes.float()[mesh.faces_packed()])
    return values[0, :, :, 0], fragments.pix_to_face[0, :, :, 0] >= 0


def seen_normals(verts: torch.Tensor, faces: torch.Tensor, image_size: int) -> torch.Tensor:
    """(S, S, 3) unit normals of the surface the camera sees, the zero vector where it sees none."""
    if is_empty(verts, faces):
        return torch.zeros(image_size, image_size, 3)
    values, seen = seen_attributes(verts, faces, vertex_normals(verts, faces), image_size)
    length = values.norm(dim=-1, keepdim=True)
    return torch.where(seen[..., None] & (length > 1e-8), values / length.clamp(min=1e-8), torch.zeros_like(values))


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    return Meshes(verts=[verts.float()], faces=[faces.long()]).verts_normals_packed()
