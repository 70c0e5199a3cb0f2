"""Ray Data: read a split's shards (only the columns a task needs) and decode its images.

Planned on the driver; Ray Train splits the stream between workers, which only iterate it.
Images stay uint8 (or float32 depth) until the worker, so the object store carries the smallest
arrays; normalisation is the task's business.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import ray.data

from data_pipeline import codec
from data_pipeline.shards import shard_paths

DECODERS = {"rgb": codec.decode_png, "labels": codec.decode_png, "depth": codec.decode_depth, "sparse_depth": codec.decode_depth}


def read_split(root: Path, manifest: dict[str, Any], split: str, columns: list[str], task_cpus: float) -> ray.data.Dataset:
    unknown = sorted(set(columns) - set(DECODERS))
    if unknown:
        raise ValueError(f"no decoder for columns {unknown}; decodable columns: {sorted(DECODERS)}")
    # Ray Data's V2 file reader lists files in tasks of one whole CPU, whatever num_cpus says; a plan
    # that reserves a fraction of a CPU for data (concurrent sweep trials) would wait for it forever.
    ray.data.DataContext.get_current().use_datasource_v2 = False
    dataset = ray.data.read_parquet(shard_paths(root, manifest, split), columns=columns, num_cpus=task_cpus)
    return dataset.map_batches(decode_images, batch_format="numpy", num_cpus=task_cpus)


def decode_images(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.stack([DECODERS[name](item) for item in values]) for name, values in batch.items()}
