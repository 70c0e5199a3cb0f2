"""The runs under a folder grouped by environment: which environments trained, how their runs ended, their best results."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

from core.reporting.experiments import Run
from core.runs.fingerprint import DRIVER, FIELDS, of_env

COLUMNS = ("environment", "runs", "ended", "best")


def environment_rows(runs: list[Run]) -> list[dict[str, str]]:
    """One row per distinct driver environment, in the order of their first run."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(json.dumps(of_env(run.env)[DRIVER], sort_keys=True), []).append(run)
    return [_row(json.loads(key), members) for key, members in groups.items()]


def how_it_ended(run: Run) -> str:
    """completed, diverged (the numerics guard stopped it), failed, interrupted, or running or killed (no summary)."""
    status = run.summary.get("status", "")
    if status == "failed" and "non-finite" in (run.summary.get("error") or ""):
        return "diverged"
    return status if status in ("completed", "failed", "interrupted") else "running or killed"


def markdown(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row[column] for column in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _row(fingerprint: dict[str, Any], runs: list[Run]) -> dict[str, str]:
    ended = Counter(how_it_ended(run) for run in runs)
    return {
        "environment": ", ".join(f"{field} {fingerprint[field]}" for field in FIELDS if fingerprint.get(field) is not None),
        "runs": f"{len(runs)}: " + ", ".join(run.name for run in runs),
        "ended": ", ".join(f"{count} {how}" for how, count in sorted(ended.items())),
        "best": "; ".join(_best(runs)) or "-",
    }


def _best(runs: list[Run]) -> list[str]:
    """The best monitored value of each monitor the runs have, with the run that reached it."""
    by_monitor: dict[str, list[tuple[float, Run]]] = {}
    modes: dict[str, str] = {}
    for run in runs:
        best, monitor = run.summary.get("best"), run.summary.get("monitor")
        if best and monitor and isinstance(best.get(monitor), (int, float)):
            by_monitor.setdefault(monitor, []).append((best[monitor], run))
            modes[monitor] = run.summary.get("monitor_mode", "max")
    shown = []
    for monitor, scored in by_monitor.items():
        value, run = (max if modes[monitor] == "max" else min)(scored, key=lambda pair: pair[0])
        shown.append(f"{monitor} {value:.4g} ({run.name})")
    return shown
