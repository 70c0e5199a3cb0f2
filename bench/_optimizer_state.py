"""Per-rank optimizer-state bytes of the quickstart model on 2 gloo processes: DDP against DeepSpeed ZeRO 1 and 2.

One AdamW step on a random batch creates the state; each rank then counts the bytes of the tensors
its optimizer holds (under ZeRO, the torch optimizer inside DeepSpeed's, over this rank's partition).
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from core.config.schema import ExperimentConfig
from core.config.loading import load_config
from core.engine.optim import build_optimizer
from core.tasks.catalog import build_task
from data_pipeline.format.shards import read_manifest
from data_pipeline.storage.datastore import DataStore

WORLD = 2


def free_port() -> int:
    """For the ranks' rendezvous: a port the kernel just handed out, released again."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(t.numel() * t.element_size() for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t))


def _model_and_batch(config: ExperimentConfig, data: Path):
    manifest = read_manifest(DataStore.at(data))
    torch.manual_seed(0)
    model = build_task(config.task, manifest).build_model()
    height, width = manifest["image_size"]
    images = torch.randn(2, 3, height, width)
    labels = torch.randint(0, len(manifest["classes"]), (2, height, width))
    return model, images, labels


def _one_step(strategy: str, config: ExperimentConfig, data: Path) -> tuple[int, int]:
    """(this rank's optimizer-state bytes, the model's parameter count)."""
    model, images, labels = _model_and_batch(config, data)
    optimizer = build_optimizer(config.train.optimizer, model.parameters())
    params = sum(p.numel() for p in model.parameters())
    if strategy == "ddp":
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        F.cross_entropy(ddp(images), labels).backward()
        optimizer.step()
        return state_bytes(optimizer), params
    from jobs._train.strategy import deepspeed_engine

    staged = config.model_copy(update={"scaling": config.scaling.model_copy(update={"strategy": "deepspeed",
                                                                                      "zero_stage": int(strategy[-1])})})
    engine = deepspeed_engine(model, optimizer, staged)
    engine.backward(F.cross_entropy(engine(images), labels))
    engine.step()
    return state_bytes(engine.optimizer.optimizer), params


def worker(rank: int, port: int, out: str, data: str, config_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    config = load_config(config_path, ["train.batch_size=2"])
    figures = {}
    for strategy in ("ddp", "zero1", "zero2"):
        figures[strategy], params = _one_step(strategy, config, Path(data))
    Path(out, f"rank{rank}.json").write_text(json.dumps({"params": params, **figures}))
    # No teardown: freeing a DDP reducer can drop the gloo group under the GIL and deadlock its
    # destructor (pytorch/pytorch#56297); the figures are on disk.
    dist.barrier()
    os._exit(0)
