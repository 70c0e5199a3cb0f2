"""The search algorithms of a sweep file: Tune's variant generator (grid, random), Optuna's TPE and BOHB.

Optuna gets the space define-by-run and BOHB as a ConfigSpace, so that a domain with `when` is
sampled only where its parent keys took the values it names (conditional spaces, which Tune's own
variant generator cannot express). `chosen` reads a trial's dotted keys back from what a searcher
hands over (flat or nested, numpy scalars among the values).
"""
from __future__ import annotations

from typing import Any

from core.config.sweep import Domain, SweepConfig, parents_first


def search_algorithm(sweep: SweepConfig):
    """The Searcher for sweep.search; None for grid and random (Tune's variant generator over param_space)."""
    if sweep.search == "optuna":
        from optuna.samplers import TPESampler
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(space=DefineByRun(sweep.space), metric=sweep.metric, mode=sweep.mode,
                            sampler=TPESampler(seed=sweep.base_config().seed))
    if sweep.search == "bohb":
        from ray.tune.search.bohb import TuneBOHB

        return TuneBOHB(space=config_space(sweep), metric=sweep.metric, mode=sweep.mode, seed=sweep.base_config().seed)
    return None


class DefineByRun:
    """Optuna's space: each key suggested after its parents, a conditional one only where they allow it.
    A class, not a closure: Tune pickles the searcher with the sweep's state."""

    def __init__(self, space: dict[str, Domain]):
        self.space = space

    def __call__(self, trial) -> None:
        chosen: dict[str, Any] = {}
        for key in parents_first(self.space):
            if _applies(self.space[key], chosen):
                chosen[key] = _suggest(trial, key, self.space[key])


def config_space(sweep: SweepConfig):
    """BOHB's space, with an InCondition (all of them, where several parents) for each `when`."""
    import ConfigSpace as CS

    space = CS.ConfigurationSpace(seed=sweep.base_config().seed)
    hyperparameters = {key: _hyperparameter(CS, key, domain) for key, domain in sweep.space.items()}
    space.add(list(hyperparameters.values()))
    for key, domain in sweep.space.items():
        conditions = [CS.InCondition(hyperparameters[key], hyperparameters[parent], list(values))
                      for parent, values in (domain.when or {}).items()]
        if conditions:
            space.add(conditions[0] if len(conditions) == 1 else CS.AndConjunction(*conditions))
    return space


def chosen(params: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The sweep keys a trial's params set, flat or nested; a conditional key left out stays out."""
    found = {}
    for key in keys:
        if key in params:
            found[key] = _plain(params[key])
            continue
        value: Any = params
        for part in key.split("."):
            value = _child(value, part)
        if value is not _ABSENT:
            found[key] = _plain(value)
    return found


_ABSENT = object()


def _child(value: Any, part: str) -> Any:
    """value[part], where a digit indexes a list (BOHB's stages.0.epochs comes back as a list)."""
    if isinstance(value, dict):
        return value.get(part, _ABSENT)
    if isinstance(value, list) and part.isdigit() and int(part) < len(value):
        return value[int(part)]
    return _ABSENT


def _applies(domain: Domain, chosen: dict[str, Any]) -> bool:
    return all(chosen.get(parent, _ABSENT) in values for parent, values in (domain.when or {}).items())


def _suggest(trial, key: str, domain: Domain) -> Any:
    values = getattr(domain, domain.kind)
    if domain.kind == "choice":
        return trial.suggest_categorical(key, values)
    if domain.kind == "randint":
        return trial.suggest_int(key, values[0], values[1])  # both bounds inclusive, as in the sweep file
    return trial.suggest_float(key, values[0], values[1], log=domain.kind == "loguniform")


def _hyperparameter(CS, key: str, domain: Domain):
    values = getattr(domain, domain.kind)
    if domain.kind == "choice":
        return CS.CategoricalHyperparameter(key, list(values))
    if domain.kind == "randint":
        return CS.UniformIntegerHyperparameter(key, lower=values[0], upper=values[1])
    return CS.UniformFloatHyperparameter(key, lower=values[0], upper=values[1], log=domain.kind == "loguniform")


def _plain(value: Any) -> Any:
    """numpy scalars (ConfigSpace's choices) as Python's, which YAML and JSON take."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict)) else value
