"""The main job end to end on tiny data: 2 Ray Train workers, one epoch, a complete run directory."""
import json

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jobs import train
from tests.conftest import tiny_overrides
from tests.ray_fixtures import local_ray  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def finished_run(local_ray, tiny_dataset, tmp_path_factory):  # noqa: F811
    runs = tmp_path_factory.mktemp("runs")
    assert train.main(tiny_overrides(tiny_dataset, runs) + ["train.epochs=2"]) == 0
    (run_dir,) = runs.iterdir()
    return run_dir


def test_run_directory_is_complete(finished_run):
    names = {p.name for p in finished_run.iterdir()}
    assert {"config.yaml", "env.json", "code.patch", "metrics.jsonl", "summary.json", "tb"} <= names
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert config["scaling"]["num_workers"] == 2 and config["train"]["epochs"] == 2
    env = json.loads((finished_run / "env.json").read_text())
    assert env["key_packages"]["torch"] == "2.11.0" and env["plan"]["cpus_per_worker"] == 0.5
    assert env["git"]["commit"] is None or len(env["git"]["commit"]) == 40


def test_metrics_and_summary_agree(finished_run):
    records = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert 0.0 <= record["val/miou"] <= 1.0 and record["train/loss"] > 0
        assert "baseline/majority_class_miou" in record and record["checkpoint"]
    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert summary["best"]["val/miou"] == max(r["val/miou"] for r in records)
    assert summary["baselines"]["baseline/majority_class_miou"] > 0
    assert summary["data"]["train"] == 16 and summary["data"]["val"] == 8


def test_last_checkpoint_holds_model_optimizer_and_epoch(finished_run):
    import torch

    summary = json.loads((finished_run / "summary.json").read_text())
    state = torch.load(f"{summary['checkpoint']}/state.pt", weights_only=True)
    assert set(state) == {"model", "optimizer", "train_state"} and state["train_state"]["epoch"] == 1


def test_report_reads_the_real_run(finished_run, tmp_path, capsys):
    from jobs import report

    assert report.main([str(finished_run.parent), "--out", str(tmp_path)]) == 0
    markdown = (tmp_path / "report.md").read_text()
    assert f"| {finished_run.name} | segmentation |" in markdown and "| 2/2 |" in markdown and "| completed |" in markdown


def test_tensorboard_reader_sees_scalars_and_prediction_images(finished_run):
    events = EventAccumulator(str(finished_run / "tb"))
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "val/miou", "val/pixel_acc", "lr"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("val/miou")] == [1, 2]
    assert {"val/prediction_0", "val/prediction_1"} <= set(tags["images"])
    image = events.Images("val/prediction_0")[-1]
    assert image.width == 3 * image.height, "input, truth and prediction side by side"
