"""Procedural aerial terrain scenes: a height-field ground mesh with roads, water, buildings and trees.

Each scene is one triangle mesh whose faces carry a semantic class. Everything is drawn from a
numpy Generator, so a scene is a pure function of its seed. World axes: x east, z north, y up;
the ground spans [-1, 1] in x and z, and one world unit is METRES_PER_UNIT metres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRES_PER_UNIT = 50.0

CLASSES: list[tuple[str, tuple[int, int, int]]] = [
    ("ground", (150, 135, 95)),
    ("road", (115, 115, 120)),
    ("building", (190, 85, 70)),
    ("vegetation", (45, 125, 50)),
    ("water", (45, 90, 170)),
]
GROUND, ROAD, BUILDING, VEGETATION, WATER = range(len(CLASSES))


@dataclass(frozen=True)
class Scene:
    verts: np.ndarray  # (V, 3) float32, world units
    faces: np.ndarray  # (F, 3) int64
    face_labels: np.ndarray  # (F,) uint8 class ids
    face_colors: np.ndarray  # (F, 3) float32 in [0, 1], before lighting
    light_dir: np.ndarray  # (3,) unit vector towards the sun


def make_scene(rng: np.random.Generator, grid: int = 32) -> Scene:
    verts, faces, labels = _ground(rng, grid)
    parts = [(verts, faces, labels)]
    occupied = _occupied_cells(verts, faces, labels)
    for _ in range(rng.integers(3, 9)):
        parts.append(_building(rng, verts, occupied))
    for _ in range(rng.integers(10, 26)):
        parts.append(_tree(rng, verts, occupied))
    verts, faces, labels = _concat(parts)
    return Scene(
        verts=verts.astype(np.float32),
        faces=faces,
        face_labels=labels.astype(np.uint8),
        face_colors=_face_colors(rng, labels),
        light_dir=_sun(rng),
    )


def _ground(rng: np.random.Generator, grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs = np.linspace(-1.0, 1.0, grid)
    gx, gz = np.meshgrid(xs, xs, indexing="xy")
    height = np.zeros_like(gx)
    for _ in range(rng.integers(3, 7)):
        cx, cz = rng.uniform(-1.2, 1.2, size=2)
        width = rng.uniform(0.25, 0.7)
        height += rng.uniform(-0.12, 0.18) * np.exp(-((gx - cx) ** 2 + (gz - cz) ** 2) / (2 * width**2))
    water_level = np.quantile(height, rng.uniform(0.05, 0.25))
    height = np.maximum(height, water_level)
    verts = np.stack([gx, height, gz], axis=-1).reshape(-1, 3)

    idx = np.arange(grid * grid).reshape(grid, grid)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])

    labels = np.full(len(faces), GROUND)
    on_water = (verts[faces, 1] <= water_level + 1e-9).all(axis=1)
    labels[on_water] = WATER
    labels[_near_road(rng, verts[faces].mean(axis=1)) & ~on_water] = ROAD
    return verts, faces, labels


def _near_road(rng: np.random.Generator, centroids: np.ndarray) -> np.ndarray:
    point = rng.uniform(-0.5, 0.5, size=2)
    angle = rng.uniform(0, np.pi)
    normal = np.array([-np.sin(angle), np.cos(angle)])
    bend = rng.uniform(-0.3, 0.3)
    along = centroids[:, [0, 2]] @ np.array([np.cos(angle), np.sin(angle)])
    offset = (centroids[:, [0, 2]] - point) @ normal - bend * along**2
    return np.abs(offset) < rng.uniform(0.05, 0.09)


def _occupied_cells(verts: np.ndarray, faces: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Face centroids (x, z) where nothing may stand: water and road."""
    blocked = labels != GROUND
    return verts[faces[blocked]].mean(axis=1)[:, [0, 2]]


def _free_spot(rng: np.random.Generator, blocked: np.ndarray, clearance: float) -> np.ndarray:
    for _ in range(50):
        spot = rng.uniform(-0.85, 0.85, size=2)
        if len(blocked) == 0 or np.min(np.linalg.norm(blocked - spot, axis=1)) > clearance:
            return spot
    return rng.uniform(-0.85, 0.85, size=2)


def _ground_height(verts: np.ndarray, spot: np.ndarray) -> float:
    nearest = np.argmin(np.linalg.norm(verts[:, [0, 2]] - spot, axis=1))
    return float(verts[nearest, 1])


def _building(rng: np.random.Generator, ground: np.ndarray, blocked: np.ndarray):
    half = rng.uniform(0.04, 0.1, size=2)
    spot = _free_spot(rng, blocked, clearance=float(half.max()) + 0.03)
    base = _ground_height(ground, spot) - 0.03
    top = base + rng.uniform(0.1, 0.3)
    yaw = rng.uniform(0, np.pi)
    rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    corners = (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half) @ rot.T + spot
    verts = np.array([[x, y, z] for y in (base, top) for x, z in corners])
    sides = [[i, (i + 1) % 4, 4 + i] for i in range(4)] + [[(i + 1) % 4, 4 + (i + 1) % 4, 4 + i] for i in range(4)]
    faces = np.array(sides + [[4, 5, 6], [4, 6, 7]])
    return verts, faces, np.full(len(faces), BUILDING)


def _tree(rng: np.random.Generator, ground: np.ndarray, blocked: np.ndarray, sides: int = 6):
    radius = rng.uniform(0.03, 0.07)
    spot = _free_spot(rng, blocked, clearance=radius + 0.02)
    base = _ground_height(ground, spot) + rng.uniform(0.0, 0.03)
    angles = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    ring = np.stack([spot[0] + radius * np.cos(angles), np.full(sides, base), spot[1] + radius * np.sin(angles)], -1)
    apex = np.array([[spot[0], base + rng.uniform(0.08, 0.16), spot[1]]])
    faces = np.array([[i, (i + 1) % sides, sides] for i in range(sides)])
    return np.concatenate([ring, apex]), faces, np.full(sides, VEGETATION)


def _concat(parts):
    verts, faces, labels, offset = [], [], [], 0
    for v, f, lab in parts:
        verts.append(v)
        faces.append(f + offset)
        labels.append(lab)
        offset += len(v)
    return np.concatenate(verts), np.concatenate(faces).astype(np.int64), np.concatenate(labels)


def _face_colors(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    palette = np.array([color for _, color in CLASSES], dtype=np.float32) / 255.0
    tint = rng.uniform(0.85, 1.15, size=3)
    jitter = rng.normal(0.0, 0.06, size=(len(labels), 3))
    return np.clip(palette[labels] * tint + jitter, 0.0, 1.0).astype(np.float32)


def _sun(rng: np.random.Generator) -> np.ndarray:
    elevation = rng.uniform(0.5, 1.3)
    azimuth = rng.uniform(0, 2 * np.pi)
    sun = np.array([np.cos(elevation) * np.cos(azimuth), np.sin(elevation), np.cos(elevation) * np.sin(azimuth)])
    return sun.astype(np.float32)
