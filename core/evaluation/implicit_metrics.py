"""The implicit task's metrics, as ICON reports them, for the model and two trivial predictors on the same samples.

Per sample, for a reconstruction (the surface of an occupancy grid at 0.5):
- p2s_cm: mean distance from the ground truth's surface points to the reconstruction's faces;
- chamfer_cm: mean of that and of the distance from points sampled on the reconstruction to the
  nearest ground-truth surface point;
- normal_cos: mean cosine between the normals the camera sees on the reconstruction and the
  ground-truth front normal map, over the pixels the body covers (0 where the reconstruction
  covers none), the rendered-normal consistency;
- iou: occupancy IoU on the held-out points (the prediction at 0.5 against the exact labels),
  summed over the split's points.
Distances are in centimetres (the box is in metres). An empty reconstruction scores
surfaces.EMPTY_DISTANCE and a cosine of 0, and is counted. The predictors beside the model: the
training split's mean shape (its mean occupancy at 0.5, one shape for all samples) and the visual
hull of the mask alone, extruded over the depth range of the body (from -Z to +Z of its surface points).
Workers add up sums and counts, so the figures do not depend on how many workers scored the split.
"""
from __future__ import annotations

from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F

from core.engine.distributed import all_reduce_sum
from core.evaluation import surfaces
from core.tasks.implicit.body_field import grid_points

PREDICTORS = ("model", "mean_shape", "visual_hull")
FIGURES = ("p2s", "chamfer", "normal", "intersection", "union")


class ImplicitMetrics:
    """baseline_cache: the predictors' figures by sample key, kept by the task from one evaluation to the next
    (they depend on the sample alone, and the visual hull's surface costs as much as the model's)."""

    def __init__(self, mean_occupancy: dict[str, Any], resolution: int, metric_points: int,
                 baseline_cache: dict[int, torch.Tensor] | None = None):
        size = mean_occupancy["resolution"]
        self.mean_grid = torch.tensor(mean_occupancy["values"], dtype=torch.float32).view(size, size, size)
        self.resolution, self.metric_points = resolution, metric_points
        self.cache = {} if baseline_cache is None else baseline_cache
        self.sums = torch.zeros(len(PREDICTORS), len(FIGURES), dtype=torch.float64)
        self.counts = torch.zeros(2, dtype=torch.float64)  # samples, empty reconstructions of the model

    def update(self, outputs: dict, targets: dict) -> None:
        for index, (verts, faces) in enumerate(surfaces.reconstructions(outputs)):
            sample = {name: value[index].detach().cpu() for name, value in targets.items()}
            model = self._figures((verts, faces), outputs["occupancy"][index].detach().float().cpu() > 0.5, sample)
            key = int(sample["key"])
            if key not in self.cache:
                self.cache[key] = self._baselines(sample)
            self.sums += torch.cat([torch.tensor([model], dtype=torch.float64), self.cache[key]])
            self.counts += torch.tensor([1.0, float(surfaces.is_empty(verts, faces))], dtype=torch.float64)

    @cached_property
    def mean_surface(self) -> tuple[torch.Tensor, torch.Tensor]:
        return surfaces.surface(self.mean_grid, 0.5)

    def _baselines(self, sample: dict) -> torch.Tensor:
        hull = visual_hull(sample["mask"], sample["camera"], sample["surface_points"], self.resolution)
        return torch.tensor([self._figures(self.mean_surface, sample_grid(self.mean_grid, sample["points"]) > 0.5, sample),
                             self._figures(surfaces.surface(hull, 0.5), sample_grid(hull, sample["points"]) > 0.5, sample)],
                            dtype=torch.float64)

    def _figures(self, mesh: tuple[torch.Tensor, torch.Tensor], inside: torch.Tensor, sample: dict) -> list[float]:
        truth = sample["occupancy"] > 0.5
        p2s, chamfer = surfaces.distances(sample["surface_points"], *mesh, self.metric_points)
        return [p2s, chamfer, normal_consistency(mesh, sample["normal_front"], sample["mask"]),
                float((inside & truth).sum()), float((inside | truth).sum())]

    def all_reduce(self) -> "ImplicitMetrics":
        all_reduce_sum(self.sums)
        all_reduce_sum(self.counts)
        return self

    def _of(self, row: int) -> dict[str, float]:
        samples = self.counts[0].item()
        if samples == 0:
            raise ValueError("the split has no sample to score")
        p2s, chamfer, normal, intersection, union = self.sums[row].tolist()
        return {"p2s_cm": 100 * p2s / samples, "chamfer_cm": 100 * chamfer / samples, "normal_cos": normal / samples,
                "iou": intersection / max(union, 1.0)}

    def compute(self) -> dict[str, float]:
        return {**self._of(0), "empty_reconstructions": self.counts[1].item()}

    def baselines(self) -> dict[str, float]:
        return {f"{name}_{figure}": value for row, name in enumerate(PREDICTORS) if row
                for figure, value in self._of(row).items()}


def sample_grid(grid: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(N,) values of grid (R, R, R over the box, indexed z, y, x) at points (N, 3), trilinearly."""
    where = points.float().view(1, -1, 1, 1, 3)  # grid_sample reads (x, y, z) against a (D=z, H=y, W=x) volume
    return F.grid_sample(grid[None, None].float(), where, align_corners=True)[0, 0, :, 0, 0]


def visual_hull(mask: torch.Tensor, camera: torch.Tensor, surface_points: torch.Tensor, resolution: int) -> torch.Tensor:
    """(R, R, R) occupancy: inside where the point projects into the mask and lies within the body's depth range."""
    lattice = torch.from_numpy(grid_points(resolution)).float()
    projected = lattice @ camera[:, :3].T.float() + camera[:, 3].float()
    seen = F.grid_sample(mask[None, None].float(), projected[None, :, None, :2], mode="nearest", align_corners=False)[0, 0, :, 0]
    depth = surface_points[:, 2]
    within = (lattice[:, 2] >= depth.min()) & (lattice[:, 2] <= depth.max())
    return (seen * within).view(resolution, resolution, resolution)


def normal_consistency(mesh: tuple[torch.Tensor, torch.Tensor], truth_normals: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean cosine over the body's pixels between the seen normals of mesh and truth_normals (S, S, 3, unit or zero)."""
    covered = mask > 0
    if not covered.any():
        return 0.0
    seen = surfaces.seen_normals(*mesh, image_size=mask.shape[-1])
    return (seen * truth_normals).sum(-1)[covered].mean().item()
