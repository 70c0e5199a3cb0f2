"""Tasks: each module registers one; `build_task(config, manifest)` picks it by `task.name`."""
from __future__ import annotations

from typing import Any

from core.config import TaskConfig
from core.registry import Registry
from core.tasks.base import Task

TASKS: Registry[type[Task]] = Registry("task")


def build_task(config: TaskConfig, manifest: dict[str, Any]) -> Task:
    return TASKS.get(config.name)(config, manifest)


from core.tasks import depth_completion, mesh_reconstruction, segmentation  # noqa: E402,F401  (each registers itself)
