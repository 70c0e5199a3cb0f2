"""Where the time to the first optimizer step goes: wall-clock marks from the driver and from rank 0, as phases.

The marks are time.time() values; the driver's and the worker's are comparable on one machine and
within clock synchronisation on a cluster.
"""
from __future__ import annotations

import importlib
import threading
import time

import psutil

# (phase, from mark, to mark), in the order they happen.
PHASES = (
    ("imports_s", "process_start", "imports_done"),
    ("ray_start_s", "imports_done", "ray_connected"),
    ("data_check_s", "ray_connected", "data_prepared"),
    ("trainer_build_s", "data_prepared", "trainer_built"),
    ("worker_start_s", "trainer_built", "worker_entered"),
    ("model_build_s", "worker_entered", "model_built"),
    ("first_step_s", "model_built", "first_step"),
)


# Python's own start and the few modules before the first of ours take well under this; a longer gap
# means the process ran something else first and then became Python.
EXEC_GAP_S = 5.0


def process_start(python_reached: float | None = None) -> float:
    """When this process began, before any import of ours. python_reached: when our first module was imported.
    A process that ran something else before it became Python (the last command of `bash -c "pip install
    ... && python -m jobs.train"`, which bash runs in its own process) began long before; then python_reached."""
    created = psutil.Process().create_time()
    if python_reached is not None and python_reached - created > EXEC_GAP_S:
        return python_reached
    return created


def mark() -> float:
    return time.time()


def phases(marks: dict[str, float]) -> dict[str, float]:
    """Seconds per phase, and to_first_step_s over all of them; phases whose marks are missing are left out."""
    out = {name: round(marks[end] - marks[start], 3) for name, start, end in PHASES if start in marks and end in marks}
    if "first_step" in marks and "process_start" in marks:
        out["to_first_step_s"] = round(marks["first_step"] - marks["process_start"], 3)
    return out


def import_in_background(modules: tuple[str, ...]) -> threading.Thread:
    """Import these in a thread while this one waits on something else (Ray's start leaves the CPU idle
    for seconds). Only for modules that import nothing the waiting code imports meanwhile: two threads
    importing one module wait for each other, and a cycle between them hands one a half-made module.
    A module that fails to import fails again, with its error, where the waiting thread imports it."""
    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # raised again by the caller's own import of it, where it is handled
                return
    thread = threading.Thread(target=load, name="imports", daemon=True)
    thread.start()
    return thread
