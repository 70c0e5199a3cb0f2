"""Generate the synthetic terrain data set (or, with data.synthetic.kind bodies or rooms, their sources'): scenes -> rendered views -> Parquet shards + manifest.

Sample i of a split comes from scene i // views_per_scene, whose random stream is seeded by
(seed, split, scene), so the data set is a pure function of the config and train and val never
share a scene.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.config.sections import SyntheticConfig
from data_pipeline.format import codec, shards
from data_pipeline.format.dataset_stats import Progress, Stats, sample_stats
from data_pipeline.sources import synthetic_bodies, synthetic_rooms
from data_pipeline.sources.render import IGNORE_LABEL, View, render_views
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.terrain import CLASSES, METRES_PER_UNIT, make_scene

SPLITS = ("train", "val")


def ensure_dataset(store: DataStore, config: SyntheticConfig) -> dict[str, Any]:
    """Return the store's manifest, generating the data set first if the store holds none."""
    if store.exists(shards.MANIFEST):
        return shards.read_manifest(store)
    if config.kind == "bodies":
        return synthetic_bodies.generate(store, config)
    if config.kind == "rooms":
        return synthetic_rooms.generate(store, config)
    return generate(store, config)


def generate(store: DataStore, config: SyntheticConfig) -> dict[str, Any]:
    store.remove()  # holds no manifest, so anything there is the leftover of an interrupted write
    splits, stats = {}, Stats(len(CLASSES))
    for split_index, split in enumerate(SPLITS):
        count = config.num_train if split == "train" else config.num_val
        splits[split] = _write_split(store, config, split_index, split, count, stats if split == "train" else None)
    manifest = {
        "name": "synthetic-terrain",
        "generator": {"module": __name__, **config.model_dump()},
        "classes": [{"id": i, "name": name, "color": list(color)} for i, (name, color) in enumerate(CLASSES)],
        "ignore_index": IGNORE_LABEL,
        "image_size": [config.image_size, config.image_size],
        "encoding": config.encoding,
        "depth_scale": codec.DEPTH_SCALE,
        "metres_per_world_unit": METRES_PER_UNIT,
        "splits": splits,
        "stats": stats.summary(),
    }
    shards.write_manifest(store, manifest)
    return shards.read_manifest(store)


def _write_split(store: DataStore, config: SyntheticConfig, split_index: int, split: str, count: int, stats) -> dict:
    writer = shards.ShardWriter(store, split, config.rows_per_shard)
    progress = Progress(f"generating {split}", count)
    for scene_index in range(math.ceil(count / config.views_per_scene)):
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, split_index, scene_index]))
        scene = make_scene(rng)
        views_left = min(config.views_per_scene, count - scene_index * config.views_per_scene)
        for view_index, view in enumerate(render_views(scene, rng, views_left, config.image_size)):
            writer.add(_row(f"{split}-{scene_index:05d}-{view_index}", scene, view, config.encoding))
            if stats is not None:
                stats.add(sample_stats(view.rgb, view.depth, view.labels, len(CLASSES), IGNORE_LABEL))
            progress.step()
    return writer.close()


def _row(sample_id: str, scene, view: View, encoding: str) -> dict[str, Any]:
    return {
        "sample_id": sample_id,
        **codec.encode_images({"rgb": view.rgb, "depth": view.depth, "sparse_depth": view.sparse_depth, "labels": view.labels},
                              encoding),
        "height": view.rgb.shape[0],
        "width": view.rgb.shape[1],
        "intrinsics": view.intrinsics.ravel().tolist(),
        "rotation": view.rotation.ravel().tolist(),
        "translation": view.translation.tolist(),
        "mesh_verts": scene.verts.ravel().tolist(),
        "mesh_faces": scene.faces.astype(np.int32).ravel().tolist(),
        "mesh_face_labels": scene.face_labels.tolist(),
    }
