"""jobs.report on run directories written by the same code the training job uses."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from core.runs import run_dir as runs
from core.runs.fingerprint import package_version
from core.config.loading import load_config
from core.runs.summary import summarise
from jobs import report

QUICKSTART = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
REPO = QUICKSTART.parents[1]


def _make_run(root: Path, name: str, overrides: list[str], miou: list[float]) -> Path:
    config = load_config(QUICKSTART, [f"name={name}", f"output.root={root}", f"train.epochs={len(miou)}", *overrides])
    folder = runs.create(config, REPO)
    logger = runs.RunLogger(folder)
    for epoch, value in enumerate(miou, 1):
        logger.log({"epoch": epoch, "train/loss": 1.0 / epoch, "val/miou": value, "baseline/majority_class_miou": 0.14}, step=epoch)
    logger.close()
    summary = summarise(runs.read_metrics(folder), "val/miou", len(miou), status="completed", wall_time_s=12.0,
                        data={"uri": "data/x", "train": 16, "val": 8})
    runs.write_json(folder / runs.SUMMARY, summary)
    return folder


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    ce = _make_run(root, "ce", [], [0.3, 0.5])
    mixed = _make_run(root, "ce_focal", ["task.loss.weights={cross_entropy: 1.0, focal: 0.5}"], [0.35, 0.55])
    other_lr = _make_run(root, "lr", ["train.optimizer.lr=0.01"], [0.2, 0.25])
    return root, ce, mixed, other_lr


def test_report_has_a_row_per_run_and_groups_the_loss_ablation(three_runs, capsys):
    root, ce, mixed, other_lr = three_runs
    assert report.main([str(root)]) == 0
    markdown = (root / "report.md").read_text()
    for folder in (ce, mixed, other_lr):
        assert f"| {folder.name} |" in markdown
        assert (root / "curves" / f"{folder.name}.png").stat().st_size > 1000
    ablation = markdown.split("## Ablations")[1]
    assert ce.name in ablation and mixed.name in ablation and other_lr.name not in ablation
    assert "cross_entropy x1, focal x0.5" in markdown
    assert "report.html" in capsys.readouterr().out


def test_the_ablation_table_marks_each_loss_that_was_on_and_the_best_per_column(tmp_path):
    stages = "stages=[{name: warm, epochs: 1}, {name: fine, epochs: 1, loss_weights: {cross_entropy: 1.0, focal: %s}}]"
    _make_run(tmp_path, "ce", [], [0.3, 0.5])
    _make_run(tmp_path, "ce_focal", ["task.loss.weights={cross_entropy: 1.0, focal: 0.5}"], [0.35, 0.45])
    _make_run(tmp_path, "staged", [stages % 0.0], [0.2, 0.3])
    _make_run(tmp_path, "staged_focal", [stages % 0.5], [0.25, 0.4])  # focal on in its second stage only
    assert report.main([str(tmp_path)]) == 0
    ablations = (tmp_path / "report.md").read_text().split("## Ablations")[1].split("### Ablation ")[1:]
    tables = {}
    for section in ablations:
        header, _, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
        tables[len(tables)] = [dict(zip(header, row)) for row in rows]
    by_name = {row["run"].split("_", 1)[1].rsplit("_segmentation", 1)[0]: row for table in tables.values() for row in table}
    assert len(tables) == 2 and sorted(by_name) == ["ce", "ce_focal", "staged", "staged_focal"]
    assert [(by_name[n]["cross_entropy"], by_name[n]["focal"]) for n in ("ce", "ce_focal", "staged", "staged_focal")] == \
        [("V", ""), ("V", "V"), ("V", ""), ("V", "V")]
    assert by_name["ce"]["best val/miou"] == "**0.5**" and by_name["ce_focal"]["best val/miou"] == "0.45"
    assert by_name["staged_focal"]["last val/miou"] == "**0.4**" and by_name["staged"]["last val/miou"] == "0.3"


def test_diff_names_the_config_keys_and_packages_that_differ(three_runs, capsys):
    _, ce, _, other_lr = three_runs
    env = json.loads((other_lr / "env.json").read_text())
    env["packages"] = [p if not p.startswith("torch==") else "torch==1.6.0" for p in env["packages"]]
    (other_lr / "env.json").write_text(json.dumps(env))
    assert report.main(["--diff", str(ce), str(other_lr)]) == 0
    out = capsys.readouterr().out
    assert "train.optimizer.lr: 0.001 -> 0.01" in out
    assert f"torch: {package_version('torch')} -> 1.6.0" in out
    assert "name: ce -> lr" in out


def test_no_runs_is_an_error(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    assert "no run directories" in capsys.readouterr().err


def test_html_report_opens_in_headless_chromium_with_its_table(three_runs, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium package is needed: apt-get install chromium (the README's test command does)"
    root, *folders = three_runs
    report.main([str(root)])
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", (root / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert '<table class="sortable" id="runs">' in dom
    assert dom.count("<tr>") >= 1 + len(folders) and all(f.name in dom for f in folders)
    assert dom.count("data:image/png;base64,") == len(folders)
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1400,1000", (root / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, root / "report_screenshot.png")


def test_a_run_written_before_tasks_had_sections_of_their_own_is_labelled():
    from core.reporting.experiments import model_label

    old = {"name": "depth_completion", "inputs": None, "model": {"decoder": "fpn", "encoder": "resnet18"},
           "completion": {"width": 16, "cspn_iterations": 6, "cspn_kernels": [3, 5, 7]},
           "mesh": {"grid": [16, 16], "stages": 2, "hidden": 64, "smoothness": 1.0, "chamfer_points": 1024},
           "loss": {"weights": {"l2": 1.0}, "focal_gamma": 2.0, "focal_alpha": None}}
    assert model_label(old) == "w16-cspn6"


def test_a_distilled_run_shows_its_kd_terms_and_its_teacher(tmp_path):
    teacher = _make_run(tmp_path, "teacher", [], [0.6])
    student = _make_run(tmp_path, "student", ["task.model.encoder=mobilenet_v2",
                                              f"task.distill={{teacher: {teacher}, weights: {{pixel: 0.5, pair: 2.0}}}}"], [0.5])
    summary = json.loads((student / runs.SUMMARY).read_text())
    runs.write_json(student / runs.SUMMARY, {**summary, "teacher": str(teacher)})
    assert report.main([str(tmp_path)]) == 0
    line = next(line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith(f"| {student.name} |"))
    assert "| cross_entropy x1, kd_pixel x0.5, kd_pair x2 | fpn-mobilenet_v2+kd |" in line and f"| {teacher.name} |" in line


def test_the_lighting_loss_sweep_reports_a_row_per_combination_with_its_losses_marked(tmp_path):
    """Each grid point of configs/sweeps/lighting_losses.yaml becomes a trial config as jobs.tune makes it (the sweep's
    overrides and the point), run folders are written for them, and jobs.report's ablation table is read back."""
    from core.config.loading import format_override
    from core.config.sweep import load_sweep

    sweep = load_sweep(REPO / "configs" / "sweeps" / "lighting_losses.yaml")
    points = sweep.space["task.loss.weights"].grid
    for index, weights in enumerate(points):
        config = load_config(REPO / sweep.base, [*sweep.overrides, f"output.root={tmp_path}", f"name=trial{index}",
                                                 format_override("task.loss.weights", weights)])
        folder = runs.create(config, REPO)
        logger = runs.RunLogger(folder)
        logger.log({"epoch": 1, "val/envmap_rmse": 0.5 - 0.01 * index, "val/novel_psnr": 20.0 + (index == 2)}, step=1)
        logger.close()
        runs.write_json(folder / runs.SUMMARY, summarise(runs.read_metrics(folder), "val/envmap_rmse", 1, "min", status="completed",
                                                         metric_modes={"val/envmap_rmse": "min", "val/novel_psnr": "max",
                                                                       "val/novel_lpips": "min"}))
    assert report.main([str(tmp_path)]) == 0
    (section,) = (tmp_path / "report.md").read_text().split("## Ablations")[1].split("### Ablation ")[1:]
    header, _, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    table = {int(row["run"].split("trial")[1].split("_")[0]): row for row in (dict(zip(header, cells)) for cells in rows)}
    assert sorted(table) == list(range(len(points)))
    for index, weights in enumerate(points):
        assert {name for name in weights if table[index][name] == "V"} == {name for name, w in weights.items() if w > 0}
    assert table[len(points) - 1]["best val/envmap_rmse"].startswith("**"), "the lowest RMSE is marked"
    assert [index for index in table if table[index]["val/novel_psnr at best"].startswith("**")] == [2], "the highest PSNR"
    assert "val/novel_lpips at best" not in header, "a metric no run has (LPIPS without its weights) gets no column"
