"""KITTI depth completion in its official layout, as a preprocessing source.

    SRC/data_depth_annotated/{train,val}/<drive>/proj_depth/groundtruth/image_0{2,3}/<frame>.png
    SRC/data_depth_velodyne/{train,val}/<drive>/proj_depth/velodyne_raw/image_0{2,3}/<frame>.png
    RAW/<date>/<drive>/image_0{2,3}/data/<frame>.png        (RGB; RAW/<date>/calib_cam_to_cam.txt)
    SRC/depth_selection/val_selection_cropped/{image,velodyne_raw,groundtruth_depth,intrinsics}/
    SRC/depth_selection/test_depth_completion_anonymous/{image,velodyne_raw,intrinsics}/   (split "test", no ground truth)
    SEMANTIC/<date>/<drive>/image_0{2,3}/data/<frame>.png   (optional, laid out like the raw tree)

Depth PNGs are uint16, metres x 256, 0 = no measurement: the shard format's own convention, so they
are stored as they came unless cropped. Images are cropped to the benchmark's bottom-centre
352 x 1216 (the selection set already is), with the intrinsics shifted to match. The test split has
no ground truth: its depth maps hold 0 everywhere, "no measurement", and its manifest entry says
`ground_truth: false`; jobs.evaluate exports its predictions for the leaderboard instead of scoring.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data_pipeline.format import codec
from data_pipeline.sources.cityscapes import class_table
from data_pipeline.format.shards import DatasetError

SPLITS = ("train", "val")
SELECTION = Path("depth_selection") / "val_selection_cropped"
TEST = Path("depth_selection") / "test_depth_completion_anonymous"
TEST_PREFIX = "test_"  # sample ids of the test split: the prefix and the image's anonymous name
IGNORE = 255


class KittiDepthSource:
    name = "kitti-depth-completion"
    ignore_index = IGNORE
    without_ground_truth = ("test",)

    def __init__(self, src: Path, raw: Path | None = None, semantic: Path | None = None, crop: tuple[int, int] = (352, 1216)):
        self.src, self.raw, self.semantic, self.crop = src, raw or src, semantic, crop
        # SemAttNet's semantic maps come from a Cityscapes-trained segmenter: its 19 train ids.
        self.classes = class_table("trainids")[0] if semantic else []

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.name, "src": str(self.src), "raw": str(self.raw),
                "semantic": str(self.semantic) if self.semantic else None, "crop": list(self.crop)}

    def items(self) -> dict[str, list[dict[str, str]]]:
        found = {split: self._annotated(split) for split in SPLITS}
        if (self.src / SELECTION).is_dir():
            found["val_selection"] = self._selection()
        if (self.src / TEST).is_dir():
            found["test"] = self._test()
        return found

    def _annotated(self, split: str) -> list[dict[str, str]]:
        root = self.src / "data_depth_annotated" / split
        truths = sorted(root.glob("*/proj_depth/groundtruth/image_0[23]/*.png"))
        if not truths:
            raise DatasetError(f"{root} holds no <drive>/proj_depth/groundtruth/image_0{{2,3}}/*.png: not the KITTI "
                               "depth-completion layout")
        return [self._annotated_item(split, truth) for truth in truths]

    def _annotated_item(self, split: str, truth: Path) -> dict[str, str]:
        camera, drive, frame = truth.parent.name, truth.parents[3].name, truth.name
        date = drive[:10]
        item = {
            "sample_id": f"{drive}_{camera}_{truth.stem}",
            "depth": str(truth),
            "sparse_depth": str(self.src / "data_depth_velodyne" / split / drive / "proj_depth" / "velodyne_raw" / camera / frame),
            "rgb": str(self.raw / date / drive / camera / "data" / frame),
            "calib": str(self.raw / date / "calib_cam_to_cam.txt"),
            "camera": camera,
        }
        if self.semantic:
            item["labels"] = str(self.semantic / date / drive / camera / "data" / frame)
        _require(item, ("depth", "sparse_depth", "rgb", "labels"))
        return item

    def _selection(self) -> list[dict[str, str]]:
        root = self.src / SELECTION
        items = []
        for image in sorted((root / "image").glob("*.png")):
            drive, rest = image.stem.split("_image_", 1)  # <drive>_image_<frame>_image_0X
            item = {
                "sample_id": f"selection_{image.stem}",
                "rgb": str(image),
                "sparse_depth": str(root / "velodyne_raw" / f"{drive}_velodyne_raw_{rest}.png"),
                "depth": str(root / "groundtruth_depth" / f"{drive}_groundtruth_depth_{rest}.png"),
                "intrinsics": str(root / "intrinsics" / f"{image.stem}.txt"),
            }
            _require(item, ("rgb", "sparse_depth", "depth", "intrinsics"))
            items.append(item)
        return items

    def _test(self) -> list[dict[str, str]]:
        root = self.src / TEST
        items = []
        for image in sorted((root / "image").glob("*.png")):
            item = {"sample_id": f"{TEST_PREFIX}{image.stem}", "rgb": str(image),
                    "sparse_depth": str(root / "velodyne_raw" / image.name), "intrinsics": str(root / "intrinsics" / f"{image.stem}.txt")}
            _require(item, ("rgb", "sparse_depth", "intrinsics"))
            items.append(item)
        return items

    def load(self, item: dict[str, str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(the row's values other than images, the decoded images), bottom-centre cropped."""
        rgb = codec.decode_png(Path(item["rgb"]).read_bytes())
        window, top, left = bottom_centre(rgb.shape[:2], self.crop, item["rgb"])
        images = {"rgb": rgb[window]}
        for name in ("depth", "sparse_depth"):
            if name in item:
                images[name] = codec.decode_depth(Path(item[name]).read_bytes())[window]
        images.setdefault("depth", np.zeros_like(images["sparse_depth"]))  # the test split: no ground truth
        if "labels" in item:
            images["labels"] = codec.decode_png(Path(item["labels"]).read_bytes())[window]
        intrinsics = self._intrinsics(item)
        intrinsics[0, 2] -= left
        intrinsics[1, 2] -= top
        row = {"sample_id": item["sample_id"], "height": self.crop[0], "width": self.crop[1],
               "intrinsics": intrinsics.ravel().tolist()}
        return row, images

    def _intrinsics(self, item: dict[str, str]) -> np.ndarray:
        if "intrinsics" in item:
            return np.array(Path(item["intrinsics"]).read_text().split(), dtype=np.float64).reshape(3, 3)
        key = f"P_rect_{item['camera'][-2:]}:"
        for line in Path(item["calib"]).read_text().splitlines():
            if line.startswith(key):
                return np.array(line[len(key):].split(), dtype=np.float64).reshape(3, 4)[:, :3].copy()
        raise DatasetError(f"{item['calib']} has no {key} line (the rectified projection of {item['camera']})")


def bottom_centre(size: tuple[int, int], crop: tuple[int, int], image: str) -> tuple[tuple[slice, slice], int, int]:
    """(the window, its top, its left) of a crop at the bottom centre of an image of this size, as KITTI's benchmarks crop."""
    height, width = size
    top, left = height - crop[0], (width - crop[1]) // 2
    if top < 0 or left < 0:
        raise DatasetError(f"{image} is {height}x{width}, smaller than the crop {crop[0]}x{crop[1]}")
    return (slice(top, top + crop[0]), slice(left, left + crop[1])), top, left


def _require(item: dict[str, str], names: tuple[str, ...]) -> None:
    for name in names:
        if name in item and not Path(item[name]).is_file():
            raise DatasetError(f"sample {item['sample_id']}: {name} file {item[name]} is missing")
    if "calib" in item and not Path(item["calib"]).is_file():
        raise DatasetError(f"sample {item['sample_id']}: calibration {item['calib']} is missing")
