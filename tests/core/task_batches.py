"""Batches for task tests without Ray: the tiny synthetic data set decoded, and random ones."""
import torch

from core.tasks.columns import Column, Kind
from data_pipeline.readers.local import split_batches
from data_pipeline.format.shards import read_manifest
from data_pipeline.storage.datastore import DataStore


TERRAIN = {"rgb": Column("rgb", Kind.IMAGE, (3,)), "labels": Column("labels", Kind.LABEL_MAP),
           "depth": Column("depth", Kind.DEPTH_MAP), "sparse_depth": Column("sparse_depth", Kind.DEPTH_MAP),
           "intrinsics": Column("intrinsics", Kind.CAMERA)}  # the synthetic terrain's columns, as tasks declare them


def synthetic_batches(root, columns: list[str], batch_size: int = 8) -> tuple[dict, list[dict]]:
    """(manifest, the train split as torch batches of the named columns)."""
    store = DataStore.at(root)
    manifest = read_manifest(store)
    return manifest, list(split_batches(store, manifest, "train", [TERRAIN[name] for name in columns], batch_size))


def random_batch(n=2, size=32, classes=3) -> dict[str, torch.Tensor]:
    return {
        "rgb": torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8),
        "depth": torch.rand(n, size, size) * 120,
        "sparse_depth": torch.rand(n, size, size) * 120 * (torch.rand(n, size, size) < 0.05),
        "labels": torch.randint(0, classes, (n, size, size), dtype=torch.uint8),
    }


def manifest_for(image_size=32) -> dict:
    return {
        "classes": [{"name": n, "color": [i * 40, 0, 0]} for i, n in enumerate(["a", "b", "c"])],
        "ignore_index": 255,
        "image_size": [image_size, image_size],
        "stats": {"rgb_mean": [0.5] * 3, "rgb_std": [0.25] * 3, "depth_mean_m": 100.0, "depth_std_m": 10.0, "class_pixels": [5, 9, 1]},
    }


def train_for(task, batches: list[dict], epochs: int, lr: float):
    """(first epoch's stats, last epoch's stats, the model) after `epochs` epochs over the batches, without Ray."""
    from core.config.sections import OptimizerConfig
    from core.engine.steps import train_epoch
    from core.engine.optim import build_optimizer

    model = task.build_model()
    optimizer = build_optimizer(OptimizerConfig(lr=lr), model.parameters())
    first = last = train_epoch(model, optimizer, batches, task, torch.device("cpu"))
    for _ in range(epochs - 1):
        last = train_epoch(model, optimizer, batches, task, torch.device("cpu"))
    return first, last, model
