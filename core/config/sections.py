"""The experiment's sections that every task shares: data, training, stages, scaling, Ray, failures, output.

A task's own section (its model, inputs and losses) lives in the task's module (core.tasks) and
derives from TaskSection here; core.config.schema puts them together.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """Unknown keys are errors, and so are wrong values set after loading."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LossConfig(Strict):
    weights: dict[str, float] | None = Field(None, description="loss name -> weight; 0 turns a loss off (it is still "
                                                               "computed and logged); names are the task's; unset: the task's default")


class TaskSection(Strict):
    """What every task's section has. Each task adds `name: Literal[its name]`, `inputs` (the columns its model
    sees, with the task's default), its model and its losses, and a `model_label` property: the model in a few
    characters, for run names, tables and the profile ledger."""

    loss: LossConfig = Field(default_factory=LossConfig)
    pixels_may_move: ClassVar[bool] = True  # False where labels are tied to the pixels by more than the columns' kinds say


def one_of_variants(inputs: list[str], variants: tuple[list[str], ...]) -> list[str]:
    """A task's `inputs` validated against the combinations its model is built for."""
    if inputs not in variants:
        raise ValueError(f"inputs {inputs} is not one of the variants {[list(v) for v in variants]}")
    return inputs


class SyntheticConfig(Strict):
    """The procedural data set generated when `data.uri` holds none yet: terrain scenes, bodies (the implicit task's)
    or rooms (the lighting task's)."""

    kind: Literal["terrain", "bodies", "rooms"] = Field("terrain", description="terrain scenes (segmentation, depth, mesh), "
                                                                               "articulated bodies (implicit) or lit rooms (lighting)")
    num_train: int = Field(256, ge=1, description="training samples")
    num_val: int = Field(64, ge=1, description="validation samples")
    image_size: int = Field(64, ge=16, le=1024, description="side of the square rendered images, pixels")
    views_per_scene: int = Field(4, ge=1, description="terrain: camera views rendered of each generated scene")
    mesh_resolution: int = Field(64, ge=16, le=256, description="bodies: grid of the marching cubes that make the ground-truth mesh")
    points_per_sample: int = Field(2048, ge=64, description="bodies: held-out query points (and surface points) stored per sample")
    probes_per_sample: int = Field(2, ge=1, description="rooms: probe points, each with its environment map")
    envmap_height: int = Field(16, ge=4, le=256, description="rooms: rows of an environment map (its width is twice that)")
    volume_resolution: int = Field(24, ge=4, le=128, description="rooms: voxels a side of the ground-truth volume")
    volume_extent: float = Field(3.2, gt=0.5, description="rooms: metres from the camera to each face of the volume's cube")
    seed: int = Field(0, description="the scenes and views follow from it")
    rows_per_shard: int = Field(64, ge=1, description="rows per Parquet shard")
    encoding: Literal["npy", "png"] = Field("npy", description="image bytes in the shards; npy decodes faster (bench.ingest)")


class SizeStep(Strict):
    from_epoch: int = Field(ge=0, description="0-based epoch from which this size holds")
    size: tuple[int, int] = Field(description="height, width of the training images from this epoch on")


class WeatherConfig(Strict, frozen=True):
    """Each effect's probability per sample (albumentations 2.x, RGB only); 0 turns it off."""

    rain: float = Field(0.0, ge=0.0, le=1.0)
    snow: float = Field(0.0, ge=0.0, le=1.0)
    fog: float = Field(0.0, ge=0.0, le=1.0)
    sun_flare: float = Field(0.0, ge=0.0, le=1.0)
    sun_flare_radius: int = Field(100, ge=1, description="the flare's radius in pixels")
    motion_blur: float = Field(0.0, ge=0.0, le=1.0)


