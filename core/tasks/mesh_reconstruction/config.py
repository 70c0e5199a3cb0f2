"""The mesh_reconstruction task's section of the config: its inputs, model and losses (no torch: jobs read configs before Ray starts)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from core.config.sections import Strict, TaskSection
from core.tasks.registry import TASK_CONFIGS


class MeshModelConfig(Strict):
    """The mesh-reconstruction network (core.models.mesh_reconstruction)."""

    grid: tuple[int, int] = Field((16, 16), description="vertex rows and columns of the image-covering grid mesh")
    stages: int = Field(2, ge=1, description="GraphConv refinement stages")
    hidden: int = Field(64, ge=4, description="features of each GraphConv stage")
    smoothness: float = Field(1.0, gt=0.0, description="neighbour smoothing of the least-squares fit to sparse depth")
    chamfer_points: int = Field(1024, ge=16, description="points sampled per mesh and per ground-truth depth map")

    @model_validator(mode="after")
    def _grid_has_faces(self) -> "MeshModelConfig":
        if min(self.grid) < 2:
            raise ValueError(f"grid {list(self.grid)} has no faces; it needs at least 2 vertex rows and columns")
        return self


@TASK_CONFIGS.register("mesh_reconstruction")
class MeshReconstructionConfig(TaskSection):
    name: Literal["mesh_reconstruction"] = Field("mesh_reconstruction", description="the task; its section's other keys are these")
    inputs: list[Literal["rgb", "sparse_depth"]] = Field(default_factory=lambda: ["rgb", "sparse_depth"],
                                                         description="always [rgb, sparse_depth] (and the camera)")
    mesh: MeshModelConfig = Field(default_factory=MeshModelConfig, description="the network (core.models.mesh_reconstruction)")

    @property
    def model_label(self) -> str:
        return f"grid{self.mesh.grid[0]}x{self.mesh.grid[1]}-s{self.mesh.stages}"
