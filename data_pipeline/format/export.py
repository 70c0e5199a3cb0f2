"""Predictions written in the public benchmarks' formats, so their official tools score them.

Segmentation of Cityscapes: labelIds PNGs (train ids or categories mapped back to Cityscapes
label ids through cityscapesscripts' table) named like the inputs, `<city>_<seq>_<frame>_leftImg8bit.png`,
which the Cityscapes evaluation script finds by their first three fields. Other segmentation data:
class-id PNGs named after the sample id. A run on some of the classes (data.classes) is mapped back
to the data set's ids first; its background class becomes the ignore index, or void (label id 0)
for Cityscapes. Depth: KITTI depth-completion uint16 PNGs (metres x 256,
0 = no prediction) named after the input image (the test split's anonymous names, 0000000000.png...).
KITTI semantics: Cityscapes labelIds PNGs named like its images (000000_10.png).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.tasks.columns import Kind
from data_pipeline.format import class_subset, codec

_KITTI_PREFIXES = ("selection_", "test_")  # what KITTI's sample ids add to the names of its selection and test images


class PredictionExport:
    """Writes what the task exports (its `exported` kind, from its `exported_predictions(outputs)`): label maps or depth maps."""

    def __init__(self, folder: Path, manifest: dict[str, Any], task: Any, task_name: str):
        self.folder, self.task = folder, task
        self.kind = getattr(task, "exported", None)
        if self.kind not in (Kind.LABEL_MAP, Kind.DEPTH_MAP):
            raise ValueError(f"--export writes label maps and depth maps; the {task_name} task's predictions have no "
                             "benchmark format here")
        folder.mkdir(parents=True, exist_ok=True)
        self.cityscapes = manifest.get("name") == "cityscapes"
        self.kitti_semantics = manifest.get("name") == "kitti-semantics"  # its benchmark takes Cityscapes label ids too
        label_ids = self.cityscapes or self.kitti_semantics
        self.label_ids = _cityscapes_label_ids(manifest["source"]["classes"]) if label_ids else None
        self.source_ids = class_subset.source_ids(manifest)
        self.written = 0

    def __call__(self, batch: dict[str, Any], outputs: Any) -> None:
        predictions = self.task.exported_predictions(outputs)
        if self.kind is Kind.LABEL_MAP:
            for sample_id, classes in zip(batch["sample_id"], predictions):
                self._write_classes(sample_id, classes)
        else:
            for sample_id, depth in zip(batch["sample_id"], predictions):
                name = _kitti_name(sample_id)
                stored = np.round(np.clip(depth, 0, codec.MAX_DEPTH_M) * codec.DEPTH_SCALE).astype(np.uint16)
                (self.folder / f"{name}.png").write_bytes(codec.encode_png(stored))
                self.written += 1

    def _write_classes(self, sample_id: str, classes: np.ndarray) -> None:
        if self.source_ids is not None:
            classes = self.source_ids[classes].astype(np.uint8)  # the ignore index stays itself: void for Cityscapes below
        if self.cityscapes:
            (self.folder / f"{sample_id}_leftImg8bit.png").write_bytes(codec.encode_png(self.label_ids[classes]))
        elif self.kitti_semantics:
            (self.folder / f"{_kitti_name(sample_id)}.png").write_bytes(codec.encode_png(self.label_ids[classes]))
        else:
            (self.folder / f"{sample_id}.png").write_bytes(codec.encode_png(classes))
        self.written += 1


def _kitti_name(sample_id: str) -> str:
    """The benchmark's file name of a KITTI sample: its image's."""
    return next((sample_id[len(prefix):] for prefix in _KITTI_PREFIXES if sample_id.startswith(prefix)), sample_id)


def _cityscapes_label_ids(scheme: str) -> np.ndarray:
    """class index -> the Cityscapes label id that the evaluation script maps back to that class."""
    from cityscapesscripts.helpers.labels import labels

    lookup = np.zeros(256, dtype=np.uint8)
    for label in reversed(labels):  # the first label of a class wins, as in the label table's order
        if label.id < 0:
            continue
        if scheme == "trainids" and 0 <= label.trainId < 255:
            lookup[label.trainId] = label.id
        elif scheme == "categories" and label.categoryId > 0 and not label.ignoreInEval:
            lookup[label.categoryId - 1] = label.id
    return lookup