class AugmentConfig(Strict):
    """Train-time augmentation: one geometry for every column of a sample, each moved as its kind says (images
    bilinearly, label and depth maps by the nearest pixel, a camera's intrinsics with its pixels); colour jitter on images only."""

    hflip: float = Field(0.0, ge=0.0, le=1.0, description="probability of a horizontal flip")
    scale: tuple[float, float] | None = Field(None, description="random rescale in [low, high], then a random crop to the output size")
    color_jitter: float = Field(0.0, ge=0.0, lt=1.0, description="brightness, contrast and saturation vary by up to this share")
    size_schedule: list[SizeStep] = Field(default_factory=list, description="progressive resizing; unset: the data set's size")
    weather: WeatherConfig | None = Field(None, description="rain, snow, fog, sun flare and motion blur on RGB images, each by "
                                                           "its probability")

    def size_at(self, epoch: int, native: tuple[int, int]) -> tuple[int, int]:
        steps = [step for step in sorted(self.size_schedule, key=lambda s: s.from_epoch) if step.from_epoch <= epoch]
        return tuple(steps[-1].size) if steps else native


class DataConfig(Strict):
    uri: str = Field("data/quickstart", description="a local folder, or s3://bucket/prefix")
    endpoint_url: str | None = Field(None, description="S3-compatible store (MinIO, ...); credentials come from the AWS environment")
    generate_if_missing: bool = Field(True, description="generate the synthetic data set at data.uri when it holds none")
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    shuffle_buffer: int = Field(64, ge=0, description="rows each worker shuffles locally between epochs; 0: the read order")
    verify_checksums: bool = Field(True, description="check every shard's sha256 against the manifest before training")
    on_bad_sample: Literal["error", "skip"] = Field("error", description="skip: leave bad samples out, counted in summary.json")
    augment: AugmentConfig | None = None
    classes: list[str] | None = Field(None, min_length=1, description="train on these of the data set's classes (by name, in this "
                                                                      "order); the others become other_classes")
    other_classes: Literal["background", "ignore"] = Field("background", description="with classes: the other classes as one "
                                                                                     "class 'background', or unlabelled")
    preserve_order: bool = Field(False, description="the same batches in the same order every run, for exact resumes; "
                                                    "costs Ray Data some overlap of its read tasks")


class OptimizerConfig(Strict):
    name: Literal["adamw", "sgd"] = Field("adamw", description="the optimizer")
    lr: float = Field(1e-3, gt=0.0, description="learning rate")
    weight_decay: float = Field(1e-4, ge=0.0, description="decoupled weight decay (AdamW), L2 penalty (SGD)")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD only")


class PlateauConfig(Strict):
    """Reduce the learning rate when the task's monitored validation metric stops improving."""

    patience: int = Field(3, ge=0, description="epochs without improvement before the learning rate drops")
    factor: float = Field(0.5, gt=0.0, lt=1.0, description="the learning rate is multiplied by this at each drop")
    min_lr: float = Field(0.0, ge=0.0, description="it never drops below this")


class CheckpointEvery(Strict):
    """Checkpoints inside the epoch, each at the end of an optimizer step: by steps or by minutes, not both."""

    steps: int | None = Field(None, ge=1, description="optimizer steps (counted over the run) between two checkpoints")
    minutes: float | None = Field(None, gt=0.0, description="minutes of training (rank 0's clock) between two checkpoints")

    @model_validator(mode="after")
    def _one_key(self) -> "CheckpointEvery":
        if (self.steps is None) == (self.minutes is None):
            raise ValueError("give one of steps (e.g. {steps: 500}) or minutes (e.g. {minutes: 30}), not both and not neither")
        return self


