"""Refuse a bad data set loudly: whole shards before training, single samples as they are decoded.

Shards are checked on the driver before anything trains: present, readable Parquet (a truncated
file has no footer), the columns the task reads with the types of the shard schema, the row count
the manifest lists and, unless turned off, the manifest's sha256. Samples are checked where they
are decoded (see SampleRules). Every error names the shard, and for a sample its row and sample id.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from core.tasks.columns import Kind
from data_pipeline.readers.sample_log import SampleLogRef
from data_pipeline.format.shards import SCHEMA, DatasetError, sha256_of, shard_paths
from data_pipeline.storage.datastore import DataStore

_HASH_THREADS = 8  # reading and hashing shards waits on the disk or the network, not on the CPU


def check_shards(store: DataStore, manifest: dict[str, Any], splits: list[str], columns: list[str], checksums: bool) -> None:
    for split in splits:
        shard_paths(store, manifest, split)  # refuses a split the manifest lacks or holds no rows of
    entries = [shard for split in splits for shard in manifest["splits"][split]["shards"]]
    for shard in entries:
        _check_footer(store, shard, columns)
    if checksums:
        with ThreadPoolExecutor(_HASH_THREADS) as pool:
            for shard, digest in zip(entries, pool.map(lambda s: sha256_of(store, s["path"]), entries)):
                if digest != shard["sha256"]:
                    raise DatasetError(f"shard {store.display(shard['path'])}: sha256 {digest[:12]}... but the manifest says "
                                       f"{shard['sha256'][:12]}...: the file changed or is corrupt; write the data set again "
                                       "(jobs.preprocess), or set data.verify_checksums=false to train on it as it is")


def _check_footer(store: DataStore, shard: dict[str, Any], columns: list[str]) -> None:
    where = f"shard {store.display(shard['path'])}"
    if not store.exists(shard["path"]):
        raise DatasetError(f"{where} is listed in the manifest but missing")
    try:
        with store.fs.open(store.path(shard["path"]), "rb") as handle:
            metadata = pq.read_metadata(handle)
    except Exception as err:  # pyarrow names truncation and garbage in several ways
        raise DatasetError(f"{where} is not readable Parquet (truncated or corrupt): {err}") from None
    schema = metadata.schema.to_arrow_schema()
    for name in columns:
        expected = SCHEMA.field(name).type
        if name not in schema.names:
            raise DatasetError(f"{where} has no column {name!r}, which the task reads; it has {schema.names}")
        if schema.field(name).type != expected:
            raise DatasetError(f"{where}: column {name!r} is {schema.field(name).type}, the shard schema says {expected}")
    if metadata.num_rows != shard["rows"]:
        raise DatasetError(f"{where} holds {metadata.num_rows} rows, the manifest says {shard['rows']}")


def sample_problem(sample: dict[str, np.ndarray], kinds: dict[str, Kind], image_size: tuple[int, int], num_classes: int,
                   ignore_index: int) -> str | None:
    """What is wrong with one decoded sample, or None. kinds: each column's kind (core.tasks.columns)."""
    return _problem(sample, kinds, image_size, num_classes, ignore_index, first_axis=0)


def batch_has_problem(batch: dict[str, np.ndarray], kinds: dict[str, Kind], image_size: tuple[int, int], num_classes: int,
                      ignore_index: int) -> bool:
    """Whether a sample of a stacked batch (samples along the first axis) has a problem; sample_problem says which."""
    return _problem(batch, kinds, image_size, num_classes, ignore_index, first_axis=1) is not None


def _problem(columns: dict[str, np.ndarray], kinds: dict[str, Kind], image_size: tuple[int, int], num_classes: int,
             ignore_index: int, first_axis: int) -> str | None:
    """first_axis: where height and width start in each array's shape; the value checks hold element-wise."""
    height, width = image_size
    maps = {name: values for name, values in columns.items() if kinds[name] in (Kind.IMAGE, Kind.LABEL_MAP, Kind.DEPTH_MAP)}
    for name, image in maps.items():
        found = image.shape[first_axis:first_axis + 2]
        if found != (height, width):
            return f"{name} is {'x'.join(map(str, found))}, the data set's images are {height}x{width}"
    for name, values in maps.items():
        if kinds[name] is Kind.LABEL_MAP:
            wrong = (values >= num_classes) & (values != ignore_index)
            if wrong.any():
                return (f"label ids {sorted(np.unique(values[wrong]).tolist())[:5]} are outside the class table "
                        f"(0..{num_classes - 1}, or {ignore_index} for unlabelled)")
        elif kinds[name] is Kind.DEPTH_MAP and not (np.isfinite(values).all() and (values >= 0).all()):
            return f"{name} has non-finite or negative values"
    for name, values in columns.items():
        if name not in maps and not np.isfinite(values).all():
            return f"{name} has non-finite values"
    return None


@dataclass(frozen=True)
class SampleRules:
    """What every decoded sample must satisfy, and what to do with one that does not."""

    store: DataStore
    image_size: tuple[int, int]
    num_classes: int
    ignore_index: int
    on_bad: str  # "error" | "skip"
    log: SampleLogRef | None = None  # required with on_bad "skip"
    label_lookup: np.ndarray | None = None  # label id as stored -> as trained (data.classes; class_subset)

    @classmethod
    def of(cls, store: DataStore, manifest: dict[str, Any], on_bad: str, log: SampleLogRef | None = None) -> "SampleRules":
        """The rules of a manifest, the class subset of a run included: stored ids are checked against the data set's table."""
        classes = manifest.get("source_classes", manifest["classes"])
        lookup = np.asarray(manifest["class_lookup"], dtype=np.uint8) if "class_lookup" in manifest else None
        return cls(store, tuple(manifest["image_size"]), len(classes), manifest["ignore_index"], on_bad, log, lookup)

    def problem(self, sample: dict[str, np.ndarray], kinds: dict[str, Kind]) -> str | None:
        return sample_problem(sample, kinds, self.image_size, self.num_classes, self.ignore_index)

    def batch_passes(self, batch: dict[str, np.ndarray], kinds: dict[str, Kind]) -> bool:
        return not batch_has_problem(batch, kinds, self.image_size, self.num_classes, self.ignore_index)

    def reject(self, shard: str, sample_id: str, reason: str) -> None:
        """shard: as the store's filesystem names it. Raise (on_bad "error"), or log the skip (on_bad "skip")."""
        row = self._row_of(shard, sample_id)
        shard = f"s3://{shard}" if self.store.is_s3 else shard
        if self.on_bad == "error":
            message = (f"shard {shard}, row {row}, sample {sample_id}: {reason}. Fix or drop the sample, or set "
                       "data.on_bad_sample=skip to leave such samples out (they are counted in summary.json)")
            raise DatasetError(message)
        self.log.skip({"shard": shard, "row": row, "sample_id": sample_id, "reason": reason})

    def _row_of(self, shard: str, sample_id: str) -> int:
        """The sample's row in its shard; looked up only for a bad sample, so the good path pays nothing."""
        with self.store.fs.open(shard, "rb") as handle:
            ids = pq.read_table(handle, columns=["sample_id"]).column("sample_id").to_pylist()
        return ids.index(sample_id)
