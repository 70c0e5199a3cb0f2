"""A Ray Data datasource over a split's shards as the manifest lists them, planned without reading a file.

ray.data.read_parquet plans a data set by reading files in Ray tasks (their footers, and a sample
of rows to estimate the in-memory size); in a fresh Ray instance the quickstart's two splits
spent 0.9 s of its start waiting on those tasks. The manifest already holds every shard's rows
and encoded size, and the driver has checked every footer against it (data_pipeline.format.validate), so
here planning is arithmetic and the files are opened once, by the task that reads them.

A read task hands its rows on in blocks of a fixed row count, decoding each as it goes: blocks span
shards of a few rows, and cut shards of many. Ray Data pays per block on the consumer's side
(bench.ingest --block-mb: blocks of 4.5 MB, about one of its shards, streamed at 0.61 and 0.84 of
the speed of 16 MB ones; see ray_reader.BLOCK_BYTES), and a shard
preprocessed to its 256 MB target could decode to a gigabyte; a block of bounded size costs neither.
A task of many shards still streams: its first block reaches the consumer after one block's rows.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq
from ray.data import Datasource, ReadTask
from ray.data.block import Block, BlockAccessor, BlockMetadata

from data_pipeline.readers.decode import PATH

Decode = Callable[[dict[str, pa.ChunkedArray]], dict[str, np.ndarray]]  # Arrow's columns: binary ones decode from their buffers


class ShardDatasource(Datasource):
    def __init__(self, filesystem: pyarrow.fs.FileSystem, paths: list[str], shards: list[dict[str, Any]], columns: list[str],
                 decode: Decode, block_rows: int):
        """paths: the shards as the filesystem names them, in the manifest's order; shards: their manifest entries;
        decode: turns a block's columns (and its PATH column) into the block's decoded columns."""
        super().__init__()
        self._filesystem, self._paths, self._shards, self._columns = filesystem, paths, shards, columns
        self._decode, self._block_rows = decode, block_rows

    def get_name(self) -> str:
        return "Shards"

    def estimate_inmemory_data_size(self) -> int | None:
        sizes = [shard.get("bytes") for shard in self._shards]
        return None if None in sizes else sum(sizes)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None) -> list[ReadTask]:
        """Consecutive shards in parallelism groups, one read task each: the stream keeps the manifest's order."""
        groups = np.array_split(np.arange(len(self._paths)), min(parallelism, len(self._paths)))
        return [self._task([int(i) for i in group], per_task_row_limit) for group in groups]

    def _task(self, indices: list[int], per_task_row_limit: int | None) -> ReadTask:
        paths = [self._paths[i] for i in indices]
        sizes = [self._shards[i].get("bytes") for i in indices]
        metadata = BlockMetadata(num_rows=sum(self._shards[i]["rows"] for i in indices),
                                 size_bytes=None if None in sizes else sum(sizes), input_files=paths, exec_stats=None)
        read = functools.partial(read_shards, self._filesystem, paths, self._columns, self._decode, self._block_rows)
        return ReadTask(read, metadata, per_task_row_limit=per_task_row_limit)


def read_shards(filesystem: pyarrow.fs.FileSystem, paths: list[str], columns: list[str], decode: Decode,
                block_rows: int) -> Iterator[Block]:
    """The shards' columns, with every row's shard path, decoded in blocks of block_rows rows (the last one fewer)."""
    shards = (with_paths(pq.read_table(path, columns=columns, filesystem=filesystem), path) for path in paths)
    for table in _in_rows(shards, block_rows):
        yield BlockAccessor.batch_to_block(decode({name: table.column(name) for name in table.column_names}))


def with_paths(table: pa.Table, path: str) -> pa.Table:
    return table.append_column(PATH, pa.array(np.full(table.num_rows, path, dtype=object), pa.string()))


def _in_rows(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The tables' rows, in order, as tables of `rows` rows and a last one of what is left."""
    held: list[pa.Table] = []
    count = 0
    for table in tables:
        held.append(table)
        count += table.num_rows
        while count >= rows:
            merged = pa.concat_tables(held)
            yield merged.slice(0, rows)
            held, count = [merged.slice(rows)], count - rows
    if count:
        yield pa.concat_tables(held)
