"""A room's pictures with PyTorch3D: views (radiance and depth), environment maps at probe points, the RGBA volume.

Views and environment maps come from PyTorch3D's mesh rasterizer: it finds the surface each pixel
sees (so an object between a probe and a wall hides the wall), and the radiance there is the
room's (data_pipeline.sources.rooms) at the hit point, with the primitive's exact normal. An
environment map is rasterized as a cube map (six 90-degree views from the probe) and read at
SUPERSAMPLE x SUPERSAMPLE directions per equirectangular pixel, averaged: a small emitter adds its
share of the pixel instead of all or nothing. The ground-truth volume is the room cut into the
task's voxels (core.tasks.lighting.geometry), each voxel VOLUME_SUPERSAMPLE^3 points: alpha is the share of
them inside a solid, `emitter` the share inside an emitter, and the colour the radiance of the
surface of the solid that holds them nearest that voxel's centre (an emitter over an object over a wall);
a free voxel carries its nearest solid voxel's colour, which alpha 0 hides but interpolation needs.
Cameras follow PyTorch3D (X_view = X_world R + T); every output is in the input camera's frame.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from pytorch3d.renderer import FoVPerspectiveCameras, MeshRasterizer, RasterizationSettings, look_at_view_transform
from pytorch3d.renderer.mesh.utils import interpolate_face_attributes
from pytorch3d.structures import Meshes
from pytorch3d.utils import ico_sphere

from core.tasks.lighting.geometry import equirect_directions, voxel_centres
from data_pipeline.sources.rooms import WALLS, Room, radiance, solid_at, surface_at

SUPERSAMPLE = 4  # directions per environment-map pixel, each way
VOLUME_SUPERSAMPLE = 2  # points per voxel, each way
CUBE_FACE = 48  # pixels of a cube-map face: about 2 per supersampled direction at the 16 x 32 map's equator
CUBE_AXES = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float32)
_BOX_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float32)
_BOX_FACES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6],
                       [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


def room_mesh(room: Room) -> tuple[Meshes, np.ndarray]:
    """The room as one mesh, and each face's primitive (rooms' numbering)."""
    parts = [(room.interior.mean(0), (room.interior[1] - room.interior[0]) / 2, "box")]
    parts += [(box[:3], box[3:], "box") for box in room.boxes] + [(sphere[:3], sphere[3], "sphere") for sphere in room.spheres]
    sphere = ico_sphere(2)
    unit_verts, unit_faces = sphere.verts_packed().numpy(), sphere.faces_packed().numpy()
    verts, faces, ids, offset = [], [], [], 0
    for index, (centre, size, shape) in enumerate(parts):
        corners, triangles = (_BOX_CORNERS, _BOX_FACES) if shape == "box" else (unit_verts, unit_faces)
        verts.append(centre + corners * size)
        faces.append(triangles + offset)
        ids.append(np.full(len(triangles), 0 if index == 0 else WALLS + index - 1))
        offset += len(corners)
    face_ids = np.concatenate(ids)
    walls = face_ids == 0
    face_ids[walls] = _wall_of_faces(np.concatenate(verts)[np.concatenate(faces)[walls]], room.interior)
    mesh = Meshes(verts=[torch.from_numpy(np.concatenate(verts)).float()], faces=[torch.from_numpy(np.concatenate(faces)).long()])
    return mesh, face_ids


def render_view(room: Room, mesh: Meshes, face_ids: np.ndarray, rotation: torch.Tensor, translation: torch.Tensor,
                size: int, fov: float) -> tuple[np.ndarray, np.ndarray]:
    """(S, S, 3) HDR radiance and (S, S) depth in metres of the view of camera (R, T) with a field of view in degrees."""
    cameras = FoVPerspectiveCameras(R=rotation[None], T=translation[None], fov=fov, znear=0.01, zfar=50.0)
    hits, ids, depth = _rasterize(mesh, face_ids, cameras, size)
    return _shade(room, hits[0], ids[0]), depth[0]


def environment_map(room: Room, mesh: Meshes, face_ids: np.ndarray, probe: np.ndarray, to_world: np.ndarray,
                    height: int) -> np.ndarray:
    """(H, 2H, 3) HDR environment map seen from probe (world), its directions turned by to_world (camera -> world)."""
    eye = torch.from_numpy(np.repeat(probe[None], 6, 0)).float()
    ups = np.where(np.abs(CUBE_AXES[:, 1:2]) > 0, [[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]])
    rotation, translation = look_at_view_transform(eye=eye, at=eye + torch.from_numpy(CUBE_AXES), up=torch.from_numpy(ups).float())
    cameras = FoVPerspectiveCameras(R=rotation, T=translation, fov=90.0, znear=0.01, zfar=50.0)
    hits, ids, _ = _rasterize(mesh.extend(6), np.tile(face_ids, 6), cameras, CUBE_FACE)
    faces = _shade(room, hits.reshape(-1, 3), ids.reshape(-1)).reshape(6, CUBE_FACE, CUBE_FACE, 3)
    directions = equirect_directions(height * SUPERSAMPLE, 2 * height * SUPERSAMPLE).numpy().reshape(-1, 3) @ to_world.T
    seen = _cube_lookup(faces, np.einsum("nc,kcd->knd", directions, rotation.numpy()))
    return seen.reshape(height, SUPERSAMPLE, 2 * height, SUPERSAMPLE, 3).mean((1, 3))


def volume(room: Room, to_world: np.ndarray, eye: np.ndarray, resolution: int, extent: float) -> np.ndarray:
    """(R, R, R, 5) the room in the camera's voxels, indexed (z, y, x): HDR colour, alpha, emitter share."""
    centres = voxel_centres(resolution, extent).numpy().reshape(-1, 3)
    step = 2 * extent / resolution
    grid = np.stack(np.meshgrid(*[np.arange(VOLUME_SUPERSAMPLE)] * 3, indexing="ij"), -1).reshape(-1, 3)
    offsets = ((grid + 0.5) / VOLUME_SUPERSAMPLE - 0.5) * step
    world = lambda points: points @ to_world.T + eye  # noqa: E731  (camera frame -> world)
    ids = solid_at(room, world((centres[:, None] + offsets[None]).reshape(-1, 3))).reshape(len(centres), -1)
    first_emitter = room.primitives - len(room.lights)
    alpha, emitter = (ids >= 0).mean(1), (ids >= first_emitter).mean(1)
    holder = ids.max(1)  # the emitter over the object over the wall, as solid_at orders them
    colour = np.zeros((len(centres), 3))
    filled = holder >= 0
    if filled.any():
        points, normals = surface_at(room, world(centres[filled]), holder[filled])
        colour[filled] = radiance(room, points, normals, holder[filled])
        # a free voxel takes its nearest solid one's colour: trilinear reads across a surface then mix alpha alone,
        # not the surface's colour with a free voxel's black
        nearest = distance_transform_edt(~filled.reshape((resolution,) * 3), return_distances=False, return_indices=True)
        colour = colour.reshape(resolution, resolution, resolution, 3)[tuple(nearest)].reshape(-1, 3)
    return np.concatenate([colour, alpha[:, None], emitter[:, None]], 1).reshape(resolution, resolution, resolution, 5)


