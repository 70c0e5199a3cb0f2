"""python -m jobs.report RUNS_ROOT [--out DIR] | --diff RUN_A RUN_B | --envs RUNS_ROOT | --lock RUN_DIR [--out FILE]

The first writes report.md and a self-contained report.html with one row per run under RUNS_ROOT;
--diff prints the config keys and package versions that differ between two runs; --envs prints a
table of the environments the runs under RUNS_ROOT trained in, how their runs ended and their best
results; --lock writes a run's environment as a known-good lock for `jobs.train --env-lock`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.config.errors import ConfigError
from core.reporting.environments import environment_rows, markdown
from core.reporting.experiments import diff, load_runs
from core.runs import env_lock
from core.reporting.render import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.report", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="RUNS_ROOT, or RUN_A RUN_B with --diff")
    parser.add_argument("--diff", action="store_true", help="compare two run directories")
    parser.add_argument("--envs", action="store_true", help="a table of the environments the runs under RUNS_ROOT trained in")
    parser.add_argument("--lock", action="store_true", help="write RUN_DIR's environment as a lock (default --out: env.lock.yaml)")
    parser.add_argument("--out", type=Path, help="where to write the report (default: RUNS_ROOT) or the lock")
    args = parser.parse_args(argv)
    if args.diff:
        return _print_diff(args.paths, parser)
    if len(args.paths) != 1:
        parser.error("give one RUNS_ROOT (or --diff RUN_A RUN_B, or --lock RUN_DIR)")
    if args.lock:
        return _write_lock(args.paths[0], args.out or Path("env.lock.yaml"))
    root = args.paths[0]
    runs = load_runs(root)
    if not runs:
        print(f"error: no run directories (config.yaml with metrics.jsonl or summary.json) under {root}", file=sys.stderr)
        return 2
    if args.envs:
        print(markdown(environment_rows(runs)), end="")
        return 0
    table, page = write_report(runs, args.out or root)
    print(f"{len(runs)} runs\nreport: {page}\nmarkdown: {table}")
    return 0


def _write_lock(run_dir: Path, out: Path) -> int:
    try:
        environments = env_lock.write(run_dir, out)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"environment lock of {run_dir.name} ({', '.join(environments)}): {out}\n"
          f"check a launch against it with: python -m jobs.train CONFIG --env-lock {out} [--strict-env]")
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
