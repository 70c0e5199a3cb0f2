import math

import pytest
import torch

from core.evaluation.depth_metrics import DepthErrors, per_image
from core.engine.steps import evaluate
from core.models.sparse_fill import nearest_fill
from core.tasks.catalog import build_task, task_config
from tests.core.task_batches import manifest_for, random_batch, synthetic_batches, train_for

CPU = torch.device("cpu")


def _task(manifest=None, **config):
    return build_task(task_config(name="depth_completion", **config), manifest or manifest_for())


@pytest.mark.parametrize("inputs, completion, weights", [
    (["rgb", "sparse_depth"], {}, {"l2": 1.0}),
    (["rgb", "sparse_depth", "labels"], {"cspn_iterations": 3, "cspn_kernels": [3, 5]}, {"l2": 1.0, "l1": 0.5}),
    (["rgb", "sparse_depth"], {"cspn_iterations": 2}, {"l1": 1.0, "l2": 0.0}),
])
def test_model_returns_the_configured_losses(inputs, completion, weights):
    task = _task(inputs=inputs, completion=completion, loss={"weights": weights})
    model = task.build_model()
    batch_inputs, targets = task.split_batch(random_batch(), CPU)
    outputs = model(batch_inputs)
    assert outputs["depth"].shape == (2, 1, 32, 32) and (outputs["depth"] >= 0).all()
    assert len(outputs["branches"]) == (3 if "labels" in inputs else 2)
    assert (model.refine is not None) == bool(completion.get("cspn_iterations"))
    losses = task.losses(outputs, targets)
    assert list(losses) == list(weights), "a loss at weight 0 is still computed, to be logged as off"
    assert all(torch.isfinite(value) for value in losses.values())


def test_cspn_keeps_the_measured_depths():
    task = _task(completion={"cspn_iterations": 4})
    inputs, _ = task.split_batch(random_batch(), CPU)
    depth = task.build_model()(inputs)["depth"]
    measured = inputs["sparse"] > 0
    assert torch.allclose(depth[measured], inputs["sparse"][measured])


def test_depth_is_the_target_not_an_input():
    with pytest.raises(ValueError, match="Input should be 'rgb', 'sparse_depth' or 'labels'"):
        _task(inputs=["rgb", "sparse_depth", "depth"])
    with pytest.raises(ValueError, match="'l2', 'l1'"):
        _task(loss={"weights": {"cross_entropy": 1.0}})


def test_model_learns_and_beats_mean_depth(tiny_dataset):
    torch.manual_seed(0)
    manifest, batches = synthetic_batches(tiny_dataset, ["rgb", "sparse_depth", "labels", "depth"])
    task = _task(manifest, inputs=["rgb", "sparse_depth", "labels"], completion={"width": 8}, loss={"weights": {"l1": 1.0}})
    first, last, model = train_for(task, batches, epochs=30, lr=3e-3)
    after = evaluate(model, batches, task, CPU, num_previews=2)
    assert last.losses["l1"] < 0.5 * first.losses["l1"]
    assert after.metrics["rmse"] < 0.7 * after.baselines["mean_depth_rmse"]
    assert len(after.previews) == 2 and after.previews[0].shape == (32, 128, 3)


def test_batch_without_ground_truth_gives_zero_loss_that_backpropagates():
    task = _task(loss={"weights": {"l2": 1.0, "l1": 1.0}})
    batch = random_batch()
    batch["depth"].zero_()
    model = task.build_model()
    inputs, targets = task.split_batch(batch, CPU)
    losses = task.losses(model(inputs), targets)
    assert all(value.item() == 0.0 for value in losses.values())
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_nan_in_sparse_depth_is_an_error_naming_the_column():
    batch = random_batch()
    batch["sparse_depth"][1, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="'sparse_depth' holds non-finite"):
        _task().split_batch(batch, CPU)


def test_metrics_match_the_devkit_definitions_by_hand():
    truth = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]], [[4.0, 0.0]]])
    predicted = torch.tensor([[[2.0, 2.0]], [[3.0, 3.0]], [[5.0, 9.0]]])
    # Image 1: errors 1000 and 0 mm; inverse 1000/2 - 1000/1 = -500 and 0 per km. Image 2 has no
    # ground truth and is not scored. Image 3: 1000 mm, 1000/5 - 1000/4 = -50 per km.
    assert torch.allclose(per_image(predicted, truth), torch.tensor([
        [math.sqrt(1e6 / 2), 500.0, math.sqrt(500.0**2 / 2), 250.0], [1000.0, 1000.0, 50.0, 50.0]], dtype=torch.float64))
    errors = DepthErrors()
    errors.update(predicted, truth)
    expected = {"rmse": (math.sqrt(5e5) + 1000) / 2, "mae": 750.0, "irmse": (math.sqrt(125000) + 50) / 2, "imae": 150.0}
    assert errors.compute() == pytest.approx(expected)


def test_metrics_are_the_mean_over_images_however_the_images_are_split():
    torch.manual_seed(0)
    truth = torch.rand(6, 1, 5, 5) * 50 * (torch.rand(6, 1, 5, 5) < 0.5)
    predicted = torch.rand(6, 1, 5, 5) * 50
    whole, parts = DepthErrors(), [DepthErrors(), DepthErrors()]
    whole.update(predicted, truth)
    parts[0].update(predicted[:1], truth[:1])
    parts[1].update(predicted[1:], truth[1:])
    parts[0].sums += parts[1].sums  # what all_reduce does across two workers
    assert parts[0].compute() == pytest.approx(whole.compute())


def test_split_without_any_ground_truth_is_an_error():
    errors = DepthErrors()
    errors.update(torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="no image of the split has a ground-truth depth pixel"):
        errors.compute()


def test_nearest_fill_takes_the_closest_measurement():
    sparse = torch.tensor([[[0.0, 5.0, 0.0, 0.0, 7.0]], [[0.0, 0.0, 0.0, 0.0, 0.0]]])
    assert nearest_fill(sparse).tolist() == [[[5.0, 5.0, 5.0, 7.0, 7.0]], [[0.0] * 5]]
