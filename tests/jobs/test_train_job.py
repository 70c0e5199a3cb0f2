"""The main job end to end on tiny data: 2 Ray Train workers, three epochs, a complete run directory."""
import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from core.engine import checkpoint
from core.runs.run_dir import TRAIN_STORAGE
from core.runs.fingerprint import package_version
from jobs._train.resume import find_resume_point
from data_pipeline.format import codec, shards
from jobs import train
from jobs._train.run_storage import checkpoint_storage
from tests.conftest import tiny_overrides
from tests.ray_fixtures import local_ray  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def finished_run(local_ray, tiny_dataset, tmp_path_factory):  # noqa: F811
    runs = tmp_path_factory.mktemp("runs")
    augment = "data.augment={hflip: 0.5, scale: [0.75, 1.25], color_jitter: 0.2, weather: {fog: 0.5, rain: 0.5}}"
    kept = ["train.checkpoints_to_keep=1", "train.checkpoints_kept_by=epoch", "train.best_checkpoints=1", "train.step_scalars_every=2"]
    assert train.main(tiny_overrides(tiny_dataset, runs) + ["train.epochs=3", augment, *kept]) == 0
    (run_dir,) = runs.iterdir()
    return run_dir


def test_run_directory_is_complete(finished_run):
    names = {p.name for p in finished_run.iterdir()}
    assert {"config.yaml", "env.json", "code.patch", "metrics.jsonl", "summary.json", "tb"} <= names
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert config["scaling"]["num_workers"] == 2 and config["train"]["epochs"] == 3
    env = json.loads((finished_run / "env.json").read_text())
    assert env["key_packages"]["torch"] == package_version("torch") and env["plan"]["cpus_per_worker"] == 0.5
    assert env["git"]["commit"] is None or len(env["git"]["commit"]) == 40


def test_metrics_and_summary_agree(finished_run):
    records = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for record in records:
        assert 0.0 <= record["val/miou"] <= 1.0 and record["train/loss"] > 0
        assert "baseline/majority_class_miou" in record and record["checkpoint"]
        assert 100 < record["memory/worker_peak_mb"] < 24 * 1024  # a worker's peak RSS: torch and a ResNet-18 at least
    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    assert summary["best"]["val/miou"] == max(r["val/miou"] for r in records)
    assert summary["baselines"]["baseline/majority_class_miou"] > 0
    assert summary["data"]["train"] == 16 and summary["data"]["val"] == 8


def test_the_history_tables_hold_metrics_jsonl_one_row_per_epoch(finished_run):
    records = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    sheet = openpyxl.load_workbook(finished_run / "history.xlsx").active
    header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert header[:4] == ["epoch", "stage", "wall_time_s", "lr"] and {"train/loss", "val/miou"} <= set(header)
    assert rows == [pytest.approx([record.get(key) for key in header], rel=1e-14) for record in records]  # Excel keeps 15 digits
    assert 0 < rows[0][2] < rows[1][2] < rows[2][2]  # wall time grows with the epochs
    with open(finished_run / "history.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [float(row["val/miou"]) for row in table] == [r["val/miou"] for r in records]


def test_the_last_checkpoint_is_kept_and_a_copy_of_the_best(finished_run):
    records = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    best = max(records, key=lambda r: r["val/miou"])
    kept = [p.name for p in (finished_run / TRAIN_STORAGE).glob("checkpoint_*") if p.is_dir()]
    assert kept == [Path(records[-1]["checkpoint"]).name]
    (copy,) = (finished_run / "best").glob("epoch_*")
    assert copy.name == f"epoch_{best['epoch']:04d}" and checkpoint.saved_epoch(copy) + 1 == best["epoch"]
    summary = json.loads((finished_run / "summary.json").read_text())
    assert summary["best_checkpoints"] == [{"epoch": best["epoch"], "val/miou": best["val/miou"], "checkpoint": str(copy)}]


def test_summary_breaks_the_time_to_the_first_step_into_phases(finished_run):
    startup = json.loads((finished_run / "summary.json").read_text())["startup"]
    phases = ["imports_s", "ray_start_s", "data_check_s", "trainer_build_s", "worker_start_s", "model_build_s", "first_step_s"]
    assert list(startup) == [*phases, "to_first_step_s"] and all(startup[p] >= 0 for p in phases)
    assert sum(startup[p] for p in phases) == pytest.approx(startup["to_first_step_s"], abs=0.01)
    assert startup["imports_s"] == 0  # run inside this test process: it counts from the call, not from pytest's start
    records = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    assert "startup" in records[0] and "startup" not in records[1]  # once per worker session, with its first epoch


def test_last_checkpoint_holds_model_optimizer_and_epoch(finished_run):
    import torch

    summary = json.loads((finished_run / "summary.json").read_text())
    state = torch.load(f"{summary['checkpoint']}/state.pt", weights_only=True)
    assert set(state) == {"model", "optimizer", "train_state"} and state["train_state"]["epoch"] == 2


def test_a_checkpoint_ray_never_registered_is_not_resumed_from(finished_run, tmp_path):
    """A folder left by an upload that was cut off is passed over, however complete its state.pt looks."""
    import torch

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    registered = Path(find_resume_point(str(run_dir), checkpoint_storage).checkpoint)
    assert checkpoint.saved_epoch(registered) == 2
    cut_off = run_dir / TRAIN_STORAGE / "checkpoint_2099-01-01_00-00-00.000000"
    cut_off.mkdir()
    state = checkpoint.read(registered)
    state["train_state"]["epoch"] = 3
    torch.save(state, cut_off / checkpoint.STATE_FILE)
    resumed = find_resume_point(str(run_dir), checkpoint_storage)
    assert resumed.checkpoint == str(registered) and resumed.progress.epoch == 2


def test_report_reads_the_real_run(finished_run, tmp_path, capsys):
    from jobs import report

    assert report.main([str(finished_run.parent), "--out", str(tmp_path)]) == 0
    markdown = (tmp_path / "report.md").read_text()
    assert f"| {finished_run.name} | segmentation |" in markdown and "| 3/3 |" in markdown and "| completed |" in markdown


def test_tensorboard_reader_sees_scalars_and_prediction_images(finished_run):
    events = EventAccumulator(str(finished_run / "tb"))
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "val/miou", "val/pixel_acc", "lr"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("val/miou")] == [1, 2, 3]
    assert {"val/prediction_0", "val/prediction_1"} <= set(tags["images"])
    image = events.Images("val/prediction_0")[-1]
    assert image.width == 3 * image.height, "input, truth and prediction side by side"
    assert {"step/loss", "step/lr", "step/samples_per_s", "step/data_wait_share"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("step/loss")] == [2, 4, 6], "2 steps an epoch on each worker, every 2nd logged"
    shown = events.Images("train/augmented_input_0")
    assert [e.step for e in shown] == [1, 2, 3] and shown[0].width == shown[0].height == 32, "an augmented input per epoch"


