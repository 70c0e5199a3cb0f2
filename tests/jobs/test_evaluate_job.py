import json

import numpy as np
import pytest
import torch

from core.engine import checkpoint
from core.config.loading import load_config, to_yaml
from core.engine.steps import evaluate
from core.evaluation import tta
from core.reporting.demo_video import natural_key
from core.tasks.catalog import build_task, task_config
from data_pipeline.format import codec
from data_pipeline.format.export import PredictionExport, _cityscapes_label_ids
from data_pipeline.readers.local import split_batches
from data_pipeline.format.shards import read_manifest
from data_pipeline.storage.datastore import DataStore
from jobs import evaluate as evaluate_job
from jobs._cli import DEFAULT_CONFIG
from tests.core.task_batches import manifest_for


def _run_dir(tmp_path, tiny_dataset, overrides=()):
    """A run directory as jobs.train leaves it: config.yaml, a checkpoint, summary.json naming it."""
    config = load_config(DEFAULT_CONFIG, [f"data.uri={tiny_dataset}", *overrides])
    manifest = read_manifest(DataStore.at(tiny_dataset))
    torch.manual_seed(0)
    model = build_task(config.task, manifest).build_model()
    return _saved_run(tmp_path, config, model), config, manifest, model


def _saved_run(tmp_path, config, model):
    run_dir = tmp_path / "run"
    saved = run_dir / "ray_train" / "checkpoint_0"
    checkpoint.save(saved, model, torch.optim.SGD(model.parameters(), lr=0.1), {"epoch": 0})
    (run_dir / "config.yaml").write_text(to_yaml(config))
    (run_dir / "summary.json").write_text(json.dumps({"checkpoint": str(saved)}))
    return run_dir


def test_scores_the_split_and_exports_one_png_per_sample(tmp_path, tiny_dataset):
    run_dir, config, manifest, model = _run_dir(tmp_path, tiny_dataset)
    assert evaluate_job.main([str(run_dir), "--export", str(tmp_path / "out"), "--previews", "2"]) == 0
    task = build_task(config.task, manifest)
    store = DataStore.at(tiny_dataset)
    expected = evaluate(model, split_batches(store, manifest, "val", task.columns, 4), task, torch.device("cpu"))
    written = json.loads((run_dir / "eval_val" / "metrics.json").read_text())
    assert written["metrics"]["miou"] == expected.metrics["miou"] and written["baselines"] == expected.baselines
    assert "| iou/road |" in (run_dir / "eval_val" / "table.md").read_text()
    assert len(list((run_dir / "eval_val" / "previews").glob("*.png"))) == 2
    batch = next(split_batches(store, manifest, "val", task.columns, 4))
    inputs, _ = task.split_batch(batch, torch.device("cpu"))
    model.eval()
    predicted = model(inputs).argmax(1).numpy()
    exported = codec.decode_png((tmp_path / "out" / f"{batch['sample_id'][0]}.png").read_bytes())
    assert np.array_equal(exported, predicted[0])
    assert len(list((tmp_path / "out").glob("*.png"))) == manifest["splits"]["val"]["rows"]


def test_tta_scores_the_split_again_beside_the_plain_prediction(tmp_path, tiny_dataset, capsys):
    run_dir, config, manifest, model = _run_dir(tmp_path, tiny_dataset)
    assert evaluate_job.main([str(run_dir), "--tta", "flip,scales=1,2"]) == 0
    task = build_task(config.task, manifest)
    store = DataStore.at(tiny_dataset)
    augmented = tta.Augmented(model, tta.parse("flip,scales=1,2"), task.test_time_augmentation)
    expected = evaluate(augmented, split_batches(store, manifest, "val", task.columns, 4), task, torch.device("cpu"))
    plain = evaluate(model, split_batches(store, manifest, "val", task.columns, 4), task, torch.device("cpu"))
    written = json.loads((run_dir / "eval_val" / "metrics.json").read_text())
    assert written["metrics"] == pytest.approx(plain.metrics, nan_ok=True)
    assert written["tta"]["augmentations"] == "flip,scales=1,2"
    assert written["tta"]["metrics"] == pytest.approx(expected.metrics, nan_ok=True)
    table = (run_dir / "eval_val" / "table.md").read_text()
    assert "| metric | without TTA | with TTA (flip,scales=1,2) |" in table
    assert f"| miou | {plain.metrics['miou']:.4f} | {expected.metrics['miou']:.4f} |" in table


def test_tta_a_task_cannot_take_is_refused_naming_why(tmp_path, tiny_dataset, capsys):
    run_dir, *_ = _run_dir(tmp_path, tiny_dataset, ["task={name: depth_completion}"])
    assert evaluate_job.main([str(run_dir), "--tta", "flip,scales=1,2"]) == 2
    assert "the depth_completion task takes --tta flip only" in capsys.readouterr().err


def test_the_video_has_a_frame_per_sample_in_sample_id_order_and_its_first_frames_in_tensorboard(tmp_path, tiny_dataset):
    import imageio_ffmpeg
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, config, manifest, model = _run_dir(tmp_path, tiny_dataset)
    assert evaluate_job.main([str(run_dir), "--video", "--fps", "4"]) == 0
    video = run_dir / "eval_val" / "video.mp4"
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    frames = [np.frombuffer(frame, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) for frame in reader]
    assert len(frames) == manifest["splits"]["val"]["rows"] and meta["size"] == (3 * 32, 32) and meta["fps"] == 4
    assert not (run_dir / "eval_val" / "video_frames").exists(), "the frames' PNGs are gone once encoded"
    task = build_task(config.task, manifest)
    model.eval()
    previews = {}
    for batch in split_batches(DataStore.at(tiny_dataset), manifest, "val", task.columns, 4):
        inputs, targets = task.split_batch(batch, torch.device("cpu"))
        previews.update(zip(batch["sample_id"], task.previews(inputs, model(inputs), targets)))
    in_order = [previews[sample_id] for sample_id in sorted(previews, key=natural_key)]
    for position, decoded in enumerate(frames):  # H.264 is lossy: each frame is nearest its own sample's preview
        distances = [np.abs(decoded.astype(int) - preview.astype(int)).mean() for preview in in_order]
        assert int(np.argmin(distances)) == position, distances
    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    assert {"eval_val/video_frame_0", "eval_val/video_frame_3"} <= set(events.Tags()["images"])


