"""Ray Data: read a split's shards (only the columns a task needs) and decode and check its images.

Planned on the driver; Ray Train splits the stream between workers, which only iterate it.
Images stay uint8 (or float32 depth) until the worker, so the object store carries the smallest
arrays; normalisation is the task's business. Each row keeps its shard path and sample id through
decoding, so that a bad sample is named exactly (data_pipeline.validate), and then drops them.
"""
from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import ray.data

from core.sample_key import SAMPLE_KEY
from data_pipeline import codec, ray_data_start  # noqa: F401  (see its docstring)
from data_pipeline.shard_datasource import PATH, ShardDatasource
from data_pipeline.shards import shard_paths
from data_pipeline.storage import DataStore
from data_pipeline.validate import SampleRules

IMAGES = {"rgb": codec.decode_image, "labels": codec.decode_image, "depth": codec.decode_depth, "sparse_depth": codec.decode_depth}
DECODERS = {**IMAGES, "intrinsics": lambda values: np.asarray(values, dtype=np.float32).reshape(3, 3)}
_IDENTITY = (PATH, "sample_id")
TASK_BYTES = 16 * 2**20


def read_split(store: DataStore, manifest: dict[str, Any], split: str, columns: list[str], task_cpus: float,
               tasks_at_once: int, rules: SampleRules | None = None) -> ray.data.Dataset:
    """tasks_at_once: how many read tasks the CPUs given to data run side by side."""
    unknown = sorted(set(columns) - set(DECODERS))
    if unknown:
        raise ValueError(f"no decoder for columns {unknown}; decodable columns: {sorted(DECODERS)}")
    paths = shard_paths(store, manifest, split)
    shards = manifest["splits"][split]["shards"]
    # Whole shards per read task, decoded as one batch: Ray Data would otherwise split each shard
    # into several blocks, which stops it fusing read and decode into one task and multiplies
    # the tasks; bench.ingest measured that at a third of the fused pipeline's throughput.
    source = ShardDatasource(store.arrow_fs(), paths, shards, [*columns, "sample_id"])
    dataset = ray.data.read_datasource(source, num_cpus=task_cpus, override_num_blocks=read_tasks(shards, tasks_at_once))
    return dataset.map_batches(decode_images, fn_kwargs={"rules": rules}, batch_format="numpy", batch_size=None,
                               num_cpus=task_cpus)


def read_tasks(shards: list[dict[str, Any]], tasks_at_once: int) -> int:
    """How many tasks read these shards: small shards several to a task, about TASK_BYTES each.

    A Ray Data task costs tens of milliseconds of scheduling and set-up on this kind of machine
    beside its work, which bench.ingest showed dominating tasks of one small shard. Never fewer
    tasks than twice as many as run at once, so every CPU given to data has work and the last ones
    balance. A shard whose size the manifest does not give (written before it did) counts as a task.
    """
    total = sum(shard.get("bytes", TASK_BYTES) for shard in shards)
    return min(len(shards), max(2 * tasks_at_once, math.ceil(total / TASK_BYTES)))


def decode_images(batch: dict[str, np.ndarray], rules: SampleRules | None = None) -> dict[str, np.ndarray]:
    """Decoded image columns; with rules, bad samples raise or are left out (see SampleRules.reject)."""
    paths, ids = batch.get(PATH), batch.get("sample_id")
    images = {name: values for name, values in batch.items() if name not in _IDENTITY}
    at_once = {name: codec.decode_column(values, depth=name in codec.DEPTH_COLUMNS)
               for name, values in images.items() if name in IMAGES}
    kept: dict[str, list[np.ndarray]] = {name: [] for name in images}
    keys: list[int] = []
    for index in range(len(next(iter(images.values())))):
        try:
            sample = {name: DECODERS[name](values[index]) if at_once.get(name) is None else at_once[name][index]
                      for name, values in images.items()}
        except Exception as err:  # PIL names a broken PNG in several ways
            sample, problem = None, f"an image does not decode ({type(err).__name__}: {err})"
        else:
            problem = rules.problem({k: v for k, v in sample.items() if k in IMAGES}) if rules else None
        if problem is None and sample is not None:
            for name, image in sample.items():
                kept[name].append(image)
            if ids is not None:
                keys.append(zlib.crc32(str(ids[index]).encode()))
        elif rules is None:
            raise ValueError(problem)
        else:
            rules.reject(str(paths[index]), str(ids[index]), problem)
    decoded = {name: np.stack(values) if values else _empty(name, rules) for name, values in kept.items()}
    if ids is not None:  # strings cannot become tensors; augmentation seeds each sample by this number
        decoded[SAMPLE_KEY] = np.array(keys, dtype=np.int64)
    return decoded


def _empty(name: str, rules: SampleRules) -> np.ndarray:
    """A column with no rows (every sample of the batch was skipped), shaped like a full one."""
    if name == "intrinsics":
        return np.empty((0, 3, 3), dtype=np.float32)
    height, width = rules.image_size
    shape = (0, height, width, 3) if name == "rgb" else (0, height, width)
    return np.empty(shape, dtype=np.uint8 if name in ("rgb", "labels") else np.float32)
