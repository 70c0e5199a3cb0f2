"""Per-step training figures exported through ray.util.metrics, so they show in the Ray
dashboard's metrics view (Prometheus / Grafana) as ray_train_*{run=..., rank=...}."""
from __future__ import annotations

from ray.util.metrics import Gauge

from core.engine.steps import StepTiming

TAGS = ("run", "rank")


class DashboardMetrics:
    def __init__(self, run: str, rank: int):
        def gauge(name: str, description: str) -> Gauge:
            metric = Gauge(f"train_{name}", description=description, tag_keys=TAGS)
            metric.set_default_tags({"run": run, "rank": str(rank)})
            return metric

        self.samples_per_second = gauge("samples_per_second", "training samples per second on this worker")
        self.step_seconds = gauge("step_seconds", "seconds per optimizer step, data wait included")
        self.data_wait_share = gauge("data_wait_share", "share of the step spent waiting for the batch")
        self.loss = gauge("loss", "weighted training loss of the last step")
        self.learning_rate = gauge("learning_rate", "learning rate of the first parameter group")

    def on_step(self, timing: StepTiming, learning_rate: float) -> None:
        self.samples_per_second.set(timing.samples / timing.seconds)
        self.step_seconds.set(timing.seconds)
        self.data_wait_share.set(timing.data_wait_seconds / timing.seconds)
        self.loss.set(timing.loss)
        self.learning_rate.set(learning_rate)
