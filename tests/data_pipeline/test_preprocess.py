"""jobs.preprocess on fixture trees in the official Cityscapes and KITTI layouts, through Ray Data."""
import json
import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.config.loading import load_config, to_yaml
from core.engine import checkpoint
from core.tasks.catalog import build_task
from data_pipeline.format import codec, shards
from data_pipeline.format.shards import read_manifest
from data_pipeline.storage.datastore import DataStore
from jobs import evaluate, preprocess
from jobs._cli import DEFAULT_CONFIG
from data_pipeline.format.export import _cityscapes_label_ids
from tests.data_pipeline.layouts import KITTI_K, KITTI_TEST_NAMES, cityscapes_tree, kitti_semantic_tree, kitti_tree

DEPTH = DEFAULT_CONFIG.parent / "depth_completion.yaml"
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
    assert {s: e["rows"] for s, e in manifest["splits"].items()} == {"train": 8, "val": 4, "val_selection": 2, "test": 2}
    assert [s for s, e in manifest["splits"].items() if e.get("ground_truth") is False] == ["test"]
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


def test_kittis_test_split_exports_the_leaderboards_names_and_sizes_and_a_zip(local_ray, tmp_path, capsys):  # noqa: F811
    kitti_tree(tmp_path / "kitti")
    assert preprocess.main(["kitti", "--src", str(tmp_path / "kitti"), "--out", str(tmp_path / "data"), "--crop", "32x48"]) == 0
    config = load_config(DEPTH, [f"data.uri={tmp_path / 'data'}", "data.generate_if_missing=false", "task.inputs=[rgb, sparse_depth]",
                                 "task.completion.cspn_iterations=2"])
    manifest = read_manifest(DataStore.at(tmp_path / "data"))
    model = build_task(config.task, manifest).build_model()
    run_dir = tmp_path / "run"
    saved = run_dir / "ray_train" / "checkpoint_0"
    checkpoint.save(saved, model, None, {"epoch": 0})
    (run_dir / "config.yaml").write_text(to_yaml(config))
    (run_dir / "summary.json").write_text(json.dumps({"checkpoint": str(saved)}))

    assert evaluate.main([str(run_dir), "--split", "test"]) == 2
    assert "split test has no ground truth, so nothing to score: give --export DIR" in capsys.readouterr().err
    assert evaluate.main([str(run_dir), "--split", "test", "--export", str(tmp_path / "submission")]) == 0
    images = tmp_path / "kitti" / "depth_selection" / "test_depth_completion_anonymous" / "image"
    expected = sorted(path.name for path in images.glob("*.png"))
    assert sorted(path.name for path in (tmp_path / "submission").iterdir()) == expected == [f"{n}.png" for n in KITTI_TEST_NAMES]
    for name in expected:
        written = codec.decode_png((tmp_path / "submission" / name).read_bytes())
        assert written.dtype == np.uint16 and written.shape == codec.decode_png((images / name).read_bytes()).shape[:2]
    with zipfile.ZipFile(tmp_path / "submission.zip") as archive:
        assert sorted(archive.namelist()) == expected
    record = json.loads((run_dir / "eval_test" / "metrics.json").read_text())
    assert record["ground_truth"] is False and record["metrics"] is None


def test_kitti_semantics_becomes_train_ids_cropped_and_its_test_split_exports_label_ids(local_ray, tmp_path, capsys):  # noqa: F811
    labels = kitti_semantic_tree(tmp_path / "semantics")
    args = ["kitti_semantic", "--src", str(tmp_path / "semantics"), "--out", str(tmp_path / "data"), "--crop", "32x32"]
    assert preprocess.main(args) == 0
    manifest, rows = _rows(tmp_path / "data", "train")
    assert {s: e["rows"] for s, e in manifest["splits"].items()} == {"train": 4, "val": 1, "test": 2}
    assert manifest["splits"]["test"]["ground_truth"] is False and len(manifest["classes"]) == 19
    stored = codec.decode_image(rows["000001_10"]["labels"])
    expected = {0: 255, 7: 0, 26: 13}  # unlabeled is ignored, road and car are train ids 0 and 13
    assert np.array_equal(stored, np.vectorize(expected.get)(labels["000001_10"][8:40, 14:46]))  # bottom 32 rows, centre 32 columns

    config = load_config(DEFAULT_CONFIG, [f"data.uri={tmp_path / 'data'}", "data.generate_if_missing=false"])
    model = build_task(config.task, read_manifest(DataStore.at(tmp_path / "data"))).build_model()
    run_dir = tmp_path / "run"
    saved = run_dir / "ray_train" / "checkpoint_0"
    checkpoint.save(saved, model, None, {"epoch": 0})
    (run_dir / "config.yaml").write_text(to_yaml(config))
    (run_dir / "summary.json").write_text(json.dumps({"checkpoint": str(saved)}))
    assert evaluate.main([str(run_dir), "--split", "test", "--export", str(tmp_path / "submission")]) == 0
    assert sorted(path.name for path in (tmp_path / "submission").iterdir()) == ["000000_10.png", "000001_10.png"]
    written = codec.decode_png((tmp_path / "submission" / "000000_10.png").read_bytes())
    assert written.shape == (32, 32) and set(np.unique(written)) <= set(_cityscapes_label_ids("trainids")[:19].tolist())
    assert (tmp_path / "submission.zip").is_file()
