"""history.csv and history.xlsx follow metrics.jsonl: each epoch logged, and the epochs a resume drops."""
import csv

import openpyxl

from core.runs.run_dir import RunLogger, read_metrics
from jobs._train.resume import drop_records_after


def _epoch(epoch: int) -> dict:
    return {"epoch": epoch, "run": "r", "stage": "warmup" if epoch == 1 else "train", "lr": 0.1 / epoch,
            "train/loss": 1.0 / epoch, "val/miou": None if epoch == 1 else 0.2 * epoch, "wall_time_s": 10.0 * epoch,
            "startup": {"first_step": 3.0}, "checkpoint": f"/c/{epoch}"}


def _xlsx(folder):
    return [list(row) for row in openpyxl.load_workbook(folder / "history.xlsx").active.iter_rows(values_only=True)]


def test_each_logged_epoch_is_a_row_with_its_numbers_and_nothing_nested(tmp_path):
    logger = RunLogger(tmp_path)
    for epoch in (1, 2, 3):
        logger.log(_epoch(epoch), step=epoch)
    logger.close()
    header, *rows = _xlsx(tmp_path)
    assert header == ["epoch", "stage", "wall_time_s", "lr", "train/loss", "val/miou"]
    assert rows == [[r.get(key) for key in header] for r in read_metrics(tmp_path)]
    assert rows[0][5] is None and rows[2][:2] == [3, "train"]  # an undefined metric is an empty cell
    with open(tmp_path / "history.csv", newline="") as handle:
        assert [row["val/miou"] for row in csv.DictReader(handle)] == ["", "0.4", "0.6000000000000001"]


def test_epochs_a_resume_trains_again_leave_the_history(tmp_path):
    logger = RunLogger(tmp_path)
    for epoch in (1, 2, 3):
        logger.log(_epoch(epoch), step=epoch)
    logger.close()
    assert drop_records_after(tmp_path, 1) == 2
    header, *rows = _xlsx(tmp_path)
    assert [row[0] for row in rows] == [1]
    with open(tmp_path / "history.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1"]
