"""LPIPS (Zhang et al. 2018) where its backbone's ImageNet weights are at hand, and nothing where they are not.

torchmetrics ships LPIPS's linear layers; the backbone's weights come from torchvision, which
downloads them into TORCH_HOME on first use. Machines without the internet cannot, and an LPIPS on
a randomly initialised backbone is not LPIPS, so the metric exists only where the weights file is
already in TORCH_HOME/hub/checkpoints (BACKBONE_FILE names it); otherwise it is left out and
unavailable_reason() says so in one line.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

NET = "alex"
MIN_SIDE = 64  # AlexNet's strides leave nothing of a smaller image


def backbone_file() -> Path:
    """Where torchvision looks for AlexNet's ImageNet weights before downloading them."""
    url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def unavailable_reason() -> str | None:
    if backbone_file().is_file():
        return None
    return (f"LPIPS is left out of the metrics: its backbone's weights {backbone_file()} are not on this machine "
            "(copy torchvision's alexnet-owt-7be5be79.pth there to have it)")


class Lpips:
    """Sums of LPIPS over images in [0, 1]; built only where unavailable_reason() is None."""

    def __init__(self):
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        self.metric = LearnedPerceptualImagePatchSimilarity(net_type=NET, reduction="sum", normalize=True, sync_on_compute=False)

    def batch_sum(self, predicted: torch.Tensor, truth: torch.Tensor) -> float:
        """Sum over the batch of (B, H, W, 3) images in [0, 1]."""
        pair = [image.permute(0, 3, 1, 2).float().cpu().clamp(0, 1) for image in (predicted, truth)]
        if min(pair[0].shape[-2:]) < MIN_SIDE:
            pair = [F.interpolate(image, size=(MIN_SIDE, MIN_SIDE), mode="bilinear", align_corners=False) for image in pair]
        value = float(self.metric(*pair))
        self.metric.reset()
        return value
