"""The split loop and manifest head shared by the generators that draw each sample alone (bodies, rooms).

Sample i of a split comes from the random stream seeded by (seed, split, i), so a data set is a
pure function of its config and any sample can be made again on its own.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from core.config.sections import SyntheticConfig
from data_pipeline.format import codec, shards
from data_pipeline.format.dataset_stats import Progress
from data_pipeline.storage.datastore import DataStore

SPLITS = ("train", "val")


def write_splits(store: DataStore, config: SyntheticConfig, label: str,
                 sample: Callable[[str, np.random.Generator], tuple[dict[str, Any], Any]],
                 on_train: Callable[[Any], None]) -> dict[str, Any]:
    """Each split's shards; sample(sample_id, rng) gives a row and what on_train adds up from a training sample."""
    store.remove()  # holds no manifest, so anything there is the leftover of an interrupted write
    splits = {}
    for split_index, split in enumerate(SPLITS):
        count = config.num_train if split == "train" else config.num_val
        writer = shards.ShardWriter(store, split, config.rows_per_shard)
        progress = Progress(f"generating {split} {label}", count)
        for index in range(count):
            row, made = sample(f"{split}-{index:05d}", np.random.default_rng(np.random.SeedSequence([config.seed, split_index, index])))
            writer.add(row)
            if split == "train":
                on_train(made)
            progress.step()
        splits[split] = writer.close()
    return splits


def manifest_head(name: str, module: str, config: SyntheticConfig, classes: list[dict], ignore_index: int) -> dict[str, Any]:
    return {"name": name, "generator": {"module": module, **config.model_dump()}, "classes": classes, "ignore_index": ignore_index,
            "image_size": [config.image_size, config.image_size], "encoding": config.encoding, "depth_scale": codec.DEPTH_SCALE}
