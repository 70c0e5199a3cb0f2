"""A run stopped inside an epoch mid-stage and resumed with --resume ends with the same weights as one that was never stopped.

Each jobs.train here is its own process with its own local Ray; the interrupted one gets SIGTERM,
as a scheduler or `kill` sends it, once a checkpoint inside its third epoch is registered
(train.checkpoint_every), and must stop its workers, say so in summary.json and exit non-zero. So
no Ray instance of this test process may run at the same time.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import ray
import torch

from core.engine import checkpoint
from core.config.loading import load_config
from jobs._train.resume import latest_checkpoint, latest_registered_metrics
from jobs import train
from jobs._train.run_storage import checkpoint_storage
from data_pipeline.sources.synthetic import generate
from data_pipeline.storage.datastore import DataStore
from tests.conftest import SMALL_MODEL, TINY_DATA, tiny_overrides

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 4
STOPPED_IN = 3  # the epoch the stop lands in, after its mid-epoch checkpoint: mid-stage, and inside the epoch
STEPS = 8  # per epoch: 16 samples in batches of 2 on one worker
# The run's one mid-epoch checkpoint: after step 1 of epoch 3 (steps count over the run), so that the 7 steps, the
# validation and the checkpoint left of the epoch keep the stop inside it though the stop comes after the registration.
CHECKPOINT_AT_STEP = (STOPPED_IN - 1) * STEPS + 1
SAMPLES_BEFORE_STOP = 2


def _overrides(tiny_dataset, root: Path) -> list[str]:
    stages = ("stages=[{name: warmup, epochs: 1}, {name: main, epochs: 3, optimizer: {lr: 0.003}, "
              "plateau: {patience: 0, factor: 0.5}}]")
    return [o for o in tiny_overrides(tiny_dataset, root) if not o.startswith(("train.epochs", "train.batch_size"))] + [
        stages, SMALL_MODEL, f"train.epochs={EPOCHS}", "scaling.num_workers=1", "data.preserve_order=true", "train.checkpoints_to_keep=5", "ray.num_cpus=2",
        "train.progress_every_s=1", "train.batch_size=2", f"train.checkpoint_every={{steps: {CHECKPOINT_AT_STEP}}}"]


def _train(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "jobs.train", *args], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen) -> str:
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output[-3000:]
    return output


def _stop_inside_epoch(process: subprocess.Popen, root: Path, epoch: int, timeout_s: float = 300) -> tuple[str, list]:
    """SIGTERM the run once Ray Train registered a checkpoint inside `epoch`; (its output, the processes it had started
    that outlived it). Registered means listed in Ray Train's snapshot: the checkpoint's files appear before that."""
    deadline = time.monotonic() + timeout_s
    started = []
    try:
        while all(latest_registered_metrics(run_dir).get("inside_epoch") != epoch for run_dir in root.glob("*/")):
            assert process.poll() is None, process.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the run did not reach its checkpoint in time"
            time.sleep(0.05)
        started = psutil.Process(process.pid).children(recursive=True)  # its Ray, its workers among them
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=120)[0]
        return output, psutil.wait_procs(started, timeout=30)[1]
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its process group, whatever is left of it
        except ProcessLookupError:
            pass
        process.wait()


PROGRESS = re.compile(rf"epoch (\d+)/{EPOCHS}  step (\d+)/{STEPS} \(\d+%\)  [\d.]+ samples/s  loss [\d.e+-]+  lr [\d.e+-]+  "
                      r"ETA epoch (\d+:\d\d:\d\d), run (\d+:\d\d:\d\d)")


def _seconds(clock: str) -> int:
    hours, minutes, seconds = map(int, clock.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def _check_progress_lines(output: str) -> None:
    """Lines inside the epochs with a sane ETA; none of Ray Train's per-epoch INFO lines."""
    found = [(int(epoch), int(step), _seconds(epoch_eta), _seconds(run_eta))
             for epoch, step, epoch_eta, run_eta in PROGRESS.findall(output)]
    lines_per_epoch = [sum(1 for e, *_ in found if e == epoch) for epoch in range(1, EPOCHS + 1)]
    assert max(lines_per_epoch) >= 3, (lines_per_epoch, output[-3000:])
    for epoch, step, epoch_left, run_left in found:
        assert epoch_left <= run_left < 600, "the run's ETA holds the epoch's, and a tiny run takes no minutes"
        assert step < STEPS or epoch_left == 0
    assert "Checkpoint successfully created" not in output and "Moving model to device" not in output


