"""The analytic signed distance of a synthetic body, and the occupancy points a sample is trained on.

A body is PRIMITIVES rows of PRIMITIVE_WIDTH numbers (data_pipeline.sources.bodies makes them):
[kind, p0 (3), p1 (3), radius, radii (3), yaw, offset]. A capsule (kind 0) is the segment p0-p1
swept by radius; an ellipsoid (kind 1) is centred at p0 with semi-axes radii, turned by yaw about
+Y. `offset` inflates a part (clothing). The body is their smooth union (polynomial smooth
minimum, SMOOTHING metres), so joints blend instead of creasing. A capsule's distance is exact,
an ellipsoid's is the usual first-order estimate whose sign is exact; occupancy (distance < 0) is
therefore exact everywhere. Units are metres; the body stands in the box [-1, 1]^3 (BOX).

NumPy only: the data side draws training points with it, in readers' processes that do not import torch.
"""
from __future__ import annotations

import numpy as np

PRIMITIVE_WIDTH = 13
CAPSULE, ELLIPSOID = 0, 1
SMOOTHING = 0.03
BOX = 1.0

# The skeleton: joints by name, and the bones between them with the radius a body model would give
# them; the prior (skeleton_sdf) is the distance to these capsules, not to the body's own parts.
JOINTS = ("pelvis", "neck", "head", "shoulder_l", "elbow_l", "wrist_l", "shoulder_r", "elbow_r", "wrist_r",
          "hip_l", "knee_l", "ankle_l", "hip_r", "knee_r", "ankle_r")
BONES = ((0, 1, 0.11), (1, 2, 0.07), (1, 3, 0.05), (3, 4, 0.045), (4, 5, 0.04), (1, 6, 0.05), (6, 7, 0.045), (7, 8, 0.04),
         (0, 9, 0.08), (9, 10, 0.07), (10, 11, 0.05), (0, 12, 0.08), (12, 13, 0.07), (13, 14, 0.05))


def signed_distance(points: np.ndarray, primitives: np.ndarray) -> np.ndarray:
    """(N,) signed distance in metres of points (N, 3) to the body, negative inside."""
    field = None
    for row in primitives:
        part = _primitive_distance(points, row) - row[12]
        field = part if field is None else smooth_min(field, part, SMOOTHING)
    return field


def part_distances(points: np.ndarray, primitives: np.ndarray) -> np.ndarray:
    """(N, P) each part's own signed distance: which part a surface point belongs to (its colour)."""
    return np.stack([_primitive_distance(points, row) - row[12] for row in primitives], 1)


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    blend = np.clip(k - np.abs(a - b), 0.0, None) / k
    return np.minimum(a, b) - blend * blend * k * 0.25


def _primitive_distance(points: np.ndarray, row: np.ndarray) -> np.ndarray:
    if row[0] == CAPSULE:
        return segment_distance(points, row[1:4], row[4:7]) - row[7]
    local = turn(points - row[1:4], -row[11])
    radii = row[8:11]
    k0 = np.linalg.norm(local / radii, axis=-1)
    k1 = np.linalg.norm(local / radii**2, axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


def segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    along = b - a
    t = np.clip((points - a) @ along / max(float(along @ along), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[..., None] * along), axis=-1)


def turn(points: np.ndarray, yaw: float) -> np.ndarray:
    """points turned by yaw radians about +Y."""
    c, s = np.cos(yaw), np.sin(yaw)
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    return np.stack([c * x + s * z, y, -s * x + c * z], -1)


def grid_points(resolution: int) -> np.ndarray:
    """(R^3, 3) lattice over the box, x fastest: the order of a (z, y, x) volume, which marching cubes reads."""
    axis = np.linspace(-BOX, BOX, resolution)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], -1)


def draw_points(surface: np.ndarray, primitives: np.ndarray, rng: np.random.Generator, count: int,
                sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(count, 3) points and their occupancy (1 inside), PIFu's way: surface points moved by N(0, sigma) and
    points uniform in the box, kept half inside and half outside where there are enough of each."""
    near = surface[rng.integers(0, len(surface), 4 * count)] + rng.normal(0.0, sigma, (4 * count, 3))
    uniform = rng.uniform(-BOX, BOX, (count, 3))
    candidates = np.concatenate([near, uniform])
    inside = signed_distance(candidates, primitives) < 0
    inner, outer = candidates[inside], candidates[~inside]
    take_in = min(len(inner), max(count // 2, count - len(outer)))
    chosen = np.concatenate([inner[rng.permutation(len(inner))[:take_in]], outer[rng.permutation(len(outer))[: count - take_in]]])
    labels = np.concatenate([np.ones(take_in), np.zeros(count - take_in)])
    order = rng.permutation(count)
    return chosen[order].astype(np.float32), labels[order].astype(np.float32)
