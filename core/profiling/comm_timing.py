"""How long a DDP model spends in gradient allreduce, measured from a communication hook.

The hook does what DDP's default hook does (average each gradient bucket over the workers) and
records when each bucket's allreduce starts and completes. Buckets overlap with backward compute
and with one another, so a step's communication time is the length of the union of those spans:
the time during which at least one allreduce was in flight.

No `from __future__ import annotations` here: DDP checks the hook's annotations as real types.
"""
import time

import torch
import torch.distributed as dist
from torch import nn


class AllreduceTimer:
    def __init__(self):
        self._spans: list[list[float]] = []

    @classmethod
    def attach(cls, model: nn.Module) -> "AllreduceTimer | None":
        """Register on a DDP model; None for an unwrapped one (one worker: nothing to communicate)."""
        if not isinstance(model, nn.parallel.DistributedDataParallel):
            return None
        timer = cls()
        model.register_comm_hook(state=None, hook=timer._hook)
        return timer

    def take_busy_seconds(self) -> float:
        """Seconds with an allreduce in flight since the last call; DDP has waited for every bucket by then."""
        spans, self._spans = sorted(s for s in self._spans if len(s) == 2), []
        busy, reach = 0.0, float("-inf")
        for start, end in spans:
            busy += max(0.0, end - max(start, reach))
            reach = max(reach, end)
        return busy

    def _hook(self, _state, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        span = [time.perf_counter()]
        self._spans.append(span)
        tensor = bucket.buffer().div_(dist.get_world_size())
        future = dist.all_reduce(tensor, async_op=True).get_future()

        def done(fut: torch.futures.Future) -> torch.Tensor:
            span.append(time.perf_counter())
            return fut.value()[0]

        return future.then(done)
