"""history.csv and history.xlsx: metrics.jsonl as the table researchers keep per run, one row per epoch.

Both are rewritten from metrics.jsonl whenever it changes (an epoch logged, records dropped on resume,
records restored from Ray Train's list), so they never hold an epoch that metrics.jsonl does not.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

CSV = "history.csv"
XLSX = "history.xlsx"
LEADING = ("epoch", "stage", "wall_time_s", "lr")  # then the losses and metrics, in the order they first appear


def columns(records: list[dict[str, Any]]) -> list[str]:
    """The leading columns, then every number or text a record holds (a nested value such as startup is left out)."""
    seen = dict.fromkeys(key for key in LEADING if any(key in r for r in records))
    for record in records:
        for key, value in record.items():
            if key not in seen and _is_cell(value):
                seen[key] = None
    return [key for key in seen if key not in ("run", "checkpoint")]  # the same for every row, or a path


def write(folder: Path, records: list[dict[str, Any]]) -> None:
    """Both files of the run directory folder, from all of metrics.jsonl's records."""
    header = columns(records)
    rows = [[record.get(key) for key in header] for record in records]
    _write_csv(folder / CSV, header, rows)
    _write_xlsx(folder / XLSX, header, rows)


def _is_cell(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str))


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(["" if value is None else value for value in row] for row in rows)
    os.replace(partial, path)


def _write_xlsx(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    from openpyxl import Workbook  # imported here: only writing a history needs it

    book = Workbook()
    sheet = book.active
    sheet.title = "history"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    sheet.freeze_panes = "B2"  # the header and the epoch stay in view when scrolling a long run
    partial = path.with_name(f".{path.name}.partial")
    book.save(partial)
    os.replace(partial, path)
