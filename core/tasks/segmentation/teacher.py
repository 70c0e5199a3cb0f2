"""The teacher of a distilled segmentation run: its model rebuilt from its run's config.yaml, its weights loaded, frozen."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from core.config.loading import load_config
from core.engine import checkpoint
from core.tasks.segmentation.config import DistillConfig


def load_teacher(config: DistillConfig, manifest: dict[str, Any]) -> nn.Module:
    from core.tasks.catalog import build_task  # the catalog imports this task

    run_dir, folder = locate(Path(config.teacher))
    teacher_config = load_config(run_dir / "config.yaml")
    if teacher_config.task.name != "segmentation":
        raise ValueError(f"task.distill.teacher {config.teacher} is a {teacher_config.task.name} run; a teacher is a segmentation run")
    teacher = build_task(teacher_config.task, manifest).build_model()
    checkpoint.load(folder, teacher)
    return teacher.eval().requires_grad_(False)


def locate(target: Path) -> tuple[Path, Path]:
    """(run directory, local checkpoint folder) of the teacher: a run directory or a checkpoint folder in one."""
    try:
        run_dir, saved = checkpoint.locate(target)
    except FileNotFoundError as err:
        raise ValueError(f"task.distill.teacher {err}") from None
    if not (Path(saved) / checkpoint.STATE_FILE).is_file():
        raise ValueError(f"task.distill.teacher {target}: its checkpoint {saved} is not a local folder; a teacher is read "
                         "from a path every worker reaches")
    return run_dir, Path(saved)
