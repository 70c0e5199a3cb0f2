"""Depth completion: RGB + sparse depth (+ semantic map) -> dense depth in metres.

Three guided branches as in SemAttNet (Nazir et al. 2022): a colour-guided branch sees RGB and
sparse depth, a semantic-guided branch the semantic map, sparse depth and the colour branch's
depth, a depth-guided branch the sparse depth and both earlier depths. Each predicts a depth and a
confidence; the fused depth weighs them by a per-pixel softmax over the confidences. Without a
semantic map the semantic branch is left out. Branch depths are corrections, in the data set's
depth standard deviations, to the nearest-neighbour fill of the sparse depth (the mean depth where
an image has no measurement), which every branch also sees. An optional CSPN++-style head (Cheng et al. 2020)
refines the fused depth by affinity propagation over several kernel sizes, mixed per pixel, with
the measured sparse depths put back after every iteration.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.models.sparse_fill import nearest_fill


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class GuidedBranch(nn.Module):
    """A small encoder-decoder (two downsamplings, skip connections) -> (depth, confidence, features)."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.stem = _conv(in_channels, width)
        self.down1 = nn.Sequential(_conv(width, 2 * width, 2), _conv(2 * width, 2 * width))
        self.down2 = nn.Sequential(_conv(2 * width, 4 * width, 2), _conv(4 * width, 4 * width))
        self.up2 = _conv(4 * width + 2 * width, 2 * width)
        self.up1 = _conv(2 * width + width, width)
        self.head = nn.Conv2d(width, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        full = self.stem(x)
        half = self.down1(full)
        quarter = self.down2(half)
        half = self.up2(torch.cat([F.interpolate(quarter, size=half.shape[-2:], mode="bilinear", align_corners=False), half], 1))
        full = self.up1(torch.cat([F.interpolate(half, size=full.shape[-2:], mode="bilinear", align_corners=False), full], 1))
        depth, confidence = self.head(full).split(1, dim=1)
        return depth, confidence, full


class CSPNRefinement(nn.Module):
    """Affinity propagation over kernel sizes `kernel_sizes`, `iterations` times.

    For each kernel size k the head predicts k*k - 1 neighbour affinities per pixel, normalised so
    that their absolute values sum to at most 1 (the centre takes the rest, which keeps the
    propagation stable), and a per-pixel weight over the kernel sizes.
    """

    def __init__(self, in_channels: int, kernel_sizes: list[int], iterations: int):
        super().__init__()
        if any(k < 3 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"CSPN kernel sizes must be odd and at least 3, got {kernel_sizes}")
        self.kernel_sizes, self.iterations = list(kernel_sizes), iterations
        self.affinity = nn.Conv2d(in_channels, sum(k * k - 1 for k in kernel_sizes), 3, padding=1)
        self.mixing = nn.Conv2d(in_channels, len(kernel_sizes), 3, padding=1)

    def forward(self, depth: torch.Tensor, features: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        affinities = self.affinity(features).split([k * k - 1 for k in self.kernel_sizes], dim=1)
        mixing = torch.softmax(self.mixing(features), dim=1)
        measured = (sparse > 0).float()
        # The kernels and their mixing weights stay the same over the iterations, and a k x k kernel is the largest
        # kernel with zeros around it: so the mixed kernels are one kernel of the largest size, and each iteration
        # propagates once through it instead of once per size (49 neighbours instead of 9 + 25 + 49 for 3, 5, 7).
        size = max(self.kernel_sizes)
        kernel = sum(mixing[:, i : i + 1] * self._padded(self._kernel(a, k), k, size)
                     for i, (a, k) in enumerate(zip(affinities, self.kernel_sizes)))
        for _ in range(self.iterations):
            depth = self._propagate(depth, kernel, size)
            depth = measured * sparse + (1 - measured) * depth
        return depth

    @staticmethod
    def _padded(kernel: torch.Tensor, size: int, to: int) -> torch.Tensor:
        """(B, size*size, H, W) weights as (B, to*to, H, W), zero outside the centred size x size window."""
        if size == to:
            return kernel
        batch, _, height, width = kernel.shape
        margin = (to - size) // 2
        grid = kernel.view(batch, size, size, height, width)
        return F.pad(grid.permute(0, 3, 4, 1, 2), (margin, margin, margin, margin)).permute(0, 3, 4, 1, 2).reshape(
            batch, to * to, height, width)

    @staticmethod
    def _kernel(affinity: torch.Tensor, size: int) -> torch.Tensor:
        """(B, k*k, H, W) weights with the centre making the whole sum 1."""
        scale = affinity.abs().sum(1, keepdim=True).clamp(min=1.0)
        neighbours = affinity / scale
        centre = 1.0 - neighbours.sum(1, keepdim=True)
        half = (size * size) // 2
        return torch.cat([neighbours[:, :half], centre, neighbours[:, half:]], dim=1)

    @staticmethod
    def _propagate(depth: torch.Tensor, kernel: torch.Tensor, size: int) -> torch.Tensor:
        batch, _, height, width = depth.shape
        patches = F.unfold(depth, size, padding=size // 2).view(batch, size * size, height, width)
        return (patches * kernel).sum(1, keepdim=True)


class DepthCompletionNet(nn.Module):
    """inputs: {"rgb": (B,3,H,W) normalised, "sparse": (B,1,H,W) metres, "semantic": (B,C,H,W) one-hot
    or absent}; returns {"depth": refined or fused depth, "coarse": fused depth, "branches": per branch}."""

    def __init__(self, num_semantic: int, width: int, depth_mean: float, depth_std: float, cspn_kernels: list[int] | None = None,
                 cspn_iterations: int = 0):
        super().__init__()
        # The network works in the data set's standardised depth, (metres - mean) / std, so that its
        # outputs are of order 1 whatever the scene's distance; sparse inputs carry a measured-or-not mask.
        self.depth_mean, self.depth_std = depth_mean, depth_std
        self.colour = GuidedBranch(3 + 3, width)
        self.semantic = GuidedBranch(num_semantic + 4, width) if num_semantic else None
        self.depth = GuidedBranch(3 + (2 if num_semantic else 1), width)
        branches = 3 if num_semantic else 2
        self.refine = CSPNRefinement(branches * width, cspn_kernels, cspn_iterations) if cspn_kernels and cspn_iterations else None

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        measured = (inputs["sparse"] > 0).float()
        filled = nearest_fill(inputs["sparse"])
        base = torch.where(filled > 0, (filled - self.depth_mean) / self.depth_std, torch.zeros_like(filled))
        sparse = torch.cat([measured * (inputs["sparse"] - self.depth_mean) / self.depth_std, measured, base], dim=1)
        depths, confidences, features = [], [], []
        for branch, guide in ((self.colour, [inputs["rgb"]]), (self.semantic, [inputs.get("semantic")]), (self.depth, [])):
            if branch is None:
                continue
            depth, confidence, feature = branch(torch.cat([*guide, sparse, *depths], dim=1))
            depths.append(depth)
            confidences.append(confidence)
            features.append(feature)
        weights = torch.softmax(torch.cat(confidences, 1), dim=1)
        fused = (weights * torch.cat(depths, 1)).sum(1, keepdim=True)
        metres = [self._metres(base + d) for d in depths]
        coarse = self._metres(base + fused)
        refined = coarse
        if self.refine is not None:
            # Negative affinities can push a pixel below 0 m, which no depth is.
            refined = self.refine(coarse, torch.cat(features, dim=1), inputs["sparse"]).clamp(min=0)
        return {"depth": refined, "coarse": coarse, "branches": metres}

    def _metres(self, standardised: torch.Tensor) -> torch.Tensor:
        return (self.depth_mean + self.depth_std * standardised).clamp(min=0)
