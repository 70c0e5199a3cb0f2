"""Optuna's and BOHB's search objects as a sweep file builds them: their samples obey the space and its conditions,
and every sample reads back as overrides the experiment accepts (no trial runs here; test_tune runs an Optuna sweep)."""
import optuna
import pytest

from core.config.loading import format_override, load_config
from core.config.sweep import load_sweep
from jobs._tune.searches import DefineByRun, chosen, search_algorithm
from tests.core.test_sweep_config import CONDITIONAL, QUICKSTART, _sweep


def _check(sample: dict) -> None:
    assert 1e-4 <= sample["train.optimizer.lr"] <= 1e-2
    assert ("train.optimizer.momentum" in sample) == (sample["train.optimizer.name"] == "sgd"), sample
    if "train.optimizer.momentum" in sample:
        assert 0.8 <= sample["train.optimizer.momentum"] <= 0.99
    config = load_config(QUICKSTART, [format_override(key, value) for key, value in sample.items()])
    assert config.train.optimizer.name == sample["train.optimizer.name"]


def test_optuna_samples_a_conditional_key_only_where_its_parent_allows_it(tmp_path):
    sweep = load_sweep(_sweep(tmp_path, search="optuna", space=CONDITIONAL))
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    space = DefineByRun(sweep.space)
    for _ in range(12):
        trial = study.ask()
        space(trial)
        _check(trial.params)
        study.tell(trial, 0.5)
    assert {t.params["train.optimizer.name"] for t in study.trials} == {"adamw", "sgd"}


@pytest.mark.parametrize("search", ["optuna", "bohb"])
def test_the_searchers_suggestions_read_back_as_the_sweeps_keys(tmp_path, search):
    sweep = load_sweep(_sweep(tmp_path, search=search, space=CONDITIONAL, metric="val/miou", mode="max"))
    searcher = search_algorithm(sweep)
    names = set()
    for index in range(8):
        suggestion = searcher.suggest(f"trial_{index}")
        sample = chosen(suggestion, list(sweep.space))
        _check(sample)
        assert all(type(value) in (str, float, int) for value in sample.values()), "numpy scalars read back as Python's"
        names.add(sample["train.optimizer.name"])
        searcher.on_trial_complete(f"trial_{index}", {"val/miou": 0.1 * index, "epoch": 1, "training_iteration": 1})
    assert names == {"adamw", "sgd"}
