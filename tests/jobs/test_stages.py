"""Staged runs on Ray Train (SemAttNet's four-stage recipe scaled down to the tiny synthetic data), and the DeepSpeed strategy."""
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from core.engine import checkpoint
from jobs import train
from jobs._train.strategy import deepspeed_runs_fp16
from tests.conftest import TINY_DATA, tiny_overrides
from tests.ray_fixtures import local_ray  # noqa: F401  (fixture)

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "depth_semattnet_kitti.yaml"
BRANCHES = ("colour.", "semantic.", "depth.")


def twin(tiny_dataset, tmp_path) -> Path:
    """The recipe's four stages, one epoch each, with a small network on the tiny synthetic data."""
    raw = yaml.safe_load(RECIPE.read_text())
    for stage in raw["stages"]:
        stage["epochs"] = 1
        stage["batch_size"] = 4 if stage.get("batch_size") else None
    raw["task"]["completion"] = {"width": 8, "cspn_iterations": 2, "cspn_kernels": [3, 5]}
    raw["data"] = {"uri": str(tiny_dataset), "synthetic": TINY_DATA.model_dump(), "generate_if_missing": True}
    raw["train"].update(batch_size=2, log_images=1, checkpoints_to_keep=4)
    raw["ray"]["include_dashboard"] = False
    raw["output"]["root"] = str(tmp_path / "runs")
    path = tmp_path / "twin.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def staged_run(local_ray, tiny_dataset, tmp_path_factory):  # noqa: F811
    tmp_path = tmp_path_factory.mktemp("staged")
    assert train.main([str(twin(tiny_dataset, tmp_path))]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def test_the_twin_runs_all_four_stages_and_its_summary_shows_them(staged_run):
    summary = json.loads((staged_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 4
    stages = summary["stages"]
    assert [(s["stage"], s["first_epoch"], s["last_epoch"], s["ended"]) for s in stages] == [
        ("backbone", 1, 1, "last epoch"), ("cspn_init", 2, 2, "last epoch"), ("full", 3, 3, "last epoch"),
        ("full_late", 4, 4, "last epoch")]
    records = [json.loads(line) for line in (staged_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage_event"] for r in records] == ["started, ended (last epoch)"] * 4
    assert [r["batch_size"] for r in records] == [2, 2, 4, 4]
    assert set(records[0]) >= {"loss_weight/coarse_l2", "train/coarse_l2"} and "loss_weight/coarse_l2" not in records[1]
    assert records[2]["lr"] == pytest.approx(0.025298) and records[1]["lr"] == pytest.approx(0.001)
    assert {c["epoch"] for c in summary["lr_changes"]} >= {1, 3}


def test_stage_boundaries_reach_tensorboard(staged_run):
    events = EventAccumulator(str(staged_run / "tb"), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    assert "stages/text_summary" in events.Tags()["tensors"]
    assert [e.value for e in events.Scalars("stage_index")] == [0, 1, 2, 3]


def _weights_after_epoch(run_dir: Path, epoch: int) -> dict[str, torch.Tensor]:
    folders = [p for p in (run_dir / "ray_train").glob("checkpoint_*") if p.is_dir()]
    for folder in folders:
        if checkpoint.saved_epoch(folder) == epoch - 1:
            return checkpoint.read(folder)["model"]
    raise AssertionError(f"no checkpoint of epoch {epoch}")


def test_frozen_branches_stay_bit_identical_through_the_head_stage_and_the_head_trains(staged_run):
    before, after = _weights_after_epoch(staged_run, 1), _weights_after_epoch(staged_run, 2)
    branches = [k for k in before if k.startswith(BRANCHES)]
    assert any("running_mean" in k for k in branches)  # the norm layers' statistics are held too
    assert all(torch.equal(before[k], after[k]) for k in branches)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("refine."))
    assert any(not torch.equal(after[k], _weights_after_epoch(staged_run, 3)[k]) for k in branches)


def test_a_freeze_pattern_matching_nothing_is_refused_before_training(local_ray, tiny_dataset, tmp_path, capsys):  # noqa: F811
    raw = yaml.safe_load(twin(tiny_dataset, tmp_path).read_text())
    raw["stages"][1]["freeze"] = ["colour.*", "backbone.*"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    assert train.main([str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "stage cspn_init: freeze pattern 'backbone.*' matches no parameter" in err and "'refine'" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(not deepspeed_runs_fp16(), reason="DeepSpeed has no fp16 on this CPU (no AVX512-FP16 or AMX-FP16)")
def test_deepspeed_zero2_trains_in_fp16_on_ray_and_every_worker_writes_its_shard(local_ray, tiny_dataset, tmp_path):  # noqa: F811
    overrides = tiny_overrides(tiny_dataset, tmp_path / "runs") + ["scaling.strategy=deepspeed", "scaling.zero_stage=2",
                                                                   "train.epochs=2", "train.precision=fp16"]
    assert train.main(overrides) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2, summary.get("error")
    # DeepSpeed's own fp16 loss scale: its first steps overflow at 2**16, are skipped and counted, and lower it
    assert summary["overflow_steps"] > 0 and summary["loss_scale"] < 2**16
    assert math.isfinite(summary["last"]["train/loss"]) and math.isfinite(summary["last"]["val/miou"])
    folder = Path(summary["checkpoint"])
    assert checkpoint.saved_epoch(folder) == 1 and checkpoint.read(folder)["model"]
    shards = sorted(p.name for p in (folder / "deepspeed" / "state").glob("zero_pp_rank_*"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