class TrainConfig(Strict):
    epochs: int = Field(6, ge=1, description="with stages: their epochs added up")
    batch_size: int = Field(8, ge=1, description="per worker")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    plateau: PlateauConfig | None = Field(None, description="unset: the learning rate stays constant")
    early_stopping: int | None = Field(None, ge=0, description="stop once more epochs than this in a row did not improve the "
                                                                "monitored metric (counted as ReduceLROnPlateau counts patience)")
    grad_accumulation: int = Field(1, ge=1, description="batches whose gradients add up to one optimizer step")
    grad_clip: float | None = Field(None, gt=0.0, description="clip the gradients' total L2 norm to this")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="bf16: forward pass and losses under bf16 autocast (CPU or GPU); fp16: under fp16 autocast with a "
                            "dynamic loss scale (steps whose gradients overflow are skipped and counted, the scale halved)")
    skip_nonfinite_steps: int = Field(0, ge=0, description="steps with a non-finite loss or gradient skipped (and counted) before the run stops")
    log_images: int = Field(4, ge=0, description="validation predictions written to TensorBoard each epoch")
    checkpoints_to_keep: int = Field(2, ge=1, description="checkpoints Ray Train keeps (see checkpoints_kept_by)")
    checkpoints_kept_by: Literal["metric", "epoch"] = Field(
        "metric", description="metric: the best checkpoints_to_keep by the task's monitored metric, and the latest; epoch: the last checkpoints_to_keep"
    )
    best_checkpoints: int = Field(0, ge=0, description="copies of the best N checkpoints by the monitored metric kept in best/ (with checkpoints_kept_by: epoch, the last and the best)")
    progress_every_s: float = Field(30.0, gt=0.0, description="the most seconds between two progress lines inside an epoch (step, "
                                                               "samples/s, loss, lr, ETA of the epoch and the run); an epoch "
                                                               "longer than this also gets one at each tenth")
    checkpoint_every: CheckpointEvery | None = Field(
        None, description="also checkpoint inside each epoch; a restart, a resume or a run with another number of workers then "
                          "goes on inside the epoch, training each of its samples once (the epoch's order is drawn from "
                          "(seed, epoch) alone; data.shuffle_buffer is then the rows shuffled together). Ray Train then keeps "
                          "the last checkpoints_to_keep whatever checkpoints_kept_by says (mid-epoch ones have no validation "
                          "metric); best_checkpoints keeps the best")
    checkpoint_upload: Literal["async", "sync"] = Field(
        "async", description="async: the workers write a checkpoint to a local folder and train on while Ray Train copies it to "
                             "the run's storage (S3 or the run directory); a copy that fails after its retries fails the "
                             "workers, which restart from the latest checkpoint copied whole. At most 2 wait to be copied: a "
                             "third holds the workers until the oldest is. sync: the workers wait for each copy")
    step_scalars_every: int = Field(10, ge=0, description="optimizer steps between two step-level TensorBoard scalars (step/loss, step/lr, "
                                                          "step/samples_per_s, step/data_wait_share); 0: none")


