"""Environment fingerprints: read from env.json, compared, kept as a lock, and the runs of a folder grouped by them."""
import json
from pathlib import Path

import pytest
import yaml

from core.config.errors import ConfigError
from core.reporting.environments import environment_rows, markdown
from core.reporting.experiments import load_runs
from core.runs import env_lock
from core.runs.fingerprint import DRIVER, FIELDS, current, difference_table, differences, node_type, of_env, torch_cuda
from core.runs.run_dir import last_completed
from jobs import report

ENV = {"python": "3.11.7", "torch_cuda": "13.0", "gpus": ["NVIDIA H200", "NVIDIA H200"], "nvidia_driver": "580.65",
       "key_packages": {"torch": "2.11.0", "easypytorch3d": "0.7.9.post1", "ray": "2.60.0", "deepspeed": "0.19.8", "numpy": "2.4.6"}}


def _run(root: Path, folder: str, name: str, env: dict, status: str, best: float | None, error: str | None = None) -> Path:
    run_dir = root / folder
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": name}))
    (run_dir / "env.json").write_text(json.dumps(env))
    summary = {"status": status, "error": error, "monitor": "val/miou", "monitor_mode": "max",
               "best": {"epoch": 1, "val/miou": best} if best is not None else None}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def _older_torch() -> dict:
    return {**ENV, "key_packages": {**ENV["key_packages"], "torch": "2.10.0"}}


def test_an_env_json_yields_the_fingerprint_this_process_reads_of_itself():
    assert of_env(ENV)[DRIVER] == {"python": "3.11.7", "torch": "2.11.0", "cuda": "13.0", "nvidia_driver": "580.65",
                                   "pytorch3d": "0.7.9.post1", "ray": "2.60.0", "deepspeed": "0.19.8", "numpy": "2.4.6",
                                   "gpu": "NVIDIA H200"}
    mine = current()
    assert set(mine) == set(FIELDS) and mine["ray"] == "2.60.0"
    import torch

    assert torch_cuda() == torch.version.cuda  # read from the file, without importing torch


def test_differences_are_tabled_per_place_beside_every_environment_compared():
    now = {DRIVER: of_env(ENV)[DRIVER], "8 CPU, 1 GPU (A10G)": {**of_env(ENV)[DRIVER], "gpu": "NVIDIA A10G"}}
    last_run = {DRIVER: of_env(_older_torch())[DRIVER]}
    lock = {DRIVER: of_env(ENV)[DRIVER], "8 CPU, 1 GPU (A10G)": {**of_env(ENV)[DRIVER], "gpu": "NVIDIA A10G", "numpy": "1.26.4"}}
    assert differences(now, last_run) == [(DRIVER, "torch", "2.10.0", "2.11.0")]
    table = difference_table(now, [("last run", last_run), ("lock", lock)])
    assert table[0].split() == ["where", "what", "now", "last", "run", "lock"]
    assert table[1].split() == [DRIVER, "torch", "2.11.0", "2.10.0", "2.11.0"]
    assert table[2].split() == ["8", "CPU,", "1", "GPU", "(A10G)", "numpy", "2.4.6", "-", "1.26.4"]
    assert difference_table(now, [("same", {DRIVER: of_env(ENV)[DRIVER]})]) == []
    assert node_type({"CPU": 8.0, "GPU": 1.0, "accelerator_type:A10G": 1.0, "memory": 1e9}) == "8 CPU, 1 GPU (A10G)"


def test_a_lock_written_from_a_run_reads_back_and_a_bad_one_names_its_key(tmp_path):
    run_dir = _run(tmp_path / "runs", "20261201-000000_a_x", "a", {**ENV, "nodes": {"4 CPU": of_env(ENV)[DRIVER]}}, "completed", 0.5)
    lock = tmp_path / "env.lock.yaml"
    assert report.main(["--lock", str(run_dir), "--out", str(lock)]) == 0
    assert env_lock.read(lock) == of_env({**ENV, "nodes": {"4 CPU": of_env(ENV)[DRIVER]}})
    lock.write_text("environments:\n  driver: {torch: 2.11.0, cuda: 13.0, pytorch: 1.6}\n")
    with pytest.raises(ConfigError, match=r"environments.driver.pytorch is not a field; the fields are python, torch"):
        env_lock.read(lock)
    lock.write_text("environments:\n  driver: {torch: 2.11.0, cuda: 13.0}\n")
    assert env_lock.read(lock)[DRIVER]["cuda"] == "13.0", "a version YAML reads as a number is compared as text"
    with pytest.raises(ConfigError, match="does not exist; write one with python -m jobs.report --lock RUN_DIR"):
        env_lock.read(tmp_path / "missing.yaml")


def test_the_last_completed_run_is_the_newest_of_that_name_that_completed(tmp_path):
    _run(tmp_path, "20261201-090000_exp_seg", "exp", ENV, "completed", 0.4)
    wanted = _run(tmp_path, "20261202-090000_exp_seg", "exp", ENV, "completed", 0.5)
    _run(tmp_path, "20261203-090000_exp_seg", "exp", ENV, "failed", None)
    _run(tmp_path, "20261204-090000_exp_b_seg", "exp_b", ENV, "completed", 0.6)
    assert last_completed(tmp_path, "exp") == wanted
    assert last_completed(tmp_path, "other") is None and last_completed(tmp_path / "none", "exp") is None


def test_report_envs_groups_runs_by_environment_with_how_they_ended_and_their_best(tmp_path, capsys):
    _run(tmp_path, "20261201-090000_exp_seg", "exp", ENV, "completed", 0.41)
    _run(tmp_path, "20261202-090000_exp_seg", "exp", _older_torch(), "failed", None,
         error="WorkerGroupError: NonFiniteError: non-finite loss term(s) cross_entropy at step 3 of epoch 2")
    _run(tmp_path, "20261203-090000_exp_seg", "exp", ENV, "completed", 0.47)
    rows = environment_rows(load_runs(tmp_path))
    assert [row["runs"] for row in rows] == ["2: 20261201-090000_exp_seg, 20261203-090000_exp_seg", "1: 20261202-090000_exp_seg"]
    assert [row["ended"] for row in rows] == ["2 completed", "1 diverged"]
    assert rows[0]["best"] == "val/miou 0.47 (20261203-090000_exp_seg)" and rows[1]["best"] == "-"
    assert "torch 2.11.0" in rows[0]["environment"] and "torch 2.10.0" in rows[1]["environment"]
    assert report.main([str(tmp_path), "--envs"]) == 0
    assert capsys.readouterr().out == markdown(rows)
