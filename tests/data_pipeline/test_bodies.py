"""The synthetic bodies: an exact field, pictures that agree with it, a data set that is a function of its seed."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.evaluation import surfaces
from core.tasks.implicit.body_field import CAPSULE, ELLIPSOID, draw_points, signed_distance
from data_pipeline.format.shards import read_manifest
from data_pipeline.readers.local import split_batches
from data_pipeline.sources.bodies import Body, make_body
from data_pipeline.sources.body_render import CAMERA, _normal_bytes, body_mesh, render_body
from data_pipeline.sources.synthetic_bodies import generate
from data_pipeline.storage.datastore import DataStore
from tests.conftest import TINY_BODIES


def _body(*rows) -> Body:
    primitives = np.array(rows, dtype=np.float32)
    return Body(primitives, np.zeros(len(rows), int), np.full((3, 3), 0.5, np.float32), np.zeros((15, 3), np.float32), 0.0)


def _capsule(a, b, radius):
    return [CAPSULE, *a, *b, radius, 0, 0, 0, 0, 0]


def test_a_capsules_analytic_distance_matches_the_distance_to_its_mesh():
    body = _body(_capsule((-0.3, -0.2, 0.1), (0.4, 0.3, -0.1), 0.25))
    verts, faces = body_mesh(body, 96)
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.9, 0.9, (2000, 3))
    analytic = signed_distance(points, body.primitives)
    near = np.abs(analytic) < 0.3
    first = torch.zeros(1, dtype=torch.long)
    squared = surfaces.point_face_distance(torch.tensor(points[near]).float(), first, torch.tensor(verts[faces]).float(), first,
                                           int(near.sum()))
    assert near.sum() > 300
    np.testing.assert_allclose(np.abs(analytic[near]), squared.sqrt().numpy(), atol=0.006)


def test_an_ellipsoids_occupancy_is_exact_and_turns_with_its_yaw():
    yaw = np.pi / 2
    body = _body([ELLIPSOID, 0, 0, 0, 0, 0, 0, 0, 0.5, 0.2, 0.1, yaw, 0])
    # turned a quarter about +Y, its long axis lies along Z
    inside = signed_distance(np.array([[0.0, 0.0, 0.45], [0.45, 0.0, 0.0], [0.0, 0.19, 0.0]]), body.primitives) < 0
    assert inside.tolist() == [True, False, True]


def test_the_camera_projects_a_point_onto_the_pixel_the_renderer_draws_it_at():
    centre = np.array([0.5, 0.3, -0.2])
    body = _body([ELLIPSOID, *centre, 0, 0, 0, 0, 0.15, 0.15, 0.15, 0, 0])
    views = render_body(body, np.random.default_rng(0), 48, 64, 256)
    u, v, _ = CAMERA @ np.append(centre, 1.0)
    column, row = int((u + 1) / 2 * 64), int((v + 1) / 2 * 64)
    assert views.mask[row, column] == 1 and views.mask.sum() < 0.1 * 64 * 64
    normal = views.normal_front[row, column].astype(float) / 127.5 - 1
    assert normal[2] < -0.9, "the seen side of the sphere faces the camera, which looks along +Z"
    assert views.normal_back[row, column].astype(float)[2] / 127.5 - 1 > 0.9, "the back map holds the far side's normal"


def test_a_nan_normal_is_stored_as_the_zero_normal_not_as_garbage():
    normals = np.array([[[0.0, 0.0, -1.0], [np.nan, 0.0, 1.0]]])
    stored = _normal_bytes(normals, np.array([[True, True]]))
    assert stored[0, 1].tolist() == [128, 128, 128] and stored[0, 0].tolist() == [128, 128, 0]


def test_drawn_points_are_half_inside_and_labelled_exactly():
    rng = np.random.default_rng(1)
    body = make_body(rng)
    views = render_body(body, rng, 32, 32, 512)
    points, occupancy = draw_points(views.surface_points, body.primitives, np.random.default_rng(2), 400, 0.05)
    assert occupancy.mean() == 0.5
    assert ((signed_distance(points, body.primitives) < 0) == (occupancy > 0.5)).all()


def test_the_data_set_is_a_function_of_its_seed_and_its_points_fall_in_their_masks(tiny_bodies, tmp_path, capsys):
    store = DataStore.at(tiny_bodies)
    manifest = read_manifest(store)
    again = generate(DataStore.at(tmp_path / "again"), TINY_BODIES)
    assert [s["sha256"] for s in again["splits"]["train"]["shards"]] == [s["sha256"] for s in manifest["splits"]["train"]["shards"]]
    assert "generating train bodies: 8/8 samples" in capsys.readouterr().err
    from core.tasks.catalog import build_task, task_config

    task = build_task(task_config(name="implicit"), manifest)
    batch = next(split_batches(store, manifest, "val", task.columns, 4))
    projected = batch["points"] @ batch["camera"][:, :, :3].transpose(1, 2) + batch["camera"][:, None, :, 3]
    seen = F.grid_sample(batch["mask"][:, None].float(), projected[:, :, None, :2], mode="nearest", align_corners=False)[:, 0, :, 0]
    inside = batch["occupancy"] > 0.5
    # at 32 pixels a forearm is about a pixel wide: the nearest pixel misses some points just inside it
    assert seen[inside].mean() > 0.9, "a point inside the body projects into its silhouette"
    assert len(manifest["stats"]["mean_occupancy"]["values"]) == manifest["stats"]["mean_occupancy"]["resolution"] ** 3


@pytest.mark.parametrize("kind", ["bodies"])
def test_bodies_need_a_known_kind(kind):
    from pydantic import ValidationError

    from core.config.sections import SyntheticConfig

    assert SyntheticConfig(kind=kind).kind == kind
    with pytest.raises(ValidationError, match="terrain"):
        SyntheticConfig(kind="people")
