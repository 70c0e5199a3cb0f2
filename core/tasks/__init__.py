"""Tasks: each module registers one; `build_task(config, manifest)` picks it by `task.name`."""
from __future__ import annotations

from typing import Any

from core.tasks import depth_completion, mesh_reconstruction, segmentation  # noqa: F401  (each registers itself)
from core.tasks.base import Task
from core.tasks.registry import TASKS


def build_task(config: Any, manifest: dict[str, Any]) -> Task:
    return TASKS.get(config.name)(config, manifest)
