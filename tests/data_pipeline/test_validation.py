"""A bad data set is refused with its shard, row and sample named; with on_bad_sample=skip bad samples are counted."""
import hashlib
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_pipeline.format import codec
from core.tasks.columns import Column, Kind
from data_pipeline.readers.decode import decode_columns
from data_pipeline.format.shards import MANIFEST, DatasetError
from data_pipeline.storage.datastore import DataStore
from data_pipeline.format.validate import SampleRules, check_shards

COLUMNS = ["rgb", "labels", "sample_id"]
DECLARED = [Column("rgb", Kind.IMAGE, (3,)), Column("labels", Kind.LABEL_MAP), Column("intrinsics", Kind.CAMERA)]
SHARD = "train-00000.parquet"


@pytest.fixture
def dataset(tiny_dataset, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset, root)
    return root


def _manifest(root):
    return json.loads((root / MANIFEST).read_text())


def _rewrite(root, table: pa.Table) -> None:
    """Replace the first train shard with this table, the manifest kept consistent (rows and sha256)."""
    pq.write_table(table, root / SHARD)
    manifest = _manifest(root)
    entry = manifest["splits"]["train"]["shards"][0]
    entry.update(rows=table.num_rows, sha256=hashlib.sha256((root / SHARD).read_bytes()).hexdigest())
    (root / MANIFEST).write_text(json.dumps(manifest))


def _check(root, checksums=True):
    check_shards(DataStore.at(root), _manifest(root), ["train", "val"], COLUMNS, checksums=checksums)


def test_a_complete_data_set_passes(dataset):
    _check(dataset)


def test_truncated_shard_is_named(dataset):
    data = (dataset / SHARD).read_bytes()
    (dataset / SHARD).write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=f"shard {dataset / SHARD} is not readable Parquet"):
        _check(dataset)


def test_checksum_mismatch_is_named(dataset):
    table = pq.read_table(dataset / SHARD)
    pq.write_table(table.slice(0, table.num_rows), dataset / SHARD, compression="snappy")  # same rows, other bytes
    with pytest.raises(DatasetError, match=f"shard {dataset / SHARD}: sha256 .* but the manifest says"):
        _check(dataset)
    _check(dataset, checksums=False)


def test_missing_column_and_wrong_type_are_named(dataset):
    table = pq.read_table(dataset / SHARD)
    _rewrite(dataset, table.drop(["labels"]))
    with pytest.raises(DatasetError, match="has no column 'labels', which the task reads"):
        _check(dataset)
    _rewrite(dataset, table.set_column(table.schema.get_field_index("rgb"), "rgb", pa.array(["x"] * table.num_rows)))
    with pytest.raises(DatasetError, match="column 'rgb' is string, the shard schema says binary"):
        _check(dataset)


def test_row_count_that_disagrees_with_the_manifest_is_named(dataset):
    manifest = _manifest(dataset)
    manifest["splits"]["train"]["shards"][0]["rows"] += 1
    (dataset / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="holds 8 rows, the manifest says 9"):
        _check(dataset)


def _batch_with(dataset, row: int, encoding: str = "png", **images):
    """The first shard as a decode batch, with the given columns of one row replaced by these arrays, encoded."""
    table = pq.read_table(dataset / SHARD, columns=COLUMNS).to_pydict()
    for name, value in images.items():
        table[name][row] = value if isinstance(value, bytes) else codec.encode_image(value, encoding)
    batch = {name: np.array(values, dtype=object) for name, values in table.items()}
    batch["path"] = np.array([str(dataset / SHARD)] * len(table["sample_id"]), dtype=object)
    return batch, table["sample_id"][row]


def _rules(dataset, on_bad="error"):
    return SampleRules(DataStore.at(dataset), (32, 32), num_classes=5, ignore_index=255, on_bad=on_bad)


@pytest.mark.parametrize("images, reason", [
    ({"labels": np.zeros((16, 16), np.uint8)}, "labels is 16x16, the data set's images are 32x32"),
    ({"labels": np.full((32, 32), 7, np.uint8)}, r"label ids \[7\] are outside the class table \(0..4, or 255"),
    ({"rgb": b"not a png"}, "a column does not decode"),
])
def test_bad_sample_is_named_by_shard_row_and_sample_id(dataset, images, reason):
    batch, sample_id = _batch_with(dataset, 5, **images)
    with pytest.raises(DatasetError, match=f"shard {dataset / SHARD}, row 5, sample {sample_id}: {reason}"):
        _decode(batch, _rules(dataset))


def test_a_bad_sample_among_rows_that_decode_as_one_array_is_named(dataset):
    """.npy rows of one shape decode a column at a time; the checks then run on the whole batch first."""
    batch, sample_id = _batch_with(dataset, 3, encoding="npy", labels=np.full((32, 32), 9, np.uint8))
    assert all(codec.decode_column(batch[name]) is not None for name in ("rgb", "labels"))
    with pytest.raises(DatasetError, match=f"shard {dataset / SHARD}, row 3, sample {sample_id}: label ids \\[9\\]"):
        _decode(batch, _rules(dataset))


def test_a_good_batch_decodes_as_its_rows_decode_one_by_one(dataset):
    batch, _ = _batch_with(dataset, 0)
    assert codec.decode_column(batch["rgb"]) is not None, "the shard's rows decode as one array"
    intrinsics = np.arange(9, dtype=np.float64) + np.arange(len(batch["rgb"]))[:, None]
    batch["intrinsics"] = np.empty(len(intrinsics), dtype=object)
    for row, values in enumerate(intrinsics):
        batch["intrinsics"][row] = list(values)
    decoded = _decode(batch, _rules(dataset))
    for name in ("rgb", "labels"):
        assert np.array_equal(decoded[name], np.stack([codec.decode_image(value) for value in batch[name]]))
    assert decoded["intrinsics"].dtype == np.float32 and np.array_equal(decoded["intrinsics"], intrinsics.reshape(-1, 3, 3))


def test_non_finite_or_negative_depth_is_a_bad_sample(dataset):
    rules = _rules(dataset)
    good = np.ones((32, 32), np.float32)
    assert rules.problem({"depth": good}, {"depth": Kind.DEPTH_MAP}) is None
    for bad in (np.where(good > 0, np.nan, 0), -good):
        assert rules.problem({"depth": bad.astype(np.float32)}, {"depth": Kind.DEPTH_MAP}) == "depth has non-finite or negative values"


def test_good_batch_decodes_to_stacked_arrays(dataset):
    batch, _ = _batch_with(dataset, 0)
    decoded = _decode(batch, _rules(dataset))
    assert set(decoded) == {"rgb", "labels", "sample_key"} and decoded["rgb"].shape == (8, 32, 32, 3)
    assert len(set(decoded["sample_key"].tolist())) == 8, "one augmentation seed per sample"


def _decode(batch, rules):
    """Decoded as a task declaring the batch's columns would have them decoded."""
    return decode_columns(batch, [column for column in DECLARED if column.name in batch], rules)
