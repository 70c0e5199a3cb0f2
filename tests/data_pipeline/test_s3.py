"""Data sets on S3 (a real endpoint: moto_server): written, validated and trained on through the same URIs."""
import pickle
from pathlib import Path

import pytest
import ray

from data_pipeline.format import shards
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.synthetic import ensure_dataset, generate
from jobs import preprocess, train
from tests.conftest import TINY_DATA, tiny_overrides
from tests.data_pipeline.layouts import cityscapes_tree
from tests.s3_server import CREDENTIALS, SECRET, ray_with_s3_credentials, s3  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def s3_dataset(s3):
    store = DataStore.at(f"s3://{s3.bucket}/tiny", s3.url)
    generate(store, TINY_DATA)
    return store


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


def test_training_reads_the_data_set_from_s3(ray_with_s3_credentials, s3, s3_dataset, tmp_path, capsys):
    overrides = [o for o in tiny_overrides(tmp_path / "unused", tmp_path / "runs") if not o.startswith("data.uri")]
    assert train.main([*overrides, f"data.uri={s3_dataset.uri}", f"data.endpoint_url={s3.url}",
                       "data.generate_if_missing=false"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = (run_dir / "summary.json").read_text()
    assert '"uri": "s3://vision-data/tiny"' in summary and '"status": "completed"' in summary
    # The run directory holds TensorBoard's event files too; Ray's session logs hold every worker's output.
    session_logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    for path in [*run_dir.rglob("*"), *session_logs.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"the secret key leaked into {path}"
    assert SECRET not in "".join(capsys.readouterr())


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
