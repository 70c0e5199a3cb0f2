"""python -m bench.import_bytecode [--repeats R]: what a process pays to import the stack without compiled bytecode.

Every Ray worker, the Train controller, Ray Data's actors and each job is a new Python process that
imports torch, Ray Train and Ray Data, and a training worker also segmentation-models-pytorch. An
installer that does not compile bytecode (uv without --compile-bytecode) leaves no .pyc files;
where Python may not write them (PYTHONDONTWRITEBYTECODE=1, a read-only install) every process then
compiles those modules from source again. A fresh process times the imports (a) reading the
compiled bytecode of this environment and (b) compiling from source: PYTHONPYCACHEPREFIX points at
an empty folder, so Python finds no bytecode, and writes none. The two alternate, R of each; prints
the median seconds of each and the ratio b/a, and writes bench/results/import_bytecode.json.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile

from bench import _results

WAYS = ("a: compiled bytecode", "b: from source")
MODULES = ("torch", "ray.train.torch", "segmentation_models_pytorch")  # Ray Train brings Ray Data with it
_TIMED = ("import importlib, json, time\n"
          "seconds = {}\n"
          "for name in %r:\n"
          "    start = time.perf_counter(); importlib.import_module(name); seconds[name] = time.perf_counter() - start\n"
          "print(json.dumps(seconds))\n") % (MODULES,)


def _imports(way: str, empty_prefix: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if way == WAYS[1]:
        env["PYTHONPYCACHEPREFIX"] = empty_prefix
    else:
        env.pop("PYTHONPYCACHEPREFIX", None)
    done = subprocess.run([sys.executable, "-c", _TIMED], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _compiled(module: str) -> bool:
    return os.path.exists(importlib.util.cache_from_source(importlib.util.find_spec(module).origin))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.import_bytecode", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not _compiled(MODULES[0]):
        sys.exit(f"error: {MODULES[0]} has no compiled bytecode in this environment, so (a) would compile from source too; "
                 f"install with uv pip install --compile-bytecode -r requirements.txt, or run python -m compileall on site-packages")
    runs: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory() as empty_prefix:
        for turn in range(args.repeats):
            for way in WAYS if turn % 2 == 0 else WAYS[::-1]:
                runs[way].append(_imports(way, empty_prefix))
                print(f"turn {turn + 1}/{args.repeats} {way}: {sum(runs[way][-1].values()):.2f} s", file=sys.stderr)
    medians = {way: {name: statistics.median(r[name] for r in runs[way]) for name in MODULES} for way in WAYS}
    totals = {way: statistics.median(sum(r.values()) for r in runs[way]) for way in WAYS}
    print(f"| import (median of {args.repeats}, s) | " + " | ".join(WAYS) + " | b/a |")
    print("|---|---|---|---|")
    for name in MODULES:
        a, b = medians[WAYS[0]][name], medians[WAYS[1]][name]
        print(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f} |")
    print(f"| **all three** | **{totals[WAYS[0]]:.2f}** | **{totals[WAYS[1]]:.2f}** | **{totals[WAYS[1]] / totals[WAYS[0]]:.2f}** |")
    _results.write("import_bytecode", {"repeats": args.repeats, "modules": list(MODULES), "medians_s": medians,
                                        "total_median_s": totals, "runs": runs})


if __name__ == "__main__":
    main()
