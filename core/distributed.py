"""Rank helpers that work alike in a process group and in a single process (world size 1)."""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over all workers, in place; gloo cannot reduce on every device, so go through the CPU."""
    if not is_distributed():
        return tensor
    staged = tensor.cpu() if dist.get_backend() == "gloo" else tensor
    dist.all_reduce(staged, op=dist.ReduceOp.SUM)
    if staged is not tensor:
        tensor.copy_(staged)
    return tensor
