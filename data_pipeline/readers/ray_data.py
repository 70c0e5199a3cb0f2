"""Ray Data: read a split's shards (only the columns a task needs) and decode and check them, each as its kind says.

Planned on the driver; Ray Train splits the stream between workers, which only iterate it. With
train.checkpoint_every each worker instead reads its own share of the epoch's order (ShareReader),
from wherever a checkpoint left the epoch.
Images stay uint8 (or float32 depth) until the worker, so the object store carries the smallest
arrays; normalisation is the task's business. Decoding and the sample checks are
data_pipeline.readers.decode's, shared with the local reader.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pyarrow.fs
import ray.data
import torch
from ray.data import ExecutionResources

from core.engine.epoch_order import Batching, EpochShare, epoch_order
from core.tasks.columns import Column
from data_pipeline.format.shards import shard_paths
from data_pipeline.format.validate import SampleRules
from data_pipeline.readers import ray_data_start  # noqa: F401  (see its docstring)
from data_pipeline.readers.decode import decode_columns, decoded_row_bytes
from data_pipeline.readers.epoch_collate import in_sizes
from data_pipeline.readers.ordered_rows import OrderedRowsDatasource
from data_pipeline.readers.shard_datasource import Decode, ShardDatasource
from data_pipeline.storage.datastore import DataStore

TASK_BYTES = 256 * 2**20
# bench.ingest, two runs: over a 300 MB epoch, 16 MB blocks streamed fastest (4.5 MB at 0.61 and 0.84 of
# their speed, 64 MB at 0.55 and 0.74); over a 75 MB epoch 64 MB, one block per task, was faster (1.30x, 1.42x).
# Rows of 683x683 (1.8 MB decoded, about a KITTI frame): 16 MB blocks of 8 rows streamed batches of 32 at
# 0.70-0.74 of the speed of blocks of a batch (bench.block_rows), so a block never holds fewer rows than a batch.
BLOCK_BYTES = 16 * 2**20


def read_split(store: DataStore, manifest: dict[str, Any], split: str, columns: list[Column], task_cpus: float,
               tasks_at_once: int, rules: SampleRules | None = None, block_bytes: int = BLOCK_BYTES,
               batch_rows: int = 1) -> ray.data.Dataset:
    """tasks_at_once: how many read tasks the CPUs given to data run side by side; block_bytes: decoded rows
    per block, as bytes (see BLOCK_BYTES); batch_rows: the batch size the data is read in, the fewest rows
    a block holds."""
    paths = shard_paths(store, manifest, split)
    shards = manifest["splits"][split]["shards"]
    row_bytes = decoded_row_bytes(columns, tuple(manifest["image_size"]))
    rows = max(1, batch_rows, block_bytes // row_bytes)
    source = ShardDatasource(store.arrow_fs(), paths, shards, [*(column.name for column in columns), "sample_id"],
                             functools.partial(decode_columns, columns=columns, rules=rules), rows)
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


def block_target(block_bytes: int) -> int:
    """The target_max_block_size at which Ray Data hands on each block a read task yields as it is.

    Ray Data gathers a task's output until it exceeds the target, and slices a block of 1.5 times
    it; a block of block_bytes falls midway between the two.
    """
    return int(block_bytes / math.sqrt(1.5))


@dataclass(frozen=True)
class ShareReader:
    """What a Ray Train worker needs to read its own share of an epoch (train.checkpoint_every): made on the driver,
    read in the worker, each epoch from the position its checkpoint saved (data_pipeline.readers.ordered_rows)."""

    filesystem: pyarrow.fs.FileSystem
    paths: list[str]
    shards: list[dict[str, Any]]
    columns: list[str]
    decode: Decode
    row_bytes: int
    task_cpus: float
    data_cpus: float  # this worker's part of the CPUs the plan keeps for data
    tasks_at_once: int

    def epoch_batches(self, seed: int, epoch: int, window_rows: int, start: int, batching: Batching, rank: int,
                      collate=None) -> Iterator[dict[str, torch.Tensor]]:
        """This worker's part of each global batch of the epoch's order (core.engine.epoch_order) from `start` on."""
        order = epoch_order([shard["rows"] for shard in self.shards], seed, epoch, window_rows)
        share = EpochShare.plan(sum(shard["rows"] for shard in self.shards), start, batching)
        rows, sizes = share.worker_rows(order, rank)
        batches = self.read(rows, batching.batch_size).iter_torch_batches(batch_size=batching.batch_size, collate_fn=collate)
        return in_sizes(batches, sizes)

    def read(self, rows: np.ndarray, batch_rows: int) -> ray.data.Dataset:
        """These rows of the split, streamed in this order."""
        block_rows = max(1, batch_rows, BLOCK_BYTES // self.row_bytes)
        source = OrderedRowsDatasource(self.filesystem, self.paths, self.shards, self.columns, self.decode, block_rows, rows)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.execution_options.resource_limits = ExecutionResources(cpu=self.data_cpus)
        context.enable_progress_bars = context.print_on_execution_start = False
        encoded = sum(shard.get("bytes", TASK_BYTES) for shard in self.shards) / max(1, sum(s["rows"] for s in self.shards))
        tasks = min(len(rows), self.tasks_at_once * math.ceil(len(rows) * encoded / (self.tasks_at_once * TASK_BYTES)))
        dataset = ray.data.read_datasource(source, num_cpus=self.task_cpus, override_num_blocks=max(1, tasks))
        dataset.context.target_max_block_size = block_target(block_rows * self.row_bytes)
        return dataset


def share_reader(store: DataStore, manifest: dict[str, Any], columns: list[Column], task_cpus: float, data_cpus: float,
                 tasks_at_once: int, rules: SampleRules | None) -> ShareReader:
    """The train split's ShareReader; data_cpus: the CPUs one worker's reads may take."""
    return ShareReader(store.arrow_fs(), shard_paths(store, manifest, "train"), manifest["splits"]["train"]["shards"],
                       [*(column.name for column in columns), "sample_id"],
                       functools.partial(decode_columns, columns=columns, rules=rules),
                       decoded_row_bytes(columns, tuple(manifest["image_size"])), task_cpus, data_cpus, tasks_at_once)
