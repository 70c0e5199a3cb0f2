"""python -m bench.startup_cpu: where the CPU goes in each startup phase of `python -m jobs.train`.

Runs the quickstart for one epoch while a thread reads every process's CPU time from /proc
(Linux only) every 0.25 s, then splits the samples by the run's startup phases (summary.json's
"startup", counted from the process start). For each phase the table shows its wall time, the CPU
left idle (core-seconds), and the core-seconds of each kind of process: Ray's actors and tasks by
name (ray::RayTrainWorker, ray::SplitCoordinator, ...), the driver, and Ray's own daemons. A phase
with no idle CPU is shortened only by taking work out of it; one with idle CPU can take work in.
bench/results/startup_cpu.png shows the same samples over time: the cores each kind of process kept
busy in every half second, the phases marked, so that a process running alone while a core idles
(a start that waits on another) stands out.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import matplotlib
import psutil

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench import _results
from core.config.loading import load_config
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.synthetic import ensure_dataset

REPO = Path(__file__).resolve().parent.parent
PHASES = ("imports_s", "ray_start_s", "data_check_s", "trainer_build_s", "worker_start_s", "model_build_s", "first_step_s")
INTERVAL_S = 0.25
TICKS = os.sysconf("SC_CLK_TCK")
DAEMONS = ("gcs_server", "raylet", "dashboard/agent.py", "dashboard/dashboard.py", "log_monitor.py", "monitor.py")
PLOT_BIN_S = 0.5
PLOT_KINDS = 12  # the busiest kinds get a colour each; the rest are drawn together


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=6, help="process kinds listed per phase")
    args = parser.parse_args()
    config = load_config(REPO / "configs" / "quickstart.yaml")
    ensure_dataset(DataStore.at(REPO / config.data.uri), config.data.synthetic)
    samples, startup, started = _sampled_run()
    phases = _split(samples, startup, started)
    _print(phases, args.top)
    path = _results.write("startup_cpu", {"interval_s": INTERVAL_S, "startup": startup, "phases": phases})
    _plot(samples, startup, started, path.with_suffix(".png"))


def _sampled_run() -> tuple[list[dict], dict[str, float], float]:
    sampler = _Sampler()
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        job = subprocess.Popen([sys.executable, "-m", "jobs.train", f"output.root={tmp}", "train.epochs=1"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started = psutil.Process(job.pid).create_time()
        _, err = job.communicate()
        if job.returncode != 0:
            raise SystemExit(f"jobs.train failed ({job.returncode}):\n{err[-3000:]}")
        (run_dir,) = Path(tmp).iterdir()
        startup = json.loads((run_dir / "summary.json").read_text())["startup"]
    sampler.stop()
    return sampler.samples, startup, started


class _Sampler(threading.Thread):
    """CPU ticks of every process, and the machine's idle ticks, every INTERVAL_S."""

    def __init__(self):
        super().__init__(name="cpu-sampler", daemon=True)
        self.samples: list[dict] = []
        self.names: dict[int, str] = {}
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(INTERVAL_S):
            ticks = {pid: t for pid in psutil.pids() if (t := self._ticks(pid)) is not None}
            with open("/proc/stat") as handle:
                fields = [int(x) for x in handle.readline().split()[1:]]
            self.samples.append({"t": time.time(), "ticks": ticks, "idle": fields[3] + fields[4], "total": sum(fields)})

    def stop(self) -> None:
        self._stopped.set()
        self.join()
        if len(self.samples) < 2:
            raise SystemExit("the CPU sampler took too few samples to measure anything (see its error above)")
        for sample in self.samples:
            sample["ticks"] = {self.names[pid]: t for pid, t in sample["ticks"].items()}

    def _ticks(self, pid: int) -> int | None:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            self._remember_name(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        return int(fields[11]) + int(fields[12])

    def _remember_name(self, pid: int) -> None:
        """A Ray worker shows what it runs in its title; one that is idle, or exiting, keeps the name of what it ran."""
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            title = handle.read().replace(b"\0", b" ").decode(errors="replace")
        kind = _kind(title)
        if pid not in self.names or (kind.startswith("ray::") and kind != "ray::IDLE"):
            self.names[pid] = f"{kind} [{pid}]"


def _kind(title: str) -> str:
    if title.startswith("ray::"):
        return title.split()[0].split(".")[0]
    if "jobs.train" in title:
        return "driver (jobs.train)"
    return next((daemon for daemon in DAEMONS if daemon in title), "other")


def _split(samples: list[dict], startup: dict[str, float], started: float) -> list[dict]:
    bounds, at = [], started
    for phase in PHASES:
        bounds.append((phase, at, at + startup[phase]))
        at += startup[phase]
    phases = []
    for phase, begin, end in bounds:
        inside = [(a, b) for a, b in zip(samples, samples[1:]) if begin <= b["t"] < end]
        kinds: dict[str, float] = defaultdict(float)
        for before, after in inside:
            for name, ticks in after["ticks"].items():
                kinds[name.split(" [")[0]] += max(0, ticks - before["ticks"].get(name, 0)) / TICKS  # one not seen before started since
        idle = sum(b["idle"] - a["idle"] for a, b in inside) / TICKS
        phases.append({"phase": phase, "wall_s": round(end - begin, 2), "idle_core_s": round(idle, 2),
                       "kinds": {k: round(v, 2) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}})
    return phases


def _plot(samples: list[dict], startup: dict[str, float], started: float, path: Path) -> None:
    """Cores kept busy by each kind of process, per PLOT_BIN_S, from the process start to the first step."""
    end = started + startup["to_first_step_s"]
    bins = int((end - started) / PLOT_BIN_S) + 1
    busy: dict[str, list[float]] = defaultdict(lambda: [0.0] * bins)
    for before, after in zip(samples, samples[1:]):
        if after["t"] >= end:
            break
        slot = int((after["t"] - started) / PLOT_BIN_S)
        for name, ticks in after["ticks"].items():
            busy[name.split(" [")[0]][slot] += max(0, ticks - before["ticks"].get(name, 0)) / TICKS / PLOT_BIN_S
    ranked = sorted(busy, key=lambda kind: -sum(busy[kind]))
    shown = {kind: busy[kind] for kind in ranked[:PLOT_KINDS]}
    shown["the rest"] = [sum(busy[kind][i] for kind in ranked[PLOT_KINDS:]) for i in range(bins)]
    figure, axes = plt.subplots(figsize=(13, 5))
    colours = [*plt.get_cmap("tab20").colors[:len(shown) - 1], "lightgrey"]  # one each, the rest grey
    axes.stackplot([i * PLOT_BIN_S for i in range(bins)], list(shown.values()), labels=list(shown), colors=colours, step="post")
    axes.axhline(os.cpu_count(), color="black", linewidth=0.8)
    at = 0.0
    for phase in PHASES:
        axes.axvline(at, color="grey", linestyle=":", linewidth=0.8)
        axes.text(at + 0.05, os.cpu_count() * 1.03, phase[:-2].replace("_", " "), fontsize=8, rotation=90, va="bottom")
        at += startup[phase]
    axes.set(xlabel="seconds from the process start", ylabel="cores busy", xlim=(0, at), ylim=(0, os.cpu_count() * 1.4),
             title="python -m jobs.train train.epochs=1: CPU by process, to the first optimizer step")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    print(f"written: {path}")


def _print(phases: list[dict], top: int) -> None:
    print(f"\ncore-seconds of CPU per startup phase of `python -m jobs.train train.epochs=1` (sampled every {INTERVAL_S} s)")
    for entry in phases:
        busy = sum(entry["kinds"].values())
        print(f"\n{entry['phase'][:-2]:<14}{entry['wall_s']:>6.2f} s wall, {busy:.2f} core-s busy, {entry['idle_core_s']:.2f} idle")
        for kind, seconds in list(entry["kinds"].items())[:top]:
            print(f"    {seconds:6.2f}  {kind}")


if __name__ == "__main__":
    main()
