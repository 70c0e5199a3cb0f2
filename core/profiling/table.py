"""What a profile came to: profile.csv, profile.md and profile.png, the fastest combination, the input-bound ones.

A row is one (workers, loader parallelism, batch size) combination: measured ("ok"), "OOM", or
"failed: why".
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

INPUT_BOUND_SHARE = 0.2
COLUMNS = ("workers", "loader_parallelism", "batch_size", "status", "s_per_it", "samples_per_s", "epoch_s",
           "peak_memory_mb", "data_wait_share", "comm_share", "device", "note")


def annotate(rows: list[dict[str, Any]], data_cpus: float) -> list[dict[str, Any]]:
    """Add the memory in MB and, for input-bound rows, what to raise."""
    return [{**row, "peak_memory_mb": row["peak_memory_bytes"] / 2**20 if "peak_memory_bytes" in row else None,
             "note": _note(row, data_cpus)} for row in rows]


def fastest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The measured combination with the shortest projected epoch."""
    measured = [r for r in rows if r["status"] == "ok"]
    return min(measured, key=lambda r: r["epoch_s"]) if measured else None


def write_profile(out_dir: Path, rows: list[dict[str, Any]], title: str) -> str:
    """Writes the three files; returns the verdict lines also printed at the end of profile.md."""
    with open(out_dir / "profile.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    verdict = _verdict(rows)
    (out_dir / "profile.md").write_text(_markdown(rows, title, verdict))
    _plot(out_dir / "profile.png", rows, title)
    return verdict


def _note(row: dict[str, Any], data_cpus: float) -> str:
    if row["status"] != "ok" or row["data_wait_share"] <= INPUT_BOUND_SHARE:
        return ""
    return (f"input-bound: {row['data_wait_share']:.0%} of each step waits for data; raise the loader parallelism "
            f"(now {row['loader_parallelism']}) or scaling.data_cpus (now {data_cpus:g})")


def _verdict(rows: list[dict[str, Any]]) -> str:
    best = fastest(rows)
    lines = [f"fastest that fits: {best['workers']} workers, loader parallelism {best['loader_parallelism']}, batch "
             f"{best['batch_size']}: {best['s_per_it']:.3g} s/it, {best['samples_per_s']:.3g} samples/s, epoch "
             f"{best['epoch_s']:.3g} s" if best else "no combination ran: see the status column"]
    bound = [r for r in rows if r["note"]]
    if bound:
        lines.append(f"input-bound (data wait above {INPUT_BOUND_SHARE:.0%} of the step): " + ", ".join(
            f"w{r['workers']}/p{r['loader_parallelism']}/b{r['batch_size']}" for r in bound))
    return "\n".join(lines)


def _markdown(rows: list[dict[str, Any]], title: str, verdict: str) -> str:
    lines = [f"# Profile: {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in COLUMNS) + " |")
    return "\n".join([*lines, "", *verdict.splitlines()]) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _plot(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Time per iteration and memory against batch size, one line per worker count (its best loader parallelism)."""
    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for workers in sorted({r["workers"] for r in rows}):
        best: dict[int, dict[str, Any]] = {}
        for r in rows:
            if r["workers"] == workers and r["status"] == "ok":
                if r["batch_size"] not in best or r["s_per_it"] < best[r["batch_size"]]["s_per_it"]:
                    best[r["batch_size"]] = r
        sizes = sorted(best)
        time_axis.plot(sizes, [best[b]["s_per_it"] for b in sizes], marker="o", label=f"{workers} workers")
        memory_axis.plot(sizes, [best[b]["peak_memory_mb"] for b in sizes], marker="o", label=f"{workers} workers")
        for r in rows:
            if r["workers"] == workers and r["status"] == "OOM":
                memory_axis.axvline(r["batch_size"], linestyle=":", color="red")
    time_axis.set(xlabel="batch size per worker", ylabel="seconds per iteration (median)", xscale="log", title=title)
    memory_axis.set(xlabel="batch size per worker", ylabel="peak memory per worker (MB)", xscale="log",
                    title="dotted red: out of memory")
    for axis in (time_axis, memory_axis):
        axis.set_xticks(sorted({r["batch_size"] for r in rows}), labels=[str(b) for b in sorted({r["batch_size"] for r in rows})])
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
