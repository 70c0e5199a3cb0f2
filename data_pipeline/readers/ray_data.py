"""Ray Data: read a split's shards (only the columns a task needs) and decode and check its images.

Planned on the driver; Ray Train splits the stream between workers, which only iterate it.
Images stay uint8 (or float32 depth) until the worker, so the object store carries the smallest
arrays; normalisation is the task's business. Each row keeps its shard path and sample id through
decoding, so that a bad sample is named exactly (data_pipeline.format.validate), and then drops them.
"""
from __future__ import annotations

import functools
import math
import zlib
from typing import Any

import numpy as np
import pyarrow as pa
import ray.data

from core.augmentation.sample_key import SAMPLE_KEY
from data_pipeline.format import codec  # noqa: F401  (see its docstring)
from data_pipeline.readers import ray_data_start
from data_pipeline.readers.shard_datasource import PATH, ShardDatasource
from data_pipeline.format.shards import shard_paths
from data_pipeline.storage.datastore import DataStore
from data_pipeline.format.validate import SampleRules

IMAGES = {"rgb": codec.decode_image, "labels": codec.decode_image, "depth": codec.decode_depth, "sparse_depth": codec.decode_depth}
DECODERS = {**IMAGES, "intrinsics": lambda values: np.asarray(values, dtype=np.float32).reshape(3, 3)}
# Each decoded column's shape after (height, width), and its type; intrinsics are one 3x3 matrix.
DECODED = {"rgb": ((3,), np.uint8), "labels": ((), np.uint8), "depth": ((), np.float32), "sparse_depth": ((), np.float32)}
_IDENTITY = (PATH, "sample_id")
SAMPLE_KEY_BYTES = np.dtype(np.int64).itemsize
TASK_BYTES = 256 * 2**20
# bench.ingest, two runs: over a 300 MB epoch, 16 MB blocks streamed fastest (4.5 MB at 0.61 and 0.84 of
# their speed, 64 MB at 0.55 and 0.74); over a 75 MB epoch 64 MB, one block per task, was faster (1.30x, 1.42x).
# Rows of 683x683 (1.8 MB decoded, about a KITTI frame): 16 MB blocks of 8 rows streamed batches of 32 at
# 0.70-0.74 of the speed of blocks of a batch (bench.block_rows), so a block never holds fewer rows than a batch.
BLOCK_BYTES = 16 * 2**20


