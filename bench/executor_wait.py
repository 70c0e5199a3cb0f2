"""python -m bench.executor_wait [--tasks N] [--task-ms MS] [--repeats R]: how Ray Data's wait keeps CPUs idle.

A plain Ray loop shaped like Ray Data 2.60's streaming executor: read-like tasks of --task-ms of CPU,
each a streaming generator yielding a 5 MB block and then its metadata, two in flight on a 2-CPU Ray
instance, their outputs drained as they become ready. The executor waits with
`ray.wait(all running generators, num_returns=all of them, timeout=0.1 s)`; the other loop waits for
any one. Prints, per way of waiting, the median wall time of a pass of --tasks tasks and the share
of that time in which 0, 1 and 2 tasks ran (from the tasks' own clocks), and writes
bench/results/executor_wait.json. This is the pattern the README's ingest section names as one
reason Ray Data's decode tasks leave a CPU idle here.
"""
from __future__ import annotations

import argparse
import statistics
import time

import ray

from bench import _results

BLOCK_BYTES = 5 * 2**20
IN_FLIGHT = 2


@ray.remote(num_cpus=1)
def _read_like(seconds: float):
    start = time.time()
    while time.time() - start < seconds:
        pass
    yield b"\0" * BLOCK_BYTES
    yield start, time.time()


def one_pass(tasks: int, seconds: float, wait_for_all: bool) -> tuple[float, list[tuple[float, float]]]:
    left, running, spans = tasks, {}, []
    began = time.perf_counter()
    while left or running:
        while left and len(running) < IN_FLIGHT:
            running[_read_like.options(num_returns="streaming").remote(seconds)] = []
            left -= 1
        ready, _ = ray.wait(list(running), num_returns=len(running) if wait_for_all else 1, timeout=0.1,
                            fetch_local=False)
        for generator in ready:
            _drain(generator, running, spans)
    return time.perf_counter() - began, spans


def _drain(generator, running: dict, spans: list) -> None:
    try:
        while not (ref := generator._next_sync(timeout_s=0)).is_nil():
            running[generator].append(ref)
    except StopIteration:
        spans.append(ray.get(running.pop(generator)[1]))


def concurrency(spans: list[tuple[float, float]]) -> list[float]:
    """Share of the time from the first start to the last end with 0, 1, 2, ... tasks running."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    shares = [0.0] * (IN_FLIGHT + 1)
    level, previous = 0, edges[0][0]
    for moment, step in edges:
        shares[min(level, IN_FLIGHT)] += moment - previous
        level, previous = level + step, moment
    total = sum(shares)
    return [share / total for share in shares]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.executor_wait", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--task-ms", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ray.init(num_cpus=IN_FLIGHT, include_dashboard=False, _node_ip_address="127.0.0.1")
    one_pass(4, args.task_ms / 1000, wait_for_all=False)
    runs: dict[str, list[tuple[float, list[float]]]] = {"wait for all": [], "wait for one": []}
    for _ in range(args.repeats):
        for name in runs:
            seconds, spans = one_pass(args.tasks, args.task_ms / 1000, wait_for_all=name == "wait for all")
            runs[name].append((seconds, concurrency(spans)))
    ray.shutdown()
    medians = {name: {"seconds": statistics.median(s for s, _ in values),
                      "share_running": [statistics.median(c[k] for _, c in values) for k in range(IN_FLIGHT + 1)]}
               for name, values in runs.items()}
    print(f"\n{args.tasks} tasks of {args.task_ms:g} ms, {IN_FLIGHT} in flight on {IN_FLIGHT} CPUs, median of {args.repeats}")
    print(f"{'ray.wait':<14}{'pass s':>8}{'0 running':>11}{'1 running':>11}{'2 running':>11}")
    for name, figures in medians.items():
        shares = "".join(f"{share:>11.2f}" for share in figures["share_running"])
        print(f"{name:<14}{figures['seconds']:>8.2f}{shares}")
    ratio = medians["wait for all"]["seconds"] / medians["wait for one"]["seconds"]
    print(f"wait for all / wait for one: {ratio:.2f}")
    _results.write("executor_wait", {"settings": vars(args), "medians": medians, "ratio": ratio,
                                     "runs": {name: [s for s, _ in values] for name, values in runs.items()}})


if __name__ == "__main__":
    main()
