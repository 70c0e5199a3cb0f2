"""summary.json: what a run came to, derived from its metrics records."""
from __future__ import annotations

from typing import Any

from core.runs.run_dir import TRAIN_STORAGE


def summarise(records: list[dict[str, Any]], monitor: str, planned_epochs: int, monitor_mode: str = "max",
              **facts: Any) -> dict[str, Any]:
    """facts: status, wall_time_s, checkpoint, error, data, ... copied as they are."""
    scored = [r for r in records if isinstance(r.get(monitor), (int, float))]
    best = (max if monitor_mode == "max" else min)(scored, key=lambda r: r[monitor]) if scored else None
    last = records[-1] if records else None
    return {
        **facts,
        "epochs_completed": int(last["epoch"]) if last else 0,
        "epochs_planned": planned_epochs,
        "restarts_from_checkpoint": int(last.get("restarts_from_checkpoint", 0)) if last else 0,
        "monitor": monitor,
        "monitor_mode": monitor_mode,
        "best": {"epoch": best["epoch"], monitor: best[monitor], "metrics": best} if best else None,
        "last": last,
        "baselines": {k: v for k, v in (last or {}).items() if k.startswith("baseline/")},
        "resumes": int(last.get("resumes", 0)) if last else 0,
        "skipped_steps": int(last.get("skipped_steps", 0)) if last else 0,
        **({"overflow_steps": int(last["overflow_steps"]), "loss_scale": last["loss_scale"]} if last and "loss_scale" in last else {}),
        "stages": stage_table(records, monitor, monitor_mode) if any("stage_event" in r for r in records) else [],
        "lr_changes": [{"epoch": r["epoch"], "lr": r["lr"]} for before, r in zip([None, *records], records)
                       if "lr" in r and (before is None or before.get("lr") != r["lr"])],
    }


def stage_table(records: list[dict[str, Any]], monitor: str, monitor_mode: str = "max") -> list[dict[str, Any]]:
    """One entry per stage that ran: its epochs, how it ended, its best monitored value."""
    stages: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        stages.setdefault(record.get("stage", "train"), []).append(record)
    table = []
    for name, rows in stages.items():
        scored = [r[monitor] for r in rows if isinstance(r.get(monitor), (int, float))]
        ended = next((r["stage_event"] for r in reversed(rows) if "ended" in (r.get("stage_event") or "")), None)
        table.append({"stage": name, "first_epoch": rows[0]["epoch"], "last_epoch": rows[-1]["epoch"],
                      "ended": ended.split("ended ", 1)[1].strip("()") if ended else "not yet",
                      f"best {monitor}": (max if monitor_mode == "max" else min)(scored) if scored else None,
                      "lr": [rows[0].get("lr"), rows[-1].get("lr")]})
    return table


def headline(summary: dict[str, Any]) -> list[str]:
    lines = [f"status: {summary['status']}, {summary['epochs_completed']}/{summary['epochs_planned']} epochs, "
             f"{summary['wall_time_s']:.0f} s"]
    best, monitor = summary["best"], summary["monitor"]
    if best:
        lines.append(f"best {monitor}: {best[monitor]:.4f} at epoch {best['epoch']}")
        for key, value in summary["baselines"].items():
            lines.append(f"{key}: {value:.4f} (trivial predictor on the same data)")
        last = summary["last"]
        shown = [k for k in last if k.startswith("val/") and k.count("/") == 1] + ["train/loss", "train/samples_per_s"]
        others = [k for k in shown if k != monitor and isinstance(last.get(k), (int, float))]  # the task's figures, not per class
        lines += [f"last {k}: {last[k]:.4g}" for k in others]
    if summary.get("startup", {}).get("to_first_step_s"):
        lines.append(f"first optimizer step {summary['startup']['to_first_step_s']:.1f} s after start (summary.json: startup)")
    if len(summary.get("stages") or []) > 1:
        lines += [f"stage {s['stage']}: epochs {s['first_epoch']}-{s['last_epoch']}, ended: {s['ended']}" for s in summary["stages"]]
    if summary.get("skipped_steps"):
        lines.append(f"skipped {summary['skipped_steps']} step(s) with a non-finite loss or gradient (train.skip_nonfinite_steps)")
    if summary.get("overflow_steps"):
        lines.append(f"fp16: {summary['overflow_steps']} step(s) skipped for overflowing gradients; loss scale now {summary['loss_scale']:g}")
    skipped = (summary.get("skipped_samples") or {}).get("count", 0)
    if skipped:
        lines.append(f"skipped {skipped} bad sample(s) (data.on_bad_sample=skip); summary.json names them")
    if summary.get("error"):
        lines.append(f"error: {summary['error']}")
        if summary.get("checkpoint"):
            lines.append(f"last good checkpoint: {summary['checkpoint']}; go on with: python -m jobs.train --resume {summary['run_dir']}")
            stored_at, _, _ = summary["checkpoint"].partition(f"/{TRAIN_STORAGE}/")
            if stored_at.startswith("s3://"):
                lines.append(f"or, on another machine: python -m jobs.train --resume {stored_at}")
    return lines
