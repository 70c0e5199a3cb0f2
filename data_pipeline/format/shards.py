"""The data set on disk: Parquet shards of a fixed schema plus manifest.json.

A data set is complete exactly when manifest.json exists: shards are written under a temporary
name and renamed, and the manifest is written last, also by rename, so an interrupted write is
never mistaken for a data set.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.tasks.columns import Kind
from data_pipeline.storage.datastore import DataStore

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
        # Synthetic bodies (data_pipeline.sources.synthetic_bodies); columns added later are absent from older shards,
        # which train every task that does not read them.
        ("mask", pa.binary()),  # PNG or .npy, uint8 1 where the body is seen
        ("normal_front", pa.binary()),  # uint8 H x W x 3, (normal + 1) / 2 x 255 in the camera's frame
        ("normal_back", pa.binary()),
        ("camera", pa.list_(pa.float32(), 12)),  # row-major 3 x 4: box point -> (grid x, grid y, normalised depth)
        ("primitives", pa.list_(pa.float32())),  # flattened P x 13 body parts (core.tasks.implicit.body_field)
        ("joints", pa.list_(pa.float32())),  # flattened J x 3 skeleton joints
        ("surface_points", pa.list_(pa.float32())),  # flattened N x 3, uniform on the ground-truth mesh
        ("points", pa.list_(pa.float32())),  # flattened N x 3 held-out query points
        ("occupancy", pa.list_(pa.float32())),  # N occupancies of those points, 1 inside
        # Synthetic rooms (data_pipeline.sources.synthetic_rooms), all in the input camera's frame
        ("rgb_novel", pa.binary()),  # uint8 H x W x 3, the same room from a nearby pose
        ("novel_camera", pa.list_(pa.float32(), 12)),  # row-major 4 x 3: R then T, X_novel = X R + T
        ("probes", pa.list_(pa.float32())),  # flattened P x 3 probe points, metres
        ("envmaps", pa.list_(pa.float32())),  # flattened P x H x 2H x 3 HDR environment maps, one per probe
        ("volume", pa.list_(pa.float32())),  # flattened R x R x R x 5 (z, y, x): HDR colour, alpha, emitter share
    ]
)

# What each image column of the schema holds, for the checks of converted samples (core.tasks.columns).
IMAGE_KINDS = {"rgb": Kind.IMAGE, "depth": Kind.DEPTH_MAP, "sparse_depth": Kind.DEPTH_MAP, "labels": Kind.LABEL_MAP,
               "mask": Kind.LABEL_MAP, "normal_front": Kind.IMAGE, "normal_back": Kind.IMAGE, "rgb_novel": Kind.IMAGE}


# Every read task decompresses its shards. A 128-row .npy shard of the synthetic set read in 2.7 ms
# with LZ4 against 5.8 ms with zstd (a read task's other work on it is about 9 ms), for 1.19x the
# bytes on disk and over S3; a PNG shard in 2.05 against 2.21 ms, for 1.05x.
COMPRESSION = "lz4"


class DatasetError(ValueError):
    """A data set that cannot be read as it is; the message names the file and what is wrong."""


class ShardWriter:
    """Collects rows of one split and writes them as shards of `rows_per_shard` rows, or of about
    `target_bytes` of encoded images, whichever comes first."""

    def __init__(self, store: DataStore, split: str, rows_per_shard: int, target_bytes: int | None = None):
        self.store, self.split, self.rows_per_shard, self.target_bytes = store, split, rows_per_shard, target_bytes
        self.shards: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []
        self._pending_bytes = 0

    def add(self, row: dict[str, Any]) -> None:
        self._pending.append(row)
        self._pending_bytes += sum(len(v) for v in row.values() if isinstance(v, bytes))
        if len(self._pending) >= self.rows_per_shard or (self.target_bytes and self._pending_bytes >= self.target_bytes):
            self._flush()

    def close(self) -> dict[str, Any]:
        if self._pending:
            self._flush()
        return {"rows": sum(s["rows"] for s in self.shards), "shards": self.shards}

    def _flush(self) -> None:
        name = f"{self.split}-{len(self.shards):05d}.parquet"
        buffer = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(self._pending, schema=SCHEMA), buffer, compression=COMPRESSION)
        data = buffer.getvalue().to_pybytes()
        self.store.write_bytes(name, data)
        self.shards.append({"path": name, "rows": len(self._pending), "bytes": len(data),
                            "sha256": hashlib.sha256(data).hexdigest()})
        self._pending, self._pending_bytes = [], 0


def sha256_of(store: DataStore, name: str) -> str:
    digest = hashlib.sha256()
    with store.fs.open(store.path(name), "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(store: DataStore, manifest: dict[str, Any]) -> None:
    """Last, once every shard is written: its presence is what makes the data set complete."""
    store.write_bytes(MANIFEST, json.dumps({"schema_version": SCHEMA_VERSION, **manifest}, indent=2).encode())


def read_manifest(store: DataStore) -> dict[str, Any]:
    where = store.display(MANIFEST)
    if not store.exists(""):
        raise DatasetError(f"data set {store.display()} does not exist: data.uri must name a folder or s3://bucket/prefix "
                           "that jobs.preprocess (or the synthetic generator) wrote")
    if not store.exists(MANIFEST):
        raise DatasetError(f"{where} does not exist: {store.uri} holds no complete data set "
                           "(run jobs.preprocess, or set data.generate_if_missing)")
    try:
        manifest = json.loads(store.read_bytes(MANIFEST))
    except json.JSONDecodeError as err:
        raise DatasetError(f"{where} is not valid JSON: {err}") from None
    version = manifest.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise DatasetError(f"{where} has schema_version {version}, newer than the {SCHEMA_VERSION} this code reads: "
                           "update this checkout to the code that wrote it, or convert the data again with this one")
    if version != SCHEMA_VERSION:
        raise DatasetError(f"{where} has schema_version {version!r}; this code reads version {SCHEMA_VERSION}")
    return manifest


def shard_paths(store: DataStore, manifest: dict[str, Any], split: str) -> list[str]:
    """The split's shards as the store's filesystem names them."""
    splits = manifest["splits"]
    if split not in splits:
        raise DatasetError(f"{store.display(MANIFEST)} has no split {split!r}; it has {sorted(splits)}")
    if splits[split]["rows"] == 0:
        raise DatasetError(f"{store.display(MANIFEST)}: split {split!r} is empty")
    return [store.path(shard["path"]) for shard in splits[split]["shards"]]
