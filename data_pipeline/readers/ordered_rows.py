"""A Ray Data datasource of given rows of a split, in the order given: one worker's share of an epoch
(core.engine.epoch_order) from any position in it.

Ray Data reads a split in the order of its files, and Ray Train's split of the stream hands blocks
to whichever worker asks first; neither can start inside an epoch at a position saved in a
checkpoint. Here the rows to read are given, as indices into the split's shards laid end to end:
read tasks take consecutive runs of them, read the shards those rows lie in (only the task's
columns) and yield the rows in the given order, decoded in blocks. With preserve_order, the stream
is exactly that order.
"""
from __future__ import annotations

import functools
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq
from ray.data import Datasource, ReadTask
from ray.data.block import Block, BlockAccessor, BlockMetadata

from data_pipeline.readers.shard_datasource import Decode, with_paths


class OrderedRowsDatasource(Datasource):
    def __init__(self, filesystem: pyarrow.fs.FileSystem, paths: list[str], shards: list[dict[str, Any]], columns: list[str],
                 decode: Decode, block_rows: int, rows: np.ndarray):
        """paths, shards: the split's shards in the manifest's order (as ShardDatasource takes them); rows: the rows to read."""
        super().__init__()
        self._filesystem, self._paths, self._columns, self._decode = filesystem, paths, columns, decode
        self._block_rows, self._rows = block_rows, np.asarray(rows, dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum([shard["rows"] for shard in shards])]).astype(np.int64)
        if len(self._rows) and (self._rows.min() < 0 or self._rows.max() >= self._starts[-1]):
            raise ValueError(f"rows outside the split's {self._starts[-1]} rows: the order was drawn for another data set")

    def get_name(self) -> str:
        return "OrderedRows"

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None) -> list[ReadTask]:
        runs = [run for run in np.array_split(self._rows, max(1, min(parallelism, len(self._rows)))) if len(run)]
        return [self._task(run, per_task_row_limit) for run in runs]

    def _task(self, rows: np.ndarray, per_task_row_limit: int | None) -> ReadTask:
        shard_of = np.searchsorted(self._starts, rows, side="right") - 1
        paths = [self._paths[i] for i in np.unique(shard_of)]
        metadata = BlockMetadata(num_rows=len(rows), size_bytes=None, input_files=paths, exec_stats=None)
        read = functools.partial(read_rows, self._filesystem, self._paths, self._starts, self._columns, self._decode,
                                 self._block_rows, rows)
        return ReadTask(read, metadata, per_task_row_limit=per_task_row_limit)


def read_rows(filesystem: pyarrow.fs.FileSystem, paths: list[str], starts: np.ndarray, columns: list[str], decode: Decode,
              block_rows: int, rows: np.ndarray) -> Iterator[Block]:
    """rows (indices into the shards laid end to end) in their order, decoded in blocks of block_rows rows."""
    shard_of = np.searchsorted(starts, rows, side="right") - 1
    shards = np.unique(shard_of)
    tables = [with_paths(pq.read_table(paths[i], columns=columns, filesystem=filesystem), paths[i]) for i in shards]
    offsets = np.concatenate([[0], np.cumsum([table.num_rows for table in tables])])
    # each row's place in the shards read, laid end to end in the order of `shards`
    places = offsets[np.searchsorted(shards, shard_of)] + rows - starts[shard_of]
    table = pa.concat_tables(tables)
    for low in range(0, len(rows), block_rows):
        block = table.take(pa.array(places[low:low + block_rows]))
        yield BlockAccessor.batch_to_block(decode({name: block.column(name) for name in block.column_names}))
