"""Generate the synthetic rooms data set (the lighting task's): rooms -> views, probes, environment maps, volume -> Parquet shards + manifest.

Sample i of a split comes from the random stream seeded by (seed, split, i) (sample_splits), so the
data set is a pure function of the config. Each sample is a room seen from a random pose: the RGB view and its
depth, the camera's intrinsics, a second view from a nearby pose (its image and its pose relative
to the first), probe points inside the room and in the camera's view with the HDR environment
map seen from each, and the room's RGBA volume in the camera's voxels, all in the camera's frame
(core.tasks.lighting.geometry). Views are stored as 8-bit images (radiance above 1 saturates, as
in a photograph); environment maps and the volume keep HDR as float32. The manifest carries the
training split's mean environment map: a baseline of the lighting task.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pytorch3d.renderer import look_at_view_transform

from core.config.sections import SyntheticConfig
from data_pipeline.format import codec, shards
from data_pipeline.format.dataset_stats import Stats, sample_stats
from data_pipeline.sources.room_render import environment_map, render_view, room_mesh, volume
from data_pipeline.sources.sample_splits import manifest_head, write_splits
from data_pipeline.sources.rooms import Room, camera_eye_and_target, make_room, nearby_eye, solid_at, with_lights
from data_pipeline.storage.datastore import DataStore

CLASSES = [{"id": 0, "name": "room", "color": [200, 200, 200]}]
IGNORE_LABEL = 255
FOV_DEGREES = 60.0
PROBE_CLEARANCE = 0.15  # metres of free space around a probe in every axis direction
PROBE_DEPTH = (0.7, 3.0)  # metres in front of the camera
PROBE_TRIES = 200


def generate(store: DataStore, config: SyntheticConfig) -> dict[str, Any]:
    stats = Stats(len(CLASSES))
    envmap_sum = np.zeros((config.envmap_height, 2 * config.envmap_height, 3))

    def add(sample: dict[str, np.ndarray]) -> None:
        stats.add(sample_stats(sample["rgb"], sample["depth"], None, len(CLASSES), IGNORE_LABEL))
        envmap_sum[:] += sample["envmaps"].mean(0)

    splits = write_splits(store, config, "rooms", lambda sample_id, rng: room_sample(sample_id, make_room(rng), rng, config), add)
    manifest = {
        **manifest_head("synthetic-rooms", __name__, config, CLASSES, IGNORE_LABEL),
        "fov_degrees": FOV_DEGREES,
        "volume": {"resolution": config.volume_resolution, "extent_m": config.volume_extent},
        "envmap": {"height": config.envmap_height, "width": 2 * config.envmap_height, "probes": config.probes_per_sample},
        "splits": splits,
        "stats": {**stats.summary(), "mean_envmap": np.round(envmap_sum / config.num_train, 5).tolist()},
    }
    shards.write_manifest(store, manifest)
    return shards.read_manifest(store)


def room_sample(sample_id: str, room: Room, rng: np.random.Generator, config: SyntheticConfig) -> tuple[dict, dict]:
    """(the Parquet row, the sample's arrays) of one unlit room (rooms.make_room), lit and seen from a random pose."""
    size, probes = config.image_size, None
    while probes is None:  # a pose with no room for lights or probes in its view (facing a wall up close): look elsewhere
        eye, target = camera_eye_and_target(rng, room)
        rotation, translation = _pose(eye, target)
        to_world = rotation.numpy()
        lit = with_lights(rng, room, eye, to_world, FOV_DEGREES)
        if lit is None:
            continue
        mesh, face_ids = room_mesh(lit)
        view, depth = render_view(lit, mesh, face_ids, rotation, translation, size, FOV_DEGREES)
        probes = _probes(rng, lit, depth, eye, to_world, config)
    room = lit
    novel_rotation, novel_translation = _pose(nearby_eye(rng, room, eye), target + rng.normal(0.0, 0.1, 3))
    novel, _ = render_view(room, mesh, face_ids, novel_rotation, novel_translation, size, FOV_DEGREES)
    envmaps = np.stack([environment_map(room, mesh, face_ids, eye + to_world @ p, to_world, config.envmap_height) for p in probes])
    relative = rotation.T @ novel_rotation  # input camera frame -> novel camera frame: X_novel = X R_rel + T_rel
    sample = {"rgb": _bytes(view), "depth": depth, "rgb_novel": _bytes(novel), "envmaps": envmaps.astype(np.float32)}
    row = {
        "sample_id": sample_id,
        **codec.encode_images({name: sample[name] for name in ("rgb", "depth", "rgb_novel")}, config.encoding),
        "height": size,
        "width": size,
        "intrinsics": _intrinsics(size).ravel().tolist(),
        "novel_camera": torch.cat([relative, (novel_translation - translation @ relative)[None]]).ravel().tolist(),
        "probes": probes.astype(np.float32).ravel().tolist(),
        "envmaps": sample["envmaps"].ravel().tolist(),
        "volume": volume(room, to_world, eye, config.volume_resolution, config.volume_extent).astype(np.float32).ravel().tolist(),
    }
    return row, sample


def _pose(eye: np.ndarray, target: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    rotation, translation = look_at_view_transform(eye=torch.tensor(eye[None]).float(), at=torch.tensor(target[None]).float(),
                                                   up=torch.tensor([[0.0, 1.0, 0.0]]))
    return rotation[0].double(), translation[0].double()


def _probes(rng: np.random.Generator, room: Room, depth: np.ndarray, eye: np.ndarray, to_world: np.ndarray,
            config: SyntheticConfig) -> np.ndarray | None:
    """(P, 3) probe points in the camera's frame: in its view, in front of the surface the pixel sees, inside the
    volume, and clear of every solid by PROBE_CLEARANCE; None where PROBE_TRIES draws found too few."""
    size, chosen = config.image_size, []
    focal = size / 2 / np.tan(np.radians(FOV_DEGREES) / 2)
    steps = np.concatenate([np.eye(3), -np.eye(3)]) * PROBE_CLEARANCE
    for _ in range(PROBE_TRIES):
        if len(chosen) == config.probes_per_sample:
            return np.stack(chosen)
        row, col = rng.integers(size // 8, size - size // 8, 2)
        reach = min(PROBE_DEPTH[1], 0.85 * depth[row, col], config.volume_extent - PROBE_CLEARANCE)
        if reach <= PROBE_DEPTH[0]:
            continue
        z = rng.uniform(PROBE_DEPTH[0], reach)
        point = np.array([-(col + 0.5 - size / 2) / focal * z, -(row + 0.5 - size / 2) / focal * z, z])
        around = eye + (point + np.concatenate([np.zeros((1, 3)), steps])) @ to_world.T
        if (solid_at(room, around) < 0).all() and (np.abs(point) < config.volume_extent - PROBE_CLEARANCE).all():
            chosen.append(point)
    return np.stack(chosen) if len(chosen) == config.probes_per_sample else None


def _intrinsics(size: int) -> np.ndarray:
    focal = size / 2 / np.tan(np.radians(FOV_DEGREES) / 2)
    return np.array([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]], dtype=np.float32)


def _bytes(radiance: np.ndarray) -> np.ndarray:
    return (np.clip(radiance, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
