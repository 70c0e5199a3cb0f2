"""The implicit task: pixel-aligned features, surfaces and their distances, the prior, per-epoch points, learning."""
import math

import pytest
import torch
from pydantic import ValidationError
from pytorch3d.utils import ico_sphere

from core.engine.steps import evaluate
from core.evaluation import surfaces
from core.evaluation.implicit_metrics import ImplicitMetrics
from core.models.implicit import OUTSIDE_LOGIT, PixelAlignedNet, pixel_aligned, skeleton_sdf
from core.tasks.catalog import build_task, task_config
from data_pipeline.format.shards import read_manifest
from data_pipeline.readers.epoch_collate import EpochCollate
from data_pipeline.readers.local import split_batches
from data_pipeline.storage.datastore import DataStore
from tests.core.task_batches import train_for

CPU = torch.device("cpu")
CAMERA = torch.tensor([[-1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 1.0, 0]])


def _sphere_grid(resolution: int, radius: float, centre=(0.0, 0.0, 0.0)) -> torch.Tensor:
    axis = torch.linspace(-1, 1, resolution)
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    return (((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2).sqrt() < radius).float()


def test_a_points_feature_is_the_feature_maps_value_at_its_projection():
    features = torch.randn(1, 5, 4, 6)
    # the centre of pixel (row 1, column 4) of a 4x6 map is at grid x = (2*4+1)/6 - 1, y = (2*1+1)/4 - 1;
    # the camera puts box point (x, y) at grid (-x, -y)
    point = torch.tensor([[[-(9 / 6 - 1), -(3 / 4 - 1), 0.3]]])
    projected = point @ CAMERA[:, :3].T + CAMERA[:, 3]
    assert torch.allclose(pixel_aligned(features, projected[..., :2])[0, :, 0], features[0, :, 1, 4], atol=1e-6)


def test_a_point_outside_the_image_is_outside_the_body():
    net = PixelAlignedNet(3, 8, 2, [16], prior=False, resolution=8, chunk=1024)
    points = torch.tensor([[[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.0, -3.0, 0.2]]])
    logits = net.query(net.encoder(torch.randn(1, 3, 16, 16)), points, CAMERA[None], None)
    assert logits[0, 1:].tolist() == [OUTSIDE_LOGIT, OUTSIDE_LOGIT] and logits[0, 0] != OUTSIDE_LOGIT


def test_a_spheres_surface_scores_near_zero_against_a_sphere_and_the_true_offset_against_a_shifted_one():
    verts, faces = surfaces.surface(_sphere_grid(64, 0.5), 0.5)
    truth = ico_sphere(4).verts_packed() * 0.5
    p2s, chamfer = surfaces.distances(truth, verts, faces, 4096)
    assert p2s < 0.01 and chamfer < 0.01
    shifted = truth + torch.tensor([0.2, 0.0, 0.0])
    expected = ((shifted.norm(dim=1) - 0.5).abs()).mean().item()  # each truth point's distance to the sphere at the origin
    p2s, chamfer = surfaces.distances(shifted, verts, faces, 4096)
    assert p2s == pytest.approx(expected, abs=0.01)
    assert chamfer == pytest.approx(expected, abs=0.015), "both directions are alike for two equal spheres"


def test_an_empty_grid_is_an_empty_reconstruction_scored_as_such():
    verts, faces = surfaces.surface(torch.zeros(16, 16, 16), 0.5)
    assert surfaces.is_empty(verts, faces)
    assert surfaces.distances(torch.rand(10, 3), verts, faces, 64) == (surfaces.EMPTY_DISTANCE, surfaces.EMPTY_DISTANCE)
    metrics = ImplicitMetrics({"resolution": 8, "values": _sphere_grid(8, 0.6).flatten().tolist()}, 16, 64)
    mask = torch.zeros(1, 16, 16, dtype=torch.long)
    mask[:, 4:12, 6:10] = 1
    targets = {"occupancy": torch.ones(1, 10), "surface_points": torch.rand(1, 50, 3) - 0.5, "points": torch.rand(1, 10, 3) - 0.5,
               "normal_front": torch.zeros(1, 16, 16, 3), "mask": mask, "camera": CAMERA[None], "key": torch.tensor([3])}
    metrics.update({"grid": torch.zeros(1, 16, 16, 16), "occupancy": torch.zeros(1, 10)}, targets)
    figures = metrics.all_reduce().compute()
    assert figures["empty_reconstructions"] == 1 and figures["chamfer_cm"] == pytest.approx(100 * surfaces.EMPTY_DISTANCE)
    assert figures["iou"] == 0 and all(math.isfinite(v) for v in {**figures, **metrics.baselines()}.values())


def test_the_skeleton_prior_is_the_signed_distance_to_its_bones():
    joints = torch.zeros(1, 15, 3)
    joints[0, 1] = torch.tensor([0.0, 0.5, 0.0])  # pelvis -> neck, a bone of radius 0.11 (body_field.BONES)
    bones, radii = torch.tensor([[0, 1]]), torch.tensor([0.11])
    points = torch.tensor([[[0.0, 0.25, 0.0], [0.3, 0.25, 0.0], [0.0, 0.9, 0.0]]])
    assert torch.allclose(skeleton_sdf(points, joints, bones, radii), torch.tensor([[-0.11, 0.19, 0.29]]), atol=1e-6)


@pytest.fixture(scope="module")
def bodies(tiny_bodies):
    store = DataStore.at(tiny_bodies)
    return store, read_manifest(store)


def _task(manifest, **implicit):
    return build_task(task_config(name="implicit", loss={"weights": {"bce": 1.0, "mse": 0.0}},
                                  implicit={"features": 16, "levels": 2, "mlp": [64, 32], "points": 256, "resolution": 24, **implicit}),
                      manifest)


def _numpy(batch):
    return {k: v.numpy() for k, v in batch.items() if k != "sample_id"}


def test_an_epochs_points_are_the_same_for_a_sample_however_the_batches_fall(bodies):
    store, manifest = bodies
    task = _task(manifest)
    rows = _numpy(next(split_batches(store, manifest, "train", task.columns, 4)))
    whole = EpochCollate.of(task, None, seed=5, epoch=2, ignore_index=255)(rows)
    alone = EpochCollate.of(task, None, seed=5, epoch=2, ignore_index=255)({k: v[2:3] for k, v in rows.items()})
    assert torch.equal(whole["points"][2], alone["points"][0]) and torch.equal(whole["occupancy"][2], alone["occupancy"][0])
    later = EpochCollate.of(task, None, seed=5, epoch=3, ignore_index=255)(rows)
    assert not torch.equal(whole["points"], later["points"]) and whole["points"].shape == (4, 256, 3)


def test_the_priors_noise_is_the_samples_own(bodies):
    store, manifest = bodies
    task = _task(manifest, prior="skeleton_sdf", prior_noise=0.05)
    batch = next(split_batches(store, manifest, "val", task.columns, 4))
    first, _ = task.split_batch(batch, CPU)
    again, _ = task.split_batch({k: v[1:] for k, v in batch.items()}, CPU)
    moved = first["joints"] - batch["joints"]
    assert torch.equal(first["joints"][1:], again["joints"]) and 0.02 < moved.std() < 0.08


def test_the_model_learns_its_training_points_better_than_both_baselines(bodies):
    torch.manual_seed(0)
    store, manifest = bodies
    task = build_task(task_config(name="implicit", inputs=["rgb", "normal_front", "normal_back"], loss={"weights": {"bce": 1.0}},
                                  implicit={"features": 16, "levels": 2, "mlp": [64, 32], "points": 256, "resolution": 24,
                                            "prior": "skeleton_sdf", "prior_noise": 0.02}), manifest)
    batches = [EpochCollate.of(task, None, 0, 0, 255)(_numpy(b)) for b in split_batches(store, manifest, "train", task.columns, 4)]
    first, last, model = train_for(task, batches, epochs=25, lr=3e-3)
    assert last.losses["bce"] < 0.6 * first.losses["bce"]
    result = evaluate(model, batches, task, CPU, num_previews=2)  # on the points it trained on: a tiny set is learnt, not generalised
    assert result.metrics["iou"] > max(result.baselines["mean_shape_iou"], result.baselines["visual_hull_iou"])
    assert result.metrics["p2s_cm"] < result.baselines["mean_shape_p2s_cm"]
    assert len(result.previews) == 2 and result.previews[0].shape == (32, 96, 3) and result.meshes


def test_an_unknown_input_variant_is_refused_with_the_known_ones():
    with pytest.raises(ValidationError, match=r"\['rgb', 'normal_front'\]"):
        task_config(name="implicit", inputs=["normal_front", "rgb"])


def test_a_data_set_without_bodies_is_refused_by_name(tiny_dataset):
    with pytest.raises(ValueError, match="synthetic-terrain.*data.synthetic.kind=bodies"):
        build_task(task_config(name="implicit"), read_manifest(DataStore.at(tiny_dataset)))


def test_the_report_shows_the_input_variant_and_the_prior():
    section = task_config(name="implicit", inputs=["rgb", "normal_back"], implicit={"prior": "skeleton_sdf", "prior_noise": 0.02})
    assert section.report_columns == {"inputs": "rgb+normal_back", "prior": "skeleton_sdf (noise 0.02 m)"}


def test_augmentation_that_moves_pixels_is_refused_for_points_tied_to_them():
    from core.config.errors import ConfigError
    from core.config.loading import load_config
    from jobs._cli import DEFAULT_CONFIG

    implicit = DEFAULT_CONFIG.parent / "implicit.yaml"
    with pytest.raises(ConfigError, match=r"data.augment.hflip move the images' pixels, but the implicit task"):
        load_config(implicit, ["data.augment={hflip: 0.5}"])
    assert load_config(implicit, ["data.augment={color_jitter: 0.2}"]).data.augment.color_jitter == 0.2
