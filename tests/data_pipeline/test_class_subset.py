"""Training on some of a data set's classes: the manifest a run sees, labels remapped as decoded, exports mapped back."""
import json

import numpy as np
import pytest
import torch

from core.config.errors import ConfigError
from core.config.loading import load_config, to_yaml
from core.config.sections import DataConfig
from core.engine import checkpoint
from core.tasks.catalog import build_task
from data_pipeline.format import class_subset, codec
from data_pipeline.format.export import PredictionExport
from data_pipeline.format.shards import read_manifest
from data_pipeline.readers.local import split_batches
from data_pipeline.sources.cityscapes import class_table
from data_pipeline.storage.datastore import DataStore
from jobs import evaluate as evaluate_job
from jobs._cli import DEFAULT_CONFIG


def _labels(store, manifest, task) -> torch.Tensor:
    return torch.cat([batch["labels"] for batch in split_batches(store, manifest, "val", task.columns, 4)])


def test_the_chosen_classes_come_first_and_the_others_become_background(tiny_dataset):
    store = DataStore.at(tiny_dataset)
    stored = read_manifest(store)
    names = [c["name"] for c in stored["classes"]]
    subset = class_subset.select(stored, DataConfig(uri=str(tiny_dataset), classes=["water", "road"]))
    assert [c["name"] for c in subset["classes"]] == ["water", "road", "background"]
    pixels = stored["stats"]["class_pixels"]
    water, road = names.index("water"), names.index("road")
    assert subset["stats"]["class_pixels"] == [pixels[water], pixels[road], sum(pixels) - pixels[water] - pixels[road]]
    task = build_task(load_config(DEFAULT_CONFIG).task, subset)
    assert task.build_model().eval()(torch.zeros(1, 3, 32, 32)).shape[1] == 3
    before, after = _labels(store, stored, task), _labels(store, subset, task)
    expected = torch.full_like(before, 2)
    expected[before == water], expected[before == road], expected[before == 255] = 0, 1, 255
    assert torch.equal(after, expected)


def test_other_classes_ignored_leave_only_the_chosen_ones_labelled(tiny_dataset):
    store = DataStore.at(tiny_dataset)
    stored = read_manifest(store)
    subset = class_subset.select(stored, DataConfig(uri=str(tiny_dataset), classes=["road"], other_classes="ignore"))
    assert [c["name"] for c in subset["classes"]] == ["road"]
    labels = _labels(store, subset, build_task(load_config(DEFAULT_CONFIG).task, subset))
    assert set(labels.unique().tolist()) <= {0, 255} and (labels == 0).any()


def test_a_class_the_data_set_lacks_is_refused_listing_its_classes(tiny_dataset):
    stored = read_manifest(DataStore.at(tiny_dataset))
    with pytest.raises(ConfigError, match=r"data.classes: 'roads' is not a class of the data set at .*; its classes are ground, road, "):
        class_subset.select(stored, DataConfig(uri=str(tiny_dataset), classes=["roads"]))


def test_a_road_only_cityscapes_model_exports_label_ids_of_road_and_void(tmp_path):
    classes, _ = class_table("trainids")
    manifest = {"name": "cityscapes", "source": {"classes": "trainids"}, "classes": classes, "ignore_index": 255,
                "stats": {"class_pixels": [1] * len(classes)}}
    subset = class_subset.select(manifest, DataConfig(uri="data/cityscapes", classes=["road"]))
    task = build_task(load_config(DEFAULT_CONFIG).task, {**subset, "image_size": [32, 32],
                                                         "stats": {**subset["stats"], "rgb_mean": [0.5] * 3, "rgb_std": [0.25] * 3,
                                                                   "depth_mean_m": 1.0, "depth_std_m": 1.0}})
    export = PredictionExport(tmp_path, subset, task, "segmentation")
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, 0, 0, 0] = logits[0, 1, 0, 1] = 1.0  # road on the left, background on the right
    export({"sample_id": ["aachen_000000_000019"]}, logits)
    written = codec.decode_png((tmp_path / "aachen_000000_000019_leftImg8bit.png").read_bytes())
    assert written.tolist() == [[7, 0]], "road is Cityscapes label id 7; background is void (0, unlabeled)"


def test_evaluate_scores_and_exports_a_subset_run_in_the_data_sets_ids(tmp_path, tiny_dataset):
    config = load_config(DEFAULT_CONFIG, [f"data.uri={tiny_dataset}", "data.classes=[road]"])
    store = DataStore.at(tiny_dataset)
    stored = read_manifest(store)
    model = build_task(config.task, class_subset.select(stored, config.data)).build_model()
    run_dir = tmp_path / "run"
    saved = run_dir / "ray_train" / "checkpoint_0"
    checkpoint.save(saved, model, torch.optim.SGD(model.parameters(), lr=0.1), {"epoch": 0})
    (run_dir / "config.yaml").write_text(to_yaml(config))
    (run_dir / "summary.json").write_text(json.dumps({"checkpoint": str(saved)}))
    assert evaluate_job.main([str(run_dir), "--export", str(tmp_path / "out")]) == 0
    metrics = json.loads((run_dir / "eval_val" / "metrics.json").read_text())["metrics"]
    assert {"iou/road", "iou/background"} <= set(metrics) and "iou/water" not in metrics
    road = [c["name"] for c in stored["classes"]].index("road")
    values = set(np.unique(np.concatenate([codec.decode_png(p.read_bytes()).ravel() for p in (tmp_path / "out").glob("*.png")])).tolist())
    assert values and values <= {road, 255}, "predictions in the data set's class ids, background as unlabelled"
