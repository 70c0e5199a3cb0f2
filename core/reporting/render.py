"""report.md and a self-contained report.html (sortable table, loss curves inline, ablation view)."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from core.reporting.experiments import Run, ablation_groups, ablation_table, row  # noqa: E402

SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, column) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const rows = Array.from(body.rows);
  const ascending = th.dataset.order !== "asc";
  th.dataset.order = ascending ? "asc" : "desc";
  const value = r => { const t = r.cells[column].dataset.value ?? r.cells[column].textContent; const n = parseFloat(t); return isNaN(n) ? t : n; };
  rows.sort((a, b) => { const x = value(a), y = value(b); return (x > y ? 1 : x < y ? -1 : 0) * (ascending ? 1 : -1); });
  rows.forEach(r => body.appendChild(r));
}));
"""
STYLE = """
body { font-family: sans-serif; margin: 2em; } table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; } th { background: #eee; cursor: pointer; }
.curves { display: flex; flex-wrap: wrap; gap: 1em; } .curves figure { margin: 0; } .curves img { width: 420px; }
"""


def write_report(runs: list[Run], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [row(run) for run in runs]
    curves = {run.name: _curve_png(run) for run in runs}
    (out_dir / "curves").mkdir(exist_ok=True)
    for name, png in curves.items():
        (out_dir / "curves" / f"{name}.png").write_bytes(png)
    groups = ablation_groups(runs)
    markdown, page = out_dir / "report.md", out_dir / "report.html"
    markdown.write_text(_markdown(rows, groups))
    page.write_text(_html(rows, groups, curves))
    return markdown, page


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _header(rows: list[dict]) -> list[str]:
    """Every row's columns, in the order they first appear: runs of different tasks add different ones."""
    return list(dict.fromkeys(key for r in rows for key in r))


def _markdown(rows: list[dict], groups: list[list[Run]]) -> str:
    lines = [f"# Experiment report: {len(rows)} runs", ""]
    if rows:
        header = _header(rows)
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_fmt(r.get(k)) for k in header) + " |" for r in rows]
    lines += ["", "## Loss curves", ""] + [f"![{r['run']}](curves/{r['run']}.png)" for r in rows]
    lines += ["", "## Ablations (runs differing only in loss weights)", "",
              "V: the loss was on (weight > 0) in at least one stage. Bold: the best in its column.", ""]
    for index, group in enumerate(groups, 1):
        table, best = ablation_table(group)
        header = list(table[0])
        lines += [f"### Ablation {index}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for number, r in enumerate(table):
            cells = (f"**{_fmt(r[k])}**" if (number, k) in best else _fmt(r[k]) for k in header)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if not groups:
        lines.append("No set of runs differs only in loss weights.")
    return "\n".join(lines) + "\n"


def _html(rows: list[dict], groups: list[list[Run]], curves: dict[str, bytes]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Experiment report</title><style>{STYLE}</style></head><body>",
             f"<h1>Experiment report: {len(rows)} runs</h1>", "<p>Click a column header to sort.</p>", _html_table(rows, "runs")]
    parts.append("<h2>Loss curves</h2><div class='curves'>")
    for name, png in curves.items():
        encoded = base64.b64encode(png).decode()
        parts.append(f"<figure><img alt='loss curves of {html.escape(name)}' src='data:image/png;base64,{encoded}'>"
                     f"<figcaption>{html.escape(name)}</figcaption></figure>")
    parts.append("</div><h2>Ablations (runs differing only in loss weights)</h2>")
    parts.append("<p>V: the loss was on (weight &gt; 0) in at least one stage. Bold: the best in its column.</p>")
    for index, group in enumerate(groups, 1):
        table, best = ablation_table(group)
        parts += [f"<h3>Ablation {index}</h3>", _html_table(table, f"ablation-{index}", best)]
    if not groups:
        parts.append("<p>No set of runs differs only in loss weights.</p>")
    parts.append(f"<script>{SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _html_table(rows: list[dict], table_id: str, bold: set[tuple[int, str]] = frozenset()) -> str:
    if not rows:
        return "<p>No runs.</p>"
    keys = _header(rows)
    header = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(_html_cell(r.get(k), (number, k) in bold) for k in keys) + "</tr>" for number, r in enumerate(rows)
    )
    return f"<table class='sortable' id='{table_id}'><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _html_cell(value: Any, bold: bool) -> str:
    shown = html.escape(_fmt(value))
    return (f"<td data-value='{html.escape(str(value if value is not None else ''))}'>"
            + (f"<b>{shown}</b>" if bold else shown) + "</td>")


def _curve_png(run: Run) -> bytes:
    figure, (losses, metric) = plt.subplots(1, 2, figsize=(8, 3))
    epochs = [r["epoch"] for r in run.records]
    for key in sorted({k for r in run.records for k in r if k.startswith("train/") and k not in ("train/samples_per_s", "train/data_wait_share")}):
        losses.plot(epochs, [r.get(key) for r in run.records], marker="o", label=key)
    monitor = run.summary.get("monitor", "val/miou")
    metric.plot(epochs, [r.get(monitor) for r in run.records], marker="o", color="tab:green", label=monitor)
    for axis, title in ((losses, "training losses"), (metric, monitor)):
        axis.set_xlabel("epoch")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.set_title(title)
        axis.legend(fontsize=7)
    figure.suptitle(run.name, fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()
