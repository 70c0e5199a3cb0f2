"""The lighting task's metrics, for the model and trivial predictors on the same samples.

- envmap_rmse: root mean squared error of the HDR environment maps over every pixel and channel of
  the split's probes (linear radiance, white = 1);
- envmap_psnr: per environment map, 10 log10(1 / MSE) (peak 1 = white: an emitter's error counts in
  full), averaged; envmap_ssim: SSIM of the maps clipped to [0, 1], as a display shows them;
- novel_psnr, novel_ssim: the rendered novel view against the true one (both in [0, 1], the render
  clipped as a camera would), at the task's view size; novel_lpips beside them where the LPIPS
  backbone is present (core.evaluation.lpips).
Predictors beside the model: `mean_envmap`, the training split's mean environment map for every
probe; `image_colour`, a uniform map of the input image's mean colour; and for the novel view
`input_view`, the input image itself (the camera did not move). SSIM is torchmetrics' (Gaussian
window of 7 pixels, sigma 1.5). A zero MSE scores PSNR_CAP. Workers add up sums and counts, so the
figures do not depend on how many workers scored the split.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from core.engine.distributed import all_reduce_sum
from core.evaluation.lpips import Lpips

PSNR_CAP = 100.0
SSIM_WINDOW = 7
# rows of the sums: each predictor's envmap squared error, envmap PSNR, envmap SSIM, novel PSNR, novel SSIM, novel LPIPS
PREDICTORS = ("model", "mean_envmap", "image_colour", "input_view")
FIGURES = ("envmap_se", "envmap_psnr", "envmap_ssim", "novel_psnr", "novel_ssim", "novel_lpips")


def ssim(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(B,) SSIM of (B, H, W, 3) images in [0, 1]."""
    pair = [image.permute(0, 3, 1, 2).float() for image in (predicted, truth)]
    return structural_similarity_index_measure(*pair, data_range=1.0, kernel_size=SSIM_WINDOW, reduction="none")


def psnr(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(B,) 10 log10(1 / MSE) per image (B, ...), at most PSNR_CAP."""
    mse = ((predicted.float() - truth.float()) ** 2).flatten(1).mean(1)
    return (-10 * torch.log10(mse.clamp(min=10 ** (-PSNR_CAP / 10)))).clamp(max=PSNR_CAP)


def novel_truth(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, size, size, 3) in [0, 1], averaged over the pixels each rendered pixel covers."""
    values = images.permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(values, size=(size, size), mode="area").permute(0, 2, 3, 1)


class LightingMetrics:
    def __init__(self, mean_envmap: torch.Tensor, lpips: Lpips | None = None):
        self.mean_envmap, self.lpips = mean_envmap, lpips
        self.sums = torch.zeros(len(PREDICTORS), len(FIGURES), dtype=torch.float64)
        self.counts = torch.zeros(3, dtype=torch.float64)  # samples, environment maps, environment-map values

    def update(self, outputs: dict, targets: dict) -> None:
        truth = targets["envmaps"].float().cpu()
        batch, probes = truth.shape[:2]
        colour = (targets["rgb"].float().cpu() / 255.0).flatten(1, 2).mean(1)
        envmaps = {"model": outputs["envmaps"].detach().float().cpu(), "mean_envmap": self.mean_envmap.expand_as(truth),
                   "image_colour": colour[:, None, None, None].expand_as(truth)}
        size = outputs["novel_view"].shape[1]
        novel = novel_truth(targets["rgb_novel"].cpu(), size)
        views = {"model": outputs["novel_view"].detach().float().cpu().clamp(0, 1), "input_view": novel_truth(targets["rgb"].cpu(), size)}
        for row, name in enumerate(PREDICTORS):
            if name in envmaps:
                self.sums[row, :3] += torch.tensor(self._envmap_figures(envmaps[name], truth), dtype=torch.float64)
            if name in views:
                self.sums[row, 3:] += torch.tensor(self._view_figures(views[name], novel), dtype=torch.float64)
        self.counts += torch.tensor([batch, batch * probes, truth.numel()], dtype=torch.float64)

    @staticmethod
    def _envmap_figures(predicted: torch.Tensor, truth: torch.Tensor) -> list[float]:
        flat, flat_truth = predicted.flatten(0, 1), truth.flatten(0, 1)
        return [float(((flat - flat_truth) ** 2).sum()), float(psnr(flat, flat_truth).sum()),
                float(ssim(flat.clamp(0, 1), flat_truth.clamp(0, 1)).sum())]

    def _view_figures(self, predicted: torch.Tensor, truth: torch.Tensor) -> list[float]:
        lpips = self.lpips.batch_sum(predicted, truth) if self.lpips else 0.0
        return [float(psnr(predicted, truth).sum()), float(ssim(predicted, truth).sum()), lpips]

    def all_reduce(self) -> "LightingMetrics":
        all_reduce_sum(self.sums)
        all_reduce_sum(self.counts)
        return self

    def _of(self, row: int) -> dict[str, float]:
        samples, maps, values = self.counts.tolist()
        if samples == 0:
            raise ValueError("the split has no sample to score")
        se, envmap_psnr, envmap_ssim, novel_psnr, novel_ssim, novel_lpips = self.sums[row].tolist()
        figures = {"envmap_rmse": math.sqrt(se / values), "envmap_psnr": envmap_psnr / maps, "envmap_ssim": envmap_ssim / maps,
                   "novel_psnr": novel_psnr / samples, "novel_ssim": novel_ssim / samples}
        if self.lpips:
            figures["novel_lpips"] = novel_lpips / samples
        return figures

    def compute(self) -> dict[str, float]:
        return self._of(0)

    def baselines(self) -> dict[str, float]:
        """Each predictor's figures for what it predicts: the environment map, or the novel view."""
        kept = {"mean_envmap": ("envmap_",), "image_colour": ("envmap_",), "input_view": ("novel_",)}
        return {f"{name}_{figure}": value for row, name in enumerate(PREDICTORS) if row
                for figure, value in self._of(row).items() if figure.startswith(kept[name])}
