"""The lighting task's section of the config: its inputs, volume network, renders and losses (no torch: jobs read configs before Ray starts)."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from core.config.sections import Strict, TaskSection, one_of_variants
from core.tasks.registry import TASK_CONFIGS

INPUT_VARIANTS = (["rgb"], ["rgb", "depth"])


class LightingModelConfig(Strict):
    """The volume network (core.models.lighting) and the renders it is trained through (core.tasks.lighting.rendering)."""

    features: int = Field(16, ge=4, description="channels of the image encoder's feature map")
    volume_channels: int = Field(16, ge=4, description="channels of the 3D network's first level (twice that below)")
    resolution: int = Field(24, ge=8, le=96, description="voxels a side of the predicted volume; a multiple of 4")
    samples_per_ray: int = Field(64, ge=8, description="points each ray samples the volume at")
    view_size: int = Field(32, ge=8, description="side in pixels of the rendered input and novel views")

    @field_validator("resolution")
    @classmethod
    def _halves_twice(cls, resolution: int) -> int:
        if resolution % 4:
            raise ValueError(f"resolution {resolution} is not a multiple of 4: the 3D network halves it twice")
        return resolution


@TASK_CONFIGS.register("lighting")
class LightingConfig(TaskSection):
    name: Literal["lighting"] = Field("lighting", description="the task; its section's other keys are these")
    inputs: list[Literal["rgb", "depth"]] = Field(default_factory=lambda: ["rgb", "depth"],
                                                  description="[rgb] or [rgb, depth]: the images the network sees")
    lighting: LightingModelConfig = Field(default_factory=LightingModelConfig, description="the network and its renders")
    pixels_may_move: ClassVar[bool] = False  # a flip or crop would move the image against its probes, poses and volume

    @field_validator("inputs")
    @classmethod
    def _a_known_variant(cls, inputs: list[str]) -> list[str]:
        return one_of_variants(inputs, INPUT_VARIANTS)

    @property
    def report_columns(self) -> dict[str, str]:
        return {"inputs": "+".join(self.inputs)}

    @property
    def model_label(self) -> str:
        return f"vol{self.lighting.resolution}-{'+'.join(self.inputs)}"
