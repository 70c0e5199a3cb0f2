"""KITTI's semantic segmentation benchmark in its official layout, as a preprocessing source.

    SRC/training/image_2/<frame>.png     RGB (about 375 x 1242; sizes differ slightly between drives)
    SRC/training/semantic/<frame>.png    Cityscapes label ids
    SRC/testing/image_2/<frame>.png      RGB without labels: the split "test"

Labels become the 19 train ids or the 7 categories through the Cityscapes label table, as for
Cityscapes, so a model trains on either data set (or both) with the same classes. The 200 training
frames have no official validation split: every val_every-th frame (by name) is val. Images are
cropped to a common bottom-centre window (default 352 x 1216, a multiple of the encoders' 32). The
test split's label maps are unlabelled everywhere and its manifest entry says ground_truth: false.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data_pipeline.format import codec
from data_pipeline.format.shards import DatasetError
from data_pipeline.sources.cityscapes import IGNORE, class_table
from data_pipeline.sources.kitti import bottom_centre

TEST_PREFIX = "test_"


class KittiSemanticSource:
    name = "kitti-semantics"
    ignore_index = IGNORE
    without_ground_truth = ("test",)

    def __init__(self, src: Path, scheme: str = "trainids", crop: tuple[int, int] = (352, 1216), val_every: int = 5):
        self.src, self.scheme, self.crop, self.val_every = src, scheme, crop, val_every
        self.classes, self.lookup = class_table(scheme)

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.name, "src": str(self.src), "classes": self.scheme, "crop": list(self.crop), "val_every": self.val_every}

    def items(self) -> dict[str, list[dict[str, str]]]:
        images = sorted((self.src / "training" / "image_2").glob("*.png"))
        if not images:
            raise DatasetError(f"{self.src / 'training' / 'image_2'} holds no *.png: not the KITTI semantics layout "
                               "(SRC/training/image_2, SRC/training/semantic, SRC/testing/image_2)")
        labelled = [self._item(image) for image in images]
        found = {"train": [item for index, item in enumerate(labelled) if (index + 1) % self.val_every],
                 "val": [item for index, item in enumerate(labelled) if not (index + 1) % self.val_every]}
        tests = sorted((self.src / "testing" / "image_2").glob("*.png"))
        if tests:
            found["test"] = [{"sample_id": f"{TEST_PREFIX}{image.stem}", "rgb": str(image)} for image in tests]
        return found

    def _item(self, image: Path) -> dict[str, str]:
        labels = self.src / "training" / "semantic" / image.name
        if not labels.is_file():
            raise DatasetError(f"{image} has no label image {labels}")
        return {"sample_id": image.stem, "rgb": str(image), "labels": str(labels)}

    def load(self, item: dict[str, str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(the row's values other than images, the decoded images), bottom-centre cropped."""
        rgb = codec.decode_png(Path(item["rgb"]).read_bytes())
        window, _, _ = bottom_centre(rgb.shape[:2], self.crop, item["rgb"])
        if "labels" in item:
            labels = self.lookup[codec.decode_png(Path(item["labels"]).read_bytes())]
        else:
            labels = np.full(rgb.shape[:2], IGNORE, dtype=np.uint8)
        row = {"sample_id": item["sample_id"], "height": self.crop[0], "width": self.crop[1]}
        return row, {"rgb": rgb[window], "labels": labels[window]}
