"""A run that trains on some of a data set's classes: `data.classes: [road]` and `data.other_classes`.

The manifest a run sees lists the chosen classes in the order given, then (other_classes: background)
one class "background" for every other class, or (ignore) none, the others then unlabelled. Label
maps are stored with the data set's own ids; `class_lookup` (id as stored -> id as trained) maps
them as they are decoded (SampleRules.label_lookup), for training and evaluation alike, after the
sample checks (which check the stored ids against `source_classes`, the data set's own table).
`class_source_ids` (id as trained -> id as stored) is how exports map predictions back.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.config.errors import ConfigError
from core.config.sections import DataConfig

BACKGROUND = {"name": "background", "color": [0, 0, 0]}


def select(manifest: dict[str, Any], data: DataConfig) -> dict[str, Any]:
    """The manifest as a run with data.classes sees it; the manifest itself where data.classes is unset."""
    if not data.classes:
        return manifest
    source = manifest["classes"]
    names = [c["name"] for c in source]
    for name in data.classes:
        if name not in names:
            raise ConfigError(f"data.classes: {name!r} is not a class of the data set at {data.uri}; its classes are "
                              f"{', '.join(names)}")
    if len(set(data.classes)) < len(data.classes):
        raise ConfigError(f"data.classes names a class twice: {data.classes}")
    kept = [names.index(name) for name in data.classes]
    ignore = manifest["ignore_index"]
    others = len(kept) if data.other_classes == "background" else ignore
    lookup = np.full(256, others, dtype=np.int64)
    lookup[ignore] = ignore
    for new, old in enumerate(kept):
        lookup[old] = new
    pixels = np.asarray(manifest["stats"]["class_pixels"], dtype=np.int64)
    counted = [int(pixels[old]) for old in kept]
    if data.other_classes == "background":
        counted.append(int(pixels.sum() - sum(counted)))
    classes = [{**source[old], "id": new} for new, old in enumerate(kept)]
    classes += [{**BACKGROUND, "id": len(kept)}] if data.other_classes == "background" else []
    back = kept + ([ignore] if data.other_classes == "background" else [])
    return {**manifest, "classes": classes, "source_classes": source, "class_lookup": lookup.tolist(), "class_source_ids": back,
            "stats": {**manifest["stats"], "class_pixels": counted}}


def source_ids(manifest: dict[str, Any]) -> np.ndarray | None:
    """Trained class id -> the data set's id (background -> the ignore index); None without a subset."""
    return np.asarray(manifest["class_source_ids"], dtype=np.int64) if "class_source_ids" in manifest else None
