"""Which checkpoints Ray Train is told to keep: the best by the monitored metric (and the latest), or the last N."""
from types import SimpleNamespace

import pytest

from core.config.errors import ConfigError
from core.config.loading import load_config
from jobs._train.trainer import checkpoint_config

DEPTH = SimpleNamespace(monitor="val/rmse", monitor_mode="min")


def test_by_metric_keeps_the_best_in_the_tasks_direction():
    kept = checkpoint_config(load_config(None, ["train.checkpoints_to_keep=3"]).train, DEPTH)
    assert (kept.num_to_keep, kept.checkpoint_score_attribute, kept.checkpoint_score_order) == (3, "val/rmse", "min")


def test_by_epoch_keeps_the_last():
    kept = checkpoint_config(load_config(None, ["train.checkpoints_to_keep=4", "train.checkpoints_kept_by=epoch"]).train, DEPTH)
    assert (kept.num_to_keep, kept.checkpoint_score_attribute, kept.checkpoint_score_order) == (4, "epoch", "max")


def test_another_rule_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="checkpoints_kept_by.*'metric' or 'epoch'"):
        load_config(None, ["train.checkpoints_kept_by=newest"])
