"""python -m jobs.evaluate RUN_DIR_OR_CHECKPOINT|S3_FOLDER [--split val] [--export DIR] [--tta SPEC]: score a trained model on a split.

Takes a run directory (its summary's checkpoint) or one checkpoint folder inside it, rebuilds the
model from the run's config.yaml, and scores the split in this process, without Ray. Writes
RUN_DIR/eval_SPLIT/: metrics.json (the task's metrics and baselines), table.md (one row per metric,
per class for segmentation), previews/*.png; prints the table. --export DIR writes the predictions
in the benchmark's format (see data_pipeline.format.export), or for the implicit task each reconstruction
as SAMPLE_ID.obj. --tta flip,scales=0.75,1,1.25 scores
the split a second time with test-time augmentation (core.evaluation.tta): both columns side by
side in table.md, the augmented figures under "tta" in metrics.json; previews and the export are
then the augmented predictions. --video writes eval_SPLIT/video.mp4, a frame per sample (the task's
preview: input, truth, prediction) in sample-id order, and its first frames to the run's TensorBoard.

A run stored with output.storage gets eval_SPLIT/ in its S3 folder too, which stays the whole run,
and can be evaluated from that folder (s3://.../RUN_NAME, --endpoint-url for MinIO) on a machine
that never held it: its run files are copied into output.root first, as jobs.train --resume does.
"""
from __future__ import annotations

import argparse
import json
import posixpath
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image

from core.engine import checkpoint
from core.config.errors import ConfigError
from core.config.schema import ExperimentConfig
from core.config.loading import load_config
from core.engine.steps import evaluate
from core.evaluation import tta
from core.tasks.catalog import build_task
from core.reporting.demo_video import DemoVideo
from data_pipeline.format import class_subset
from data_pipeline.format.export import PredictionExport
from data_pipeline.format.mesh_export import MeshExport
from data_pipeline.readers.local import split_batches
from data_pipeline.format.shards import DatasetError, read_manifest
from data_pipeline.storage.datastore import S3, DataStore
from jobs._train.run_storage import checkpoint_store, copy_run, fetch_run
from jobs._cli import USAGE_ERROR

CPU = torch.device("cpu")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        target = fetch_run(args.target, args.endpoint_url, "jobs.evaluate") if args.target.startswith(S3) else Path(args.target)
        run_dir, folder = checkpoint.locate(target)
        config = load_config(run_dir / "config.yaml")
        store = DataStore.at(config.data.uri, config.data.endpoint_url)
        manifest = class_subset.select(read_manifest(store), config.data)
        truth = _has_ground_truth(manifest, args)
        task = build_task(config.task, manifest)
        model = task.build_model()
        _load(folder, model, config, run_dir)
        augmented = _augmented(model, task, config.task.name, args.tta) if args.tta else None
        exporter = MeshExport if getattr(task, "exported", None) == "mesh" else PredictionExport
        export = exporter(args.export, manifest, task, config.task.name) if args.export else None
        video = DemoVideo(run_dir / f"eval_{args.split}" / "video.mp4", args.fps) if args.video else None
        seen = [seer for seer in (export, _framing(video, task)) if seer is not None]

        def see_all(batch: dict, outputs) -> None:
            for see in seen:
                see(batch, outputs)

        def score(scored: torch.nn.Module, shown: bool):
            batches = split_batches(store, manifest, args.split, task.columns, config.train.batch_size)
            return evaluate(scored, batches, task, CPU, num_previews=args.previews if shown else 0,
                            on_batch=see_all if shown and seen else None, score=truth)

        result = score(model, shown=augmented is None)
        result_tta = score(augmented, shown=True) if augmented is not None else None
        first_frames = video.finish() if video is not None else []
    except (ConfigError, DatasetError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    out = run_dir / f"eval_{args.split}"
    if truth:
        table = _table(result.metrics, result.baselines, result_tta.metrics if result_tta else None,
                       augmented.tta.describe() if augmented is not None else None)
    else:
        table = f"split {args.split} has no ground truth: predictions only, no metrics"
    _write(out, args, folder, result, table, result_tta, truth)
    copy_run(config, run_dir, (out.name,))
    print(f"{config.name} ({config.task.name}), checkpoint {folder}, split {args.split}\n{table}\nwritten: {out}")
    if export is not None:
        print(f"exported {export.written} predictions to {args.export}")
        if not truth:  # a benchmark's test split: the submission, its files at the archive's top level
            print(f"ready to upload: {shutil.make_archive(str(args.export), 'zip', root_dir=args.export)}")
    if video is not None:
        _frames_to_tensorboard(run_dir, args.split, first_frames)
        print(f"video of {len(video.ids)} frames: {video.path}")
    return 0


def _load(saved: str, model: torch.nn.Module, config: ExperimentConfig, run_dir: Path) -> None:
    """A local checkpoint is read in place; one on S3 (output.storage) is fetched first."""
    if not saved.startswith(S3):
        checkpoint.load(Path(saved), model)
        return
    with tempfile.TemporaryDirectory() as local:
        remote = posixpath.join(saved.removeprefix(S3), checkpoint.STATE_FILE)
        checkpoint_store(config, run_dir).fs.get(remote, posixpath.join(local, checkpoint.STATE_FILE))
        checkpoint.load_weights(model, checkpoint.read(Path(local))["model"], saved)


def _has_ground_truth(manifest: dict, args: argparse.Namespace) -> bool:
    """Whether the split can be scored; one without ground truth (KITTI's test split) is there to predict."""
    truth = manifest["splits"].get(args.split, {}).get("ground_truth", True)
    if not truth and not (args.export or args.video):
        raise ValueError(f"split {args.split} has no ground truth, so nothing to score: give --export DIR (for a benchmark's "
                         "test split, a zip to upload is written beside it) or --video")
    return truth


def _framing(video: DemoVideo | None, task):
    """The on_batch that turns each sample's prediction into a video frame (the task's preview)."""
    if video is None:
        return None

    def add_frames(batch: dict, outputs) -> None:
        inputs, targets = task.split_batch(batch, CPU)
        for sample_id, frame in zip(batch["sample_id"], task.previews(inputs, outputs, targets)):
            video.add(sample_id, frame)
    return add_frames


def _frames_to_tensorboard(run_dir: Path, split: str, frames: list) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run_dir / "tb")) as writer:
        for index, frame in enumerate(frames):
            writer.add_image(f"eval_{split}/video_frame_{index}", frame, 0, dataformats="HWC")


