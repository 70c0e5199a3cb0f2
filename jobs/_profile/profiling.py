"""One profile combination (workers x loader parallelism) as short Ray Train runs, one row per batch size.

A batch size that runs out of memory kills its run; it is recorded as OOM and a fresh run goes on
with the batch sizes left, so one bad combination never ends the profile.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ray.train import RunConfig, UserCallback
from ray.train.torch import TorchTrainer

from cluster.resources import ResourcePlan
from core.profiling import memory
from core.config.schema import ExperimentConfig
from core.tasks.base import Task
from data_pipeline.readers.ray_data import read_split
from jobs._profile.worker import profile_loop_per_worker
from jobs._train.trainer import data_config, scaling_config


class _MeasurementWriter(UserCallback):
    """Runs in the Train controller on the driver's node: appends each report, all workers combined."""

    def __init__(self, path: Path, label: dict[str, Any]):
        self.path, self.label = path, label

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        row = {**self.label, **metrics[0], "peak_memory_bytes": max(m["peak_memory_bytes"] for m in metrics)}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")


def profile_combination(config: ExperimentConfig, plan: ResourcePlan, loader_parallelism: int, batch_sizes: list[int],
                        data: tuple[Path, dict[str, Any], Task], steps: tuple[int, int], out_dir: Path) -> list[dict[str, Any]]:
    """steps: (warm-up, measured). Returns a row per batch size, measured or marked OOM / failed."""
    label = {"workers": plan.num_workers, "loader_parallelism": loader_parallelism}
    rows: list[dict[str, Any]] = []
    remaining = list(batch_sizes)
    while remaining:
        measured = _measure(config, plan, loader_parallelism, remaining, data, steps, out_dir, label, attempt=len(rows))
        rows += measured.rows
        remaining = remaining[len(measured.rows):]
        if measured.error is None:
            continue
        if memory.is_out_of_memory(measured.error):
            rows.append({**label, "batch_size": remaining.pop(0), "status": "OOM"})
        else:  # not a property of one batch size: the others would fail alike
            rows += [{**label, "batch_size": size, "status": f"failed: {_last_line(measured.error)}"} for size in remaining]
            remaining = []
    train_rows = data[1]["splits"]["train"]["rows"]
    return [_derive(row, train_rows) for row in rows]


class _Measured:
    def __init__(self, rows: list[dict[str, Any]], error: str | None):
        self.rows, self.error = rows, error


def _measure(config, plan, loader_parallelism, batch_sizes, data, steps, out_dir, label, attempt) -> _Measured:
    store, manifest, task = data
    name = f"w{plan.num_workers}_p{loader_parallelism}_{attempt}"
    written = out_dir / "ray_train" / f"{name}.jsonl"
    written.parent.mkdir(parents=True, exist_ok=True)
    written.unlink(missing_ok=True)
    dataset_config = data_config(plan)
    # The data CPUs stay what the plan reserved; loader parallelism is how many read/decode tasks share them.
    task_cpus = plan.data_cpus / loader_parallelism
    trainer = TorchTrainer(
        train_loop_per_worker=profile_loop_per_worker,
        train_loop_config={"config": config.model_dump(mode="json"), "manifest": manifest, "torch_threads": plan.torch_threads,
                           "batch_sizes": batch_sizes, "warmup_steps": steps[0], "steps": steps[1]},
        scaling_config=scaling_config(plan),
        datasets={"train": read_split(store, manifest, "train", task.columns, task_cpus, loader_parallelism,
                                      batch_rows=max(batch_sizes))},
        dataset_config=dataset_config,
        run_config=RunConfig(name=name, storage_path=str(out_dir / "ray_train"), callbacks=[_MeasurementWriter(written, label)]),
    )
    error = None
    try:
        trainer.fit()
    except Exception as err:  # recorded in the row; the profile goes on with the next batch size
        error = f"{type(err).__name__}: {err}"
    rows = [json.loads(line) for line in written.read_text().splitlines()] if written.exists() else []
    return _Measured([{**row, "status": "ok"} for row in rows], error)


def _derive(row: dict[str, Any], train_rows: int) -> dict[str, Any]:
    if row["status"] != "ok":
        return row
    per_step = row["workers"] * row["batch_size"]
    return {**row, "samples_per_s": per_step / row["s_per_it"],
            "epoch_s": math.ceil(train_rows / per_step) * row["s_per_it"]}


def _last_line(error: str) -> str:
    """Ray wraps a worker's exception in tracebacks; the last line is the one that says what went wrong."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return lines[-1][:200] if lines else error
