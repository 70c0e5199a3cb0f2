"""Decoded image columns as model inputs, normalised with the data set's statistics, and back for previews."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


class ImageInputs:
    def __init__(self, stats: dict[str, Any]):
        self.rgb_mean = torch.tensor(stats["rgb_mean"]).view(1, 3, 1, 1)
        self.rgb_std = torch.tensor(stats["rgb_std"]).view(1, 3, 1, 1)

    def rgb(self, values: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, H, W) float, standardised per channel, contiguous.

        Left as a permuted view, the input would be channels-last in memory while the weights are not:
        oneDNN and cuDNN then run every convolution channels-last against channels-first weights (the
        quickstart's steps at 0.92 and 0.96 of the speed, medians, on this machine's CPUs at 1 and 2
        threads: `python -m bench.input_layout`), and the weight gradients come back with strides that
        DDP must copy into its buckets ("Grad strides do not match bucket view strides")."""
        return (values.permute(0, 3, 1, 2).contiguous().float() / 255.0 - self.rgb_mean) / self.rgb_std

    def rgb_image(self, normalised: torch.Tensor) -> np.ndarray:
        """The inverse of rgb() for previews: (B, 3, H, W) -> (B, H, W, 3) uint8."""
        return ((normalised.detach().cpu() * self.rgb_std + self.rgb_mean).clamp(0, 1) * 255).permute(0, 2, 3, 1).to(torch.uint8).numpy()

    @staticmethod
    def depth(values: torch.Tensor, column: str) -> torch.Tensor:
        """(B, H, W) metres -> (B, 1, H, W), refusing what no depth is."""
        depth = values.float().unsqueeze(1)
        if not torch.isfinite(depth).all() or (depth < 0).any():
            raise ValueError(f"input column {column!r} holds non-finite or negative values; "
                             "depth must be metres >= 0, 0 where there is no measurement")
        return depth
