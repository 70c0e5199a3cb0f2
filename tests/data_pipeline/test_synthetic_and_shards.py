import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config.sections import SyntheticConfig
from data_pipeline.format import codec, shards
from data_pipeline.sources.render import IGNORE_LABEL
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.synthetic import ensure_dataset, generate
from data_pipeline.sources.terrain import CLASSES
from data_pipeline.format.validate import check_shards

SMALL = SyntheticConfig(num_train=6, num_val=2, image_size=32, views_per_scene=3, seed=3, rows_per_shard=4)


def _shard_hashes(manifest):
    return [s["sha256"] for split in manifest["splits"].values() for s in split["shards"]]


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    first = generate(DataStore.at(tmp_path / "a"), SMALL)
    again = generate(DataStore.at(tmp_path / "b"), SMALL)
    other = generate(DataStore.at(tmp_path / "c"), SMALL.model_copy(update={"seed": 4}))
    assert _shard_hashes(first) == _shard_hashes(again)
    assert _shard_hashes(first) != _shard_hashes(other)


def test_manifest_describes_the_shards(tiny_dataset):
    store = DataStore.at(tiny_dataset)
    manifest = shards.read_manifest(store)
    assert [c["name"] for c in manifest["classes"]] == [name for name, _ in CLASSES]
    assert {"ground", "road", "building", "vegetation", "water"} <= {c["name"] for c in manifest["classes"]}
    for split, expected in (("train", 16), ("val", 8)):
        listed = manifest["splits"][split]
        assert listed["rows"] == expected == sum(s["rows"] for s in listed["shards"])
        for shard in listed["shards"]:
            path = tiny_dataset / shard["path"]
            assert pq.read_metadata(path).num_rows == shard["rows"]
            assert shards.sha256_of(store, shard["path"]) == shard["sha256"]
    stats = manifest["stats"]
    assert len(stats["rgb_mean"]) == 3 and stats["depth_mean_m"] > 0
    assert sum(stats["class_pixels"]) > 0


def test_samples_are_consistent_and_every_class_appears(tiny_dataset):
    table = pq.read_table(tiny_dataset / "train-00000.parquet")
    seen = set()
    for row in table.to_pylist():
        rgb, labels = codec.decode_image(row["rgb"]), codec.decode_image(row["labels"])
        depth, sparse = codec.decode_depth(row["depth"]), codec.decode_depth(row["sparse_depth"])
        assert rgb.shape == (32, 32, 3) and labels.shape == depth.shape == sparse.shape == (32, 32)
        assert ((labels == IGNORE_LABEL) == (depth == 0)).all(), "a pixel has a label exactly where it has depth"
        assert 0 < (sparse > 0).mean() < 0.2, "sparse depth is sparse"
        hit = sparse > 0
        assert np.abs(sparse[hit] - depth[hit]).max() < 0.5, "LiDAR returns lie near the true surface"
        assert len(row["mesh_faces"]) % 3 == 0 and max(row["mesh_faces"]) < len(row["mesh_verts"]) // 3
        assert len(row["mesh_face_labels"]) == len(row["mesh_faces"]) // 3
        seen |= set(np.unique(labels).tolist())
    assert set(range(len(CLASSES))) <= seen


@pytest.mark.parametrize("encoding", codec.ENCODINGS)
def test_shard_round_trip_gives_the_same_arrays(tmp_path, encoding):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    labels = rng.integers(0, 5, (8, 12), dtype=np.uint8)
    depth = np.round(rng.uniform(0, 200, (8, 12)) * 256) / 256
    depth[0, :3] = 0.0
    row = {
        "sample_id": "s0",
        **codec.encode_images({"rgb": rgb, "labels": labels, "depth": depth, "sparse_depth": depth * (depth > 100)}, encoding),
        "height": 8, "width": 12, "intrinsics": list(range(9)), "rotation": list(range(9)), "translation": [1, 2, 3],
        "mesh_verts": [0.0, 1.0, 2.0], "mesh_faces": [0, 0, 0], "mesh_face_labels": [4],
    }
    writer = shards.ShardWriter(DataStore.at(tmp_path), "train", rows_per_shard=10)
    writer.add(row)
    entry = writer.close()
    assert entry["rows"] == 1 and not list(tmp_path.glob(".*partial"))
    back = pq.read_table(tmp_path / entry["shards"][0]["path"]).to_pylist()[0]
    assert np.array_equal(codec.decode_image(back["rgb"]), rgb)
    assert np.array_equal(codec.decode_image(back["labels"]), labels)
    assert np.array_equal(codec.decode_depth(back["depth"]), depth.astype(np.float32))
    assert back["translation"] == [1, 2, 3] and back["mesh_face_labels"] == [4]


