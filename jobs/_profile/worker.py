"""What each Ray Train worker runs when profiling: a few timed training steps at each batch size.

Steps are taken from the real pipeline, epoch after epoch, so that every worker takes exactly the
same number (DDP would wait forever for a worker that ran out). One report per batch size; the
driver's callback collects the reports of all workers.
"""
from __future__ import annotations

import itertools
import logging
import statistics
from typing import Any, Iterator

import ray.train
import ray.train.torch
import torch

from core.profiling import memory
from core.profiling.comm_timing import AllreduceTimer
from core.config.schema import ExperimentConfig
from core.engine.steps import StepTiming, train_epoch
from core.engine.optim import build_optimizer
from core.tasks.catalog import build_task
from data_pipeline.readers.epoch_collate import EpochCollate


def profile_loop_per_worker(loop_config: dict[str, Any]) -> None:
    config = ExperimentConfig.model_validate(loop_config["config"])
    logging.getLogger().setLevel(logging.WARNING)
    torch.set_num_threads(loop_config["torch_threads"])
    torch.manual_seed(config.seed)
    task = build_task(config.task, loop_config["manifest"])
    model = ray.train.torch.prepare_model(task.build_model())
    allreduce = AllreduceTimer.attach(model)
    device = ray.train.torch.get_device()
    optimizer = build_optimizer(config.train.optimizer, model.parameters())
    shard = ray.train.get_dataset_shard("train")
    warmup, steps = loop_config["warmup_steps"], loop_config["steps"]
    for batch_size in loop_config["batch_sizes"]:
        memory.reset_peak(device)
        timings: list[StepTiming] = []
        comm: list[float] = []

        def on_step(timing: StepTiming) -> None:
            timings.append(timing)
            comm.append(allreduce.take_busy_seconds() if allreduce else 0.0)

        collate = EpochCollate.of(task, None, config.seed, 0, loop_config["manifest"]["ignore_index"])
        batches = itertools.islice(_endless(shard, batch_size, collate), warmup + steps)
        train_epoch(model, optimizer, batches, task, device, on_step=on_step)
        ray.train.report(_figures(batch_size, timings[warmup:], comm[warmup:], device, allreduce is not None))


def _endless(shard, batch_size: int, collate) -> Iterator[dict]:
    """Full batches only, so every timed step carries the batch size it is reported under."""
    while True:
        empty = True
        for batch in shard.iter_torch_batches(batch_size=batch_size, drop_last=True, collate_fn=collate):
            empty = False
            yield batch
        if empty:
            raise ValueError(f"batch size {batch_size} is larger than this worker's share of the train split: "
                             "profile smaller batches, fewer workers, or a larger data set")


def _figures(batch_size: int, timings: list[StepTiming], comm: list[float], device: torch.device, distributed: bool) -> dict:
    seconds = sum(t.seconds for t in timings)
    return {
        "batch_size": batch_size,
        "s_per_it": statistics.median(t.seconds for t in timings),
        "data_wait_share": sum(t.data_wait_seconds for t in timings) / seconds,
        "comm_share": sum(comm) / seconds if distributed else None,
        "peak_memory_bytes": memory.peak_bytes(device),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "steps": len(timings),
    }
