"""The profiler, the ledger's prediction and the batch-size finder, on tiny data with real Ray Train runs."""
import csv
import json
from pathlib import Path

import pytest

from core.profiling.table import INPUT_BOUND_SHARE, annotate
from jobs import profile
from tests.conftest import tiny_overrides
from tests.ray_fixtures import local_ray  # noqa: F401  (fixture)

QUICKSTART = str(Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml")


@pytest.fixture(scope="module")
def profiled(local_ray, tiny_dataset, tmp_path_factory):  # noqa: F811
    """One profile: 2 workers at batch 2 and 8 on 16 train rows."""
    root = tmp_path_factory.mktemp("profile")
    args = [QUICKSTART, *tiny_overrides(tiny_dataset, root / "runs"), "--workers", "2", "--batch-sizes", "2,8",
            "--steps", "3", "--warmup", "1", "--out", str(root / "profile")]
    code = profile.main(args)
    return code, root


def _rows(root: Path) -> list[dict]:
    with open(root / "profile" / "profile.csv") as handle:
        return list(csv.DictReader(handle))


def test_profile_writes_a_row_per_combination_and_all_three_files(profiled):
    code, root = profiled
    assert code == 0
    rows = _rows(root)
    assert sorted((r["workers"], r["batch_size"]) for r in rows) == [("2", "2"), ("2", "8")]
    for r in rows:
        assert r["status"] == "ok" and r["device"] == "cpu", r
        assert float(r["s_per_it"]) > 0 and float(r["peak_memory_mb"]) > 50
        expected = int(r["workers"]) * int(r["batch_size"]) / float(r["s_per_it"])
        assert float(r["samples_per_s"]) == pytest.approx(expected, rel=1e-6)
        assert 0.0 <= float(r["data_wait_share"]) <= 1.0 and 0.0 < float(r["comm_share"]) <= 1.0
    markdown = (root / "profile" / "profile.md").read_text()
    assert "fastest that fits" in markdown and markdown.count("| ok |") == 2
    assert (root / "profile" / "profile.png").stat().st_size > 10_000


def test_rows_waiting_on_data_are_flagged_with_what_to_raise(profiled):
    _, root = profiled
    for r in _rows(root):  # how much a step waits here depends on the machine's load: the rule must hold either way
        assert bool(r["note"]) == (float(r["data_wait_share"]) > INPUT_BOUND_SHARE), r
    row = {"status": "ok", "data_wait_share": 0.45, "loader_parallelism": 1, "peak_memory_bytes": 2**20}
    (flagged,) = annotate([row], data_cpus=0.4)
    assert flagged["note"] == ("input-bound: 45% of each step waits for data; raise the loader parallelism (now 1) "
                               "or scaling.data_cpus (now 0.4)")
    assert annotate([{**row, "data_wait_share": 0.1}], data_cpus=0.4)[0]["note"] == ""


def test_ledger_keeps_every_row_and_predicts_an_unmeasured_batch(profiled, tiny_dataset, capsys):
    _, root = profiled
    ledger = [json.loads(line) for line in (root / "runs" / profile.LEDGER).read_text().splitlines()]
    assert len(ledger) == 2
    assert {e["model"] for e in ledger} == {"segmentation:fpn-resnet18"} and {e["input_size"] for e in ledger} == {"rgb 32x32"}
    assert all(e["versions"]["torch"] and e["versions"]["ray"] for e in ledger)

    capsys.readouterr()
    overrides = [*tiny_overrides(tiny_dataset, root / "runs"), "scaling.num_workers=2", "train.batch_size=4"]
    assert profile.main([QUICKSTART, *overrides, "--predict"]) == 0
    out = capsys.readouterr().out
    assert "interpolated along batch sizes [2, 8]" in out and out.count("    batch ") == 2
    measured = {e["batch_size"]: e["s_per_it"] for e in ledger if e["workers"] == 2}
    predicted = float(out.split(" s/it")[0].split()[-1])
    assert min(measured.values()) * 0.99 <= predicted <= max(measured.values()) * 1.01


def test_predict_without_measurements_says_what_the_ledger_holds(profiled, tiny_dataset, capsys):
    _, root = profiled
    overrides = [*tiny_overrides(tiny_dataset, root / "runs"), "task.model.encoder=resnet34"]
    assert profile.main([QUICKSTART, *overrides, "--predict"]) == 2
    err = capsys.readouterr().err
    assert "no measurement of segmentation:fpn-resnet34" in err and "segmentation:fpn-resnet18 rgb 32x32 on cpu" in err


def test_batch_size_finder_doubles_then_bisects_to_the_cap(local_ray, tiny_dataset, tmp_path, capsys):  # noqa: F811
    args = [QUICKSTART, *tiny_overrides(tiny_dataset, tmp_path / "runs"), "--find-batch-size", "--max-batch-size", "24",
            "--memory-budget-gb", "64", "--out", str(tmp_path / "search")]
    assert profile.main(args) == 0
    assert "largest per-worker batch with 2 workers: 24" in capsys.readouterr().out
    found = json.loads((tmp_path / "search" / "batch_size.json").read_text())
    for probes in found["probes_per_worker"]:
        assert [p["batch_size"] for p in probes] == [2, 4, 8, 16, 20, 22, 23, 24]
        assert all(p["fits"] and p["outcome"] == "ran" for p in probes)
    assert found["peak_memory_bytes"] > 0


def test_batch_size_finder_refuses_a_budget_nothing_fits(local_ray, tiny_dataset, tmp_path, capsys):  # noqa: F811
    args = [QUICKSTART, *tiny_overrides(tiny_dataset, tmp_path / "runs"), "--find-batch-size", "--memory-budget-gb", "0.05",
            "--out", str(tmp_path / "search")]
    assert profile.main(args) == 1
    assert "not even a batch of 1 fits" in capsys.readouterr().err
    probes = json.loads((tmp_path / "search" / "batch_size.json").read_text())["probes_per_worker"][0]
    assert [p["batch_size"] for p in probes] == [2, 1] and not any(p["fits"] for p in probes)


def test_a_worker_count_the_cluster_cannot_hold_is_refused_before_anything_runs(local_ray, tiny_dataset, tmp_path, capsys):  # noqa: F811
    args = [QUICKSTART, *tiny_overrides(tiny_dataset, tmp_path / "runs"), "--workers", "1,8", "--out", str(tmp_path / "p")]
    assert profile.main(args) == 2
    assert "8 training workers" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