def test_sample_ids_sort_as_frames_run():
    ids = ["bochum_000000_000313", "aachen_000001_000019", "aachen_000000_000019", "aachen_000000_000002",
           "2011_09_26_drive_0002_sync_image_0000000010_image_02", "2011_09_26_drive_0002_sync_image_0000000005_image_02"]
    assert sorted(ids, key=natural_key) == [ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]]


def test_depth_predictions_export_as_kitti_uint16_pngs_named_like_the_inputs(tmp_path):
    task = build_task(task_config(name="depth_completion"), manifest_for())
    export = PredictionExport(tmp_path, {"name": "kitti-depth-completion"}, task, "depth_completion")
    depth = torch.tensor([[[[0.0, 1.5], [80.25, 300.0]]]])
    export({"sample_id": ["selection_2011_09_26_drive_0002_sync_image_0000000005_image_02"]}, {"depth": depth})
    stored = codec.decode_png((tmp_path / "2011_09_26_drive_0002_sync_image_0000000005_image_02.png").read_bytes())
    assert stored.dtype == np.uint16 and stored.tolist() == [[0, 384], [20544, 65535]]


def test_a_task_that_exports_no_maps_is_refused_naming_it(tmp_path):
    task = build_task(task_config(name="mesh_reconstruction"), manifest_for())
    with pytest.raises(ValueError, match="the mesh_reconstruction task's predictions have no benchmark format"):
        PredictionExport(tmp_path, {"name": "synthetic"}, task, "mesh_reconstruction")


def test_cityscapes_classes_map_back_to_label_ids():
    train_ids = _cityscapes_label_ids("trainids")
    assert (train_ids[0], train_ids[10], train_ids[13], train_ids[18]) == (7, 23, 26, 33)  # road, sky, car, bicycle
    categories = _cityscapes_label_ids("categories")
    assert (categories[0], categories[4], categories[5]) == (7, 23, 24)  # flat -> road, sky -> sky, human -> person


def test_a_folder_that_is_no_run_is_a_clear_error(tmp_path, capsys):
    assert evaluate_job.main([str(tmp_path)]) == 2
    assert "neither a run directory" in capsys.readouterr().err


def test_a_checkpoint_of_another_model_is_refused_naming_the_tensors(tmp_path, tiny_dataset, capsys):
    run_dir, _, _, _ = _run_dir(tmp_path, tiny_dataset, ["task.model.encoder=resnet50"])
    config = load_config(DEFAULT_CONFIG, [f"data.uri={tiny_dataset}"])  # resnet18: the run's config now disagrees
    (run_dir / "config.yaml").write_text(to_yaml(config))
    assert evaluate_job.main([str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "was saved from a model of another shape than the config builds" in err
    assert "encoder.layer1.0.conv1.weight: [64, 64, 1, 1] in the checkpoint, [64, 64, 3, 3] in this model" in err
    assert not (run_dir / "eval_val").exists()


def test_the_implicit_task_exports_each_reconstruction_as_an_obj_named_by_sample(tmp_path, tiny_bodies):
    from pytorch3d.io import load_obj

    from core.evaluation import surfaces

    overrides = ["task.implicit={features: 8, levels: 2, mlp: [16], resolution: 16}"]
    config = load_config(DEFAULT_CONFIG.parent / "implicit.yaml", [f"data.uri={tiny_bodies}", *overrides])
    manifest = read_manifest(DataStore.at(tiny_bodies))
    torch.manual_seed(0)
    model = build_task(config.task, manifest).build_model()
    with torch.no_grad():  # output weights large enough that the untrained network's occupancy crosses 0.5 in the box
        model.mlp.out.bias.fill_(0.0)
        model.mlp.out.weight.normal_(0, 0.5)
    run_dir = _saved_run(tmp_path, config, model)
    assert evaluate_job.main([str(run_dir), "--export", str(tmp_path / "meshes")]) == 0
    written = sorted(path.stem for path in (tmp_path / "meshes").glob("*.obj"))
    assert written == [f"val-{i:05d}" for i in range(manifest["splits"]["val"]["rows"])]
    task = build_task(config.task, manifest)
    batch = next(split_batches(DataStore.at(tiny_bodies), manifest, "val", task.columns, 4))
    inputs, _ = task.split_batch(batch, torch.device("cpu"))
    model.eval()
    verts, faces = surfaces.reconstructions(model(inputs))[0]
    read_verts, read_faces, _ = load_obj(tmp_path / "meshes" / "val-00000.obj", load_textures=False)
    assert len(faces) > 0 and torch.allclose(read_verts, verts, atol=1e-5) and torch.equal(read_faces.verts_idx, faces)
    metrics = json.loads((run_dir / "eval_val" / "metrics.json").read_text())
    assert {"chamfer_cm", "p2s_cm", "normal_cos", "iou"} <= set(metrics["metrics"])
    assert {"visual_hull_chamfer_cm", "mean_shape_chamfer_cm"} <= set(metrics["baselines"])
