"""Sweep files: a base experiment, a search space over its dotted keys, the metric and the scheduler.

    base: configs/quickstart.yaml
    overrides: [train.epochs=3]
    space:
      train.optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}
      task.model.decoder: {grid: [fpn, unet]}
    metric: val/miou
    mode: max
    scheduler: {name: asha, grace_period: 1, reduction_factor: 2}   # or fifo, or pbt (see PBT_MUTABLE)
    search: random       # or grid, optuna (TPE), bohb (with its HyperBand scheduler)
    num_samples: 2
    max_concurrent: 2

With search: optuna or bohb a domain may be conditional, sampled only where choice keys took
given values (elsewhere the base config's value stands):

      task.model.decoder: {choice: [fpn, unet]}
      train.optimizer.momentum: {uniform: [0.8, 0.99], when: {train.optimizer.name: [sgd]}}

Every value the space can produce is checked against the experiment schema before a trial starts.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from core.config.errors import ConfigError
from core.config.errors import describe_first
from core.config.schema import ExperimentConfig
from core.config.sections import Strict
from core.config.loading import format_override, load_config

DOMAINS = ("grid", "choice", "uniform", "loguniform", "randint")


class Domain(Strict):
    when: dict[str, list[Any]] | None = Field(None, description="search optuna or bohb: sample this key only where each named "
                                                                "choice key took one of these values")
    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Domain":
        given = [name for name in DOMAINS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(DOMAINS)} (got {given or 'none'})")
        values = getattr(self, given[0])
        if given[0] in ("grid", "choice") and not values:
            raise ValueError(f"{given[0]} needs at least one value")
        if given[0] in ("uniform", "loguniform", "randint") and not values[0] < values[1]:
            raise ValueError(f"{given[0]} needs [low, high] with low < high, got {list(values)}")
        if given[0] == "loguniform" and values[0] <= 0:
            raise ValueError(f"loguniform needs low > 0, got {values[0]}")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in DOMAINS if getattr(self, name) is not None)

    def extremes(self) -> list[Any]:
        """The values to check against the experiment schema: every listed value, or both bounds."""
        return list(getattr(self, self.kind))


# What PBT may change in a running trial: values a restored checkpoint can take on (see
# jobs._train.worker._restore). The model, the data and the scaling are fixed for a trial's life.
PBT_MUTABLE = ("train.optimizer.lr", "train.optimizer.weight_decay", "train.optimizer.momentum",
               "train.plateau.patience", "train.plateau.factor")


class SchedulerConfig(Strict):
    name: Literal["fifo", "asha", "pbt"] = "fifo"
    grace_period: int = Field(1, ge=1, description="asha: epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(2.0, gt=1.0, description="asha: keep 1/reduction_factor of the trials at each rung")
    perturbation_interval: int = Field(1, ge=1, description="pbt: epochs between exploit/explore decisions")
    quantile_fraction: float = Field(0.25, gt=0.0, le=0.5, description="pbt: the bottom share copies the top share")
    resample_probability: float = Field(0.25, ge=0.0, le=1.0, description="pbt: resample from the space instead of perturbing")
    synch: bool = Field(False, description="pbt: decide when every trial has reached the interval (slower, never skips)")


# The package each search needs beyond Ray Tune, named in the error where one is missing.
SEARCH_PACKAGES = {"optuna": ("optuna",), "bohb": ("hpbandster", "ConfigSpace")}


class SweepConfig(Strict):
    name: str = Field("sweep", pattern=r"^[A-Za-z0-9_.-]+$")
    base: str
    overrides: list[str] = Field(default_factory=list)
    space: dict[str, Domain] = Field(min_length=1)
    metric: str = "val/miou"
    mode: Literal["max", "min"] = "max"
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    search: Literal["random", "grid", "optuna", "bohb"] = Field(
        "random", description="random: Tune's variant generator (grid domains expanded, the others drawn at random); grid: "
                              "grid domains only; optuna: Optuna's TPE; bohb: BOHB, with HyperBandForBOHB as its scheduler")
    num_samples: int = Field(1, ge=1, description="repeats of the grid; samples drawn for the other domains")
    max_concurrent: int = Field(1, ge=1)
    trial_driver_cpus: float = Field(0.1, gt=0.0, description="the Tune trial that drives each TorchTrainer")
    output_root: str = "runs/sweeps"

    def base_config(self) -> ExperimentConfig:
        return load_config(self.base, self.overrides)


def load_sweep(path: str | Path, overrides: list[str] = ()) -> SweepConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    raw["overrides"] = list(raw.get("overrides", [])) + list(overrides)
    try:
        sweep = SweepConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe_first(err, str(path), SweepConfig)) from None
    _check_space(sweep, str(path))
    return sweep


def _check_space(sweep: SweepConfig, source: str) -> None:
    sweep.base_config()
    _check_search(sweep, source)
    if sweep.scheduler.name == "pbt":
        _check_pbt_space(sweep, source)
    for key, domain in sweep.space.items():
        if key.startswith("data.") or key.startswith("output.") or key.startswith("ray."):
            raise ConfigError(f"{source}: space.{key}: data, output and ray keys are fixed for a sweep (data is prepared once)")
        for value in domain.extremes():
            try:
                load_config(sweep.base, [*sweep.overrides, format_override(key, value)])
            except ConfigError as err:
                raise ConfigError(f"{source}: space.{key} can produce {value!r}, which the experiment refuses: {err}") from None


def _check_search(sweep: SweepConfig, source: str) -> None:
    missing = [name for name in SEARCH_PACKAGES.get(sweep.search, ()) if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"{source}: search: {sweep.search} needs the package(s) {', '.join(missing)}, which are not installed: "
                          "pip install -r requirements.txt (it pins them)")
    if sweep.search in ("optuna", "bohb") and sweep.scheduler.name == "pbt":
        raise ConfigError(f"{source}: search: {sweep.search} with scheduler pbt: PBT is a search of its own; give search: random")
    if sweep.search == "bohb" and sweep.scheduler.name != "fifo":
        raise ConfigError(f"{source}: search: bohb brings its scheduler (HyperBandForBOHB, taking scheduler.reduction_factor); "
                          f"leave scheduler.name unset instead of {sweep.scheduler.name}")
    for key, domain in sweep.space.items():
        if domain.kind == "grid" and sweep.search in ("optuna", "bohb"):
            raise ConfigError(f"{source}: space.{key}: search: {sweep.search} samples its domains; give choice instead of grid")
        if domain.kind != "grid" and sweep.search == "grid":
            raise ConfigError(f"{source}: space.{key}: search: grid takes grid domains only; give search: random for {domain.kind}")
        if domain.when:
            _check_condition(key, domain, sweep.space, sweep.search, source)
    if len(parents_first(sweep.space)) < len(sweep.space):
        raise ConfigError(f"{source}: space: the conditions (when) form a cycle")


def _check_condition(key: str, domain: Domain, space: dict[str, Domain], search: str, source: str) -> None:
    if search not in ("optuna", "bohb"):
        raise ConfigError(f"{source}: space.{key}.when: conditional domains need search: optuna or bohb (search is {search})")
    for parent, values in domain.when.items():
        if parent not in space or space[parent].kind != "choice":
            raise ConfigError(f"{source}: space.{key}.when.{parent}: a condition names a choice domain of the space; "
                              f"those are: {', '.join(k for k, d in space.items() if d.kind == 'choice') or 'none'}")
        outside = [value for value in values if value not in space[parent].choice]
        if outside:
            raise ConfigError(f"{source}: space.{key}.when.{parent}: {outside[0]!r} is not among its choices {space[parent].choice}")


def parents_first(space: dict[str, Domain]) -> list[str]:
    """The space's keys, each after the keys its condition names (those on a cycle left out)."""
    ordered: list[str] = []
    while True:
        ready = [key for key, domain in space.items() if key not in ordered and all(p in ordered for p in (domain.when or {}))]
        if not ready:
            return ordered
        ordered += ready


def _check_pbt_space(sweep: SweepConfig, source: str) -> None:
    for key, domain in sweep.space.items():
        if key not in PBT_MUTABLE:
            raise ConfigError(f"{source}: space.{key}: PBT changes hyperparameters of running trials, which it can do for "
                              f"{', '.join(PBT_MUTABLE)}; sweep {key} with fifo or asha")
        if domain.kind == "grid":
            raise ConfigError(f"{source}: space.{key}: PBT samples its population; give choice, uniform, loguniform or "
                              "randint, and the population size as num_samples")
