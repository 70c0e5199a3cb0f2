"""Small source trees in the exact layouts of Cityscapes and KITTI depth completion, with known contents."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data_pipeline.format import codec

CITYSCAPES_SIZE = (16, 32)
KITTI_SIZE = (40, 64)  # cropped to 32 x 48 in the tests
KITTI_K = np.array([[50.0, 0.0, 30.0], [0.0, 50.0, 20.0], [0.0, 0.0, 1.0]])


def cityscapes_tree(root: Path, per_split: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """per_split: {split: [city, ...]}, one image per city; returns the labelIds image of each sample id."""
    rng = np.random.default_rng(0)
    written = {}
    for split, cities in per_split.items():
        for index, city in enumerate(cities):
            stem = f"{city}_{index:06d}_000019"
            rgb = rng.integers(0, 256, (*CITYSCAPES_SIZE, 3), dtype=np.uint8)
            # unlabeled (0), road (7), car (26), sky (23) in bands
            label_ids = np.zeros(CITYSCAPES_SIZE, np.uint8)
            label_ids[4:8], label_ids[8:12], label_ids[12:] = 7, 26, 23
            _png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", codec.encode_png(rgb))
            _png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", codec.encode_png(label_ids))
            written[stem] = label_ids
    return written


KITTI_TEST_NAMES = ("0000000000", "0000000001")


def kitti_tree(root: Path, semantic: bool = False) -> dict[str, np.ndarray]:
    """Two drives in train, one in val, two cameras, two frames each, plus a two-image selection set and a two-image test set;
    returns the full (uncropped) ground-truth depth in metres of each annotated sample id."""
    rng = np.random.default_rng(1)
    truths = {}
    layout = {"train": ["2011_09_26_drive_0001_sync", "2011_09_28_drive_0002_sync"], "val": ["2011_09_26_drive_0005_sync"]}
    for split, drives in layout.items():
        for drive in drives:
            date = drive[:10]
            _calib(root / date / "calib_cam_to_cam.txt")
            for camera in ("image_02", "image_03"):
                for frame in ("0000000005.png", "0000000006.png"):
                    depth = np.round(rng.uniform(1, 80, KITTI_SIZE) * 256) / 256 * (rng.random(KITTI_SIZE) < 0.3)
                    sparse = depth * (rng.random(KITTI_SIZE) < 0.2)
                    base = Path(split) / drive / "proj_depth"
                    _png(root / "data_depth_annotated" / base / "groundtruth" / camera / frame, codec.encode_depth(depth))
                    _png(root / "data_depth_velodyne" / base / "velodyne_raw" / camera / frame, codec.encode_depth(sparse))
                    rgb = rng.integers(0, 256, (*KITTI_SIZE, 3), dtype=np.uint8)
                    _png(root / date / drive / camera / "data" / frame, codec.encode_png(rgb))
                    if semantic:
                        labels = rng.integers(0, 19, KITTI_SIZE, dtype=np.uint8)
                        _png(root / "semantic" / date / drive / camera / "data" / frame, codec.encode_png(labels))
                    truths[f"{drive}_{camera}_{frame[:-4]}"] = depth
    selection = root / "depth_selection" / "val_selection_cropped"
    for frame in ("0000000005", "0000000011"):
        stem = f"2011_09_26_drive_0002_sync_image_{frame}_image_02"
        depth = np.round(rng.uniform(1, 80, (32, 48)) * 256) / 256
        _png(selection / "image" / f"{stem}.png", codec.encode_png(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)))
        _png(selection / "velodyne_raw" / f"2011_09_26_drive_0002_sync_velodyne_raw_{frame}_image_02.png", codec.encode_depth(depth * 0))
        _png(selection / "groundtruth_depth" / f"2011_09_26_drive_0002_sync_groundtruth_depth_{frame}_image_02.png",
             codec.encode_depth(depth))
        (selection / "intrinsics").mkdir(parents=True, exist_ok=True)
        (selection / "intrinsics" / f"{stem}.txt").write_text(" ".join(f"{v:g}" for v in KITTI_K.ravel()))
    test = root / "depth_selection" / "test_depth_completion_anonymous"  # anonymous names, no ground truth
    for name in KITTI_TEST_NAMES:
        _png(test / "image" / f"{name}.png", codec.encode_png(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)))
        sparse = np.round(rng.uniform(1, 80, (32, 48)) * 256) / 256 * (rng.random((32, 48)) < 0.1)
        _png(test / "velodyne_raw" / f"{name}.png", codec.encode_depth(sparse))
        (test / "intrinsics").mkdir(parents=True, exist_ok=True)
        (test / "intrinsics" / f"{name}.txt").write_text(" ".join(f"{v:g}" for v in KITTI_K.ravel()))
    return truths


def _calib(path: Path) -> None:
    projection = np.hstack([KITTI_K, np.zeros((3, 1))])
    lines = ["calib_time: 09-Jan-2012 13:57:47"] + [f"P_rect_0{c}: " + " ".join(f"{v:e}" for v in projection.ravel()) for c in (2, 3)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _png(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


KITTI_SEMANTIC_IDS = (0, 7, 26)  # Cityscapes label ids: unlabeled, road, car


def kitti_semantic_tree(root: Path) -> dict[str, np.ndarray]:
    """Five labelled frames of two slightly different sizes (as KITTI's drives differ) and two test frames;
    returns each labelled frame's label ids."""
    rng = np.random.default_rng(2)
    labels = {}
    for index in range(5):
        size = (40, 60) if index % 2 else (41, 62)
        stem = f"{index:06d}_10"
        _png(root / "training" / "image_2" / f"{stem}.png", codec.encode_png(rng.integers(0, 256, (*size, 3), dtype=np.uint8)))
        labels[stem] = rng.choice(KITTI_SEMANTIC_IDS, size).astype(np.uint8)
        _png(root / "training" / "semantic" / f"{stem}.png", codec.encode_png(labels[stem]))
    for index in range(2):
        _png(root / "testing" / "image_2" / f"{index:06d}_10.png", codec.encode_png(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)))
    return labels
