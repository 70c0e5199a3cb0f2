"""A run stored on S3 (moto_server behind a forwarder that can take it off the network) while the endpoint goes away.

An outage shorter than output.storage_retry_s costs nothing: the upload waits and the run finishes;
and over a slow link the workers train on while a checkpoint is copied (train.checkpoint_upload=async,
the default), each checkpoint registered once whole and in order, no local copy left behind.
A longer one fails the run with the checkpoint it could not write named, and the checkpoints S3
already held stay the ones --resume goes on from, also from the S3 folder alone on a machine that
never held the run directory.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import ray
import torch

from core.engine import checkpoint
from core.config.loading import load_config, to_yaml
from jobs._train.checkpoint_uploads import SPOOL
from jobs._train.resume import find_resume_point
from data_pipeline.storage.datastore import DataStore
from jobs import evaluate, train
from jobs._train.run_storage import checkpoint_storage, copy_run_files, run_store
from tests.conftest import SMALL_MODEL, tiny_overrides
from tests.s3_server import SECRET, ray_with_s3_credentials, s3, s3_dataset, s3_proxy  # noqa: F401  (fixtures)
from tests.tcp_proxy import TcpProxy

EPOCHS = 3
UPLOAD_S = 8.0  # each checkpoint's copy through the slowed link, about
CHECKPOINT_BYTES = 51e6  # FPN on MobileNetV2 (SMALL_MODEL) with its AdamW state


def _records(runs: Path) -> int:
    return sum(len(path.read_text().splitlines()) for path in runs.glob("*/metrics.jsonl"))


def _cut_after_first_epoch(outage: TcpProxy, runs: Path, seconds: float | None, seen: list[int], timeout_s: float = 300) -> None:
    """Take S3 off the network once epoch 1's checkpoint is registered; bring it back after `seconds` (None: never)."""
    deadline = time.monotonic() + timeout_s
    while _records(runs) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    outage.down()
    if seconds is not None:
        time.sleep(seconds)
        seen.append(_records(runs))  # epochs registered while S3 was away
        outage.up()


def _train_through_an_outage(s3, outage: TcpProxy, data: list[str], runs: Path, seconds: float | None, extra: list[str]):
    """data: the overrides that name the data set (its data.uri first)."""
    seen: list[int] = []
    cutter = threading.Thread(target=_cut_after_first_epoch, args=(outage, runs, seconds, seen))
    cutter.start()
    base = [o for o in tiny_overrides(Path("unused"), runs) if not o.startswith(("train.epochs", "data.uri"))]
    code = train.main([*base, *data, SMALL_MODEL, f"train.epochs={EPOCHS}", f"output.storage=s3://{s3.bucket}/checkpoints",
                       f"output.endpoint_url=http://127.0.0.1:{outage.port}", *extra])
    cutter.join()
    (run_dir,) = runs.iterdir()
    return code, run_dir, json.loads((run_dir / "summary.json").read_text()), seen


