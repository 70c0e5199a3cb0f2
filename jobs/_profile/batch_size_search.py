"""The batch-size search as one Ray Train run with the configured workers; the result comes back through a callback."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.train import RunConfig, UserCallback
from ray.train.torch import TorchTrainer

from cluster.resources import ResourcePlan
from core.config.schema import ExperimentConfig
from core.tasks.base import Task
from data_pipeline.readers.ray_data import read_split
from jobs._profile.batch_size_worker import find_batch_size_per_worker
from jobs._train.trainer import quiet_ray_data, scaling_config


class _ResultWriter(UserCallback):
    """In the Train controller: the worst worker's figures decide (largest peak, a probe fits only if it fit everywhere)."""

    def __init__(self, path: Path):
        self.path = path

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        peaks = [m["peak_memory_bytes"] for m in metrics if m["peak_memory_bytes"] is not None]
        result = {**metrics[0], "peak_memory_bytes": max(peaks) if peaks else None,
                  "probes_per_worker": [m["probes"] for m in metrics]}
        del result["probes"]
        self.path.write_text(json.dumps(result))


def search_batch_size(config: ExperimentConfig, plan: ResourcePlan, data: tuple[Path, dict[str, Any], Task], out_dir: Path,
                      budget_gb: float | None, margin: float, max_batch_size: int) -> dict[str, Any]:
    store, manifest, task = data
    written = out_dir / "ray_train" / "batch_size_search.json"
    written.parent.mkdir(parents=True, exist_ok=True)
    quiet_ray_data()
    # One real sample, repeated to each probed batch size: memory depends on shapes, not on contents.
    sample = read_split(store, manifest, "train", task.columns, plan.data_task_cpus, plan.data_tasks_at_once).take_batch(1, batch_format="numpy")
    trainer = TorchTrainer(
        train_loop_per_worker=find_batch_size_per_worker,
        train_loop_config={"config": config.model_dump(mode="json"), "manifest": manifest, "torch_threads": plan.torch_threads,
                           "budget_bytes": int(budget_gb * 2**30) if budget_gb else None, "margin": margin,
                           "max_batch_size": max_batch_size, "sample": sample},
        scaling_config=scaling_config(plan),
        run_config=RunConfig(name="batch_size_search", storage_path=str(written.parent), callbacks=[_ResultWriter(written)]),
    )
    trainer.fit()
    return json.loads(written.read_text())
