"""The experiment's schema: the shared sections (core.config.sections) and the task's own, one per task.

`task` is a union over the registered tasks' sections, told apart by `task.name` (segmentation
when unset). Every field is checked at load time, before any Ray resource is taken (core.config.loading).
"""
from __future__ import annotations

from pydantic import Field, ValidationError, model_validator

from core.config.errors import describe
from core.config.sections import (DataConfig, FailureSettings, OptimizerConfig, OutputConfig, RayConfig, ScalingConfig,
                                  StageConfig, Strict, TrainConfig)
from core.tasks.catalog import TaskConfig, default_task_config


class ExperimentConfig(Strict):
    name: str = Field("quickstart", pattern=r"^[A-Za-z0-9_.-]+$", description="the experiment's name, in run directory names and reports")
    seed: int = Field(0, description="seeds every process (seed + rank), the data order and the augmentation")
    task: TaskConfig = Field(default_factory=default_task_config, description="the task's own section, chosen by task.name")
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    failure: FailureSettings = Field(default_factory=FailureSettings)
    output: OutputConfig = Field(default_factory=OutputConfig)
    stages: list[StageConfig] = Field(default_factory=list, description="run in order; unset: one stage of train.epochs")

    @model_validator(mode="after")
    def _some_loss_is_on(self) -> "ExperimentConfig":
        _check_loss_weights("task.loss.weights", self.task.loss.weights)
        for index, stage in enumerate(self.stages):
            _check_loss_weights(f"stages.{index}.loss_weights", stage.loss_weights)
        return self

    @model_validator(mode="after")
    def _stages_add_up(self) -> "ExperimentConfig":
        if not self.stages:
            return self
        names = [stage.name for stage in self.stages]
        if len(set(names)) < len(names):
            raise ValueError(f"stage names {names} repeat; each stage needs its own name")
        for index, stage in enumerate(self.stages):
            if stage.keep_optimizer and (index == 0 or stage.optimizer):
                raise ValueError(f"stages.{index}.keep_optimizer goes on with the stage before's optimizer: it needs a stage "
                                 "before it and no optimizer keys of its own")
            try:
                OptimizerConfig.model_validate({**self.train.optimizer.model_dump(), **stage.optimizer})
            except ValidationError as err:
                raise ValueError(f"stages.{index}.optimizer: {describe(err.errors()[0], 'optimizer', OptimizerConfig)}") from None
        total = sum(stage.epochs for stage in self.stages)
        if "epochs" in self.train.model_fields_set and self.train.epochs != total:
            raise ValueError(f"train.epochs = {self.train.epochs} but the stages add up to {total} epochs; leave train.epochs out")
        self.train.epochs = total
        return self

    @model_validator(mode="after")
    def _exact_epochs_need_every_sample(self) -> "ExperimentConfig":
        if self.train.checkpoint_every is not None and self.data.on_bad_sample == "skip":
            raise ValueError("train.checkpoint_every trains every sample of an epoch exactly once, which data.on_bad_sample "
                             "skip cannot keep: use on_bad_sample error (a bad sample then stops the run "
                             "with its shard, row and id), or leave checkpoint_every unset")
        return self

    @model_validator(mode="after")
    def _elastic_runs_resize_from_inside_epochs(self) -> "ExperimentConfig":
        if not self.scaling.elastic:
            return self
        if self.train.checkpoint_every is None:
            raise ValueError(f"scaling.num_workers {list(self.scaling.num_workers)} is elastic: each resize goes on from the "
                             "latest checkpoint, so set train.checkpoint_every (e.g. {steps: 200}) to go on from inside the epoch "
                             "with each sample trained once")
        if self.scaling.strategy != "ddp":
            raise ValueError("elastic scaling.num_workers needs scaling.strategy ddp: a DeepSpeed checkpoint is sharded for the "
                             "number of workers that wrote it")
        return self

    @model_validator(mode="after")
    def _deepspeed_stages(self) -> "ExperimentConfig":
        if self.scaling.strategy != "deepspeed":
            return self
        if any(stage.keep_optimizer for stage in self.stages):
            raise ValueError("stages.keep_optimizer is not available with scaling.strategy deepspeed: each stage starts a "
                             "new DeepSpeed engine with a new optimizer")
        if self.scaling.zero_stage == 3 and len(self.stages) > 1:
            raise ValueError("scaling.zero_stage 3 partitions the parameters themselves and cannot be wrapped again for a "
                             "second stage; use zero_stage 1 or 2 with stages")
        return self

    @model_validator(mode="after")
    def _augmentation_fits_the_task(self) -> "ExperimentConfig":
        augment = self.data.augment
        moving = [key for key, on in (("hflip", augment and augment.hflip), ("scale", augment and augment.scale),
                                      ("size_schedule", augment and augment.size_schedule)) if on]
        if moving and not self.task.pixels_may_move:
            raise ValueError(f"data.augment.{', '.join(moving)} move the images' pixels, but the {self.task.name} task's labels "
                             "are 3D points tied to them through its camera; leave them off (color_jitter and weather are fine)")
        return self

    @model_validator(mode="after")
    def _gpu_fields_agree(self) -> "ExperimentConfig":
        if self.scaling.use_gpu is False and self.scaling.gpus_per_worker > 0:
            raise ValueError("scaling.gpus_per_worker > 0 needs scaling.use_gpu true or 'auto'")
        return self


def _check_loss_weights(key: str, weights: dict[str, float] | None) -> None:
    if weights is not None and (any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values())):
        raise ValueError(f"{key} = {weights} needs weights >= 0 and at least one above 0")
