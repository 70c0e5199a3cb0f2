"""configs/implicit.yaml end to end on tiny bodies: 2 Ray Train workers drawing points in Ray Data's collate,
the metrics summed across them, meshes in TensorBoard, and jobs.report's input and prior columns."""
import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jobs import report, train
from jobs._cli import DEFAULT_CONFIG
from tests.conftest import TINY_BODIES
from tests.ray_fixtures import local_ray  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def implicit_run(local_ray, tiny_bodies, tmp_path_factory):  # noqa: F811
    runs = tmp_path_factory.mktemp("runs")
    synthetic = "data.synthetic={" + ", ".join(f"{k}: {v}" for k, v in TINY_BODIES.model_dump().items()) + "}"
    assert train.main([str(DEFAULT_CONFIG.parent / "implicit.yaml"), f"data.uri={tiny_bodies}", synthetic, f"output.root={runs}",
                       "task.implicit={features: 8, levels: 2, mlp: [32], points: 128, resolution: 16, prior: skeleton_sdf, "
                       "prior_noise: 0.02}", "train.epochs=2", "train.batch_size=2", "train.log_images=2",
                       "ray.include_dashboard=false"]) == 0
    (run_dir,) = runs.iterdir()
    return run_dir


def test_the_run_reports_its_surfaces_beside_both_baselines(implicit_run):
    summary = json.loads((implicit_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["monitor"] == "val/chamfer_cm"
    records = [json.loads(line) for line in (implicit_run / "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"val/chamfer_cm", "val/p2s_cm", "val/normal_cos", "val/iou", "val/empty_reconstructions"} <= set(last)
    assert {"baseline/mean_shape_chamfer_cm", "baseline/visual_hull_chamfer_cm", "baseline/visual_hull_iou"} <= set(last)
    assert records[0]["baseline/visual_hull_chamfer_cm"] == last["baseline/visual_hull_chamfer_cm"], "the same samples each epoch"


def test_tensorboard_shows_normal_renders_and_the_reconstructed_meshes(implicit_run):
    events = EventAccumulator(str(implicit_run / "tb"), size_guidance={"tensors": 0})
    events.Reload()
    image = events.Images("val/prediction_0")[-1]
    assert image.width == 3 * image.height, "input, true normals and the reconstruction's normals side by side"
    assert any(tag.startswith("val/mesh") for tag in events.Tags()["tensors"])


def test_the_report_has_a_row_per_run_with_its_input_variant_and_prior(implicit_run, tmp_path):
    assert report.main([str(implicit_run.parent), "--out", str(tmp_path)]) == 0
    table = (tmp_path / "report.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| run |"))
    assert "| inputs | prior |" in header
    assert "| rgb+normal_front+normal_back | skeleton_sdf (noise 0.02 m) |" in table
