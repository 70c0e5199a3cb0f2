"""The segmentation task's section of the config: its inputs, model and losses (no torch: jobs read configs before Ray starts)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config.sections import Strict, LossConfig, TaskSection
from core.tasks.registry import TASK_CONFIGS


class SegmentationModelConfig(Strict):
    decoder: Literal["unet", "fpn", "deeplabv3plus"] = Field("fpn", description="segmentation-models-pytorch's decoder")
    encoder: Literal["resnet18", "resnet34", "resnet50", "resnext50_32x4d", "mobilenet_v2", "efficientnet-b0"] = Field(
        "resnet18", description="its encoder, randomly initialised")


class SegmentationLossConfig(LossConfig):
    focal_gamma: float = Field(2.0, ge=0.0, description="focal loss: (1 - p_t)^gamma; 0 is cross-entropy")
    focal_alpha: float | None = Field(None, ge=0.0, le=1.0, description="focal loss: the weight of every class but the first (which takes 1 - alpha)")


class DistillWeights(Strict):
    pixel: float = Field(1.0, ge=0.0, description="the pixel-wise KL term's weight (loss kd_pixel)")
    pair: float = Field(1.0, ge=0.0, description="the pair-wise affinity term's weight (loss kd_pair)")


class DistillConfig(Strict):
    """Knowledge distillation from a trained segmentation run into this one (core.models.distillation)."""

    teacher: str = Field(description="the teacher: a run directory (its summary's checkpoint) or a checkpoint folder in one; "
                                     "every worker reads it, so on a cluster a path all nodes share")
    temperature: float = Field(1.0, gt=0.0, description="both distributions softened by it; the KL term is scaled by its square")
    weights: DistillWeights = Field(default_factory=DistillWeights)
    pair_pool: int = Field(4, ge=1, description="the pair-wise term's nodes: the logits averaged over pair_pool x pair_pool patches")


@TASK_CONFIGS.register("segmentation")
class SegmentationConfig(TaskSection):
    name: Literal["segmentation"] = Field("segmentation", description="the task; its section's other keys are these")
    inputs: list[Literal["rgb", "depth", "sparse_depth"]] = Field(
        default_factory=lambda: ["rgb"], min_length=1, description="data columns the model sees, stacked as channels")
    model: SegmentationModelConfig = Field(default_factory=SegmentationModelConfig, description="decoder and encoder (smp)")
    loss: SegmentationLossConfig = Field(default_factory=SegmentationLossConfig)
    distill: DistillConfig | None = Field(None, description="train as a student of a teacher run (losses kd_pixel, kd_pair)")

    @property
    def model_label(self) -> str:
        return f"{self.model.decoder}-{self.model.encoder}" + ("+kd" if self.distill else "")