def _last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """From the latest checkpoint Ray Train registered: the SIGTERM may have cut an upload off, leaving a partial state.pt."""
    latest = latest_checkpoint(checkpoint_storage(load_config(run_dir / "config.yaml"), run_dir))
    return checkpoint.read(Path(latest))["model"]


def test_a_run_stopped_by_sigterm_mid_stage_resumes_and_ends_with_the_weights_of_an_uninterrupted_run(tiny_dataset, tmp_path,
                                                                                                   capsys):
    uninterrupted = _train(*_overrides(tiny_dataset, tmp_path / "whole"))  # side by side: each waits mostly on startup
    interrupted = tmp_path / "interrupted"
    process = _train(*_overrides(tiny_dataset, interrupted))
    output, outlived = _stop_inside_epoch(process, interrupted, epoch=STOPPED_IN)
    _check_progress_lines(_finish(uninterrupted))
    (whole,) = (tmp_path / "whole").iterdir()
    (run_dir,) = interrupted.iterdir()
    assert process.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert not outlived, f"still running after the run stopped: {[p.pid for p in outlived]}"
    stopped = json.loads((run_dir / "summary.json").read_text())
    stopped_at = stopped["epochs_completed"]
    assert stopped["status"] == "interrupted" and stopped["error"] == "stopped by SIGTERM", stopped
    assert stopped_at == STOPPED_IN - 1, "the stop landed after the epoch it was meant to cut"
    assert checkpoint.saved_train_state(Path(stopped["checkpoint"]))["inside"]["samples"] == SAMPLES_BEFORE_STOP
    assert f"python -m jobs.train --resume {run_dir}" in output
    _check_refused_on_other_data(run_dir, tiny_dataset, tmp_path, capsys)

    output = _finish(_train("--resume", str(run_dir)))
    assert f"resuming after epoch {stopped_at} and {SAMPLES_BEFORE_STOP} samples of epoch {STOPPED_IN}" in output

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == EPOCHS and summary["resumes"] == 1, summary
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))
    assert [r["resumes"] for r in records] == [0] * stopped_at + [1] * (EPOCHS - stopped_at)
    whole_records = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records] == [r["lr"] for r in whole_records]  # the plateau schedule went on where it was
    assert [r["train/loss"] for r in records] == pytest.approx([r["train/loss"] for r in whole_records], rel=1e-6)
    assert [r["train/samples"] for r in records] == [16] * EPOCHS  # the cut epoch's too: none twice, none left out
    assert [r["train/sample_digest"] for r in records] == [r["train/sample_digest"] for r in whole_records]

    expected, resumed = _last_weights(whole), _last_weights(run_dir)
    assert all(torch.equal(expected[name], resumed[name]) for name in expected), \
        [name for name in expected if not torch.equal(expected[name], resumed[name])]


def _check_refused_on_other_data(run_dir: Path, data: Path, tmp_path: Path, capsys) -> None:
    """A copy of the run pointed at another data set: its mid-epoch checkpoint is refused before Ray starts."""
    other = tmp_path / "other_data"
    generate(DataStore.at(other), TINY_DATA.model_copy(update={"seed": TINY_DATA.seed + 1}))
    moved = tmp_path / "moved" / run_dir.name
    shutil.copytree(run_dir, moved)
    (moved / "config.yaml").write_text((moved / "config.yaml").read_text().replace(str(data), str(other)))
    assert train.main(["--resume", str(moved)]) == 2
    said = capsys.readouterr().err
    assert (f"stopped inside epoch {STOPPED_IN} at sample {SAMPLES_BEFORE_STOP} of a train split other than the one at "
            f"data.uri now") in said, said
    assert not ray.is_initialized(), "refused after Ray started"


def test_resume_takes_scaling_overrides_only():
    assert train._parse(["--resume", "runs/x", "scaling.num_workers=1"]).overrides == ["scaling.num_workers=1"]
    with pytest.raises(SystemExit):
        train._parse(["--resume", "runs/x", "train.epochs=3"])


def test_resuming_a_run_without_a_checkpoint_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "ray_train" / "checkpoint_0").mkdir(parents=True)  # a checkpoint whose state.pt never got written
    (run_dir / "config.yaml").write_text("name: empty\n")
    assert train.main(["--resume", str(run_dir)]) == 2
    assert "holds no complete checkpoint" in capsys.readouterr().err
