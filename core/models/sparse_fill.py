"""Dense depth from sparse measurements by nearest-neighbour fill: a baseline, and the depth network's starting point."""
from __future__ import annotations

import torch


@torch.no_grad()
def nearest_fill(sparse: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Each pixel takes the depth of its nearest measured pixel (B,[1,]H,W); an image without any
    measurement stays 0. Chunked over pixels so that KITTI-sized images fit in memory."""
    shape = sparse.shape
    images = sparse.reshape(shape[0], shape[-2], shape[-1])
    height, width = images.shape[-2:]
    grid = torch.stack(torch.meshgrid(torch.arange(height, device=sparse.device), torch.arange(width, device=sparse.device),
                                      indexing="ij"), -1).reshape(-1, 2).float()
    filled = torch.zeros_like(images).reshape(len(images), -1)
    for index, image in enumerate(images):
        flat = image.reshape(-1)
        measured = (flat > 0).nonzero().squeeze(1)
        if len(measured) == 0:
            continue
        points = grid[measured]
        for start in range(0, len(grid), chunk):
            nearest = torch.cdist(grid[start : start + chunk], points).argmin(1)
            filled[index, start : start + chunk] = flat[measured[nearest]]
    return filled.reshape(shape)
