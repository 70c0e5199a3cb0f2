"""The implicit task's section of the config: its inputs, network, points, prior and losses (no torch: jobs read configs before Ray starts)."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from core.config.sections import Strict, TaskSection, one_of_variants
from core.tasks.registry import TASK_CONFIGS

INPUT_VARIANTS = (["rgb"], ["rgb", "normal_front"], ["rgb", "normal_back"], ["rgb", "normal_front", "normal_back"])


class ImplicitModelConfig(Strict):
    """The pixel-aligned network (core.models.implicit), its training points and its reconstruction."""

    features: int = Field(32, ge=4, description="channels of the hourglass encoder's feature map")
    levels: int = Field(3, ge=1, le=6, description="downsamplings of the hourglass")
    mlp: list[int] = Field(default_factory=lambda: [128, 128, 64], min_length=1, description="hidden widths of the occupancy MLP")
    points: int = Field(1024, ge=16, description="training points drawn per sample and epoch")
    sigma: float = Field(0.05, gt=0.0, description="metres: the spread of the near-surface training points")
    prior: Literal["none", "skeleton_sdf"] = Field("none", description="skeleton_sdf: the MLP also sees each point's signed "
                                                                       "distance to the sample's (noisy) skeleton")
    prior_noise: float = Field(0.0, ge=0.0, description="metres: standard deviation of the noise on each prior joint")
    resolution: int = Field(48, ge=8, le=256, description="grid of the marching cubes that reconstruct a surface")
    chunk: int = Field(65536, ge=1024, description="grid points per network call while reconstructing")
    metric_points: int = Field(2048, ge=64, description="points sampled on a reconstruction for its Chamfer distance")


@TASK_CONFIGS.register("implicit")
class ImplicitConfig(TaskSection):
    name: Literal["implicit"] = Field("implicit", description="the task; its section's other keys are these")
    inputs: list[Literal["rgb", "normal_front", "normal_back"]] = Field(
        default_factory=lambda: ["rgb"], description="[rgb], [rgb, normal_front], [rgb, normal_back] or "
                                                     "[rgb, normal_front, normal_back]: the images the encoder sees")
    implicit: ImplicitModelConfig = Field(default_factory=ImplicitModelConfig, description="the network (core.models.implicit)")
    pixels_may_move: ClassVar[bool] = False  # a flip or crop would move the image under the points' fixed projection

    @field_validator("inputs")
    @classmethod
    def _a_known_variant(cls, inputs: list[str]) -> list[str]:
        return one_of_variants(inputs, INPUT_VARIANTS)

    @property
    def variant(self) -> str:
        return "+".join(self.inputs)

    @property
    def report_columns(self) -> dict[str, str]:
        """The input variant and the prior, each a column of jobs.report's table."""
        prior = self.implicit.prior
        return {"inputs": self.variant, "prior": f"{prior} (noise {self.implicit.prior_noise:g} m)" if prior != "none" else "none"}

    @property
    def model_label(self) -> str:
        prior = f"-skel{self.implicit.prior_noise:g}" if self.implicit.prior == "skeleton_sdf" else ""
        return f"hg{self.implicit.features}-{self.variant}{prior}"