def read_split(store: DataStore, manifest: dict[str, Any], split: str, columns: list[str], task_cpus: float,
               tasks_at_once: int, rules: SampleRules | None = None, block_bytes: int = BLOCK_BYTES,
               batch_rows: int = 1) -> ray.data.Dataset:
    """tasks_at_once: how many read tasks the CPUs given to data run side by side; block_bytes: decoded rows
    per block, as bytes (see BLOCK_BYTES); batch_rows: the batch size the data is read in, the fewest rows
    a block holds."""
    unknown = sorted(set(columns) - set(DECODERS))
    if unknown:
        raise ValueError(f"no decoder for columns {unknown}; decodable columns: {sorted(DECODERS)}")
    paths = shard_paths(store, manifest, split)
    shards = manifest["splits"][split]["shards"]
    row_bytes = decoded_row_bytes(columns, tuple(manifest["image_size"]))
    rows = max(1, batch_rows, block_bytes // row_bytes)
    source = ShardDatasource(store.arrow_fs(), paths, shards, [*columns, "sample_id"],
                             functools.partial(decode_images, rules=rules), rows)
    dataset = ray.data.read_datasource(source, num_cpus=task_cpus, override_num_blocks=read_tasks(shards, tasks_at_once))
    dataset.context.target_max_block_size = block_target(rows * row_bytes)
    return dataset


def read_tasks(shards: list[dict[str, Any]], tasks_at_once: int) -> int:
    """How many tasks read these shards: whole rounds of tasks_at_once tasks, of about TASK_BYTES each.

    Ray Data's scheduler notices a finished task only when every running task has output ready or a
    tenth of a second has passed, so each task ended can leave a CPU idle for that long: with tasks
    of 16 MB, bench.ingest's passes ran at 0.70-0.87 of a DataLoader's speed. Tasks stream blocks of
    BLOCK_BYTES, so a long task delays neither the first batch nor memory; TASK_BYTES bounds what a retry
    redoes and what preserve_order holds back. A shard whose size the manifest does not give
    (written before it did) counts as a task.
    """
    total = sum(shard.get("bytes", TASK_BYTES) for shard in shards)
    return min(len(shards), tasks_at_once * math.ceil(total / (tasks_at_once * TASK_BYTES)))


def decoded_row_bytes(columns: list[str], image_size: tuple[int, int]) -> int:
    return SAMPLE_KEY_BYTES + sum(math.prod(_decoded_shape(name, image_size)) * np.dtype(_decoded_type(name)).itemsize
                                  for name in columns)


def block_target(block_bytes: int) -> int:
    """The target_max_block_size at which Ray Data hands on each block a read task yields as it is.

    Ray Data gathers a task's output until it exceeds the target, and slices a block of 1.5 times
    it; a block of block_bytes falls midway between the two.
    """
    return int(block_bytes / math.sqrt(1.5))


def decode_images(batch: dict[str, Any], rules: SampleRules | None = None) -> dict[str, np.ndarray]:
    """Decoded image columns of a block's columns (Arrow arrays, or NumPy arrays of a value per row); with rules,
    bad samples raise or are left out (see SampleRules.reject)."""
    batch = {name: values if name in IMAGES else _per_row(values) for name, values in batch.items()}
    ids = batch.get("sample_id")
    images = {name: values for name, values in batch.items() if name not in _IDENTITY}
    at_once = {name: _column_at_once(name, values) for name, values in images.items()}
    if all(column is not None for column in at_once.values()) and (rules is None or rules.batch_passes(
            {name: column for name, column in at_once.items() if name in IMAGES})):
        decoded, kept_ids = at_once, ids
    else:
        decoded, kept_ids = _decode_rows(batch, {name: _per_row(values) for name, values in images.items()}, at_once, rules)
    if ids is not None:  # strings cannot become tensors; augmentation seeds each sample by this number
        decoded[SAMPLE_KEY] = np.array([zlib.crc32(str(sample_id).encode()) for sample_id in kept_ids], dtype=np.int64)
    return decoded


def _per_row(values: Any) -> np.ndarray:
    """A column as a NumPy array of a value per row: Arrow's binary values become bytes objects."""
    return values.to_numpy(zero_copy_only=False) if isinstance(values, (pa.Array, pa.ChunkedArray)) else values


def _column_at_once(name: str, values: np.ndarray) -> np.ndarray | None:
    """The column decoded and stacked in one go, or None where a row needs decoding alone (see codec.decode_column)."""
    if name in IMAGES:
        return codec.decode_column(values, depth=name in codec.DEPTH_COLUMNS)
    try:
        return np.stack([DECODERS[name](value) for value in values])
    except (TypeError, ValueError):  # a null or a malformed row: the row-by-row decode names it
        return None


def _decode_rows(batch: dict[str, np.ndarray], images: dict[str, np.ndarray], at_once: dict[str, np.ndarray | None],
                 rules: SampleRules | None) -> tuple[dict[str, np.ndarray], list]:
    """Sample by sample, to name (or leave out) each bad one: the decoded columns, and the ids of the rows kept."""
    paths, ids = batch.get(PATH), batch.get("sample_id")
    kept: dict[str, list[np.ndarray]] = {name: [] for name in images}
    kept_ids = []
    for index in range(len(next(iter(images.values())))):
        try:
            sample = {name: DECODERS[name](values[index]) if at_once[name] is None else at_once[name][index]
                      for name, values in images.items()}
        except Exception as err:  # PIL names a broken PNG in several ways
            sample, problem = None, f"an image does not decode ({type(err).__name__}: {err})"
        else:
            problem = rules.problem({k: v for k, v in sample.items() if k in IMAGES}) if rules else None
        if problem is None and sample is not None:
            for name, image in sample.items():
                kept[name].append(image)
            if ids is not None:
                kept_ids.append(ids[index])
        elif rules is None:
            raise ValueError(problem)
        else:
            rules.reject(str(paths[index]), str(ids[index]), problem)
    return {name: np.stack(values) if values else _empty(name, rules) for name, values in kept.items()}, kept_ids


def _empty(name: str, rules: SampleRules) -> np.ndarray:
    """A column with no rows (every sample of the batch was skipped), shaped like a full one."""
    return np.empty((0, *_decoded_shape(name, rules.image_size)), dtype=_decoded_type(name))


def _decoded_shape(name: str, image_size: tuple[int, int]) -> tuple[int, ...]:
    return (3, 3) if name == "intrinsics" else (*image_size, *DECODED[name][0])


def _decoded_type(name: str) -> type:
    return np.float32 if name == "intrinsics" else DECODED[name][1]
