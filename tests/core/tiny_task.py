"""A task small enough to train in milliseconds, for tests of the step loop itself (no normalisation layers, so that
per-worker batches add up exactly to one big batch)."""
import torch
from torch import nn


class TinyRegression:
    columns = ["x", "y"]
    monitor, monitor_mode = "val/mse", "min"

    def __init__(self, weights: dict[str, float] | None = None):
        self.loss_weights = weights or {"mse": 1.0, "l1": 0.5}

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))

    def split_batch(self, batch: dict, device: torch.device):
        return batch["x"].to(device), batch["y"].to(device)

    def losses(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        error = outputs - targets
        terms = {"mse": error.square().mean(), "l1": error.abs().mean()}
        return {name: terms[name] for name in self.loss_weights}


def tiny_batches(count: int, size: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        x = torch.randn(size, 3, 8, 8, generator=generator)
        batches.append({"x": x, "y": x.mean(1, keepdim=True) * 2 + 0.5})
    return batches
