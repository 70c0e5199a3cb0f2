"""jobs.preprocess on fixture trees in the official Cityscapes and KITTI layouts, through Ray Data."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from data_pipeline.format import codec, shards
from data_pipeline.storage.datastore import DataStore
from jobs import preprocess
from tests.data_pipeline.layouts import KITTI_K, cityscapes_tree, kitti_tree
from tests.ray_fixtures import local_ray  # noqa: F401  (fixture)


def _rows(root, split):
    manifest = json.loads((root / shards.MANIFEST).read_text())
    rows = []
    for shard in manifest["splits"][split]["shards"]:
        rows += pq.read_table(root / shard["path"]).to_pylist()
    return manifest, {row["sample_id"]: row for row in rows}


def test_cityscapes_becomes_train_ids_through_the_official_label_table(local_ray, tmp_path):  # noqa: F811
    label_ids = cityscapes_tree(tmp_path / "cs", {"train": ["aachen", "bochum", "bremen"], "val": ["lindau"]})
    out = tmp_path / "out"
    assert preprocess.main(["cityscapes", "--src", str(tmp_path / "cs"), "--out", str(out), "--shard-mb", "0.002"]) == 0
    manifest, rows = _rows(out, "train")
    assert [c["name"] for c in manifest["classes"]][:3] == ["road", "sidewalk", "building"] and len(manifest["classes"]) == 19
    assert len(manifest["splits"]["train"]["shards"]) > 1, "a small --shard-mb cuts several shards"
    assert manifest["splits"]["val"]["rows"] == 1 and manifest["image_size"] == [16, 32]
    for stem, ids in label_ids.items():
        if stem in rows:
            labels = codec.decode_image(rows[stem]["labels"])
            expected = np.select([ids == 7, ids == 26, ids == 23], [0, 13, 10], 255)  # road, car, sky; unlabeled ignored
            assert np.array_equal(labels, expected)
            source = tmp_path / "cs" / "leftImg8bit" / "train" / stem.split("_")[0] / f"{stem}_leftImg8bit.png"
            assert np.array_equal(codec.decode_image(rows[stem]["rgb"]), codec.decode_png(source.read_bytes()))
    for shard in manifest["splits"]["train"]["shards"]:
        assert shards.sha256_of(DataStore.at(out), shard["path"]) == shard["sha256"]


def test_cityscapes_categories_and_an_idempotent_rerun(local_ray, tmp_path, capsys):  # noqa: F811
    cityscapes_tree(tmp_path / "cs", {"train": ["aachen"], "val": ["lindau"]})
    args = ["cityscapes", "--src", str(tmp_path / "cs"), "--out", str(tmp_path / "out"), "--classes", "categories"]
    assert preprocess.main(args) == 0
    manifest, rows = _rows(tmp_path / "out", "train")
    assert [c["name"] for c in manifest["classes"]] == ["flat", "construction", "object", "nature", "sky", "human", "vehicle"]
    labels = codec.decode_image(next(iter(rows.values()))["labels"])
    assert set(np.unique(labels)) == {0, 4, 6, 255}  # flat, sky, vehicle, void ignored
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    assert preprocess.main(args) == 0
    assert "already holds this conversion" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == written
    assert preprocess.main([*args[:-1], "trainids"]) == 2
    assert "describes another data set" in capsys.readouterr().err


def test_a_bad_source_sample_is_named_or_skipped(local_ray, tmp_path, capsys):  # noqa: F811
    cityscapes_tree(tmp_path / "cs", {"train": ["aachen", "bochum"], "val": ["lindau"]})
    bad = tmp_path / "cs" / "gtFine" / "train" / "bochum" / "bochum_000001_000019_gtFine_labelIds.png"
    bad.write_bytes(codec.encode_png(np.zeros((8, 8), np.uint8)))
    args = ["cityscapes", "--src", str(tmp_path / "cs"), "--out", str(tmp_path / "out")]
    assert preprocess.main(args) == 2
    err = capsys.readouterr().err
    assert "sample bochum_000001_000019" in err and str(bad) in err and "labels is 8x8" in err
    assert not (tmp_path / "out" / shards.MANIFEST).exists(), "a failed conversion is never a data set"
    assert preprocess.main([*args, "--on-bad-sample", "skip"]) == 0
    manifest, rows = _rows(tmp_path / "out", "train")
    assert list(rows) == ["aachen_000000_000019"]
    assert [s["sample_id"] for s in manifest["skipped_samples"]] == ["bochum_000001_000019"]


def test_missing_label_image_is_named(local_ray, tmp_path, capsys):  # noqa: F811
    cityscapes_tree(tmp_path / "cs", {"train": ["aachen"], "val": ["lindau"]})
    label = tmp_path / "cs" / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_labelIds.png"
    label.unlink()
    assert preprocess.main(["cityscapes", "--src", str(tmp_path / "cs"), "--out", str(tmp_path / "out")]) == 2
    assert f"has no label image {label}" in capsys.readouterr().err


@pytest.mark.parametrize("semantic", [False, True])
def test_kitti_depth_completion_is_cropped_with_its_intrinsics(local_ray, tmp_path, semantic):  # noqa: F811
    truths = kitti_tree(tmp_path / "kitti", semantic=semantic)
    args = ["kitti", "--src", str(tmp_path / "kitti"), "--out", str(tmp_path / "out"), "--crop", "32x48"]
    if semantic:
        args += ["--semantic", str(tmp_path / "kitti" / "semantic")]
    assert preprocess.main(args) == 0
    manifest, rows = _rows(tmp_path / "out", "train")
    assert {s: e["rows"] for s, e in manifest["splits"].items()} == {"train": 8, "val": 4, "val_selection": 2}
    assert manifest["image_size"] == [32, 48] and manifest["stats"]["depth_mean_m"] > 1
    sample_id = "2011_09_28_drive_0002_sync_image_03_0000000006"
    depth = codec.decode_depth(rows[sample_id]["depth"])
    assert np.array_equal(depth, truths[sample_id][8:40, 8:56].astype(np.float32))  # bottom 32 rows, centre 48 columns
    intrinsics = np.array(rows[sample_id]["intrinsics"]).reshape(3, 3)
    assert np.allclose(intrinsics, KITTI_K - [[0, 0, 8], [0, 0, 8], [0, 0, 0]])
    assert (rows[sample_id]["labels"] is not None) == semantic
    assert len(manifest["classes"]) == (19 if semantic else 0)
    _, selection = _rows(tmp_path / "out", "val_selection")
    assert np.allclose(np.array(next(iter(selection.values()))["intrinsics"]).reshape(3, 3), KITTI_K)
