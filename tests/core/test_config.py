from pathlib import Path

import pytest
import ray

from core.config.errors import ConfigError
from core.config.schema import ExperimentConfig
from core.config.loading import load_config
from jobs import train

QUICKSTART = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"


def test_quickstart_config_is_valid():
    config = load_config(QUICKSTART)
    assert config.scaling.num_workers == 2
    assert config.task.name == "segmentation"


def test_overrides_are_typed_from_yaml():
    config = load_config(QUICKSTART, ["train.epochs=3", "train.optimizer.lr=0.01", "task.inputs=[rgb, sparse_depth]"])
    assert config.train.epochs == 3
    assert config.train.optimizer.lr == 0.01
    assert config.task.inputs == ["rgb", "sparse_depth"]


def test_unknown_key_names_it_and_lists_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        load_config(QUICKSTART, ["train.epoch=3"])
    message = str(err.value)
    assert "train.epoch" in message and "epochs" in message and "batch_size" in message


@pytest.mark.parametrize("overrides, key, allowed", [
    (["data.augment={hflip: 0.5}", "data.augment.hflipp=0.5"], "data.augment.hflipp", "color_jitter, hflip, scale, size_schedule"),
    (["train.epochs=1", "stages=[{name: a, epochs: 1}]", "stages.0.epoch=2"], "stages.0.epoch", "batch_size, early_stopping, epochs, freeze"),
    (["task.model.encodr=resnet34"], "task.model.encodr", "decoder, encoder"),
])
def test_unknown_key_in_an_optional_list_or_task_section_lists_that_sections_keys(overrides, key, allowed):
    with pytest.raises(ConfigError, match=f"unknown key '{key}'; allowed keys here.*: {allowed}"):
        load_config(QUICKSTART, overrides)


def test_a_dotted_override_steps_into_a_list_by_index():
    config = load_config(QUICKSTART, ["train.epochs=4", "stages=[{name: a, epochs: 1}, {name: b, epochs: 1}]",
                                      "stages.1.epochs=3", "stages.0.optimizer={lr: 0.5}"])
    assert [(s.epochs, s.optimizer) for s in config.stages] == [(1, {"lr": 0.5}), (3, {})] and config.train.epochs == 4
    with pytest.raises(ConfigError, match="stages is a list of 2 item.*'2' is not one of its indices 0..1"):
        load_config(QUICKSTART, ["train.epochs=2", "stages=[{name: a, epochs: 1}, {name: b, epochs: 1}]", "stages.2.epochs=3"])


def test_an_unknown_task_lists_the_known_ones():
    with pytest.raises(ConfigError, match="task.name = 'depth' is not known; known: 'segmentation', 'depth_completion', 'mesh_"):
        load_config(QUICKSTART, ["task.name=depth"])


def test_wrong_type_names_key_value_and_what_is_allowed():
    with pytest.raises(ConfigError) as err:
        load_config(QUICKSTART, ["train.batch_size=eight"])
    assert "train.batch_size = 'eight'" in str(err.value)
    assert "integer" in str(err.value)


def test_impossible_value_is_refused():
    with pytest.raises(ConfigError) as err:
        load_config(QUICKSTART, ["train.batch_size=0"])
    assert "train.batch_size = 0" in str(err.value) and "greater than or equal to 1" in str(err.value)


def test_choice_error_lists_the_choices():
    with pytest.raises(ConfigError) as err:
        load_config(QUICKSTART, ["task.model.decoder=segformer"])
    assert "'unet', 'fpn' or 'deeplabv3plus'" in str(err.value)


def test_all_losses_off_is_refused():
    with pytest.raises(ConfigError, match="at least one above 0"):
        load_config(QUICKSTART, ["task.loss.weights={cross_entropy: 0}"])


def test_override_into_a_value_is_refused():
    with pytest.raises(ConfigError, match="train.epochs is a value"):
        load_config(QUICKSTART, ["train.epochs.max=3"])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_round_trip_through_dump():
    config = load_config(QUICKSTART)
    assert ExperimentConfig.model_validate(config.model_dump(mode="json")) == config


@pytest.mark.parametrize(
    "override, named", [("train.batch_size=0", "train.batch_size"), ("scaling.num_workers=two", "scaling.num_workers"), ("nonsense.key=1", "'nonsense'")]
)
def test_train_job_exits_2_with_one_line_before_ray_starts(override, named, capsys):
    assert not ray.is_initialized()
    assert train.main([str(QUICKSTART), override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and named in err[0]
    assert not ray.is_initialized()


@pytest.mark.parametrize("overrides, message", [
    (["train.checkpoint_every={steps: 0}"], "train.checkpoint_every.steps = 0 is invalid"),
    (["train.checkpoint_every={steps: 5, minutes: 10}"], "give one of steps .* or minutes .*, not both and not neither"),
    (["scaling.num_workers=[3, 1]", "train.checkpoint_every={steps: 5}"], r"\[3, 1\]: MIN \(3\) is larger than MAX \(1\)"),
    (["scaling.num_workers=[1, 2]"], r"scaling.num_workers \[1, 2\] is elastic: .* set train.checkpoint_every"),
    (["scaling.num_workers=[1, 2]", "train.checkpoint_every={steps: 5}", "scaling.strategy=deepspeed"],
     "elastic scaling.num_workers needs scaling.strategy ddp"),
    (["train.checkpoint_every={minutes: 30}", "data.on_bad_sample=skip"], "on_bad_sample skip cannot keep"),
])
def test_mid_epoch_checkpoints_and_elastic_workers_refuse_what_they_cannot_do(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(QUICKSTART, overrides)


def test_an_elastic_config_keeps_its_range():
    config = load_config(QUICKSTART, ["scaling.num_workers=[1, 4]", "train.checkpoint_every={minutes: 30}"])
    assert (config.scaling.elastic, config.scaling.min_workers, config.scaling.max_workers) == (True, 1, 4)
    assert load_config(QUICKSTART).scaling.elastic is False
