"""Sweep files: a base experiment, a search space over its dotted keys, the metric and the scheduler.

    base: configs/quickstart.yaml
    overrides: [train.epochs=3]
    space:
      train.optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}
      task.model.decoder: {grid: [fpn, unet]}
    metric: val/miou
    mode: max
    scheduler: {name: asha, grace_period: 1, reduction_factor: 2}   # or fifo, or pbt (see PBT_MUTABLE)
    num_samples: 2
    max_concurrent: 2

Every value the space can produce is checked against the experiment schema before a trial starts.
"""
from __future__ import annotations

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


class SweepConfig(Strict):
    name: str = Field("sweep", pattern=r"^[A-Za-z0-9_.-]+$")
    base: str
    overrides: list[str] = Field(default_factory=list)
    space: dict[str, Domain] = Field(min_length=1)
    metric: str = "val/miou"
    mode: Literal["max", "min"] = "max"
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
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


def _check_pbt_space(sweep: SweepConfig, source: str) -> None:
    for key, domain in sweep.space.items():
        if key not in PBT_MUTABLE:
            raise ConfigError(f"{source}: space.{key}: PBT changes hyperparameters of running trials, which it can do for "
                              f"{', '.join(PBT_MUTABLE)}; sweep {key} with fifo or asha")
        if domain.kind == "grid":
            raise ConfigError(f"{source}: space.{key}: PBT samples its population; give choice, uniform, loguniform or "
                              "randint, and the population size as num_samples")