class StageConfig(Strict):
    """One stage of a staged run; what it leaves unset it takes from train.*."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the stage's name, in metrics.jsonl and the summary")
    epochs: int = Field(ge=1, description="the most epochs this stage runs; early stopping may end it sooner")
    freeze: list[str] = Field(default_factory=list, description="parameter-name patterns (fnmatch: 'encoder.*') held fixed in this "
                                                                "stage; every other parameter trains")
    batch_size: int | None = Field(None, ge=1, description="per worker")
    optimizer: dict[str, Any] = Field(default_factory=dict, description="train.optimizer keys changed in this stage, e.g. {lr: 0.01}")
    keep_optimizer: bool = Field(False, description="go on with the stage before's optimizer state and learning rate instead of a "
                                                    "new optimizer (the same parameters must train)")
    loss_weights: dict[str, float] | None = Field(None, description="as task.loss.weights; 0 turns a loss off")
    plateau: PlateauConfig | None = None
    early_stopping: int | None = Field(None, ge=0, description="as train.early_stopping, for this stage")
    start_from: str = Field("previous", description="previous: the weights the stage before ended with; or a checkpoint folder "
                                                    "whose weights this stage starts from")


class ScalingConfig(Strict):
    num_workers: int | tuple[int, int] = Field(
        2, description="Ray Train workers, each a process with a copy of the model; [MIN, MAX]: elastic, starting once MIN fit, "
                       "growing to MAX as resources appear and shrinking on a node loss (failure.max_failures counts those), "
                       "each resize going on from the latest checkpoint with the global batch of MAX workers")
    resize_check_s: float = Field(60.0, gt=0.0, description="elastic num_workers: seconds between two looks for the resources to grow")
    cpus_per_worker: float = Field(0.5, gt=0.0, description="fractions leave CPUs for Ray Data (see data_cpus)")
    gpus_per_worker: float = Field(0.0, ge=0.0, description="> 0: each worker takes this share of a GPU")
    use_gpu: bool | Literal["auto"] = Field("auto", description="auto: GPUs where the cluster has them")
    data_cpus: float = Field(1.0, gt=0.0, description="CPUs left free for Ray Data's read and decode tasks")
    torch_threads: int | None = Field(None, ge=1, description="default: derived from cpus_per_worker")
    strategy: Literal["ddp", "deepspeed"] = Field("ddp", description="deepspeed: ZeRO partitions optimizer state (and more) across workers")
    zero_stage: Literal[1, 2, 3] = Field(2, description="deepspeed: 1 optimizer state, 2 and gradients, 3 and parameters")
    autoscale_timeout_s: float = Field(0.0, ge=0.0, description="> 0: ask the autoscaler for a plan that does not fit yet, and wait this long")

    @field_validator("num_workers")
    @classmethod
    def _workers_range(cls, value: int | tuple[int, int]) -> int | tuple[int, int]:
        low, high = (value, value) if isinstance(value, int) else value
        if low < 1:
            raise ValueError(f"{list(value) if isinstance(value, tuple) else value}: every worker count must be at least 1")
        if low > high:
            raise ValueError(f"[{low}, {high}]: MIN ({low}) is larger than MAX ({high}); give [MIN, MAX] with MIN <= MAX, "
                             "or one number for a fixed size")
        return value

    @property
    def elastic(self) -> bool:
        return isinstance(self.num_workers, tuple)

    @property
    def min_workers(self) -> int:
        return self.num_workers[0] if isinstance(self.num_workers, tuple) else self.num_workers

    @property
    def max_workers(self) -> int:
        return self.num_workers[1] if isinstance(self.num_workers, tuple) else self.num_workers


class FailureSettings(Strict):
    max_failures: int = Field(0, ge=-1, description="worker failures the run restarts after, from its latest checkpoint; -1: no limit")
    resource_wait_s: float = Field(
        600.0, gt=0.0, description="how long a worker group waits for the plan's resources (a lost node replaced) before the run fails naming what is missing"
    )


class RayConfig(Strict):
    """How the local Ray instance is started when RAY_ADDRESS names no cluster."""

    num_cpus: int | None = Field(None, ge=1, description="default: all cores of this machine")
    include_dashboard: bool = Field(
        True, description="Ray Train's PlacementGroupCleaner asks the dashboard's state API whether the controller is alive; "
                           "without a dashboard it cannot, and a controller that dies uncleanly leaves its placement group reserved",
    )
    dashboard_host: str = Field("127.0.0.1", description="where the dashboard and the job API listen; loopback unless you mean it")
    node_ip_address: str = Field("127.0.0.1", description="the address the local instance's processes use")


class OutputConfig(Strict):
    root: str = Field("runs", description="run directories are made under this folder")
    storage: str | None = Field(
        None, pattern=r"^s3://[^/]+",
        description="s3://bucket/prefix: checkpoints are written there and the run directory copied there, in a folder named like the run",
    )
    endpoint_url: str | None = Field(None, description="output.storage on an S3-compatible store (MinIO), e.g. http://host:9000")
    storage_retry_s: float = Field(120.0, gt=0.0, description="how long an upload retries, with growing waits, while S3 does not answer")
