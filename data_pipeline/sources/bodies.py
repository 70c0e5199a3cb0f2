"""Procedural articulated bodies: capsule limbs, ellipsoid torso, pelvis and head, random proportions and pose.

A body is a pure function of its random stream. It is built facing +Z with +Y up, the pelvis at
the origin, then turned by a random yaw about +Y and centred in the box, so the camera (looking
along +Z from -Z, data_pipeline.sources.body_render) sees it from any side. Its parts and
skeleton are in core.tasks.implicit.body_field's layout, which gives the analytic field.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.tasks.implicit.body_field import CAPSULE, ELLIPSOID, JOINTS, turn

SKIN, SHIRT, TROUSERS = range(3)
BODY_PARTS = 12  # torso, pelvis, head, neck, and upper arm, forearm, thigh and shin on each side


@dataclass(frozen=True)
class Body:
    primitives: np.ndarray  # (P, PRIMITIVE_WIDTH) float32
    part_groups: np.ndarray  # (P,) SKIN, SHIRT or TROUSERS: which colour a part wears
    colours: np.ndarray  # (3, 3) float32 in [0, 1]: skin, shirt, trousers
    joints: np.ndarray  # (len(JOINTS), 3) float32
    yaw: float


def make_body(rng: np.random.Generator) -> Body:
    height = rng.uniform(1.5, 1.8)
    joints = _skeleton(rng, height)
    clothed = rng.random() < 0.7
    shirt, trousers = (rng.uniform(0.005, 0.025, 2) if clothed else (0.0, 0.0))
    rows, groups = _parts(rng, height, joints, shirt, trousers)
    yaw = rng.uniform(0.0, 2 * np.pi)
    centre = np.array([0.0, (joints[JOINTS.index("head")][1] + 0.07 * height + joints[JOINTS.index("ankle_l")][1] - 0.04) / 2, 0.0])
    primitives = _placed(np.array(rows), yaw, centre)
    colours = np.stack([rng.uniform([0.45, 0.3, 0.2], [0.95, 0.75, 0.6]), rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.7, 3)])
    return Body(primitives.astype(np.float32), np.array(groups), colours.astype(np.float32),
                (turn(joints - centre, yaw)).astype(np.float32), float(yaw))


def _skeleton(rng: np.random.Generator, height: float) -> np.ndarray:
    h = height
    at = {"pelvis": np.zeros(3), "neck": np.array([0.0, 0.29 * h, 0.0])}
    at["head"] = at["neck"] + [0.0, 0.1 * h, rng.uniform(-0.01, 0.02)]
    for side, sign in (("l", 1.0), ("r", -1.0)):
        shoulder = at["neck"] + [sign * rng.uniform(0.1, 0.12) * h, -0.02 * h, 0.0]
        upper = _limb_direction(sign, abduction=rng.uniform(0.15, 1.3), flexion=rng.uniform(-0.5, 1.0))
        elbow = shoulder + 0.17 * h * upper
        wrist = elbow + 0.16 * h * _bend(upper, rng.uniform(0.0, 1.6))
        hip = np.array([sign * rng.uniform(0.05, 0.065) * h, -0.04 * h, 0.0])
        thigh = _limb_direction(sign, abduction=rng.uniform(0.0, 0.3), flexion=rng.uniform(-0.3, 0.7))
        knee = hip + 0.24 * h * thigh
        ankle = knee + 0.24 * h * _bend(thigh, -rng.uniform(0.0, 1.0))
        at.update({f"shoulder_{side}": shoulder, f"elbow_{side}": elbow, f"wrist_{side}": wrist,
                   f"hip_{side}": hip, f"knee_{side}": knee, f"ankle_{side}": ankle})
    return np.stack([at[name] for name in JOINTS])


def _limb_direction(sign: float, abduction: float, flexion: float) -> np.ndarray:
    """Straight down, swung forward by flexion and outward (to +X for sign 1) by abduction, in radians."""
    forward = np.array([0.0, -np.cos(flexion), np.sin(flexion)])
    return np.array([sign * np.sin(abduction) * abs(forward[1]), forward[1] * np.cos(abduction), forward[2]])


def _bend(direction: np.ndarray, angle: float) -> np.ndarray:
    """direction turned about +X (towards +Z for a positive angle): an elbow or, with a negative angle, a knee."""
    c, s = np.cos(angle), np.sin(angle)
    turned = np.array([direction[0], c * direction[1] - s * direction[2], s * direction[1] + c * direction[2]])
    return turned / np.linalg.norm(turned)


def _parts(rng: np.random.Generator, h: float, joints: np.ndarray, shirt: float, trousers: float):
    j = {name: joints[i] for i, name in enumerate(JOINTS)}
    rows, groups = [], []

    def ellipsoid(centre, radii, group, offset):
        rows.append([ELLIPSOID, *centre, 0, 0, 0, 0, *radii, 0.0, offset])
        groups.append(group)

    def capsule(a, b, radius, group, offset):
        rows.append([CAPSULE, *a, *b, radius, 0, 0, 0, 0.0, offset])
        groups.append(group)

    scale = rng.uniform(0.9, 1.15)
    ellipsoid((j["pelvis"] + j["neck"]) / 2 + [0, 0.02 * h, 0], np.array([0.11, 0.16, 0.07]) * h * [scale, 1, scale], SHIRT, shirt)
    ellipsoid(j["pelvis"], np.array([0.1, 0.065, 0.065]) * h * [scale, 1, scale], TROUSERS, trousers)
    ellipsoid(j["head"], np.array([0.055, 0.068, 0.06]) * h * rng.uniform(0.92, 1.08), SKIN, 0.0)
    capsule(j["neck"], j["head"] - [0, 0.05 * h, 0], 0.028 * h, SKIN, 0.0)
    for side in ("l", "r"):
        capsule(j[f"shoulder_{side}"], j[f"elbow_{side}"], 0.03 * h * scale, SHIRT, shirt)
        capsule(j[f"elbow_{side}"], j[f"wrist_{side}"], 0.025 * h * scale, SKIN, 0.0)
        capsule(j[f"hip_{side}"], j[f"knee_{side}"], 0.05 * h * scale, TROUSERS, trousers)
        capsule(j[f"knee_{side}"], j[f"ankle_{side}"], 0.035 * h * scale, TROUSERS, trousers)
    return rows, groups


def _placed(rows: np.ndarray, yaw: float, centre: np.ndarray) -> np.ndarray:
    """Parts centred in the box and turned by yaw: points move, each ellipsoid's own yaw turns with them."""
    placed = rows.copy()
    placed[:, 1:4] = turn(rows[:, 1:4] - centre, yaw)
    capsules = rows[:, 0] == CAPSULE
    placed[capsules, 4:7] = turn(rows[capsules, 4:7] - centre, yaw)
    placed[~capsules, 11] = yaw
    return placed
