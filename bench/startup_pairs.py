"""python -m bench.startup_pairs [--pairs N] NAME=VALUE [...]: a startup change measured in pairs of runs.

Runs `python -m jobs.train train.epochs=1` alternately as it is (a) and with the given environment
variables set (b), N pairs, each pair in alternating order, and prints for every startup phase
(summary.json's "startup") the medians of a and b and the median of the pairs' differences b - a.
On a shared machine whose whole startup varies by seconds between runs, a pair's difference
resolves a change of a second where two medians of separate runs cannot. JSON goes to
bench/results/startup_pairs.json.
"""
from __future__ import annotations

import argparse
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


def _startup(env: dict[str, str], runs: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-m", "jobs.train", "train.epochs=1", f"output.root={runs}"],
                          env=env, cwd=REPO, capture_output=True, text=True)
    found = re.findall(r"run directory: (\S+)", done.stdout)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"jobs.train exited with {done.returncode}: {done.stderr[-2000:]}")
    startup = json.loads((Path(found[-1]) / "summary.json").read_text())["startup"]
    return {phase: value for phase, value in startup.items() if isinstance(value, (int, float))}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup_pairs", description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", metavar="NAME=VALUE", help="environment of the (b) runs")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    changed = dict(setting.split("=", 1) for setting in args.settings)
    runs: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    with tempfile.TemporaryDirectory() as out:
        for pair in range(args.pairs):
            for side in ("a", "b") if pair % 2 == 0 else ("b", "a"):
                env = {**os.environ, **(changed if side == "b" else {})}
                runs[side].append(_startup(env, out))
            print(f"pair {pair + 1}/{args.pairs}: to the first step a {runs['a'][-1]['to_first_step_s']:.2f} s, "
                  f"b {runs['b'][-1]['to_first_step_s']:.2f} s", flush=True)
    table = {phase: {"a": statistics.median(r[phase] for r in runs["a"]), "b": statistics.median(r[phase] for r in runs["b"]),
                     "b_minus_a": [b[phase] - a[phase] for a, b in zip(runs["a"], runs["b"])]}
             for phase in runs["a"][0]}
    print(f"\nseconds; a: as it is, b: with {' '.join(args.settings)}; {args.pairs} pairs")
    print(f"{'phase':<18}{'a':>8}{'b':>8}{'b - a':>9}   each pair's b - a")
    for phase, row in table.items():
        print(f"{phase:<18}{row['a']:>8.2f}{row['b']:>8.2f}{statistics.median(row['b_minus_a']):>+9.2f}   "
              + ", ".join(f"{d:+.2f}" for d in row["b_minus_a"]))
    _results.write("startup_pairs", {"settings": {"pairs": args.pairs, "b": changed}, "runs": runs, "phases": table})


if __name__ == "__main__":
    main()
