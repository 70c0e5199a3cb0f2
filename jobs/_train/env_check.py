"""The environment pre-flight of jobs.train: this launch's environments against the last completed run and a lock.

Read on the driver, and by a Ray task on one node of each type the cluster has (other than the
driver's own node), since a worker's torch is not the driver's when the images differ.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from core.config.schema import ExperimentConfig
from core.runs import env_lock
from core.runs.fingerprint import DRIVER, Fingerprint, current, difference_table, node_type, of_env
from core.runs.run_dir import last_completed

PROBE_TIMEOUT_S = 120


def environments() -> dict[str, Fingerprint]:
    """The driver's fingerprint, and one node's of each type with CPUs."""
    here = ray.get_runtime_context().get_node_id()
    chosen: dict[str, str] = {}
    for node in ray.nodes():
        if node["Alive"] and node["NodeID"] != here and node["Resources"].get("CPU", 0) > 0:
            chosen.setdefault(node_type(node["Resources"]), node["NodeID"])
    probe = ray.remote(num_cpus=0)(current)
    pending = {place: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote()
               for place, node_id in chosen.items()}
    return {DRIVER: current(), **{place: ray.get(ref, timeout=PROBE_TIMEOUT_S) for place, ref in pending.items()}}


def check(config: ExperimentConfig, now: dict[str, Fingerprint], resumed: Path | None, lock: Path | None, strict: bool) -> bool:
    """Print what differs; False where strict and something does (the launch is refused)."""
    compared = []
    previous = resumed or last_completed(Path(config.output.root), config.name)
    if previous is not None and (previous / "env.json").is_file():
        title = "this run so far" if resumed else f"last run {previous.name}"
        compared.append((title, of_env(json.loads((previous / "env.json").read_text()))))
    if lock is not None:
        compared.append((f"lock {lock.name}", env_lock.read(lock)))
    table = difference_table(now, compared)
    if not table:
        return True
    verdict = "refused (--strict-env)" if strict else "going on; --strict-env refuses such a launch"
    print("\n".join([f"environment differs from {' and '.join(title for title, _ in compared)}: {verdict}", *table]),
          file=sys.stderr, flush=True)
    return not strict
