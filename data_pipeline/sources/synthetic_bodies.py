"""Generate the synthetic bodies data set: bodies -> mesh, pictures and points -> Parquet shards + manifest.

Sample i of a split comes from the random stream seeded by (seed, split, i) (sample_splits), so the
data set is a pure function of the config. Each row holds the pictures (rgb, mask, normal_front, normal_back),
the camera, the body's parts (its analytic field) and skeleton, the ground-truth mesh, points on
its surface, and held-out query points with their exact occupancy (the validation split scores
on them; training draws its own each epoch, core.tasks.implicit.task). The manifest carries the
training split's mean occupancy on a coarse grid: the mean-shape baseline.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.config.sections import SyntheticConfig
from core.tasks.implicit.body_field import draw_points, grid_points, signed_distance
from data_pipeline.format import codec, shards
from data_pipeline.format.dataset_stats import Stats, sample_stats
from data_pipeline.sources.bodies import BODY_PARTS, make_body
from data_pipeline.sources.body_render import CAMERA, render_body
from data_pipeline.sources.sample_splits import manifest_head, write_splits
from data_pipeline.storage.datastore import DataStore

CLASSES = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "body", "color": [230, 190, 150]}]
IGNORE_LABEL = 255
MEAN_SHAPE_RESOLUTION = 24
HELD_OUT_SIGMA = 0.05  # metres: how far the held-out points stray from the surface


def generate(store: DataStore, config: SyntheticConfig) -> dict[str, Any]:
    stats = Stats(len(CLASSES))
    occupancy = np.zeros(MEAN_SHAPE_RESOLUTION**3)

    def add(made) -> None:
        body, views = made
        stats.add(sample_stats(views.rgb, None, views.mask, len(CLASSES), IGNORE_LABEL))
        occupancy[:] += signed_distance(grid_points(MEAN_SHAPE_RESOLUTION), body.primitives) < 0

    splits = write_splits(store, config, "bodies", lambda sample_id, rng: _sample(sample_id, rng, config), add)
    manifest = {
        **manifest_head("synthetic-bodies", __name__, config, CLASSES, IGNORE_LABEL),
        "points_per_sample": config.points_per_sample,
        "body_parts": BODY_PARTS,
        "splits": splits,
        "stats": {**stats.summary(), "mean_occupancy": {"resolution": MEAN_SHAPE_RESOLUTION,
                                                        "values": np.round(occupancy / config.num_train, 3).tolist()}},
    }
    shards.write_manifest(store, manifest)
    return shards.read_manifest(store)


def _sample(sample_id: str, rng: np.random.Generator, config: SyntheticConfig):
    body = make_body(rng)
    views = render_body(body, rng, config.mesh_resolution, config.image_size, config.points_per_sample)
    points, occupancy = draw_points(views.surface_points, body.primitives, rng, config.points_per_sample, HELD_OUT_SIGMA)
    images = {"rgb": views.rgb, "mask": views.mask, "normal_front": views.normal_front, "normal_back": views.normal_back}
    row = {
        "sample_id": sample_id,
        **codec.encode_images(images, config.encoding),
        "height": config.image_size,
        "width": config.image_size,
        "camera": CAMERA.ravel().tolist(),
        "primitives": body.primitives.ravel().tolist(),
        "joints": body.joints.ravel().tolist(),
        "mesh_verts": views.verts.ravel().tolist(),
        "mesh_faces": views.faces.ravel().tolist(),
        "surface_points": views.surface_points.ravel().tolist(),
        "points": points.ravel().tolist(),
        "occupancy": occupancy.tolist(),
    }
    return row, (body, views)
