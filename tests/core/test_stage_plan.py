"""Stages from config: what each stage inherits and overrides, the rules across keys, and how a stage ends."""
from pathlib import Path

import pytest

from core.config.errors import ConfigError
from core.config.loading import load_config
from core.engine.early_stopping import EarlyStopping
from core.engine.progress import Progress
from core.engine.stages import largest_batch, plan_stages

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "depth_semattnet_kitti.yaml"


def _staged(*stages: str, extra: tuple[str, ...] = ()):
    return load_config(None, [f"stages=[{', '.join(stages)}]", *extra])


def test_the_semattnet_recipe_is_four_stages_ending_at_epochs_60_65_71_95():
    config = load_config(RECIPE)
    stages = plan_stages(config)
    assert [(s.name, s.end_epoch) for s in stages] == [("backbone", 60), ("cspn_init", 65), ("full", 71), ("full_late", 95)]
    assert config.train.epochs == 95
    assert [s.config.train.batch_size for s in stages] == [8, 8, 16, 16]
    assert [s.config.train.plateau.patience for s in stages] == [4, 4, 8, 3]
    assert stages[2].config.train.optimizer.lr == 0.025298 and stages[2].config.train.optimizer.name == "adamw"
    assert stages[0].config.task.loss.weights == {"coarse_l2": 1.0} and stages[1].config.task.loss.weights == {"l2": 1.0}
    assert stages[3].keep_optimizer and stages[1].freeze == ("colour.*", "semantic.*", "depth.*")


def test_a_config_without_stages_is_one_stage_of_train_epochs():
    (stage,) = plan_stages(load_config(None, ["train.epochs=3", "train.early_stopping=2"]))
    assert (stage.name, stage.first_epoch, stage.epochs, stage.early_stopping) == ("train", 0, 3, 2)


@pytest.mark.parametrize("stages, extra, message", [
    (("{name: a, epochs: 2}", "{name: b, epochs: 1}"), ("train.epochs=4",), "train.epochs = 4 but the stages add up to 3"),
    (("{name: a, epochs: 2}", "{name: a, epochs: 1}"), (), "repeat"),
    (("{name: a, epochs: 2, optimizer: {lr: -1}}",), (), "stages.0.optimizer: optimizer: lr = -1"),
    (("{name: a, epochs: 2, optimizer: {betas: 1}}",), (), "unknown key 'betas'"),
    (("{name: a, epochs: 2, loss_weights: {l2: 0}}",), (), "stages.0.loss_weights"),
    (("{name: a, epochs: 2, keep_optimizer: true}",), (), "needs a stage before it"),
    (("{name: a, epochs: 1}", "{name: b, epochs: 1}"), ("scaling.strategy=deepspeed", "scaling.zero_stage=3"), "zero_stage 3"),
    (("{name: a, epochs: 1, freez: [x]}",), (), "unknown key 'stages.0.freez'"),
])
def test_stage_rules_name_the_key(stages, extra, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        _staged(*stages, extra=extra)


def test_early_stopping_ends_the_stage_after_patience_epochs_without_improvement():
    config = _staged("{name: a, epochs: 10, early_stopping: 1}", "{name: b, epochs: 2}")
    first, second = plan_stages(config)
    progress, stopping = Progress(), EarlyStopping(first.early_stopping, "min")
    endings = [progress.finish_epoch(first, stopping.update(value)) for value in (5.0, 4.0, 4.5, 4.2)]
    assert endings == [None, None, None, "early stopping"]
    assert (progress.epoch, progress.stage, progress.stage_epochs, stopping.best) == (3, 1, 0, 4.0)
    stopping = EarlyStopping(second.early_stopping, "min")
    assert [progress.finish_epoch(second, stopping.update(v)) for v in (9.0, 9.5)] == [None, "last epoch"] and progress.stage == 2


def test_the_data_is_read_for_the_largest_batch_of_any_stage():
    assert largest_batch(load_config(None, ["train.batch_size=6"])) == 6
    assert largest_batch(_staged("{name: a, epochs: 1}", "{name: b, epochs: 1, batch_size: 16}", "{name: c, epochs: 1, batch_size: 2}",
                                 extra=("train.batch_size=6",))) == 16
    assert largest_batch(_staged("{name: a, epochs: 1, batch_size: 2}", "{name: b, epochs: 1}", extra=("train.batch_size=6",))) == 6
