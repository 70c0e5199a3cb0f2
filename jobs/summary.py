"""python -m jobs.summary [CONFIG] [dotted.key=value ...] [--input-size [C,]H,W] [--depth N]: the model's size (torchinfo).

Prints total and trainable parameters, parameter size, forward/backward activation size for one
sample at the input size (default: the data set's image size), and a per-module table. The model
is built exactly as training builds it, from the task and the data set's manifest (the synthetic
data set is generated first when the config says so, as jobs.train would); its one sample is
made from the columns the task declares, each as its kind is decoded.
"""
from __future__ import annotations

import argparse
import sys

import torch

from core.config.errors import ConfigError
from core.config.loading import load_config
from core.tasks.catalog import build_task
from core.tasks.columns import example_batch
from data_pipeline.format import class_subset
from data_pipeline.format.shards import DatasetError, read_manifest
from data_pipeline.sources.synthetic import ensure_dataset
from data_pipeline.storage.datastore import DataStore
from jobs._cli import DEFAULT_CONFIG, USAGE_ERROR


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        config = load_config(args.config, args.overrides)
        store = DataStore.at(config.data.uri, config.data.endpoint_url)
        stored = ensure_dataset(store, config.data.synthetic) if config.data.generate_if_missing else read_manifest(store)
        manifest = class_subset.select(stored, config.data)
        task = build_task(config.task, manifest)
        size = _input_size(args.input_size, task, manifest)
        model = task.build_model()
        batch = example_batch(task.columns, size, len(manifest["classes"]))
        inputs, _ = task.split_batch({name: torch.from_numpy(values) for name, values in batch.items()}, torch.device("cpu"))
    except (ConfigError, DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    import torchinfo  # imported here: a bad config is refused without waiting for it

    shapes = ", ".join(f"{name} {'x'.join(map(str, values.shape[1:]))}" for name, values in _tensors(inputs))
    print(f"{config.name}: {config.task.name} {config.task.model_label}, one sample of {shapes}")
    print(torchinfo.summary(model, input_data=[inputs], depth=args.depth, col_names=("output_size", "num_params"),
                            row_settings=("var_names",), mode="eval", verbose=0))
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
    seen = [column for column in task.columns if column.spatial and column.name in task.inputs]
    expected = sum(column.shape[-1] if column.shape else 1 for column in seen)
    if len(values) == 3 and values[0] != expected:
        raise ValueError(f"--input-size {text!r}: the task's inputs {task.inputs} have {expected} channels, not {values[0]}")
    return values[-2], values[-1]


def _tensors(inputs) -> list[tuple[str, torch.Tensor]]:
    return list(inputs.items()) if isinstance(inputs, dict) else [("input", inputs)]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.summary", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="experiment YAML (default: configs/quickstart.yaml)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    parser.add_argument("--input-size", help="C,H,W or H,W of one sample (default: the data set's image size)")
    parser.add_argument("--depth", type=int, default=3, help="how many levels of nested modules the table shows")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
