"""Convert a source data set (Cityscapes, KITTI depth completion) into shards + manifest with Ray Data.

Ray Data tasks read, decode, crop, check and re-encode samples in parallel; the driver writes them
in order into shards of a target size and writes the manifest last. An output that already holds
this very conversion (same source and options) is left as it is; one without a manifest is an
interrupted conversion and is written again; one holding a different data set is refused.
"""
from __future__ import annotations

import json
import pickle
import sys
from typing import Any, Protocol

import numpy as np
import ray.data

from data_pipeline.format import codec, shards
from data_pipeline.format.dataset_stats import Progress, Stats, sample_stats
from data_pipeline.format.shards import DatasetError
from data_pipeline.storage.datastore import DataStore
from data_pipeline.format.shards import IMAGE_KINDS
from data_pipeline.format.validate import sample_problem

ROWS_PER_SHARD_CAP = 100_000  # shards are cut by size; this only bounds a shard of tiny samples


class Source(Protocol):
    name: str
    ignore_index: int
    classes: list[dict[str, Any]]

    def describe(self) -> dict[str, Any]: ...

    def items(self) -> dict[str, list[dict[str, str]]]: ...

    def load(self, item: dict[str, str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(the row's values other than images, the decoded images: rgb, labels, depth in metres, ...)."""


def convert(source: Source, out: DataStore, shard_mb: float, on_bad: str, encoding: str = "npy",
            task_cpus: float = 1.0) -> dict[str, Any]:
    described = {**source.describe(), "encoding": encoding}
    if out.exists(shards.MANIFEST):
        existing = shards.read_manifest(out)
        if existing.get("source") == described:
            print(f"{out.uri} already holds this conversion; nothing to do", file=sys.stderr)
            return existing
        raise DatasetError(f"{out.display(shards.MANIFEST)} describes another data set ({existing.get('source') or existing.get('name')}); "
                           "write to another --out, or delete it first")
    out.remove()
    items = source.items()
    splits, stats, skipped, image_size = {}, Stats(len(source.classes)), [], None
    for split, split_items in items.items():
        writer = shards.ShardWriter(out, split, ROWS_PER_SHARD_CAP, target_bytes=int(shard_mb * 2**20))
        progress = Progress(f"converting {split}", len(split_items))
        for converted in _converted(source, split_items, encoding, task_cpus):
            progress.step()
            size = [converted["row"].get("height"), converted["row"].get("width")]
            if not converted["problem"] and image_size and size != image_size:
                converted["problem"] = f"images are {size[0]}x{size[1]}, the data set's others are {image_size[0]}x{image_size[1]}"
            if converted["problem"]:
                if on_bad == "error":
                    raise DatasetError(f"sample {converted['row']['sample_id']} ({converted['files']}): {converted['problem']}. "
                                       "Fix or remove it, or pass --on-bad-sample skip to leave such samples out")
                skipped.append({"sample_id": converted["row"]["sample_id"], "files": converted["files"], "reason": converted["problem"]})
                continue
            image_size = image_size or size
            if split == "train":
                stats.add(json.loads(converted["stats"]))
            writer.add(converted["row"])
        splits[split] = writer.close()
        if split in getattr(source, "without_ground_truth", ()):
            splits[split]["ground_truth"] = False
    manifest = {"name": source.name, "source": described, "classes": source.classes, "ignore_index": source.ignore_index,
                "image_size": image_size, "encoding": encoding, "depth_scale": codec.DEPTH_SCALE, "splits": splits, "stats": stats.summary(),
                "skipped_samples": skipped}
    shards.write_manifest(out, manifest)
    return shards.read_manifest(out)


def _converted(source: Source, items: list[dict[str, str]], encoding: str, task_cpus: float):
    """Each item loaded and checked in a Ray Data task, in the order of the items."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the same source gives the same shards, byte for byte
    context.enable_progress_bars = False
    dataset = ray.data.from_items(items).map(_load, fn_kwargs={"source": source, "encoding": encoding}, num_cpus=task_cpus)
    for converted in dataset.iter_rows():
        yield {**converted, "row": pickle.loads(converted["row"])}


def _load(item: dict[str, str], source: Source, encoding: str) -> dict[str, Any]:
    files = ", ".join(f"{k}={v}" for k, v in item.items() if k not in ("sample_id", "camera"))
    try:
        row, images = source.load(item)
    except Exception as err:  # a broken file is a bad sample like any other
        return _bad(item, f"{type(err).__name__}: {err}", files)
    height, width = images["rgb"].shape[:2]
    checked = {k: v for k, v in images.items() if k != "labels" or source.classes}
    problem = sample_problem(checked, IMAGE_KINDS, (height, width), len(source.classes), source.ignore_index)
    if problem:
        return _bad(item, problem, files)
    try:
        row.update(codec.encode_images(images, encoding))
    except ValueError as err:  # depth beyond what 16 bits hold
        return _bad(item, str(err), files)
    stats = sample_stats(images["rgb"], images.get("depth"), images.get("labels"), len(source.classes), source.ignore_index)
    # Pickled: rows differ in which columns they have, which Arrow would have to unify across blocks.
    return {"row": pickle.dumps(row), "problem": "", "stats": json.dumps(stats), "files": files}


def _bad(item: dict[str, str], problem: str, files: str) -> dict[str, Any]:
    return {"row": pickle.dumps({"sample_id": item["sample_id"]}), "problem": problem, "stats": "{}", "files": files}
