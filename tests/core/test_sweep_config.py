from pathlib import Path

import pytest
import yaml

from core.config.errors import ConfigError
from core.config.sweep import load_sweep

QUICKSTART = str(Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml")


def _sweep(tmp_path, **fields):
    raw = {"base": QUICKSTART, "space": {"train.optimizer.lr": {"grid": [0.001, 0.01]}}, **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_valid_sweep_loads_with_every_domain(tmp_path):
    space = {"train.optimizer.lr": {"loguniform": [1e-4, 1e-2]}, "task.model.decoder": {"choice": ["fpn", "unet"]},
             "train.batch_size": {"randint": [2, 8]}, "train.optimizer.weight_decay": {"uniform": [0.0, 0.1]},
             "task.model.encoder": {"grid": ["resnet18", "resnet34"]}}
    sweep = load_sweep(_sweep(tmp_path, space=space, scheduler={"name": "asha"}))
    assert {d.kind for d in sweep.space.values()} == {"loguniform", "choice", "randint", "uniform", "grid"}


@pytest.mark.parametrize("domain, message", [
    ({"grid": [1], "choice": [2]}, "exactly one of"),
    ({"uniform": [0.1, 0.1]}, "low < high"),
    ({"loguniform": [0.0, 0.1]}, "low > 0"),
    ({"grid": []}, "at least one value"),
])
def test_bad_domains_are_refused(tmp_path, domain, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(_sweep(tmp_path, space={"train.optimizer.lr": domain}))


def test_space_key_the_experiment_does_not_have_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"space.train.learning_rate can produce .*unknown key"):
        load_sweep(_sweep(tmp_path, space={"train.learning_rate": {"grid": [0.1]}}))


def test_space_value_the_experiment_refuses_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"space.train.batch_size can produce 0"):
        load_sweep(_sweep(tmp_path, space={"train.batch_size": {"grid": [4, 0]}}))


def test_data_keys_cannot_be_swept(tmp_path):
    with pytest.raises(ConfigError, match="data, output and ray keys are fixed"):
        load_sweep(_sweep(tmp_path, space={"data.synthetic.num_train": {"grid": [8, 16]}}))


def test_unknown_scheduler_lists_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="'fifo', 'asha' or 'pbt'"):
        load_sweep(_sweep(tmp_path, scheduler={"name": "hyperband"}))


def test_pbt_space_over_learning_rate_and_patience_loads(tmp_path):
    space = {"train.optimizer.lr": {"loguniform": [1e-4, 1e-2]}, "train.plateau.patience": {"randint": [1, 4]}}
    sweep = load_sweep(_sweep(tmp_path, space=space, scheduler={"name": "pbt", "perturbation_interval": 2}))
    assert sweep.scheduler.name == "pbt" and sweep.base_config().train.plateau is None  # set per trial by the space


def test_pbt_refuses_grids_and_keys_a_running_trial_cannot_change(tmp_path):
    with pytest.raises(ConfigError, match="PBT samples its population"):
        load_sweep(_sweep(tmp_path, scheduler={"name": "pbt"}))
    with pytest.raises(ConfigError, match="space.train.batch_size: PBT changes hyperparameters of running trials"):
        load_sweep(_sweep(tmp_path, space={"train.batch_size": {"choice": [2, 4]}}, scheduler={"name": "pbt"}))


CONDITIONAL = {"train.optimizer.name": {"choice": ["adamw", "sgd"]},
               "train.optimizer.momentum": {"uniform": [0.8, 0.99], "when": {"train.optimizer.name": ["sgd"]}},
               "train.optimizer.lr": {"loguniform": [1e-4, 1e-2]}}


@pytest.mark.parametrize("fields, message", [
    ({"search": "optuna", "space": {"train.optimizer.lr": {"grid": [0.001, 0.01]}}}, "samples its domains; give choice instead of grid"),
    ({"search": "grid", "space": {"train.optimizer.lr": {"uniform": [0.001, 0.01]}}}, "search: grid takes grid domains only"),
    ({"search": "random", "space": CONDITIONAL}, r"space.train.optimizer.momentum.when: conditional domains need search: optuna or bohb"),
    ({"search": "optuna", "space": {**CONDITIONAL, "train.optimizer.momentum": {"uniform": [0.8, 0.99], "when": {"train.optimizer.nam": ["sgd"]}}}},
     r"when.train.optimizer.nam: a condition names a choice domain of the space; those are: train.optimizer.name"),
    ({"search": "optuna", "space": {**CONDITIONAL, "train.optimizer.momentum": {"uniform": [0.8, 0.99], "when": {"train.optimizer.name": ["adam"]}}}},
     r"'adam' is not among its choices \['adamw', 'sgd'\]"),
    ({"search": "bohb", "scheduler": {"name": "asha"}, "space": CONDITIONAL}, "search: bohb brings its scheduler"),
    ({"search": "optuna", "scheduler": {"name": "pbt"}, "space": {"train.optimizer.lr": {"uniform": [0.001, 0.01]}}}, "PBT is a search of its own"),
])
def test_searches_refuse_what_they_cannot_sample(tmp_path, fields, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(_sweep(tmp_path, **fields))


def test_a_search_whose_package_is_missing_names_it(tmp_path, monkeypatch):
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hpbandster" else found(name, *a))
    with pytest.raises(ConfigError, match=r"search: bohb needs the package\(s\) hpbandster, which are not installed"):
        load_sweep(_sweep(tmp_path, search="bohb", space=CONDITIONAL))
    assert load_sweep(_sweep(tmp_path, search="optuna", space=CONDITIONAL)).search == "optuna"


@pytest.mark.parametrize("path", sorted((Path(QUICKSTART).parent / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_sweep_file_in_configs_loads(path, monkeypatch):
    monkeypatch.chdir(Path(QUICKSTART).parents[1])  # their base is relative to the checkout
    assert load_sweep(path).space
