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
    """Sum over all workers, in place."""
    return _all_reduce(tensor, dist.ReduceOp.SUM) if is_distributed() else tensor


def largest(value: float, device: torch.device) -> float:
    """The largest of every worker's value."""
    if not is_distributed():
        return value
    return _all_reduce(torch.tensor([value], dtype=torch.float64, device=device), dist.ReduceOp.MAX).item()


def _all_reduce(tensor: torch.Tensor, op: dist.ReduceOp) -> torch.Tensor:
    """gloo cannot reduce on every device, so it goes through the CPU."""
    staged = tensor.cpu() if dist.get_backend() == "gloo" else tensor
    dist.all_reduce(staged, op=op)
    if staged is not tensor:
        tensor.copy_(staged)
    return tensor
