"""Every epoch of a trial's Ray Train run reported to Tune with its checkpoint, which PBT and Tuner.restore need.

Ray's TuneReportCallback forwards metrics only, so a Tune trial would hold no checkpoint: PBT could
not copy a good trial into a bad one, and a restored sweep would restart its trials from scratch.
Here the Train controller hands (metrics, checkpoint path) to the trial through a queue, and the
trial reports both with tune.report while its TorchTrainer runs in a second thread.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from ray import tune
from ray.train import UserCallback
from ray.util.queue import Empty, Queue

_POLL_S = 1.0


class _ForwardToTrial(UserCallback):
    def __init__(self, queue: Queue):
        self.queue = queue

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        # Blocks while the trial has not taken the previous report: Tune sees the epochs in order.
        self.queue.put((dict(metrics[0]), checkpoint.path if checkpoint else None))


def fit_reporting_to_tune(fit: Callable[[list[UserCallback]], Any]) -> Any:
    """fit(callbacks) runs the TorchTrainer with the given callbacks; returns what fit returned."""
    queue = Queue(maxsize=1, actor_options={"num_cpus": 0})
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fit([_ForwardToTrial(queue)])
        except BaseException as err:  # raised again in the trial's thread, where Tune sees it
            outcome["error"] = err

    runner = threading.Thread(target=target, name="ray-train-fit", daemon=True)
    runner.start()
    try:
        while runner.is_alive() or not queue.empty():
            try:
                metrics, path = queue.get(timeout=_POLL_S)
            except Empty:
                continue
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(path) if path else None)
        runner.join()
    finally:
        queue.shutdown()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
