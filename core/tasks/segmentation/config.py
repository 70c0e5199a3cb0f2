"""The segmentation task's section of the config: its inputs, model and losses (no torch: jobs read configs before Ray starts)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config.sections import Strict, LossConfig, TaskSection
from core.tasks.registry import TASK_CONFIGS


class SegmentationModelConfig(Strict):
    decoder: Literal["unet", "fpn", "deeplabv3plus"] = Field("fpn", description="segmentation-models-pytorch's decoder")
    encoder: Literal["resnet18", "resnet34", "resnet50", "resnext50_32x4d"] = Field("resnet18", description="its encoder, randomly initialised")


class SegmentationLossConfig(LossConfig):
    focal_gamma: float = Field(2.0, ge=0.0, description="focal loss: (1 - p_t)^gamma; 0 is cross-entropy")
    focal_alpha: float | None = Field(None, ge=0.0, le=1.0, description="focal loss: the weight of every class but the first (which takes 1 - alpha)")


@TASK_CONFIGS.register("segmentation")
class SegmentationConfig(TaskSection):
    name: Literal["segmentation"] = Field("segmentation", description="the task; its section's other keys are these")
    inputs: list[Literal["rgb", "depth", "sparse_depth"]] = Field(
        default_factory=lambda: ["rgb"], min_length=1, description="data columns the model sees, stacked as channels")
    model: SegmentationModelConfig = Field(default_factory=SegmentationModelConfig, description="decoder and encoder (smp)")
    loss: SegmentationLossConfig = Field(default_factory=SegmentationLossConfig)

    @property
    def model_label(self) -> str:
        return f"{self.model.decoder}-{self.model.encoder}"
