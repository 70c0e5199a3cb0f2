"""Generate the synthetic terrain data set: scenes -> rendered views -> Parquet shards + manifest.

Sample i of a split comes from scene i // views_per_scene, whose random stream is seeded by
(seed, split, scene), so the data set is a pure function of the config and train and val never
share a scene.
"""
from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.config import SyntheticConfig
from data_pipeline import codec, shards
from data_pipeline.render import IGNORE_LABEL, View, render_views
from data_pipeline.terrain import CLASSES, METRES_PER_UNIT, make_scene

SPLITS = ("train", "val")


def ensure_dataset(root: Path, config: SyntheticConfig) -> dict[str, Any]:
    """Return the manifest at root, generating the data set first if root holds none."""
    if (root / shards.MANIFEST).is_file():
        return shards.read_manifest(root)
    return generate(root, config)


def generate(root: Path, config: SyntheticConfig) -> dict[str, Any]:
    if root.exists():
        shutil.rmtree(root)  # holds no manifest, so it is the leftover of an interrupted write
    root.mkdir(parents=True)
    splits, stats = {}, _Stats()
    for split_index, split in enumerate(SPLITS):
        count = config.num_train if split == "train" else config.num_val
        splits[split] = _write_split(root, config, split_index, split, count, stats if split == "train" else None)
    manifest = {
        "name": "synthetic-terrain",
        "generator": {"module": __name__, **config.model_dump()},
        "classes": [{"id": i, "name": name, "color": list(color)} for i, (name, color) in enumerate(CLASSES)],
        "ignore_index": IGNORE_LABEL,
        "image_size": [config.image_size, config.image_size],
        "depth_scale": codec.DEPTH_SCALE,
        "metres_per_world_unit": METRES_PER_UNIT,
        "splits": splits,
        "stats": stats.summary(),
    }
    shards.write_manifest(root, manifest)
    return shards.read_manifest(root)


def _write_split(root: Path, config: SyntheticConfig, split_index: int, split: str, count: int, stats) -> dict:
    writer = shards.ShardWriter(root, split, config.rows_per_shard)
    progress = _Progress(f"generating {split}", count)
    for scene_index in range(math.ceil(count / config.views_per_scene)):
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, split_index, scene_index]))
        scene = make_scene(rng)
        views_left = min(config.views_per_scene, count - scene_index * config.views_per_scene)
        for view_index, view in enumerate(render_views(scene, rng, views_left, config.image_size)):
            writer.add(_row(f"{split}-{scene_index:05d}-{view_index}", scene, view))
            if stats is not None:
                stats.add(view)
            progress.step()
    return writer.close()


def _row(sample_id: str, scene, view: View) -> dict[str, Any]:
    return {
        "sample_id": sample_id,
        "rgb": codec.encode_png(view.rgb),
        "depth": codec.encode_depth(view.depth),
        "sparse_depth": codec.encode_depth(view.sparse_depth),
        "labels": codec.encode_png(view.labels),
        "height": view.rgb.shape[0],
        "width": view.rgb.shape[1],
        "intrinsics": view.intrinsics.ravel().tolist(),
        "rotation": view.rotation.ravel().tolist(),
        "translation": view.translation.tolist(),
        "mesh_verts": scene.verts.ravel().tolist(),
        "mesh_faces": scene.faces.astype(np.int32).ravel().tolist(),
        "mesh_face_labels": scene.face_labels.tolist(),
    }


class _Stats:
    """Normalisation statistics of the train split, accumulated in one pass."""

    def __init__(self):
        self.rgb_sum = np.zeros(3)
        self.rgb_sq = np.zeros(3)
        self.pixels = 0
        self.depth_sum = self.depth_sq = 0.0
        self.depth_count = 0
        self.class_pixels = np.zeros(len(CLASSES), dtype=np.int64)

    def add(self, view: View) -> None:
        rgb = view.rgb.reshape(-1, 3) / 255.0
        self.rgb_sum += rgb.sum(0)
        self.rgb_sq += (rgb**2).sum(0)
        self.pixels += len(rgb)
        valid = view.depth[view.depth > 0].astype(np.float64)
        self.depth_sum += valid.sum()
        self.depth_sq += (valid**2).sum()
        self.depth_count += valid.size
        labelled = view.labels[view.labels != IGNORE_LABEL]
        self.class_pixels += np.bincount(labelled, minlength=len(CLASSES))

    def summary(self) -> dict[str, Any]:
        rgb_mean = self.rgb_sum / self.pixels
        depth_mean = self.depth_sum / self.depth_count
        return {
            "rgb_mean": rgb_mean.tolist(),
            "rgb_std": np.sqrt(self.rgb_sq / self.pixels - rgb_mean**2).tolist(),
            "depth_mean_m": depth_mean,
            "depth_std_m": math.sqrt(self.depth_sq / self.depth_count - depth_mean**2),
            "class_pixels": self.class_pixels.tolist(),
        }


class _Progress:
    def __init__(self, label: str, total: int):
        self.label, self.total, self.done = label, total, 0
        self.start = time.monotonic()
        self.every = max(1, total // 10)

    def step(self) -> None:
        self.done += 1
        if self.done % self.every and self.done != self.total:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        print(f"{self.label}: {self.done}/{self.total} samples, {elapsed:.0f} s, about {eta:.0f} s left", file=sys.stderr, flush=True)
