"""The teacher of a distilled segmentation run: its model rebuilt from its run's config.yaml, its weights loaded, frozen."""
from __future__ import annotations

import json
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
    """(run directory, checkpoint folder) of a run directory (the checkpoint its summary names) or of a checkpoint folder."""
    if (target / checkpoint.STATE_FILE).is_file():
        run_dir = next((p for p in target.parents if (p / "config.yaml").is_file()), None)
        if run_dir is None:
            raise ValueError(f"task.distill.teacher {target} is a checkpoint outside any run directory (no config.yaml above it)")
        return run_dir, target
    summary = target / "summary.json"
    saved = json.loads(summary.read_text()).get("checkpoint") if summary.is_file() else None
    if not saved or not (Path(saved) / checkpoint.STATE_FILE).is_file():
        raise ValueError(f"task.distill.teacher {target} is neither a run directory whose summary.json names a local checkpoint "
                         f"nor a checkpoint folder (with {checkpoint.STATE_FILE})")
    return target, Path(saved)
