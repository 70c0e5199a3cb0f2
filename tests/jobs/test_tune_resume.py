"""An interrupted sweep resumes: the interrupted trial continues from its checkpoint.

Each jobs.tune here is its own process with its own local Ray, interrupted the way a user does it
(SIGINT, Ctrl+C), so no Ray instance of this test process may run at the same time.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.sweep_files import sweep_file

REPO = Path(__file__).resolve().parents[2]


def _tune(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "jobs.tune", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_second_checkpoint(sweeps: Path, process: subprocess.Popen, timeout_s: float = 300) -> None:
    """Until the trial's epoch 2 checkpoint lands in its folder of the sweep's tune/.

    A checkpoint folder appears before Tune's driver registers it (a separate save task), so an
    interrupt right then loses that epoch; by the time epoch 2's folder appears, epoch 1's is registered.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(sweeps.glob("*/tune/*/checkpoint_000001")):
            return
        assert process.poll() is None, process.communicate()[0][-3000:]
        time.sleep(0.1)
    raise AssertionError("the trial's second checkpoint did not reach Tune in time")


def _rows(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "results.csv") as handle:
        return list(csv.DictReader(handle))


def test_interrupted_sweep_resumes_where_it_stopped(tiny_dataset, tmp_path):
    path = sweep_file(tmp_path, tiny_dataset, epochs=3, space={"train.optimizer.lr": {"grid": [0.001]}}, max_concurrent=1)
    first = _tune(str(path))
    try:
        _wait_for_second_checkpoint(tmp_path / "sweeps", first)
        first.send_signal(signal.SIGINT)
        output = first.communicate(timeout=300)[0]
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, output[-3000:]
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    assert f"--resume {sweep_dir}" in output
    assert {r["status"] for r in _rows(sweep_dir)} == {"unfinished"}

    second = _tune("--resume", str(sweep_dir))
    output = second.communicate(timeout=600)[0]
    assert second.returncode == 0, output[-3000:]
    (row,) = _rows(sweep_dir)
    assert row["status"] == "completed" and row["epochs"] == "3/3", row
    # The interrupted trial went on from a registered checkpoint (epoch 1 or 2), not from scratch.
    start = json.loads((Path(row["run directory"]) / "metrics.jsonl").read_text().splitlines()[0])["epoch"]
    assert start > 1, start
