"""A split read in this one process, without Ray: for evaluation, the ingest floor and tests.

The same column projection, decoding and sample checks as the Ray Data reader (a bad sample is an
error naming its shard, row and id); each batch also carries its sample ids, which exports name
files after.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pyarrow.parquet as pq
import torch

from core.tasks.columns import Column
from data_pipeline.readers.decode import PATH, decode_columns
from data_pipeline.format.shards import shard_paths
from data_pipeline.storage.datastore import DataStore
from data_pipeline.format.validate import SampleRules

SAMPLE_IDS = "sample_id"


def split_batches(store: DataStore, manifest: dict[str, Any], split: str, columns: list[Column],
                  batch_size: int) -> Iterator[dict[str, Any]]:
    """Torch batches of the columns, in shard order, each with a list of its sample ids under SAMPLE_IDS."""
    names = [column.name for column in columns]
    rules = SampleRules.of(store, manifest, "error")
    for path in shard_paths(store, manifest, split):
        table = pq.read_table(path, columns=[*names, SAMPLE_IDS], filesystem=store.arrow_fs())
        for start in range(0, table.num_rows, batch_size):
            chunk = table.slice(start, batch_size)
            raw = {name: chunk.column(name) for name in [*names, SAMPLE_IDS]}
            ids = chunk.column(SAMPLE_IDS).to_pylist()
            raw[PATH] = np.array([path] * len(ids), dtype=object)
            batch: dict[str, Any] = {name: torch.from_numpy(values) for name, values in decode_columns(raw, columns, rules).items()}
            batch[SAMPLE_IDS] = ids
            yield batch
