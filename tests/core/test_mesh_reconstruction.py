import pytest
import torch

from core.engine.steps import evaluate
from core.models.mesh_reconstruction import MeshReconstructionNet, cameras_for, fit_grid_depth, grid_faces, render
from core.tasks.catalog import build_task, task_config
from tests.core.task_batches import manifest_for, random_batch, synthetic_batches, train_for

CPU = torch.device("cpu")
COLUMNS = ["rgb", "sparse_depth", "intrinsics", "depth", "labels"]


def _batch(n=2, size=32):
    batch = random_batch(n, size)
    batch["depth"] = 90 + torch.rand(n, size, size) * 20
    batch["sparse_depth"] = batch["depth"] * (torch.rand(n, size, size) < 0.1)
    batch["intrinsics"] = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]).expand(n, 3, 3).reshape(n, 9)
    return batch


def _task(manifest=None, **mesh):
    return build_task(task_config(name="mesh_reconstruction", mesh={"grid": [6, 6], "hidden": 8, **mesh}), manifest or manifest_for())


def test_model_returns_every_named_loss_finite():
    task = _task()
    inputs, targets = task.split_batch(_batch(), CPU)
    outputs = task.build_model()(inputs)
    assert outputs["depth"].shape == (2, 1, 32, 32) and outputs["semantic"].shape == (2, 3, 32, 32)
    losses = task.losses(outputs, targets)
    assert list(losses) == ["depth_l1", "chamfer", "laplacian", "edge", "semantic_ce"]
    assert all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()


def test_rendered_depth_of_a_fitted_plane_matches_the_plane():
    height = width = 32
    intrinsics = torch.tensor([[[40.0, 0, 11], [0, 40.0, 19], [0, 0, 1]]])  # off-centre, as KITTI's crops are
    rows, cols = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    plane = 10 + 0.1 * cols + 0.2 * rows  # depth linear in the pixel position
    sparse = (plane * (torch.rand(height, width) < 0.3))[None, None]
    net = MeshReconstructionNet(3, (5, 5), 1, 8, 15.0, 3.0, smoothness=0.01)
    depth = fit_grid_depth(sparse, (5, 5), 0.01, 15.0)
    rendered = render(net._meshes(depth, intrinsics, (height, width)), cameras_for(intrinsics, (height, width)), (height, width), depth)
    assert rendered["covered"].all(), "the grid mesh covers every pixel"
    assert (rendered["depth"][0, 0] - plane).abs().max() < 0.1


def test_fit_without_any_measurement_is_the_prior_depth():
    assert torch.allclose(fit_grid_depth(torch.zeros(1, 1, 8, 8), (3, 3), 1.0, 42.0), torch.full((1, 9), 42.0), atol=1e-4)


def test_model_learns_and_beats_the_initial_mesh(tiny_dataset):
    torch.manual_seed(0)
    manifest, batches = synthetic_batches(tiny_dataset, COLUMNS)
    task = _task(manifest, grid=[16, 16], hidden=16)
    first, last, model = train_for(task, batches, epochs=25, lr=5e-3)
    after = evaluate(model, batches, task, CPU, num_previews=1)
    assert last.losses["semantic_ce"] < 0.7 * first.losses["semantic_ce"]
    assert last.losses["depth_l1"] < 0.95 * first.losses["depth_l1"]
    assert after.metrics["depth_mae"] < 0.95 * after.baselines["initial_mesh_depth_mae"]
    assert after.metrics["chamfer"] < after.baselines["initial_mesh_chamfer"]
    assert after.previews[0].shape == (32, 160, 3)


def test_a_mesh_without_faces_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2x2"):
        grid_faces(1, 5)
    with pytest.raises(ValueError, match="has no faces"):
        task_config(name="mesh_reconstruction", mesh={"grid": [1, 8]})


def test_batch_without_ground_truth_has_defined_losses():
    task = _task()
    batch = _batch()
    batch["depth"].zero_()
    inputs, targets = task.split_batch(batch, CPU)
    losses = task.losses(task.build_model()(inputs), targets)
    assert losses["depth_l1"].item() == 0.0 and losses["chamfer"].item() == 0.0
    assert all(torch.isfinite(value) for value in losses.values())


def test_meshes_reach_tensorboard_through_the_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    from core.engine import checkpoint
    from core.runs.run_dir import TENSORBOARD, RunLogger

    task = _task()
    inputs, _ = task.split_batch(_batch(), CPU)
    model = task.build_model()
    meshes = task.preview_meshes(model(inputs))
    assert len(meshes) == 2 and meshes[0]["verts"].shape == (36, 3) and meshes[0]["colors"].shape == (36, 3)
    checkpoint.save(tmp_path / "ckpt", model, torch.optim.SGD(model.parameters(), lr=0.1), {"epoch": 0}, meshes=meshes)
    loaded = checkpoint.load_meshes(tmp_path / "ckpt")
    assert all((loaded[0][key] == meshes[0][key]).all() for key in ("verts", "faces", "colors"))
    logger = RunLogger(tmp_path)
    logger.log({"epoch": 1}, step=1, meshes=loaded)
    logger.close()
    tags = {value.tag for path in (tmp_path / TENSORBOARD).glob("events.*")
            for event in EventFileLoader(str(path)).Load() for value in event.summary.value}
    assert {"val/mesh_0_VERTEX", "val/mesh_0_FACE", "val/mesh_0_COLOR"} <= tags


def test_metrics_match_hand_computed_values():
    from pytorch3d.loss import chamfer_distance
    from pytorch3d.ops import sample_points_from_meshes

    from core.tasks.mesh_reconstruction.task import MeshMetrics, truth_points

    intrinsics = torch.tensor([[[2.0, 0, 1], [0, 2.0, 1], [0, 0, 1]]])
    truth = torch.tensor([[[[4.0, 0.0], [2.0, 8.0]]]])
    # Pixel centres (0.5, 0.5), (0.5, 1.5), (1.5, 1.5); PyTorch3D's view space has +X left, +Y up:
    # X = -(u - cx) z / fx, Y = -(v - cy) z / fy.
    points, lengths = truth_points(truth, intrinsics, count=8)
    assert lengths.tolist() == [3]
    assert torch.allclose(points[0, :3], torch.tensor([[1.0, 1.0, 4.0], [0.5, -0.5, 2.0], [-2.0, -2.0, 8.0]]))

    task = _task()
    inputs, targets = task.split_batch(_batch(1, 32), CPU)
    outputs = task.build_model()(inputs)
    outputs["depth"] = targets["depth"] + 0.5  # 0.5 m off everywhere
    outputs["initial_depth"] = targets["depth"] - 2.0
    outputs["semantic"] = torch.nn.functional.one_hot(targets["labels"], 3).permute(0, 3, 1, 2).float()  # right everywhere
    metrics = MeshMetrics(["a", "b", "c"], 255, majority_class=0, chamfer_points=64)
    metrics.update(outputs, targets)
    figures, baselines = metrics.compute(), metrics.baselines()
    assert figures["depth_mae"] == pytest.approx(0.5) and baselines["initial_mesh_depth_mae"] == pytest.approx(2.0)
    assert figures["miou"] == pytest.approx(1.0)
    torch.manual_seed(0)
    sampled = sample_points_from_meshes(outputs["meshes"], 64)
    expected, _ = chamfer_distance(sampled, truth_points(targets["depth"], targets["intrinsics"], 64)[0])
    assert figures["chamfer"] == pytest.approx(expected.item(), rel=1e-5)
