"""Procedural indoor rooms: a box with floor, walls and ceiling, a few objects, and one to three small emitters.

A room is a pure function of its random stream. Its primitives, in world metres with +Y up and the
floor at y = 0, are numbered as the renderer and the ground-truth volume both see them: the six
walls of the interior box (-x, +x, floor, ceiling, -z, +z), then the box objects, then the spheres
(sphere objects first, the emitters last). Every surface is Lambertian (an RGBA volume holds one
colour per point, seen alike from every side); objects differ in shape, size, colour and albedo
(dark matte to bright). Emitters are spheres that emit and reflect nothing. Its radiance at a
surface point is albedo x (ambient + the lights' cosine / (distance^2 + LIGHT_SOFTENING)) plus emission, with
the emitters' centres as the point lights (no shadows). NumPy only, like every generator here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AMBIENT = 0.08
LIGHT_DISTANCE = 1.2  # metres from the eye to the nearest light
LIGHT_HEIGHT = 1.45  # metres: lights hang above every object (objects end below 1.2 m)
EMITTER_RADIUS = 0.12
EMITTER_GAIN = 4.0  # an emitter's radiance per unit of its power as a point light: 2 to 7, well above white
LIGHT_SOFTENING = 0.5  # m^2 added to a light's squared distance: a lamp, not a point, lights the wall it is near
WALLS = 6
AXIS_OF_WALL = (0, 0, 1, 1, 2, 2)  # -x, +x, floor, ceiling, -z, +z


@dataclass(frozen=True)
class Room:
    interior: np.ndarray  # (2, 3) the interior box's low and high corners
    boxes: np.ndarray  # (K, 6) centre and half sizes of axis-aligned box objects
    spheres: np.ndarray  # (S, 4) centre and radius: sphere objects, then the emitters
    albedo: np.ndarray  # (6 + K + S, 3) per primitive; 0 for an emitter
    emission: np.ndarray  # (6 + K + S, 3) per primitive; 0 but for an emitter
    lights: np.ndarray  # (L, 3) the emitters' centres
    light_power: np.ndarray  # (L, 3) each point light's colour x intensity

    @property
    def primitives(self) -> int:
        return WALLS + len(self.boxes) + len(self.spheres)


def make_room(rng: np.random.Generator, objects: int | None = None) -> Room:
    """An unlit room (with_lights lights it once the camera stands); objects: how many to place (None: 2 to 5), 0 for
    an empty room."""
    half = np.array([rng.uniform(1.3, 1.8), 0.0, rng.uniform(1.3, 1.8)])
    height = rng.uniform(2.4, 2.8)
    interior = np.array([[-half[0], 0.0, -half[2]], [half[0], height, half[2]]])
    walls = _wall_colours(rng)
    count = int(rng.integers(2, 6)) if objects is None else objects
    boxes, spheres, box_colours, sphere_colours = [], [], [], []
    for _ in range(count):
        colour = rng.uniform(0.1, 1.0, 3) * rng.choice([0.35, 0.7, 1.0])  # dark matte, mid, bright
        size = rng.uniform(0.2, 0.45)
        x, z = rng.uniform(interior[0, [0, 2]] + 0.6, interior[1, [0, 2]] - 0.6)
        if rng.random() < 0.6:
            halves = np.array([size, rng.uniform(0.2, 0.6), size * rng.uniform(0.6, 1.4)])
            boxes.append([x, halves[1], z, *halves])
            box_colours.append(colour)
        else:
            spheres.append([x, size, z, size])
            sphere_colours.append(colour)
    albedo = np.concatenate([walls, np.reshape(box_colours, (-1, 3)), np.reshape(sphere_colours, (-1, 3))])
    return Room(interior, np.reshape(boxes, (-1, 6)), np.reshape(spheres, (-1, 4)), albedo, np.zeros_like(albedo),
                np.zeros((0, 3)), np.zeros((0, 3)))


def with_lights(rng: np.random.Generator, room: Room, eye: np.ndarray, to_world: np.ndarray, fov_degrees: float) -> Room | None:
    """The room lit by one to three emitters placed in the camera's view (eye, and to_world: the camera's axes as
    columns), above the objects, clear of the walls, LIGHT_DISTANCE or more from the eye and apart from each other;
    None where not even one fits. Lights the camera sees can be placed from the image: the task is to place them."""
    half_angle = np.tan(np.radians(fov_degrees / 2) * 0.85)
    low = np.array([room.interior[0, 0] + 0.3, LIGHT_HEIGHT, room.interior[0, 2] + 0.3])
    high = np.array([room.interior[1, 0] - 0.3, room.interior[1, 1] - 0.25, room.interior[1, 2] - 0.3])
    lights = []
    wanted = int(rng.integers(1, 4))
    for _ in range(300):
        if len(lights) == wanted:
            break
        ray = to_world @ np.array([*rng.uniform(-half_angle, half_angle, 2), 1.0])
        point = eye + rng.uniform(LIGHT_DISTANCE, 5.0) * ray / np.linalg.norm(ray)
        if (point >= low).all() and (point <= high).all() and all(np.linalg.norm(point - other) > 0.6 for other in lights):
            lights.append(point)
    if not lights:
        return None
    power = np.stack([rng.uniform([0.7, 0.6, 0.5], 1.0) * rng.uniform(0.8, 1.8) for _ in lights])
    emission = np.concatenate([room.emission, EMITTER_GAIN * power])
    emitters = np.concatenate([np.stack(lights), np.full((len(lights), 1), EMITTER_RADIUS)], 1)
    return Room(room.interior, room.boxes, np.concatenate([room.spheres, emitters]),
                np.concatenate([room.albedo, np.zeros((len(lights), 3))]), emission, np.stack(lights), power)


def _wall_colours(rng: np.random.Generator) -> np.ndarray:
    """Walls of one tint with an accent wall now and then, a darker floor, a bright ceiling."""
    tint = rng.uniform(0.45, 0.9, 3)
    walls = np.tile(tint, (6, 1))
    if rng.random() < 0.5:
        walls[[0, 1, 4, 5][rng.integers(4)]] = rng.uniform(0.15, 0.9, 3)
    walls[2] = rng.uniform([0.15, 0.1, 0.05], [0.6, 0.45, 0.35])
    walls[3] = rng.uniform(0.75, 0.95) * np.ones(3)
    return walls


def camera_eye_and_target(rng: np.random.Generator, room: Room) -> tuple[np.ndarray, np.ndarray]:
    """A random pose: the eye anywhere clear of the walls and above the objects, looking into the room (within 60
    degrees of its centre) and slightly up, where the lights will hang."""
    low, high = room.interior
    eye = np.array([rng.uniform(low[0] + 0.4, high[0] - 0.4), rng.uniform(1.3, 1.8), rng.uniform(low[2] + 0.4, high[2] - 0.4)])
    centre = (low + high) / 2 - eye
    yaw, pitch = np.arctan2(centre[0], centre[2]) + rng.uniform(-1.0, 1.0), rng.uniform(0.0, 0.3)
    return eye, eye + np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])


def nearby_eye(rng: np.random.Generator, room: Room, eye: np.ndarray) -> np.ndarray:
    """The novel view's eye: the input's moved by about 0.3 m, still clear of the walls and above the objects."""
    low, high = room.interior
    moved = eye + rng.normal(0.0, 0.3, 3) * np.array([1.0, 0.3, 1.0])
    return np.clip(moved, [low[0] + 0.3, 1.3, low[2] + 0.3], [high[0] - 0.3, 1.9, high[2] - 0.3])


def solid_at(room: Room, points: np.ndarray) -> np.ndarray:
    """(N,) the primitive whose solid holds each point (N, 3), -1 in the room's free space. An emitter wins
    over an object, an object over a wall (only the walls' outsides are solid)."""
    ids = np.full(len(points), -1)
    low, high = room.interior
    outside = (points < low) | (points > high)
    ids[outside.any(1)] = _nearest_wall(points[outside.any(1)], room.interior)
    for k, box in enumerate(room.boxes):
        ids[(np.abs(points - box[:3]) <= box[3:]).all(1)] = WALLS + k
    for s, sphere in enumerate(room.spheres):
        ids[np.linalg.norm(points - sphere[:3], axis=1) <= sphere[3]] = WALLS + len(room.boxes) + s
    return ids


def surface_at(room: Room, points: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest point on primitive ids[i]'s surface to points[i], and the surface's normal there
    (into the room for a wall, outwards for an object)."""
    surface, normals = points.astype(np.float64).copy(), np.zeros_like(points, dtype=np.float64)
    for i in np.unique(ids):
        at = ids == i
        if i < WALLS:
            axis, side = AXIS_OF_WALL[i], i % 2
            surface[at] = np.clip(points[at], *room.interior)
            surface[at, axis] = room.interior[side, axis]
            normals[at, axis] = 1.0 if side == 0 else -1.0
        elif i < WALLS + len(room.boxes):
            centre, half = room.boxes[i - WALLS, :3], room.boxes[i - WALLS, 3:]
            local = points[at] - centre
            axis = np.argmax(np.abs(local) - half, axis=1)
            sign = np.where(local[np.arange(len(local)), axis] < 0, -1.0, 1.0)
            clamped = np.clip(local, -half, half)
            clamped[np.arange(len(local)), axis] = sign * half[axis]
            surface[at] = centre + clamped
            normals[at, axis] = sign
        else:
            centre, radius = room.spheres[i - WALLS - len(room.boxes), :3], room.spheres[i - WALLS - len(room.boxes), 3]
            offset = points[at] - centre
            unit = offset / np.maximum(np.linalg.norm(offset, axis=1, keepdims=True), 1e-9)
            surface[at], normals[at] = centre + radius * unit, unit
    return surface, normals


def radiance(room: Room, points: np.ndarray, normals: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(N, 3) outgoing radiance of surface points of primitives ids with normals: HDR, above 1 at an emitter."""
    irradiance = np.full((len(points), 3), AMBIENT)
    for light, power in zip(room.lights, room.light_power):
        towards = light - points
        distance2 = np.maximum((towards**2).sum(1), 1e-6)
        cosine = np.clip((normals * towards).sum(1) / np.sqrt(distance2), 0.0, None)
        irradiance += (cosine / (distance2 + LIGHT_SOFTENING))[:, None] * power
    return room.albedo[ids] * irradiance + room.emission[ids]


def _nearest_wall(points: np.ndarray, interior: np.ndarray) -> np.ndarray:
    """The wall a point outside the interior lies beyond the furthest (its nearest, seen from the room)."""
    excess = np.concatenate([interior[0] - points, points - interior[1]], 1)  # -x, -y, -z, +x, +y, +z
    which = np.argmax(excess, axis=1)
    return np.array([0, 2, 4, 1, 3, 5])[which]
