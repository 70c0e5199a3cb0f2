"""python -m bench.actor_start [--actors N] [--repeats R]: how long a new actor takes to start, by how its job gets its environment.

A local Ray instance started (a) as cluster.connect starts it, the workers inheriting PYTHONPATH
and Ray Train's switches from the raylet, and (b) with the same variables given as the job's
runtime_env, as jobs.train did before. In each, after Ray has had SETTLE_S to prestart its
workers, N actors are created one after another and each is timed from its creation to the answer
of its first call. Ray Train starts about ten actors to a run (its controller, its workers, its
helpers, Ray Data's coordinators), most of them one after another. The instances alternate, R of
each; prints the median seconds of each actor's start and the ratio b/a, and writes
bench/results/actor_start.json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import ray

from bench import _results
from cluster.connect import CODE_ROOT, PREEMPTION_WATCHER, connect
from core.config.sections import RayConfig

SETTLE_S = 3.0
WAYS = ("a: inherited", "b: runtime_env")


@ray.remote(num_cpus=0)
class _Probe:
    def ready(self) -> int:
        return os.getpid()


def _starts(way: str, actors: int) -> list[float]:
    if way == WAYS[0]:
        connect(RayConfig(num_cpus=2, include_dashboard=False), CODE_ROOT)
    else:
        env = {"PYTHONPATH": str(CODE_ROOT), PREEMPTION_WATCHER: "0"}
        ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                 runtime_env={"env_vars": env})
    try:
        time.sleep(SETTLE_S)
        seconds = []
        for _ in range(actors):
            start = time.perf_counter()
            ray.get(_Probe.remote().ready.remote())
            seconds.append(time.perf_counter() - start)
        return seconds
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.actor_start", description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.pop("RAY_ADDRESS", None)
    runs: dict[str, list[list[float]]] = {way: [] for way in WAYS}
    for repeat in range(args.repeats):
        for way in WAYS if repeat % 2 == 0 else WAYS[::-1]:
            runs[way].append(_starts(way, args.actors))
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    medians = {way: [statistics.median(run[i] for run in runs[way]) for i in range(args.actors)] for way in WAYS}
    overall = {way: statistics.median(s for run in runs[way] for s in run) for way in WAYS}
    print(f"\nseconds from creating an actor to its first answer, medians of {args.repeats} instances each")
    print(f"{'actor':<8}" + "".join(f"{way:>18}" for way in WAYS))
    for i in range(args.actors):
        print(f"{i + 1:<8}" + "".join(f"{medians[way][i]:>18.2f}" for way in WAYS))
    print(f"{'all':<8}" + "".join(f"{overall[way]:>18.2f}" for way in WAYS))
    ratio = overall[WAYS[1]] / overall[WAYS[0]]
    print(f"b/a {ratio:.2f}")
    _results.write("actor_start", {"settings": vars(args) | {"settle_s": SETTLE_S}, "runs": runs, "medians": medians,
                                   "overall": overall, "b_over_a": ratio})


if __name__ == "__main__":
    main()
