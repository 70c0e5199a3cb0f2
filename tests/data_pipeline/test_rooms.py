"""The synthetic rooms: deterministic, occlusion-aware environment maps, frames that agree, and bad samples named."""
import shutil

import numpy as np
import pytest
import torch

from core.tasks.catalog import build_task, task_config
from core.tasks.lighting import rendering
from data_pipeline.format import shards
from data_pipeline.format.shards import DatasetError, read_manifest
from data_pipeline.readers.local import split_batches
from data_pipeline.sources import synthetic_rooms
from data_pipeline.sources.room_render import environment_map, render_view, room_mesh
from data_pipeline.sources.rooms import WALLS, Room, make_room
from data_pipeline.storage.datastore import DataStore
from tests.conftest import TINY_ROOMS



def _room(objects: list[np.ndarray]) -> Room:
    """A 4 x 2.5 x 4 m room of grey walls lit by one emitter near the ceiling, with red box objects (centre, half sizes)."""
    boxes = np.reshape(objects, (-1, 6))
    albedo = np.concatenate([np.full((WALLS, 3), 0.5), np.tile([[0.9, 0.05, 0.05]], (len(boxes), 1)), np.zeros((1, 3))])
    emission = np.zeros_like(albedo)
    emission[-1] = 5.0
    lights = np.array([[0.0, 2.2, 0.0]])
    return Room(np.array([[-2.0, 0.0, -2.0], [2.0, 2.5, 2.0]]), boxes, np.array([[0.0, 2.2, 0.0, 0.12]]), albedo, emission, lights,
                np.ones((1, 3)))


def test_a_probe_behind_an_object_sees_the_object_and_one_beside_it_the_wall():
    room = _room([np.array([0.0, 1.0, 1.0, 0.4, 0.4, 0.1])])  # a red panel 1 m in front of the probe (+Z)
    mesh, ids = room_mesh(room)
    ahead = lambda probe: environment_map(room, mesh, ids, probe, np.eye(3), 8)[4, 8]  # noqa: E731  (middle column: +Z)
    behind, beside = ahead(np.array([0.0, 1.0, 0.0])), ahead(np.array([1.2, 1.0, 0.0]))
    assert behind[0] > 3 * behind[1], "the red object hides the grey wall"
    assert beside[0] == pytest.approx(beside[1], rel=1e-6), "the grey wall, nothing in the way"


def test_the_environment_map_at_the_eye_sees_what_the_camera_sees_ahead():
    room = _room([np.array([0.0, 1.3, 1.5, 0.6, 0.6, 0.3])])  # 30 degrees wide seen from the eye
    mesh, ids = room_mesh(room)
    rotation, translation = synthetic_rooms._pose(np.array([0.0, 1.3, -1.0]), np.array([0.0, 1.3, 1.0]))
    view, depth = render_view(room, mesh, ids, rotation, translation, 32, 60.0)
    envmap = environment_map(room, mesh, ids, np.array([0.0, 1.3, -1.0]), rotation.numpy(), 16)
    centre = view[15:17, 15:17].mean((0, 1))
    assert np.allclose(envmap[7:9, 15:17].mean((0, 1)), centre, rtol=0.1), "both look along the camera's +Z"
    assert depth[16, 16] == pytest.approx(2.2, abs=0.05), "the box's near face is 2.2 m ahead"


def test_the_data_set_is_a_pure_function_of_the_config_and_holds_the_tasks_columns(tiny_rooms, tmp_path):
    first = read_manifest(DataStore.at(tiny_rooms))
    second = synthetic_rooms.generate(DataStore.at(tmp_path / "again"), TINY_ROOMS)
    assert [s["sha256"] for s in first["splits"]["train"]["shards"]] == [s["sha256"] for s in second["splits"]["train"]["shards"]]
    task = build_task(task_config(name="lighting", lighting={"resolution": 8}), first)
    batch = next(split_batches(DataStore.at(tiny_rooms), first, "train", task.columns, 2))
    inputs, targets = task.split_batch(batch, torch.device("cpu"))
    assert targets["envmaps"].shape == (2, 2, 8, 16, 3) and targets["volume"].shape == (2, 5, 8, 8, 8)
    assert (inputs["probes"].abs() < 4.0).all() and (targets["envmaps"] >= 0).all()
    assert targets["envmaps"].max() > 1.0, "the emitters are brighter than white"
    assert np.array(first["stats"]["mean_envmap"]).shape == (8, 16, 3)


def test_an_empty_room_is_a_sample_like_any_other():
    rng = np.random.default_rng(3)
    row, sample = synthetic_rooms.room_sample("empty", make_room(rng, objects=0), rng, TINY_ROOMS)
    volume = np.array(row["volume"]).reshape(8, 8, 8, 5)
    assert np.isfinite(sample["envmaps"]).all() and sample["envmaps"].max() > 0
    assert 0 < volume[..., 3].mean() < 1, "walls, and the air between them"


def test_a_nan_in_an_environment_map_is_refused_with_its_shard_row_and_sample(tiny_rooms, tmp_path):
    shutil.copytree(tiny_rooms, tmp_path / "rooms")
    store = DataStore.at(tmp_path / "rooms")
    manifest = read_manifest(store)
    rng = np.random.default_rng(0)
    rows = [synthetic_rooms.room_sample(f"val-{i:05d}", make_room(rng), rng, TINY_ROOMS)[0] for i in range(2)]
    rows[1]["envmaps"][17] = float("nan")
    writer = shards.ShardWriter(store, "val", 2)
    for row in rows:
        writer.add(row)
    manifest["splits"]["val"] = writer.close()
    shards.write_manifest(store, {k: v for k, v in manifest.items() if k != "schema_version"})
    task = build_task(task_config(name="lighting", lighting={"resolution": 8}), read_manifest(store))
    with pytest.raises(DatasetError, match=r"val-00000\.parquet, row 1, sample val-00001: envmaps has non-finite values"):
        list(split_batches(store, read_manifest(store), "val", task.columns, 2))


def test_the_true_volume_rendered_at_a_probe_is_near_the_rasterized_environment_map():
    rng = np.random.default_rng(5)
    config = TINY_ROOMS.model_copy(update={"volume_resolution": 24, "image_size": 32})
    row, sample = synthetic_rooms.room_sample("x", make_room(rng), rng, config)
    volume = torch.tensor(row["volume"]).view(1, 24, 24, 24, 5).permute(0, 4, 1, 2, 3)
    rendered = rendering.environment_maps(rendering.volumes(volume[:, :3], volume[:, 3:4], config.volume_extent),
                                          torch.tensor(row["probes"]).view(1, -1, 3), 8, 96, config.volume_extent)[0].numpy()
    truth = sample["envmaps"]
    uniform = truth.reshape(-1, 3).mean(0)
    assert np.sqrt(((rendered - truth) ** 2).mean()) < 0.6 * np.sqrt(((uniform - truth) ** 2).mean()), \
        "the coarse volume holds the room's lighting far better than its mean colour does"
