"""python -m bench.startup_pairs [--pairs N] [--against REV] [NAME=VALUE ...]: a startup change measured in pairs of runs.

Runs `python -m jobs.train train.epochs=1` alternately as (a) and (b), N pairs, each pair in
alternating order. (a) is this checkout as it is, or with --against the code of git revision REV
(a worktree in a temporary folder that uses this checkout's data/); (b) is this checkout with the
given environment variables set. It prints for every startup phase
(summary.json's "startup") the medians of a and b and the median of the pairs' differences b - a.
On a shared machine whose whole startup varies by seconds between runs, a pair's difference
resolves a change of a second where two medians of separate runs cannot. JSON goes to
bench/results/startup_pairs.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import _results

REPO = Path(__file__).resolve().parent.parent


def _startup(code: Path, env: dict[str, str], runs: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-m", "jobs.train", "train.epochs=1", f"output.root={runs}"],
                          env=env, cwd=code, capture_output=True, text=True)
    found = re.findall(r"run directory: (\S+)", done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"jobs.train exited with {done.returncode}: {done.stderr[-2000:]}")
    startup = json.loads((Path(found[-1]) / "summary.json").read_text())["startup"]
    return {phase: value for phase, value in startup.items() if isinstance(value, (int, float))}


@contextlib.contextmanager
def _code_of(revision: str | None):
    """Where (a)'s code is: this checkout, or a worktree of the revision, removed afterwards."""
    if revision is None:
        yield REPO
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "a"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), revision], cwd=REPO, check=True, capture_output=True)
        try:
            (tree / "data").symlink_to(REPO / "data")  # the same data, generated once
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup_pairs", description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*", metavar="NAME=VALUE", help="environment of the (b) runs")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--against", metavar="REV", help="(a) runs this git revision's code (a commit, a branch, HEAD~1)")
    args = parser.parse_args()
    if not args.settings and not args.against:
        parser.error("give what (b) changes: NAME=VALUE settings, or --against REV for (a), or both")
    changed = dict(setting.split("=", 1) for setting in args.settings)
    runs: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    with tempfile.TemporaryDirectory() as out, _code_of(args.against) as code_a:
        for pair in range(args.pairs):
            for side in ("a", "b") if pair % 2 == 0 else ("b", "a"):
                env = {**os.environ, **(changed if side == "b" else {})}
                runs[side].append(_startup(code_a if side == "a" else REPO, env, out))
            print(f"pair {pair + 1}/{args.pairs}: to the first step a {runs['a'][-1]['to_first_step_s']:.2f} s, "
                  f"b {runs['b'][-1]['to_first_step_s']:.2f} s", flush=True)
    table = {phase: {"a": statistics.median(r[phase] for r in runs["a"]), "b": statistics.median(r[phase] for r in runs["b"]),
                     "b_minus_a": [b[phase] - a[phase] for a, b in zip(runs["a"], runs["b"])]}
             for phase in runs["a"][0]}
    a = f"the code of {args.against}" if args.against else "this checkout"
    b = f"this checkout with {' '.join(args.settings)}" if args.settings else "this checkout"
    print(f"\nseconds; a: {a}, b: {b}; {args.pairs} pairs")
    print(f"{'phase':<18}{'a':>8}{'b':>8}{'b - a':>9}   each pair's b - a")
    for phase, row in table.items():
        print(f"{phase:<18}{row['a']:>8.2f}{row['b']:>8.2f}{statistics.median(row['b_minus_a']):>+9.2f}   "
              + ", ".join(f"{d:+.2f}" for d in row["b_minus_a"]))
    _results.write("startup_pairs", {"settings": {"pairs": args.pairs, "a": args.against or "this checkout", "b": changed}, "runs": runs, "phases": table})


if __name__ == "__main__":
    main()
