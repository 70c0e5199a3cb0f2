"""python -m jobs.summary [CONFIG] [dotted.key=value ...] [--input-size [C,]H,W]: the model's size, torchsummary style.

Prints total and trainable parameters, parameter size, forward/backward activation size for one
sample at the input size (default: the data set's image size), and a per-module table. The model
is built exactly as training builds it, from the task and the data set's manifest (the synthetic
data set is generated first when the config says so, as jobs.train would).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from core.config.errors import ConfigError
from core.config.loading import load_config
from core.profiling.model_summary import format_summary, summarise_model
from core.tasks import build_task
from data_pipeline.format.shards import DatasetError, read_manifest
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.synthetic import ensure_dataset
from jobs._cli import DEFAULT_CONFIG, USAGE_ERROR

_CHANNELS = {"rgb": 3, "depth": 1, "sparse_depth": 1, "labels": 1}


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        config = load_config(args.config, args.overrides)
        store = DataStore.at(config.data.uri, config.data.endpoint_url)
        manifest = ensure_dataset(store, config.data.synthetic) if config.data.generate_if_missing else read_manifest(store)
        task = build_task(config.task, manifest)
        size = _input_size(args.input_size, task, manifest)
        model = task.build_model()
        inputs, _ = task.split_batch(_one_sample(task.columns, size, manifest), torch.device("cpu"))
    except (ConfigError, DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    channels = sum(_CHANNELS[name] for name in task.columns if name in (config.task.inputs or task.inputs))
    title = f"{config.name}: {config.task.name}, one sample of {channels}x{size[0]}x{size[1]} ({', '.join(task.inputs)})"
    print(format_summary(summarise_model(model, inputs), title))
    return 0


def _input_size(text: str | None, task, manifest: dict) -> tuple[int, int]:
    if text is None:
        return tuple(manifest["image_size"])
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or min(values) < 1:
        raise ValueError(f"--input-size {text!r}: give C,H,W or H,W with positive integers, such as 3,64,64")
    expected = sum(_CHANNELS[name] for name in task.inputs)
    if len(values) == 3 and values[0] != expected:
        raise ValueError(f"--input-size {text!r}: the task's inputs {task.inputs} have {expected} channels, not {values[0]}")
    return values[-2], values[-1]


def _one_sample(columns: list[str], size: tuple[int, int], manifest: dict) -> dict[str, torch.Tensor]:
    """A random sample of the task's columns at this size, in the decoded dtypes."""
    rng = np.random.default_rng(0)
    height, width = size
    sample = {}
    for name in columns:
        if name == "rgb":
            sample[name] = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
        elif name == "labels":
            sample[name] = rng.integers(0, max(len(manifest["classes"]), 1), (1, height, width), dtype=np.uint8)
        else:
            sample[name] = (rng.uniform(1, 80, (1, height, width)) * (rng.uniform(size=(1, height, width)) < 0.2)).astype(np.float32)
    return {name: torch.from_numpy(values) for name, values in sample.items()}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.summary", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="experiment YAML (default: configs/quickstart.yaml)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    parser.add_argument("--input-size", help="C,H,W or H,W of one sample (default: the data set's image size)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
