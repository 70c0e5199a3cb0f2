"""The registered tasks: the config's `task` union over their sections, and `build_task(config, manifest)`.

A task is a package here: config.py (its config section, without torch, so that a job reads and
checks its config before anything heavy is imported) and task.py (the task class, imported when a
task is built). Adding a task is its package plus its name in TASK_NAMES.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Discriminator, Tag, TypeAdapter

from core.tasks.registry import TASK_CONFIGS, TASKS

if TYPE_CHECKING:  # the task classes, and torch with them, are imported only when a task is built
    from core.tasks.base import Task

TASK_NAMES = ("segmentation", "depth_completion", "mesh_reconstruction", "implicit", "lighting")
DEFAULT_TASK = "segmentation"

for _name in TASK_NAMES:
    importlib.import_module(f"core.tasks.{_name}.config")


def _task_name(value: Any) -> str | None:
    return value.get("name", DEFAULT_TASK) if isinstance(value, dict) else getattr(value, "name", None)


TaskConfig = Annotated[
    Union[tuple(Annotated[TASK_CONFIGS.get(name), Tag(name)] for name in TASK_NAMES)],
    Discriminator(_task_name),
]
_ADAPTER = TypeAdapter(TaskConfig)


def default_task_config():
    return TASK_CONFIGS.get(DEFAULT_TASK)()


def task_config(**values: Any):
    """A task's config section from keyword values, as the `task:` section of a YAML file would give them."""
    return _ADAPTER.validate_python(values)


def task_class(name: str) -> type["Task"]:
    if name not in TASK_NAMES:  # the registry knows only the tasks imported so far
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(TASK_NAMES))}")
    importlib.import_module(f"core.tasks.{name}.task")
    return TASKS.get(name)


def build_task(config: Any, manifest: dict[str, Any]) -> "Task":
    return task_class(config.name)(config, manifest)
