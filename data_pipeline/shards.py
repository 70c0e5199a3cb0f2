"""The data set on disk: Parquet shards of a fixed schema plus manifest.json.

A data set is complete exactly when manifest.json exists: shards are written under a temporary
name and renamed, and the manifest is written last, also by rename, so an interrupted write is
never mistaken for a data set.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"

SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("rgb", pa.binary()),  # PNG, uint8 H x W x 3
        ("depth", pa.binary()),  # 16-bit PNG, metres x 256, 0 = none
        ("sparse_depth", pa.binary()),  # 16-bit PNG, metres x 256, 0 = none
        ("labels", pa.binary()),  # PNG, uint8 class ids, manifest["ignore_index"] = unlabelled
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("intrinsics", pa.list_(pa.float32(), 9)),  # row-major 3 x 3, pixels
        ("rotation", pa.list_(pa.float32(), 9)),  # row-major 3 x 3, PyTorch3D R
        ("translation", pa.list_(pa.float32(), 3)),  # PyTorch3D T
        ("mesh_verts", pa.list_(pa.float32())),  # flattened V x 3, world units
        ("mesh_faces", pa.list_(pa.int32())),  # flattened F x 3
        ("mesh_face_labels", pa.list_(pa.uint8())),  # F class ids
    ]
)


class DatasetError(ValueError):
    """A data set that cannot be read as it is; the message names the file and what is wrong."""


class ShardWriter:
    """Collects rows of one split and writes them as shards of `rows_per_shard` rows."""

    def __init__(self, root: Path, split: str, rows_per_shard: int):
        self.root, self.split, self.rows_per_shard = root, split, rows_per_shard
        self.shards: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.rows_per_shard:
            self._flush()

    def close(self) -> dict[str, Any]:
        if self._pending:
            self._flush()
        return {"rows": sum(s["rows"] for s in self.shards), "shards": self.shards}

    def _flush(self) -> None:
        name = f"{self.split}-{len(self.shards):05d}.parquet"
        final = self.root / name
        partial = self.root / f".{name}.partial"
        pq.write_table(pa.Table.from_pylist(self._pending, schema=SCHEMA), partial, compression="zstd")
        os.replace(partial, final)
        self.shards.append({"path": name, "rows": len(self._pending), "sha256": sha256_of(final)})
        self._pending = []


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    partial = root / f".{MANIFEST}.partial"
    partial.write_text(json.dumps({"schema_version": SCHEMA_VERSION, **manifest}, indent=2))
    os.replace(partial, root / MANIFEST)


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: {root} holds no complete data set (run jobs.preprocess, or set data.generate_if_missing)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path} is not valid JSON: {err}") from None
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DatasetError(f"{path} has schema_version {version!r}; this code reads version {SCHEMA_VERSION}")
    return manifest


def shard_paths(root: Path, manifest: dict[str, Any], split: str) -> list[str]:
    splits = manifest["splits"]
    if split not in splits:
        raise DatasetError(f"{root / MANIFEST} has no split {split!r}; it has {sorted(splits)}")
    if splits[split]["rows"] == 0:
        raise DatasetError(f"{root / MANIFEST}: split {split!r} is empty")
    return [str(root / shard["path"]) for shard in splits[split]["shards"]]
