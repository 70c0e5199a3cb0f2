"""A run as an ordered list of stages, each with its own epochs, frozen parameters and hyperparameters.

A config without stages is one stage named "train". Epochs count on across stages (the second
stage of a 60 + 5 run starts at epoch 61), so metrics.jsonl, TensorBoard and checkpoints keep one
axis; a stage ended early by its early-stopping patience hands over to the next one at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from torch import nn

from core.config.schema import ExperimentConfig
from core.config.sections import OptimizerConfig

PREVIOUS = "previous"


@dataclass(frozen=True)
class Stage:
    index: int
    name: str
    first_epoch: int  # 0-based, counted over the whole run
    epochs: int  # the most it runs
    config: ExperimentConfig  # the run's config with this stage's batch size, optimizer, plateau, loss weights
    freeze: tuple[str, ...]
    early_stopping: int | None
    start_from: str
    keep_optimizer: bool = False

    @property
    def end_epoch(self) -> int:
        return self.first_epoch + self.epochs


def plan_stages(config: ExperimentConfig) -> list[Stage]:
    if not config.stages:
        return [Stage(0, "train", 0, config.train.epochs, config, (), config.train.early_stopping, PREVIOUS)]
    stages, first = [], 0
    for index, stage in enumerate(config.stages):
        train = config.train.model_copy(update={
            "batch_size": stage.batch_size or config.train.batch_size,
            "optimizer": OptimizerConfig.model_validate({**config.train.optimizer.model_dump(), **stage.optimizer}),
            "plateau": stage.plateau or config.train.plateau,
            "early_stopping": stage.early_stopping if stage.early_stopping is not None else config.train.early_stopping,
        })
        loss = config.task.loss.model_copy(update={"weights": stage.loss_weights or config.task.loss.weights})
        task = config.task.model_copy(update={"loss": loss})
        effective = config.model_copy(update={"train": train, "task": task})
        stages.append(Stage(index, stage.name, first, stage.epochs, effective, tuple(stage.freeze), train.early_stopping,
                            stage.start_from, stage.keep_optimizer))
        first += stage.epochs
    return stages


def largest_batch(config: ExperimentConfig) -> int:
    """The largest per-worker batch any stage of the run reads (one trainer reads the data for them all)."""
    return max(stage.config.train.batch_size for stage in plan_stages(config))


def freeze(model: nn.Module, patterns: tuple[str, ...]) -> list[str]:
    """Hold the parameters whose names match any pattern fixed and let every other one train; returns the frozen names."""
    check_patterns(model, patterns)
    frozen = []
    for name, parameter in model.named_parameters():
        held = any(fnmatchcase(name, pattern) for pattern in patterns)
        parameter.requires_grad_(not held)
        if held:
            frozen.append(name)
    return frozen


def check_patterns(model: nn.Module, patterns: tuple[str, ...], stage: str = "") -> None:
    names = [name for name, _ in model.named_parameters()]
    for pattern in patterns:
        if not any(fnmatchcase(name, pattern) for name in names):
            modules = sorted({name.split(".")[0] for name in names})
            where = f"stage {stage}: " if stage else ""
            raise ValueError(f"{where}freeze pattern {pattern!r} matches no parameter of the model; its parameters are "
                             f"named like {names[0]!r}, under the top-level modules {modules}")


def hold_frozen_norms(model: nn.Module) -> None:
    """Normalisation layers whose parameters are all frozen keep their running statistics too (eval mode)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            parameters = list(module.parameters(recurse=False))
            if parameters and not any(p.requires_grad for p in parameters):
                module.eval()
