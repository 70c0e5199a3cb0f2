"""configs/lighting.yaml end to end on tiny rooms: 2 Ray Train workers, the metrics summed across them beside both
baselines, the previews in TensorBoard, the history tables, and each metric's direction for jobs.report."""
import json

import pytest
from openpyxl import load_workbook
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jobs import train
from jobs._cli import DEFAULT_CONFIG
from tests.conftest import TINY_ROOMS
from tests.ray_fixtures import local_ray  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def lighting_run(local_ray, tiny_rooms, tmp_path_factory):  # noqa: F811
    runs = tmp_path_factory.mktemp("runs")
    synthetic = "data.synthetic={" + ", ".join(f"{k}: {v}" for k, v in TINY_ROOMS.model_dump().items()) + "}"
    assert train.main([str(DEFAULT_CONFIG.parent / "lighting.yaml"), f"data.uri={tiny_rooms}", synthetic, f"output.root={runs}",
                       "task.lighting={features: 4, volume_channels: 4, resolution: 8, samples_per_ray: 16, view_size: 12}",
                       "train.epochs=2", "train.batch_size=1", "train.log_images=1", "ray.include_dashboard=false"]) == 0
    (run_dir,) = runs.iterdir()
    return run_dir


def test_the_run_reports_environment_maps_and_novel_views_beside_the_baselines(lighting_run):
    summary = json.loads((lighting_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["monitor"] == "val/envmap_rmse" and summary["monitor_mode"] == "min"
    assert summary["metric_modes"]["val/novel_psnr"] == "max"
    last = summary["last"]
    assert {"val/envmap_rmse", "val/envmap_psnr", "val/envmap_ssim", "val/novel_psnr", "val/novel_ssim"} <= set(last)
    assert {"baseline/mean_envmap_envmap_rmse", "baseline/image_colour_envmap_rmse", "baseline/input_view_novel_psnr"} <= set(last)
    assert {f"train/{name}" for name in ("split", "layer", "direct", "self_view", "envmap", "novel_view", "ssim")} <= set(last)


def test_tensorboard_shows_input_environment_maps_novel_views_and_alpha(lighting_run):
    events = EventAccumulator(str(lighting_run / "tb"))
    events.Reload()
    image = events.Images("val/prediction_0")[-1]
    assert image.width == 5 * image.height


def test_history_xlsx_holds_a_row_per_epoch_with_the_losses_and_metrics(lighting_run):
    sheet = load_workbook(lighting_run / "history.xlsx").active
    header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    records = [json.loads(line) for line in (lighting_run / "metrics.jsonl").read_text().splitlines()]
    assert [row[header.index("epoch")] for row in rows] == [r["epoch"] for r in records] == [1, 2]
    assert [row[header.index("val/envmap_rmse")] for row in rows] == pytest.approx([r["val/envmap_rmse"] for r in records], rel=1e-14)