def _augmented(model: torch.nn.Module, task, task_name: str, spec: str) -> tta.Augmented:
    augmentation = tta.parse(spec)
    support = getattr(task, "test_time_augmentation", None)
    tta.check(augmentation, support, task_name)
    return tta.Augmented(model, augmentation, support)


def _table(metrics: dict[str, float], baselines: dict[str, float], augmented: dict[str, float] | None = None,
           augmentations: str | None = None) -> str:
    if augmented is None:
        rows = ["| metric | value |", "|---|---|"]
        rows += [f"| {name} | {value:.4f} |" for name, value in metrics.items()]
    else:
        rows = [f"| metric | without TTA | with TTA ({augmentations}) |", "|---|---|---|"]
        rows += [f"| {name} | {value:.4f} | {augmented[name]:.4f} |" for name, value in metrics.items()]
    rows += [f"| baseline: {name} | {value:.4f} |" + (" |" if augmented is not None else "") for name, value in baselines.items()]
    return "\n".join(rows)


def _write(out: Path, args: argparse.Namespace, folder: str, result, table: str, result_tta=None, truth: bool = True) -> None:
    """A split without ground truth gets its previews and a metrics.json that says so."""
    (out / "previews").mkdir(parents=True, exist_ok=True)
    record = {"split": args.split, "checkpoint": str(folder), "ground_truth": truth,
              "metrics": result.metrics if truth else None, "baselines": result.baselines if truth else None}
    if result_tta is not None:
        record["tta"] = {"augmentations": args.tta, "metrics": result_tta.metrics}
    (out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "table.md").write_text(table + "\n")
    for index, image in enumerate((result_tta or result).previews):
        Image.fromarray(image).save(out / "previews" / f"{index:02d}.png")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a run directory, a checkpoint folder inside one, or a stored run's S3 folder")
    parser.add_argument("--endpoint-url", help="the S3 endpoint of an S3 folder (MinIO and other S3-compatible stores)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--export", type=Path, help="write predictions in the benchmark's format to this folder")
    parser.add_argument("--previews", type=int, default=8, help="visualisations written (default 8)")
    parser.add_argument("--video", action="store_true", help="write eval_SPLIT/video.mp4: a frame per sample in sample-id order")
    parser.add_argument("--fps", type=float, default=8.0, help="the video's frames per second (default 8)")
    parser.add_argument("--tta", metavar="SPEC", help="also score with test-time augmentation: flip, scales=0.75,1,1.25, or "
                        "flip,scales=...; segmentation averages class probabilities, depth completion depth (flip only)")
    args = parser.parse_args(argv)
    if args.endpoint_url and not args.target.startswith(S3):
        parser.error("--endpoint-url goes with an S3 folder, s3://BUCKET/PREFIX/RUN_NAME")
    return args


if __name__ == "__main__":
    sys.exit(main())