def _rasterize(mesh: Meshes, face_ids: np.ndarray, cameras, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of each camera: the world point hit (B, S, S, 3), its primitive (-1: none) and its depth (0: none)."""
    settings = RasterizationSettings(image_size=size, blur_radius=0.0, faces_per_pixel=1)
    with torch.no_grad():
        fragments = MeshRasterizer(cameras=cameras, raster_settings=settings)(mesh)
        corners = mesh.verts_packed()[mesh.faces_packed()]
        hits = interpolate_face_attributes(fragments.pix_to_face, fragments.bary_coords, corners)[..., 0, :]
    face = fragments.pix_to_face[..., 0].numpy()
    ids = np.where(face >= 0, face_ids[np.maximum(face, 0)], -1)
    depth = np.where(face >= 0, fragments.zbuf[..., 0].numpy(), 0.0)
    return hits.numpy().astype(np.float64), ids, depth.astype(np.float32)


def _shade(room: Room, hits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    flat_hits, flat_ids = hits.reshape(-1, 3), ids.reshape(-1)
    out = np.zeros_like(flat_hits)
    seen = flat_ids >= 0
    points, normals = surface_at(room, flat_hits[seen], flat_ids[seen])
    out[seen] = radiance(room, points, normals, flat_ids[seen])
    return out.reshape(hits.shape)


def _cube_lookup(faces: np.ndarray, views: np.ndarray) -> np.ndarray:
    """faces (6, F, F, 3) sampled along directions given in each face camera's view frame (6, N, 3): the face
    each direction enters (the largest view z), its nearest pixel."""
    face = np.argmax(views[..., 2], axis=0)
    v = views[face, np.arange(views.shape[1])]
    size = faces.shape[1]
    col = np.clip(((1 - v[:, 0] / v[:, 2]) / 2 * size).astype(int), 0, size - 1)
    row = np.clip(((1 - v[:, 1] / v[:, 2]) / 2 * size).astype(int), 0, size - 1)
    return faces[face, row, col]


def _wall_of_faces(corners: np.ndarray, interior: np.ndarray) -> np.ndarray:
    """Which wall (rooms' numbering) each face (F, 3 corners, 3) of the interior box lies on."""
    axis = np.argmin(np.ptp(corners, axis=1), axis=1)
    high = corners[np.arange(len(corners)), 0, axis] > interior.mean(0)[axis]
    return 2 * axis + high