def test_a_slow_s3_with_an_outage_shorter_than_the_retries_loses_nothing_nor_holds_the_training_up(
        ray_with_s3_credentials, s3, s3_dataset, s3_proxy, tmp_path, capsys):
    # The data set is read straight from the endpoint, not through the proxy the outage cuts and the link slows.
    data = [f"data.uri={s3_dataset.uri}", f"data.endpoint_url={s3.url}", "data.generate_if_missing=false"]
    s3_proxy.throttle(CHECKPOINT_BYTES / UPLOAD_S)
    code, run_dir, summary, seen = _train_through_an_outage(s3, s3_proxy, data, tmp_path / "runs", 12, ["train.best_checkpoints=1"])
    s3_proxy.throttle(None)
    assert code == 0 and summary["status"] == "completed", summary.get("error")
    assert summary["data"]["uri"] == s3_dataset.uri == f"s3://{s3.bucket}/tiny"
    assert seen == [1], "epoch 2's checkpoint should have waited for S3"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    first, second = records[:2]
    assert first["checkpoint_upload_s"] > UPLOAD_S / 2 and 0 < first["checkpoint_write_s"] < first["checkpoint_upload_s"], first
    # Epoch 2 trained, and reached its own report, well before epoch 1's checkpoint was stored: a synchronous copy
    # holds the workers until it is (and Ray Train registers it within its 2 s poll).
    assert second["wall_time_s"] + 3 < first["wall_time_s"] + first["checkpoint_upload_s"], (first, second)
    assert not list(SPOOL.glob("*/checkpoint-*")), "each local copy is deleted once stored"
    prefix = f"s3://{s3.bucket}/checkpoints/{run_dir.name}/ray_train/checkpoint_"
    assert summary["checkpoint"].startswith(prefix)
    resume = find_resume_point(str(run_dir), checkpoint_storage)
    assert resume.checkpoint == summary["checkpoint"] and resume.progress.epoch == EPOCHS - 1
    remote = run_store(resume.config, run_dir)
    assert json.loads(remote.read_bytes("summary.json")) == summary
    assert remote.read_bytes("metrics.jsonl") == (run_dir / "metrics.jsonl").read_bytes()
    assert remote.exists("config.yaml") and remote.fs.glob(remote.path("tb/events.out.tfevents.*"))
    (best,) = summary["best_checkpoints"]
    copy = f"best/epoch_{best['epoch']:04d}"
    assert best["checkpoint"] == remote.display(copy) and remote.exists(f"{copy}/state.pt")
    session_logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"  # every worker's output
    for path in [*run_dir.rglob("*"), *session_logs.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"the secret key leaked into {path}"
    assert SECRET not in "".join(capsys.readouterr())
    assert evaluate.main([str(run_dir)]) == 0
    scored = json.loads((run_dir / "eval_val" / "metrics.json").read_text())
    assert scored["checkpoint"] == summary["checkpoint"]

    shutil.rmtree(run_dir)  # the driver's machine is gone; the run is evaluated from its S3 folder
    assert evaluate.main([remote.uri, "--endpoint-url", s3.url]) == 0
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert json.loads((run_dir / "eval_val" / "metrics.json").read_text()) == scored
    assert json.loads(remote.read_bytes("eval_val/metrics.json")) == scored, "the S3 folder should hold the evaluation"
    assert remote.exists("eval_val/table.md") and remote.fs.glob(remote.path("eval_val/previews/*.png"))


def test_an_s3_outage_longer_than_the_retries_fails_the_run_and_keeps_the_last_checkpoint(
        ray_with_s3_credentials, s3, s3_proxy, tiny_dataset, tmp_path, capsys):
    code, run_dir, summary, _ = _train_through_an_outage(s3, s3_proxy, [f"data.uri={tiny_dataset}"], tmp_path / "runs", None,
                                                         ["output.storage_retry_s=3"])
    assert code == 1 and summary["status"] == "failed"
    remote = run_store(load_config(run_dir / "config.yaml"), run_dir)
    said = capsys.readouterr()
    assert f"or, on another machine: python -m jobs.train --resume {remote.uri}\n" in said.out
    # Once the checkpoint storage did not answer, the run's end asks it nothing more (each would wait the retries again).
    assert f"the run's files were not copied to s3://{s3.bucket}/checkpoints (" in said.err and summary["restarts"] is None
    where = f"s3://{s3.bucket}/checkpoints/{run_dir.name}/ray_train"
    # The worker's upload of epoch 2's checkpoint or the controller's update of its list fails first, whichever comes first.
    assert f"checkpoint storage {where} did not answer" in summary["error"], summary["error"]
    assert "output.storage_retry_s=3 s" in summary["error"]
    s3_proxy.up()
    resume = find_resume_point(str(run_dir), checkpoint_storage)
    assert resume.checkpoint == summary["checkpoint"] and resume.checkpoint.startswith(where) and resume.progress.epoch == 0
    storage = checkpoint_storage(resume.config, run_dir)
    with storage.fs.open(f"{resume.checkpoint.removeprefix('s3://')}/{checkpoint.STATE_FILE}", "rb") as handle:
        assert torch.load(handle, weights_only=True)["train_state"]["epoch"] == 0

    first_epoch = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    shutil.rmtree(run_dir)  # the driver's machine is gone; S3 holds the run
    if remote.exists("metrics.jsonl"):  # as if the outage had cut off its copy after epoch 1: Ray Train's list restores it
        remote.fs.rm(remote.path("metrics.jsonl"))
    assert train.main(["--resume", remote.uri, "--endpoint-url", f"http://127.0.0.1:{s3_proxy.port}"]) == 0
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert resumed["status"] == "completed" and resumed["checkpoint"].startswith(where), resumed.get("error")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # Restored from the worker's report, which lacks what the driver adds once the checkpoint is stored.
    stored = {name: value for name, value in first_epoch.items() if name != "checkpoint_upload_s"}
    assert [r["epoch"] for r in records] == [1, 2, 3] and records[0] == stored
    assert (run_dir / "env.json").is_file() and any((run_dir / "tb").glob("events.out.tfevents.*"))


def test_resuming_from_an_s3_folder_that_is_not_a_stored_run_is_refused_with_what_to_give(s3, tiny_dataset, tmp_path, capsys):
    remote = DataStore.at(f"s3://{s3.bucket}/elsewhere/some_run", s3.url)
    endpoint = ["--endpoint-url", s3.url]
    assert train.main(["--resume", remote.uri, *endpoint]) == 2
    assert "holds no config.yaml; give the S3 folder of a run" in capsys.readouterr().err

    config = load_config(None, [*tiny_overrides(tiny_dataset, tmp_path / "runs"), f"output.storage=s3://{s3.bucket}/checkpoints"])
    remote.write_bytes("config.yaml", to_yaml(config).encode())
    assert train.main(["--resume", remote.uri, *endpoint]) == 2
    assert f"output.storage=s3://{s3.bucket}/checkpoints, so its checkpoints are not in this folder; " \
           f"give s3://{s3.bucket}/checkpoints/some_run" in capsys.readouterr().err

    stored = DataStore.at(f"s3://{s3.bucket}/checkpoints/some_run", s3.url)
    stored.write_bytes("config.yaml", to_yaml(config).encode())
    (tmp_path / "runs" / "some_run").mkdir(parents=True)
    assert train.main(["--resume", stored.uri, *endpoint]) == 2
    assert f"already exists on this machine; its files are the ones the S3 folder holds copies of, so go on with " \
           f"--resume {tmp_path / 'runs' / 'some_run'}" in capsys.readouterr().err


def test_run_files_unchanged_since_their_last_copy_are_not_sent_again(s3, tmp_path):
    run_dir = tmp_path / "some_run"
    (run_dir / "tb").mkdir(parents=True)
    (run_dir / "tb" / "events.1").write_text("epoch 1")
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1}\n')
    remote = DataStore.at(f"s3://{s3.bucket}/copies/some_run", s3.url)
    copied: dict = {}
    copy_run_files(run_dir, remote, ["metrics.jsonl", "tb"], copied)
    assert remote.read_bytes("tb/events.1") == b"epoch 1"
    remote.fs.rm(remote.path("tb/events.1"))  # so that a second upload would show
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 2}\n')
    copy_run_files(run_dir, remote, ["metrics.jsonl", "tb"], copied)
    assert not remote.exists("tb/events.1")
    assert remote.read_bytes("metrics.jsonl") == b'{"epoch": 1}\n{"epoch": 2}\n'


def test_evaluating_an_s3_folder_that_is_not_a_stored_run_is_refused_with_what_to_give(s3, capsys):
    assert evaluate.main([f"s3://{s3.bucket}/no_run_here/some_run", "--endpoint-url", s3.url]) == 2
    assert (f"jobs.evaluate s3://{s3.bucket}/no_run_here/some_run: holds no config.yaml; give the S3 folder of a run"
            in capsys.readouterr().err)