@pytest.fixture(scope="module")
def one_bad_label(tiny_dataset, tmp_path_factory):
    """The tiny data set with class id 9 (the table has 5) in row 3 of the first train shard."""
    root = tmp_path_factory.mktemp("bad") / "data"
    shutil.copytree(tiny_dataset, root)
    shard = root / "train-00000.parquet"
    table = pq.read_table(shard).to_pydict()
    table["labels"][3] = codec.encode_png(np.full((32, 32), 9, np.uint8))
    pq.write_table(pa.Table.from_pydict(table, schema=shards.SCHEMA), shard)
    manifest = json.loads((root / shards.MANIFEST).read_text())
    manifest["splits"]["train"]["shards"][0]["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
    (root / shards.MANIFEST).write_text(json.dumps(manifest))
    return root, table["sample_id"][3]


def _train_on(data, runs, *extra):
    overrides = [o for o in tiny_overrides(data, runs) if not o.startswith("data.synthetic")]
    code = train.main([*overrides, "data.generate_if_missing=false", *extra])
    (run_dir,) = runs.iterdir()
    return code, json.loads((run_dir / "summary.json").read_text())


def test_a_bad_sample_stops_the_run_naming_shard_row_and_sample(local_ray, one_bad_label, tmp_path):  # noqa: F811
    root, sample_id = one_bad_label
    code, summary = _train_on(root, tmp_path / "runs")
    assert code == 1 and summary["status"] == "failed"
    assert f"shard {root / 'train-00000.parquet'}, row 3, sample {sample_id}: label ids [9]" in summary["error"]


def test_a_launch_in_another_environment_says_what_differs_strict_env_refuses_it_and_skipped_samples_are_counted(
        finished_run, one_bad_label, tmp_path, capsys):
    """Two claims on one run: the pre-flight's comparison with the last run, and a bad sample skipped in both epochs."""
    root = tmp_path / "runs"
    shutil.copytree(finished_run, root / finished_run.name)
    env_file = root / finished_run.name / "env.json"
    env = json.loads(env_file.read_text())
    env["key_packages"]["torch"] = "1.6.0"
    env_file.write_text(json.dumps(env))
    data, sample_id = one_bad_label
    overrides = [o for o in tiny_overrides(data, root) if not o.startswith(("data.synthetic", "train.epochs"))] + [
        "data.generate_if_missing=false", "data.on_bad_sample=skip", "train.epochs=2"]

    assert train.main([*overrides, "--strict-env"]) == 2
    said = capsys.readouterr().err
    assert f"environment differs from last run {finished_run.name}: refused (--strict-env)" in said
    assert f"driver  torch  {package_version('torch')}  1.6.0" in said
    assert [p.name for p in root.iterdir()] == [finished_run.name], "nothing started"

    assert train.main(overrides) == 0
    said = capsys.readouterr().err
    assert "going on; --strict-env refuses such a launch" in said and "torch" in said
    (new_run,) = [p for p in root.iterdir() if p.name != finished_run.name]
    summary = json.loads((new_run / "summary.json").read_text())
    assert summary["status"] == "completed" and json.loads((new_run / "env.json").read_text())["nodes"] == {}, "one node"
    assert summary["skipped_samples"]["count"] == 1  # once, though both epochs met it
    (skipped,) = summary["skipped_samples"]["samples"]
    assert skipped["sample_id"] == sample_id and skipped["row"] == 3 and "outside the class table" in skipped["reason"]
