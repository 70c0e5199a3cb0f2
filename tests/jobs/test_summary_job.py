import re

import pytest

from core.config.loading import load_config
from core.tasks.catalog import build_task
from data_pipeline.format.shards import read_manifest
from data_pipeline.storage.datastore import DataStore
from jobs import summary
from jobs._cli import DEFAULT_CONFIG

DEPTH = DEFAULT_CONFIG.parent / "depth_completion.yaml"
EXPERIMENTS = sorted(path.name for path in (DEFAULT_CONFIG.parent).glob("*.yaml") if path.name != "ray_data_logging.yaml")


def _args(tiny_dataset, config=DEFAULT_CONFIG, *more):
    return [str(config), f"data.uri={tiny_dataset}", "data.generate_if_missing=false", *more]


def test_prints_the_models_figures_at_the_given_input_size(tiny_dataset, capsys):
    overrides = ["task.inputs=[rgb, sparse_depth]", "task.completion.cspn_iterations=2"]
    assert summary.main(_args(tiny_dataset, DEPTH, *overrides, "--input-size", "4,64,96")) == 0
    out = capsys.readouterr().out
    config = load_config(DEPTH, [f"data.uri={tiny_dataset}", *overrides])
    model = build_task(config.task, read_manifest(DataStore.at(tiny_dataset))).build_model()
    assert f"Total params: {sum(p.numel() for p in model.parameters()):,}" in out
    assert "one sample of rgb 3x64x96, sparse 1x64x96" in out
    assert re.search(r"Conv2d \(affinity\)\s+\[1, \d+, 64, 96\]", out)
    assert float(re.search(r"Forward/backward pass size \(MB\): ([\d.]+)", out).group(1)) > 0


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_config_is_summarised(name, request, capsys):
    """Each task's model is fed one sample made from the columns it declares (the mesh task's camera included),
    on the kind of synthetic data its config generates."""
    config = load_config(DEFAULT_CONFIG.parent / name)
    data = request.getfixturevalue({"bodies": "tiny_bodies", "rooms": "tiny_rooms"}.get(config.data.synthetic.kind, "tiny_dataset"))
    config = load_config(DEFAULT_CONFIG.parent / name, [f"data.uri={data}"])
    assert summary.main(_args(data, DEFAULT_CONFIG.parent / name)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"{config.task.name} {config.task.model_label}, one sample of" in out and "Total params:" in out


def test_input_size_that_does_not_fit_the_task_is_refused(tiny_dataset, capsys):
    assert summary.main(_args(tiny_dataset, DEFAULT_CONFIG, "--input-size", "5,64,64")) == 2
    assert "inputs ['rgb'] have 3 channels, not 5" in capsys.readouterr().err
    assert summary.main(_args(tiny_dataset, DEFAULT_CONFIG, "--input-size", "64x64")) == 2
    assert "give C,H,W or H,W" in capsys.readouterr().err
