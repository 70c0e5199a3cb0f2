import copy
import itertools

import pytest
import torch

from core.engine.steps import evaluate, train_epoch
from core.engine.optim import build_optimizer
from core.config.sections import OptimizerConfig
from core.tasks.catalog import build_task, task_class, task_config
from core.tasks.columns import column_names
from tests.core.task_batches import manifest_for, random_batch, synthetic_batches


@pytest.mark.parametrize("decoder, encoder", list(itertools.product(["unet", "fpn", "deeplabv3plus"], ["resnet18", "resnext50_32x4d"])) + [("fpn", "resnet34"), ("fpn", "resnet50")])
def test_every_decoder_encoder_pair_returns_named_losses(decoder, encoder):
    task = build_task(task_config(model={"decoder": decoder, "encoder": encoder}), manifest_for())
    model = task.build_model()
    inputs, targets = task.split_batch(random_batch(), torch.device("cpu"))
    outputs = model(inputs)
    assert outputs.shape == (2, 3, 32, 32)
    losses = task.losses(outputs, targets)
    assert list(losses) == ["cross_entropy"] and torch.isfinite(losses["cross_entropy"])


def test_extra_depth_channels_and_focal_loss():
    config = task_config(inputs=["rgb", "depth", "sparse_depth"], loss={"weights": {"focal": 1.0, "cross_entropy": 0.0}, "focal_gamma": 2.0, "focal_alpha": 0.25})
    task = build_task(config, manifest_for())
    assert column_names(task.columns) == ["rgb", "depth", "sparse_depth", "labels"]
    inputs, targets = task.split_batch(random_batch(), torch.device("cpu"))
    assert inputs.shape == (2, 5, 32, 32) and torch.isfinite(inputs).all()
    assert list(task.losses(task.build_model()(inputs), targets)) == ["focal", "cross_entropy"]


def test_weighted_losses_are_summed_by_the_engine():
    task = build_task(task_config(loss={"weights": {"cross_entropy": 0.5, "focal": 2.0}}), manifest_for())
    assert task.loss_weights == {"cross_entropy": 0.5, "focal": 2.0}
    model = task.build_model()
    by_hand = copy.deepcopy(model)
    before = model.segmentation_head[0].weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # the step moves each weight by minus its gradient
    batch = random_batch()
    torch.manual_seed(1)  # the same dropout masks in both passes
    stats = train_epoch(model, optimizer, [batch], task, torch.device("cpu"))
    assert set(stats.losses) == {"cross_entropy", "focal"}
    engine_grad = before - model.segmentation_head[0].weight.detach()
    inputs, targets = task.split_batch(batch, torch.device("cpu"))
    torch.manual_seed(1)
    losses = task.losses(by_hand(inputs), targets)
    (0.5 * losses["cross_entropy"] + 2.0 * losses["focal"]).backward()
    assert torch.allclose(engine_grad, by_hand.segmentation_head[0].weight.grad, atol=1e-6)


def test_a_loss_at_weight_zero_is_logged_and_steers_nothing():
    """A reader of metrics.jsonl must see that focal was off: its value is there, and the step is cross-entropy's alone."""
    torch.manual_seed(0)
    batch = random_batch()
    steps = {}
    for weights in ({"cross_entropy": 1.0}, {"cross_entropy": 1.0, "focal": 0.0}):
        task = build_task(task_config(loss={"weights": weights}), manifest_for())
        torch.manual_seed(2)
        model = task.build_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        torch.manual_seed(1)
        stats = train_epoch(model, optimizer, [batch], task, torch.device("cpu"))
        steps[len(weights)] = (stats.losses, model.segmentation_head[0].weight.detach())
    (alone, step_alone), (logged, step_logged) = steps[1], steps[2]
    assert set(logged) == {"cross_entropy", "focal"} and logged["focal"] > 0 and set(alone) == {"cross_entropy"}
    assert torch.equal(step_alone, step_logged)


def test_unknown_loss_name_lists_the_task_losses():
    with pytest.raises(ValueError, match="'cross_entropy', 'focal'"):
        build_task(task_config(loss={"weights": {"dice": 1.0}}), manifest_for())


def test_image_size_the_encoder_cannot_take_is_refused():
    with pytest.raises(ValueError, match="divisible by 32"):
        build_task(task_config(), manifest_for(image_size=48))


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown task 'depth'; known: depth_completion, implicit, lighting, mesh_reconstruction, segmentation"):
        task_class("depth")


def test_model_learns_on_the_synthetic_data_without_ray(tiny_dataset):
    torch.manual_seed(0)
    manifest, batches = synthetic_batches(tiny_dataset, ["rgb", "labels"])
    task = build_task(task_config(), manifest)
    model = task.build_model()
    optimizer = build_optimizer(OptimizerConfig(lr=3e-3), model.parameters())
    device = torch.device("cpu")
    before = evaluate(model, batches, task, device).metrics["pixel_acc"]
    first = train_epoch(model, optimizer, batches, task, device)
    for _ in range(39):
        last = train_epoch(model, optimizer, batches, task, device)
    after = evaluate(model, batches, task, device, num_previews=2)
    assert last.losses["cross_entropy"] < 0.5 * first.losses["cross_entropy"]
    assert after.metrics["pixel_acc"] > max(before, 0.7)
    assert after.metrics["miou"] > 2 * after.baselines["majority_class_miou"]
    assert len(after.previews) == 2 and after.previews[0].shape == (32, 96, 3)


def test_nan_in_depth_input_is_an_error_naming_the_column():
    task = build_task(task_config(inputs=["rgb", "sparse_depth"]), manifest_for())
    batch = random_batch()
    batch["sparse_depth"][0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="'sparse_depth' holds non-finite"):
        task.split_batch(batch, torch.device("cpu"))