def _two_chunks(values):
    return pa.chunked_array([pa.array(values[:2], pa.binary()), pa.array(values[2:], pa.binary())])


def _sliced_large(values):
    """Past the first value of a large_binary array: the values start at an offset into Arrow's buffers."""
    return pa.array([b"x" * 7, *values], pa.large_binary()).slice(1)


@pytest.mark.parametrize("column", [list, _two_chunks, _sliced_large], ids=["bytes", "arrow chunks", "arrow slice"])
def test_a_column_decoded_at_once_equals_its_rows_decoded_one_by_one(column):
    rng = np.random.default_rng(1)
    rgb = [rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(4)]
    depth = [np.round(rng.uniform(0, 90, (6, 5)) * 256) / 256 for _ in range(4)]
    stored_rgb = [codec.encode_image(image, "npy") for image in rgb]
    stored_depth = [codec.encode_depth(image, "npy") for image in depth]
    decoded = codec.decode_column(column(stored_rgb))
    assert np.array_equal(decoded, np.stack(rgb)) and decoded.flags.writeable, "augmentation writes into the batch"
    assert np.array_equal(codec.decode_column(column(stored_depth), depth=True),
                          np.stack([codec.decode_depth(v) for v in stored_depth]))
    # Rows that are not one array's rows are left to the row-by-row decoder, which names a bad one.
    transposed = codec.encode_image(np.ascontiguousarray(rgb[0].transpose(1, 0, 2)), "npy")
    assert len(transposed) == len(stored_rgb[0]) and codec.decode_column(column([*stored_rgb[:3], transposed])) is None
    assert codec.decode_column(column([*stored_rgb[:3], stored_rgb[3][:-1]])) is None
    assert codec.decode_column(column([codec.encode_image(image, "png") for image in rgb])) is None
    broken_header = stored_rgb[0][:10] + b"{garbage" + stored_rgb[0][18:]
    assert codec.decode_column(column([broken_header, *stored_rgb[1:]])) is None
    assert codec.decode_column(column([*stored_rgb[:3], None])) is None


def test_depth_outside_16_bit_range_is_refused():
    with pytest.raises(ValueError, match="16-bit"):
        codec.encode_depth(np.array([[300.0]]))
    with pytest.raises(ValueError, match="finite"):
        codec.encode_depth(np.array([[np.nan]]))


def test_folder_without_manifest_is_not_a_data_set(tmp_path):
    (tmp_path / "train-00000.parquet").write_bytes(b"half written")
    with pytest.raises(shards.DatasetError, match="no complete data set"):
        shards.read_manifest(DataStore.at(tmp_path))


def test_leftover_of_interrupted_generation_is_regenerated(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "train-00000.parquet").write_bytes(b"half written")
    manifest = ensure_dataset(DataStore.at(root), SMALL)
    assert manifest["splits"]["train"]["rows"] == 6
    assert shards.sha256_of(DataStore.at(root), "train-00000.parquet") == manifest["splits"]["train"]["shards"][0]["sha256"]


def test_newer_schema_version_is_refused(tmp_path):
    generate(DataStore.at(tmp_path), SMALL)
    manifest = json.loads((tmp_path / shards.MANIFEST).read_text())
    manifest["schema_version"] = shards.SCHEMA_VERSION + 1
    (tmp_path / shards.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(shards.DatasetError, match=f"schema_version {shards.SCHEMA_VERSION + 1}, newer than the"):
        shards.read_manifest(DataStore.at(tmp_path))


def test_a_data_set_uri_that_names_nothing_is_refused(tmp_path):
    with pytest.raises(shards.DatasetError, match=f"data set {tmp_path / 'nowhere'} does not exist: data.uri must name"):
        shards.read_manifest(DataStore.at(tmp_path / "nowhere"))


def test_an_empty_split_is_refused(tmp_path):
    generate(DataStore.at(tmp_path), SMALL)
    manifest = json.loads((tmp_path / shards.MANIFEST).read_text())
    manifest["splits"]["val"].update(rows=0, shards=[])
    (tmp_path / shards.MANIFEST).write_text(json.dumps(manifest))
    store = DataStore.at(tmp_path)
    with pytest.raises(shards.DatasetError, match="split 'val' is empty"):
        check_shards(store, shards.read_manifest(store), ["train", "val"], ["rgb"], checksums=False)
