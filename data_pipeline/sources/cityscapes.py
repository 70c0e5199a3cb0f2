"""Cityscapes in its official layout, as a preprocessing source.

    SRC/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    SRC/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Label ids become the 19 train ids or the categories through the label table of the
`cityscapesscripts` package; what the benchmark does not evaluate becomes the ignore label 255.
The RGB PNG is stored as it came.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from cityscapesscripts.helpers.labels import labels as LABEL_TABLE

from data_pipeline.format import codec
from data_pipeline.format.shards import DatasetError

IGNORE = 255
SPLITS = ("train", "val")
RGB_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"


def class_table(scheme: str) -> tuple[list[dict[str, Any]], np.ndarray]:
    """(classes for the manifest, lookup from label id to class id). scheme: "trainids" | "categories".

    Categories: the seven evaluated ones (flat, construction, object, nature, sky, human, vehicle);
    "void" is ignored, as the benchmark's category score ignores it.
    """
    lookup = np.full(256, IGNORE, dtype=np.uint8)
    if scheme == "trainids":
        named = sorted({(l.trainId, l.name, l.color) for l in LABEL_TABLE if 0 <= l.trainId < IGNORE})
        for label in LABEL_TABLE:
            if 0 <= label.id and 0 <= label.trainId < IGNORE:
                lookup[label.id] = label.trainId
    else:
        first = {}
        for label in LABEL_TABLE:
            if label.categoryId > 0:
                first.setdefault(label.categoryId, (label.categoryId - 1, label.category, label.color))
                if label.id >= 0:
                    lookup[label.id] = label.categoryId - 1
        named = sorted(first.values())
    return [{"id": i, "name": name, "color": list(color)} for i, name, color in named], lookup


class CityscapesSource:
    name = "cityscapes"
    ignore_index = IGNORE

    def __init__(self, src: Path, scheme: str = "trainids"):
        self.src, self.scheme = src, scheme
        self.classes, self.lookup = class_table(scheme)

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.name, "src": str(self.src), "classes": self.scheme}

    def items(self) -> dict[str, list[dict[str, str]]]:
        found = {}
        for split in SPLITS:
            images = sorted((self.src / "leftImg8bit" / split).glob(f"*/*{RGB_SUFFIX}"))
            if not images:
                raise DatasetError(f"{self.src / 'leftImg8bit' / split} holds no <city>/*{RGB_SUFFIX}: not the Cityscapes layout "
                                   "(SRC/leftImg8bit/{train,val}/<city>/..., SRC/gtFine/{train,val}/<city>/...)")
            found[split] = [self._item(split, image) for image in images]
        return found

    def _item(self, split: str, image: Path) -> dict[str, str]:
        stem = image.name[: -len(RGB_SUFFIX)]
        labels = self.src / "gtFine" / split / image.parent.name / f"{stem}{LABEL_SUFFIX}"
        if not labels.is_file():
            raise DatasetError(f"{image} has no label image {labels}")
        return {"sample_id": stem, "rgb": str(image), "labels": str(labels)}

    def load(self, item: dict[str, str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(the row's values other than images, the decoded images)."""
        labels = self.lookup[codec.decode_png(Path(item["labels"]).read_bytes())]
        rgb = codec.decode_png(Path(item["rgb"]).read_bytes())
        row = {"sample_id": item["sample_id"], "height": rgb.shape[0], "width": rgb.shape[1]}
        return row, {"rgb": rgb, "labels": labels}
