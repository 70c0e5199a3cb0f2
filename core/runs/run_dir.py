"""The run directory: one folder per run, named from its config, holding everything about it.

    config.yaml     the resolved config
    env.json        interpreter, packages, git commit, devices (core.runs.environment)
    code.patch      uncommitted changes to tracked files at launch
    metrics.jsonl   one JSON object per report
    history.csv     metrics.jsonl as a table, one row per epoch, and the same as history.xlsx (core.runs.history)
    summary.json    status, epochs, best and last metrics, baselines, wall time, checkpoint
    tb/             TensorBoard event files
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from core.config.schema import ExperimentConfig
from core.config.loading import to_yaml
from core.runs import history
from core.runs.environment import describe, uncommitted_patch

METRICS = "metrics.jsonl"
TRAIN_STORAGE = "ray_train"  # the folder of the run's checkpoints, kept by the trainer, inside its run directory
SUMMARY = "summary.json"
TENSORBOARD = "tb"
# In a worker's report: its clock at the report. The driver's callback turns it into the record's checkpoint_upload_s.
REPORTED_AT = "reported_at"


def run_name(config: ExperimentConfig, now: datetime) -> str:
    """Like researchers name runs by hand: when, what, and the hyperparameters that differ most."""
    return (f"{now:%Y%m%d-%H%M%S}_{config.name}_{config.task.name}_{config.task.model_label}"
            f"_bs{config.train.batch_size}x{_workers(config.scaling)}_lr{config.train.optimizer.lr:g}")


def create(config: ExperimentConfig, code_root: Path, extra_env: dict[str, Any] | None = None) -> Path:
    root = Path(config.output.root)
    name = run_name(config, datetime.now())
    folder = root / name
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = root / f"{name}-{suffix}"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(to_yaml(config))
    write_json(folder / "env.json", {**describe(code_root), **(extra_env or {})})
    (folder / "code.patch").write_text(uncommitted_patch(code_root))
    return folder.resolve()


def last_completed(root: Path, name: str) -> Path | None:
    """The newest run directory under root of the experiment called name whose run completed."""
    if not root.is_dir():
        return None
    for folder in sorted(root.glob(f"*_{name}_*"), key=lambda path: path.name, reverse=True):  # names start with the time
        try:
            completed = json.loads((folder / SUMMARY).read_text()).get("status") == "completed"
            named = (yaml.safe_load((folder / "config.yaml").read_text()) or {}).get("name") == name
        except (OSError, ValueError, yaml.YAMLError):  # running, killed, or not a run directory
            continue
        if completed and named:
            return folder
    return None


def write_json(path: Path, content: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(_finite(content), indent=2) + "\n")
    os.replace(partial, path)


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    path = folder / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RunLogger:
    """Appends reports to metrics.jsonl and mirrors their numbers (and images) to TensorBoard."""

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.folder = folder
        self.writer = SummaryWriter(str(folder / TENSORBOARD))

    def log(self, record: dict[str, Any], step: int, images: list[np.ndarray] = (), meshes: list[dict[str, np.ndarray]] = ()) -> None:
        with open(self.folder / METRICS, "a") as handle:
            handle.write(json.dumps(_finite(record)) + "\n")
        history.write(self.folder, read_metrics(self.folder))
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)
        if record.get("stage_event"):
            self.writer.add_text("stages", f"epoch {record['epoch']}: stage {record.get('stage')} {record['stage_event']}, "
                                           f"lr {record.get('lr')}", step)
        for index, image in enumerate(images):
            self.writer.add_image(f"val/prediction_{index}", image, step, dataformats="HWC")
        for index, mesh in enumerate(meshes):
            self.writer.add_mesh(f"val/mesh_{index}", vertices=mesh["verts"][None], faces=mesh["faces"][None],
                                 colors=mesh["colors"][None], global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _finite(value: Any) -> Any:
    """JSON has no NaN: a metric that is undefined (a class never seen) is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _workers(scaling) -> str:
    return f"{scaling.min_workers}-{scaling.max_workers}" if scaling.elastic else str(scaling.num_workers)
