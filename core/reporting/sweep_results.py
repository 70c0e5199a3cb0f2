"""What a sweep came to: results.csv, results.md, the best config, and the metric per epoch of every trial."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = ("trial", "search", "scheduler", "overrides", "status", "best", "epochs", "wall time (s)", "run directory")


def write_results(sweep_dir: Path, rows: list[dict[str, Any]], metric: str, mode: str) -> Path | None:
    """rows: one per trial with COLUMNS' keys and "history", its [(epoch, metric)]; returns the best trial's
    config file, if any trial scored."""
    with open(sweep_dir / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    scored = [r for r in rows if isinstance(r["best"], (int, float))]
    best = (max if mode == "max" else min)(scored, key=lambda r: r["best"]) if scored else None
    (sweep_dir / "results.md").write_text(_markdown(rows, metric, mode, best))
    _plot(sweep_dir / "metric_by_epoch.png", rows, metric)
    if best is None:
        return None
    best_config = sweep_dir / "best_config.yaml"
    best_config.write_text((Path(best["run directory"]) / "config.yaml").read_text())
    return best_config


def _markdown(rows: list[dict[str, Any]], metric: str, mode: str, best: dict | None) -> str:
    lines = [f"# Sweep results: {len(rows)} trials, {metric} ({mode})", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS) + " |")
    lines.append("")
    lines.append(f"Best: {best['trial']} ({best['overrides']}), {metric} = {best['best']:.4g}: best_config.yaml" if best
                 else "No trial reported the metric.")
    return "\n".join(lines) + "\n"


def _plot(path: Path, rows: list[dict[str, Any]], metric: str) -> None:
    figure, axis = plt.subplots(figsize=(7, 4))
    for r in rows:
        if r["history"]:
            axis.plot(*zip(*r["history"]), marker="o", label=f"{r['trial']}: {r['overrides']}")
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric)
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
