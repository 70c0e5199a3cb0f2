"""Data sets on S3 (a real endpoint: moto_server): written, validated and converted into through the same URIs (a run
reading its data from S3 is in tests/jobs/test_s3_storage.py, through an outage of its checkpoint storage)."""
import pickle

import pytest

from data_pipeline.format import shards
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.synthetic import ensure_dataset
from jobs import preprocess
from tests.conftest import TINY_DATA
from tests.data_pipeline.layouts import cityscapes_tree
from tests.s3_server import CREDENTIALS, SECRET, ray_with_s3_credentials, s3, s3_dataset  # noqa: F401  (fixtures)


def test_data_set_written_to_s3_is_complete_and_checksummed(s3_dataset):
    manifest = shards.read_manifest(s3_dataset)
    for split in ("train", "val"):
        for shard in manifest["splits"][split]["shards"]:
            assert shards.sha256_of(s3_dataset, shard["path"]) == shard["sha256"]
    assert shards.shard_paths(s3_dataset, manifest, "train")[0].startswith("vision-data/tiny/train-")
    assert ensure_dataset(s3_dataset, TINY_DATA) == manifest  # present: read, not regenerated


def test_prefix_without_manifest_is_not_a_data_set(s3):
    store = DataStore.at(f"s3://{s3.bucket}/half", s3.url)
    store.fs.pipe_file(store.path("train-00000.parquet"), b"half written")
    with pytest.raises(shards.DatasetError, match="s3://vision-data/half/manifest.json does not exist"):
        shards.read_manifest(store)


def test_a_store_carries_no_credentials_when_shipped_to_workers(s3_dataset):
    s3_dataset.fs.ls(s3_dataset.root)  # the client exists and has used the credentials
    shipped = pickle.dumps(s3_dataset)
    assert SECRET.encode() not in shipped and CREDENTIALS["AWS_ACCESS_KEY_ID"].encode() not in shipped
    assert pickle.loads(shipped).fs.ls(s3_dataset.root)


def test_preprocess_writes_to_s3_and_a_rerun_leaves_it_as_it_is(ray_with_s3_credentials, s3, tmp_path, capsys):
    cityscapes_tree(tmp_path / "cs", {"train": ["aachen", "bochum"], "val": ["lindau"]})
    args = ["cityscapes", "--src", str(tmp_path / "cs"), "--out", f"s3://{s3.bucket}/cityscapes", "--endpoint-url", s3.url]
    assert preprocess.main(args) == 0
    store = DataStore.at(f"s3://{s3.bucket}/cityscapes", s3.url)
    manifest = shards.read_manifest(store)
    assert manifest["splits"]["train"]["rows"] == 2 and len(manifest["classes"]) == 19
    for shard in manifest["splits"]["train"]["shards"]:
        assert shards.sha256_of(store, shard["path"]) == shard["sha256"]
    assert preprocess.main(args) == 0
    assert "already holds this conversion" in capsys.readouterr().err
