"""python -m bench.startup [--repeats R]: time from `python -m jobs.train` to the first optimizer step, by phase.

Each repeat runs, one after the other, (a) the floor: a bare ray.init() plus a no-op TorchTrainer
with the quickstart's plan (bench._startup_floor), and (b) `python -m jobs.train` on the
quickstart, one epoch, its phases read from summary.json's "startup"; every other repeat runs (b)
first, so neither always follows the other's shutdown. The table shows medians of the repeats per
phase and what the project adds to the floor; the goal, under 5 s, is judged on each repeat's own
difference (bench._goal: their median and its 90% interval: met, missed or unsettled). JSON goes to
bench/results/startup.json.
The quickstart data set is made before the first repeat, so no run times its generation.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import _goal, _results
from core.profiling import startup
from core.config.loading import load_config
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.synthetic import ensure_dataset

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "configs" / "quickstart.yaml"
GOAL_S = 5.0  # what the project may add to the floor
LABELS = {"imports_s": "imports", "ray_start_s": "Ray start", "data_check_s": "data check", "trainer_build_s": "trainer build",
          "worker_start_s": "worker start", "model_build_s": "model build", "first_step_s": "first step",
          "to_first_step_s": "to the first step"}


def floor(out: Path) -> dict[str, float]:
    line = _run([sys.executable, "-m", "bench._startup_floor", str(out)]).strip().splitlines()[-1]
    marks = json.loads(line)
    marks["data_prepared"] = marks["ray_connected"]  # the floor has no data to check
    marks["first_step"] = marks["worker_entered"]  # and its workers have nothing more to do
    return startup.phases(marks)


def project(out: Path) -> dict[str, float]:
    _run([sys.executable, "-m", "jobs.train", f"output.root={out}", "train.epochs=1"])
    (run_dir,) = out.iterdir()
    return json.loads((run_dir / "summary.json").read_text())["startup"]


def _run(command: list[str]) -> str:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6, help="even, so each runs first as often; 5 or more for a verdict")
    args = parser.parse_args()
    config = load_config(QUICKSTART)
    ensure_dataset(DataStore.at(REPO / config.data.uri), config.data.synthetic)
    runs = {"floor": [], "jobs.train": []}
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            order = [("floor", floor), ("jobs.train", project)]
            for name, measure in order if repeat % 2 == 0 else order[::-1]:
                runs[name].append(measure(Path(tmp) / name))
        print(f"repeat {repeat + 1}/{args.repeats}: floor {runs['floor'][-1]['to_first_step_s']:.1f} s, "
              f"jobs.train {runs['jobs.train'][-1]['to_first_step_s']:.1f} s", file=sys.stderr)
    medians = {name: {phase: statistics.median(r[phase] for r in results) for phase in results[0]}
               for name, results in runs.items()}
    added = medians["jobs.train"]["to_first_step_s"] - medians["floor"]["to_first_step_s"]
    paired = _goal.judge([t["to_first_step_s"] - f["to_first_step_s"] for t, f in zip(runs["jobs.train"], runs["floor"])],
                         GOAL_S, at_least=False)
    _print(medians, added, args.repeats)
    print(_goal.describe("the project adds", paired, " s"))
    _results.write("startup", {"settings": vars(args), "runs": runs, "medians": medians, "added_s": added,
                               "added_paired": paired})


def _print(medians: dict[str, dict[str, float]], added: float, repeats: int) -> None:
    print(f"\nseconds from process start, median of {repeats}; floor: ray.init() + a no-op TorchTrainer (2 workers x 0.5 CPU)")
    print(f"{'phase':<20}{'floor':>8}{'jobs.train':>12}")
    for phase, label in LABELS.items():
        cells = [f"{m[phase]:.2f}" if phase in m else "-" for m in (medians["floor"], medians["jobs.train"])]
        print(f"{label:<20}{cells[0]:>8}{cells[1]:>12}")
    print(f"{'the project adds':<20}{'':>8}{added:>12.2f}   (difference of the medians)")


if __name__ == "__main__":
    main()
