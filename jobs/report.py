"""python -m jobs.report RUNS_ROOT [--out DIR] | python -m jobs.report --diff RUN_A RUN_B

The first writes report.md and a self-contained report.html with one row per run under RUNS_ROOT;
the second prints the config keys and package versions that differ between two runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.reporting.experiments import diff, load_runs
from core.reporting.render import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.report", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="RUNS_ROOT, or RUN_A RUN_B with --diff")
    parser.add_argument("--diff", action="store_true", help="compare two run directories")
    parser.add_argument("--out", type=Path, help="where to write the report (default: RUNS_ROOT)")
    args = parser.parse_args(argv)
    if args.diff:
        return _print_diff(args.paths, parser)
    if len(args.paths) != 1:
        parser.error("give one RUNS_ROOT (or --diff RUN_A RUN_B)")
    root = args.paths[0]
    runs = load_runs(root)
    if not runs:
        print(f"error: no run directories (config.yaml with metrics.jsonl or summary.json) under {root}", file=sys.stderr)
        return 2
    markdown, page = write_report(runs, args.out or root)
    print(f"{len(runs)} runs\nreport: {page}\nmarkdown: {markdown}")
    return 0


def _print_diff(paths: list[Path], parser: argparse.ArgumentParser) -> int:
    if len(paths) != 2:
        parser.error("--diff takes two run directories")
    runs = []
    for path in paths:
        found = [run for run in load_runs(path) if run.folder == path.resolve() or run.folder == path]
        if not found:
            print(f"error: {path} is not a run directory (no config.yaml with metrics.jsonl or summary.json)", file=sys.stderr)
            return 2
        runs.append(found[0])
    config_changes, package_changes = diff(*runs)
    for title, changes in (("config", config_changes), ("packages", package_changes)):
        print(f"{title}: {len(changes)} differ" + (":" if changes else ""))
        for key, a, b in changes:
            print(f"  {key}: {a} -> {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
