"""python -m jobs.preprocess DATASET --src PATH --out URI [options]: convert a data set into training shards.

DATASET is cityscapes, kitti (depth completion), kitti_semantic or synthetic. --out is a local folder or
s3://bucket/prefix (--endpoint-url for MinIO and other S3-compatible stores; credentials from the
AWS environment). Runs as a Ray Data job with a progress line per tenth of each split; writes
shards of about --shard-mb and the manifest last, with every shard's sha256.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from cluster.connect import CODE_ROOT, connect
from core.config.errors import ConfigError
from core.config.sections import RayConfig, SyntheticConfig
from data_pipeline.format.shards import DatasetError
from data_pipeline.storage.datastore import DataStore
from jobs._cli import USAGE_ERROR



def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    out = DataStore.at(args.out, args.endpoint_url)
    try:
        if args.dataset == "synthetic":
            from data_pipeline.sources.synthetic import ensure_dataset

            manifest = ensure_dataset(out, _synthetic(args))
        else:
            from data_pipeline.sources.preprocess import convert

            connect(RayConfig(include_dashboard=False), CODE_ROOT)
            manifest = convert(_source(args), out, args.shard_mb, args.on_bad_sample, args.encoding)
    except (ConfigError, DatasetError, ValidationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    counts = ", ".join(f"{split} {entry['rows']} rows in {len(entry['shards'])} shards" for split, entry in manifest["splits"].items())
    print(f"data set: {out.uri} ({counts})")
    skipped = manifest.get("skipped_samples") or []
    if skipped:
        print(f"skipped {len(skipped)} bad sample(s), listed in {out.display('manifest.json')}")
    return 0


def _source(args: argparse.Namespace):
    if args.src is None or not args.src.is_dir():
        raise ConfigError(f"--src {args.src} is not a folder: give the root of the {args.dataset} data set")
    if args.dataset == "cityscapes":
        from data_pipeline.sources.cityscapes import CityscapesSource

        return CityscapesSource(args.src.resolve(), args.classes)
    if args.dataset == "kitti_semantic":
        from data_pipeline.sources.kitti_semantic import KittiSemanticSource

        return KittiSemanticSource(args.src.resolve(), args.classes, args.crop, args.val_every)
    from data_pipeline.sources.kitti import KittiDepthSource

    return KittiDepthSource(args.src.resolve(), args.raw.resolve() if args.raw else None,
                            args.semantic.resolve() if args.semantic else None, args.crop)


def _synthetic(args: argparse.Namespace) -> SyntheticConfig:
    return SyntheticConfig(kind=args.kind, num_train=args.num_train, num_val=args.num_val, image_size=args.image_size,
                           seed=args.seed, encoding=args.encoding)


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 352x1216, got {text!r}") from None
    return height, width


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.preprocess", description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["cityscapes", "kitti", "kitti_semantic", "synthetic"])
    parser.add_argument("--src", type=Path, help="the data set's root, in its official layout")
    parser.add_argument("--out", required=True, help="output folder or s3://bucket/prefix")
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint (MinIO, ...)")
    parser.add_argument("--shard-mb", type=float, default=256.0, help="target shard size in MB of encoded images (default 256)")
    parser.add_argument("--on-bad-sample", choices=["error", "skip"], default="error")
    parser.add_argument("--encoding", choices=["npy", "png"], default="npy",
                        help="image bytes in the shards: npy decodes ~3x faster than png (bench.ingest)")
    parser.add_argument("--classes", choices=["trainids", "categories"], default="trainids",
                        help="cityscapes, kitti_semantic: label scheme")
    parser.add_argument("--val-every", type=int, default=5, help="kitti_semantic: every Nth training frame is val (default 5)")
    parser.add_argument("--raw", type=Path, help="kitti: the raw data tree with <date>/<drive>/image_0X/data (default: --src)")
    parser.add_argument("--semantic", type=Path, help="kitti: semantic maps laid out like the raw tree (optional)")
    parser.add_argument("--crop", type=_size, default=(352, 1216), help="kitti, kitti_semantic: bottom-centre crop (default 352x1216)")
    parser.add_argument("--kind", choices=["terrain", "bodies", "rooms"], default="terrain",
                        help="synthetic: terrain scenes, articulated bodies for the implicit task, or lit rooms for the lighting task")
    parser.add_argument("--num-train", type=int, default=256, help="synthetic: train samples")
    parser.add_argument("--num-val", type=int, default=64, help="synthetic: val samples")
    parser.add_argument("--image-size", type=int, default=64, help="synthetic: image side")
    parser.add_argument("--seed", type=int, default=0, help="synthetic: seed")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
