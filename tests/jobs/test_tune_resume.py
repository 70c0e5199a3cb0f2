"""An interrupted sweep resumes: the interrupted trial continues from its checkpoint.

The sweep is interrupted as a user does it, by SIGINT (Ctrl+C) to the process running jobs.tune: this one, while
Tune's handler owns the signal. It goes on with jobs.tune --resume in the same Ray instance, which the tests share.
"""
import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

from jobs import tune
from tests.ray_fixtures import local_ray_with_dashboard  # noqa: F401  (fixture)
from tests.sweep_files import sweep_file


def _interrupt_at_second_checkpoint(sweeps: Path, done: threading.Event, timeout_s: float = 300) -> None:
    """SIGINT to this process once the trial's epoch 2 checkpoint lands in its folder of the sweep's tune/.

    A checkpoint folder appears before Tune's driver registers it (a separate save task), so an
    interrupt right then loses that epoch; by the time epoch 2's folder appears, epoch 1's is registered.
    """
    deadline = time.monotonic() + timeout_s
    while not done.is_set() and time.monotonic() < deadline:
        if any(sweeps.glob("*/tune/*/checkpoint_000001")):
            os.kill(os.getpid(), signal.SIGINT)
            return
        time.sleep(0.1)


def _rows(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "results.csv") as handle:
        return list(csv.DictReader(handle))


def test_interrupted_sweep_resumes_where_it_stopped(local_ray_with_dashboard, tiny_dataset, tmp_path, capsys):  # noqa: F811
    path = sweep_file(tmp_path, tiny_dataset, epochs=3, space={"train.optimizer.lr": {"grid": [0.001]}}, max_concurrent=1)
    done = threading.Event()
    interrupter = threading.Thread(target=_interrupt_at_second_checkpoint, args=(tmp_path / "sweeps", done))
    late = []  # a SIGINT after the sweep's end must not end the test session
    previous = signal.signal(signal.SIGINT, lambda *_: late.append(True))
    interrupter.start()
    try:
        code = tune.main([str(path)])
    finally:
        done.set()
        interrupter.join()
        signal.signal(signal.SIGINT, previous)
    output = capsys.readouterr().out
    assert code == 130 and not late, output[-3000:]
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    assert f"--resume {sweep_dir}" in output
    assert {r["status"] for r in _rows(sweep_dir)} == {"unfinished"}

    assert tune.main(["--resume", str(sweep_dir)]) == 0
    (row,) = _rows(sweep_dir)
    assert row["status"] == "completed" and row["epochs"] == "3/3", row
    # The interrupted trial went on from a registered checkpoint (epoch 1 or 2), not from scratch.
    start = json.loads((Path(row["run directory"]) / "metrics.jsonl").read_text().splitlines()[0])["epoch"]
    assert start > 1, start
