"""The depth_completion task's section of the config: its inputs, model and losses (no torch: jobs read configs before Ray starts)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config.sections import Strict, TaskSection
from core.tasks.registry import TASK_CONFIGS


class CompletionModelConfig(Strict):
    """The depth-completion network (core.models.depth_completion)."""

    width: int = Field(16, ge=4, description="channels of each branch at full resolution")
    cspn_iterations: int = Field(0, ge=0, description="CSPN++ refinement iterations; 0 leaves the head out")
    cspn_kernels: list[int] = Field(default_factory=lambda: [3, 5, 7], min_length=1, description="odd kernel sizes >= 3")


@TASK_CONFIGS.register("depth_completion")
class DepthCompletionConfig(TaskSection):
    name: Literal["depth_completion"] = Field("depth_completion", description="the task; its section's other keys are these")
    inputs: list[Literal["rgb", "sparse_depth", "labels"]] = Field(
        default_factory=lambda: ["rgb", "sparse_depth"], description="rgb and sparse_depth, and labels (the semantic map) where the data has one")
    completion: CompletionModelConfig = Field(default_factory=CompletionModelConfig, description="the network")

    @property
    def model_label(self) -> str:
        completion = self.completion
        return f"w{completion.width}" + (f"-cspn{completion.cspn_iterations}" if completion.cspn_iterations else "")
