import re

from core.config.loading import load_config
from core.tasks import build_task
from data_pipeline.format.shards import read_manifest
from data_pipeline.storage.datastore import DataStore
from jobs import summary
from jobs.train import DEFAULT_CONFIG


def _args(tiny_dataset, *more):
    return [str(DEFAULT_CONFIG), f"data.uri={tiny_dataset}", "data.generate_if_missing=false", *more]


def test_prints_the_models_figures_at_the_given_input_size(tiny_dataset, capsys):
    overrides = ["task.name=depth_completion", "task.inputs=[rgb, sparse_depth]", "task.loss.weights={l2: 1}",
                 "task.completion.cspn_iterations=2"]
    assert summary.main(_args(tiny_dataset, *overrides, "--input-size", "4,64,96")) == 0
    out = capsys.readouterr().out
    config = load_config(DEFAULT_CONFIG, [f"data.uri={tiny_dataset}", *overrides])
    model = build_task(config.task, read_manifest(DataStore.at(tiny_dataset))).build_model()
    assert f"Total params: {sum(p.numel() for p in model.parameters()):,}" in out
    assert "one sample of 4x64x96" in out and "refine.affinity (Conv2d)" in out and "[1, 2, 64, 96]" in out
    assert float(re.search(r"Forward/backward pass size \(MB\): ([\d.]+)", out).group(1)) > 0


def test_input_size_that_does_not_fit_the_task_is_refused(tiny_dataset, capsys):
    assert summary.main(_args(tiny_dataset, "--input-size", "5,64,64")) == 2
    assert "inputs ['rgb'] have 3 channels, not 5" in capsys.readouterr().err
    assert summary.main(_args(tiny_dataset, "--input-size", "64x64")) == 2
    assert "give C,H,W or H,W" in capsys.readouterr().err
