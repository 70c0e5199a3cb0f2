"""The profile ledger: every measured profile row, kept, and predictions for a config read from it.

One JSON line per row, keyed by workload (model and input size), batch size, workers, loader
parallelism, device and package versions. A prediction uses the rows of the same workload, device
and worker count: the median of the rows at the config's batch size when there are any, otherwise
a straight-line fit over batch size (time and memory per step both grow about linearly with it).
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config.schema import ExperimentConfig

MEASURED = ("s_per_it", "peak_memory_mb", "samples_per_s", "data_wait_share", "comm_share")


def workload(config: ExperimentConfig, image_size: tuple[int, int]) -> dict[str, str]:
    """The task with its model's label (two tasks may build models of the same label), and what the model sees."""
    return {"model": f"{config.task.name}:{config.task.model_label}",
            "input_size": f"{'+'.join(config.task.inputs)} {image_size[0]}x{image_size[1]}"}


def append(ledger: Path, rows: list[dict[str, Any]], key: dict[str, Any]) -> int:
    """key: the workload and versions shared by all rows. Only measured rows go in; returns how many."""
    ledger.parent.mkdir(parents=True, exist_ok=True)
    measured = [r for r in rows if r["status"] == "ok"]
    with open(ledger, "a") as handle:
        for row in measured:
            entry = {**key, **{k: row[k] for k in ("batch_size", "workers", "loader_parallelism", "device")},
                     **{k: row.get(k) for k in MEASURED}}
            handle.write(json.dumps(entry) + "\n")
    return len(measured)


def read(ledger: Path) -> list[dict[str, Any]]:
    if not ledger.is_file():
        return []
    return [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]


@dataclass
class Prediction:
    s_per_it: float
    peak_memory_mb: float
    epoch_s: float
    method: str
    used: list[dict[str, Any]]


class NoMeasurements(LookupError):
    """The ledger holds nothing a prediction could be made from; the message says what it holds."""


def predict(entries: list[dict[str, Any]], want: dict[str, Any], train_rows: int) -> Prediction:
    """want: workload keys, device, versions, workers, batch_size and, preferably, loader_parallelism."""
    same = [e for e in entries if all(e.get(k) == want[k] for k in ("model", "input_size", "device", "workers"))]
    if not same:
        raise NoMeasurements(_holdings(entries, want))
    matching_versions = [e for e in same if e.get("versions") == want["versions"]]
    rows = matching_versions or same
    at_parallelism = [e for e in rows if e["loader_parallelism"] == want["loader_parallelism"]]
    rows = at_parallelism or rows
    batch = want["batch_size"]
    exact = [e for e in rows if e["batch_size"] == batch]
    if exact:
        s_per_it = statistics.median(e["s_per_it"] for e in exact)
        memory = statistics.median(e["peak_memory_mb"] for e in exact)
        method, used = f"median of {len(exact)} measured row(s) at batch {batch}", exact
    else:
        by_batch = {}
        for e in rows:
            by_batch.setdefault(e["batch_size"], []).append(e)
        if len(by_batch) < 2:
            raise NoMeasurements(f"the ledger has {want['model']} {want['input_size']} on {want['device']} with {want['workers']} "
                                 f"workers only at batch {list(by_batch)}; profile a second batch size to fit a line through")
        sizes = sorted(by_batch)
        s_per_it = _line([(b, statistics.median(e["s_per_it"] for e in by_batch[b])) for b in sizes], batch)
        memory = _line([(b, statistics.median(e["peak_memory_mb"] for e in by_batch[b])) for b in sizes], batch)
        inside = sizes[0] <= batch <= sizes[-1]
        method = f"{'interpolated' if inside else 'extrapolated'} along batch sizes {sizes}"
        used = rows
    if not matching_versions:
        method += " (measured under other package versions)"
    epoch_s = math.ceil(train_rows / (want["workers"] * batch)) * s_per_it
    return Prediction(s_per_it, memory, epoch_s, method, used)


def _line(points: list[tuple[float, float]], x: float) -> float:
    """Least-squares straight line through the points, evaluated at x."""
    mean_x = statistics.fmean(p[0] for p in points)
    mean_y = statistics.fmean(p[1] for p in points)
    slope = sum((px - mean_x) * (py - mean_y) for px, py in points) / sum((px - mean_x) ** 2 for px, _ in points)
    return mean_y + slope * (x - mean_x)


def _holdings(entries: list[dict[str, Any]], want: dict[str, Any]) -> str:
    held = sorted({f"{e['model']} {e['input_size']} on {e['device']} x{e['workers']} workers" for e in entries})
    wanted = f"{want['model']} {want['input_size']} on {want['device']} x{want['workers']} workers"
    return (f"the ledger has no measurement of {wanted}; it holds: {', '.join(held) or 'nothing yet'}. "
            f"Run python -m jobs.profile on this config first")
