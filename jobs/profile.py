"""python -m jobs.profile CONFIG [overrides] --workers 1,2 --batch-sizes 2,4,8 --loader-parallelism 1,2,4 [--steps N]

Measures a config the way researchers fill their tables by hand, one short Ray Train run per
(workers, loader parallelism): median seconds per iteration after warm-up, samples/s, projected
epoch time, peak memory per worker, the share of each step spent waiting for data and in gradient
allreduce. Writes profile.csv, profile.md and profile.png, names the fastest combination, flags the
input-bound ones, and appends every measured row to the profile ledger.

    --predict          estimate the config's step time, epoch time and memory from the ledger, without running
    --find-batch-size  the largest per-worker batch that runs a full DDP step with the configured workers
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from cluster.connect import CODE_ROOT, connect, node_resources
from cluster.resources import PlanError, make_plan
from core.profiling import ledger as profile_ledger
from core.config.errors import ConfigError
from core.config.schema import ExperimentConfig
from core.config.loading import load_config
from core.runs.fingerprint import package_version
from data_pipeline.format.shards import MANIFEST, DatasetError, read_manifest
from data_pipeline.storage.datastore import DataStore
from jobs._train.experiment import prepare_data
from jobs._cli import USAGE_ERROR

LEDGER = "profile_ledger.jsonl"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        config = load_config(args.config, args.overrides)
        _defaults(args, config)
        if args.predict:
            return _predict(config, args)
        connect(config.ray, CODE_ROOT)
        plans = {w: make_plan(config.scaling.model_copy(update={"num_workers": w}), node_resources()) for w in args.workers}
        data = prepare_data(config)
    except (ConfigError, PlanError, DatasetError, ValueError, profile_ledger.NoMeasurements) as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    out_dir = Path(args.out or Path(config.output.root) / "profiles" / f"{datetime.now():%Y%m%d-%H%M%S}_{config.name}").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"profile directory: {out_dir}", file=sys.stderr, flush=True)
    if args.find_batch_size:
        return _find_batch_size(config, plans[config.scaling.max_workers], data, args, out_dir)
    return _profile(config, plans, data, args, out_dir)


def _profile(config: ExperimentConfig, plans, data, args: argparse.Namespace, out_dir: Path) -> int:
    from core.profiling.table import annotate, write_profile
    from jobs._profile.profiling import profile_combination

    rows = []
    combinations = [(w, p) for w in args.workers for p in args.loader_parallelism]
    for index, (workers, parallelism) in enumerate(combinations, 1):
        print(f"[{index}/{len(combinations)}] {workers} workers, loader parallelism {parallelism}, batch sizes "
              f"{args.batch_sizes}", file=sys.stderr, flush=True)
        rows += profile_combination(config, plans[workers], parallelism, args.batch_sizes, data,
                                    (args.warmup, args.steps), out_dir)
    rows = annotate(rows, config.scaling.data_cpus)
    title = f"{config.name}: {config.task.name} {config.task.model_label}"
    verdict = write_profile(out_dir, rows, title)
    manifest = data[1]
    key = {**profile_ledger.workload(config, tuple(manifest["image_size"])), "versions": _versions()}
    ledger = _ledger_path(config, args)
    added = profile_ledger.append(ledger, rows, key)
    print("\n".join([f"profile: {out_dir / 'profile.md'}", verdict, f"ledger: {added} row(s) added to {ledger}"]))
    return 0 if any(r["status"] == "ok" for r in rows) else 1


def _find_batch_size(config: ExperimentConfig, plan, data, args: argparse.Namespace, out_dir: Path) -> int:
    from jobs._profile.batch_size_search import search_batch_size

    found = search_batch_size(config, plan, data, out_dir, budget_gb=args.memory_budget_gb, margin=args.safety_margin,
                              max_batch_size=args.max_batch_size)
    (out_dir / "batch_size.json").write_text(json.dumps(found, indent=2) + "\n")
    if not found["batch_size"]:
        print(f"error: not even a batch of 1 fits in {found['budget_bytes'] / 2**20:.0f} MB less the "
              f"{found['margin']:.0%} margin; see {out_dir / 'batch_size.json'}", file=sys.stderr)
        return 1
    print(f"largest per-worker batch with {plan.num_workers} workers: {found['batch_size']} "
          f"(peak {found['peak_memory_bytes'] / 2**20:.0f} MB per worker, budget {found['budget_bytes'] / 2**20:.0f} MB "
          f"less a {found['margin']:.0%} margin); probes in {out_dir / 'batch_size.json'}")
    return 0


def _predict(config: ExperimentConfig, args: argparse.Namespace) -> int:
    image_size, train_rows = _data_shape(config)
    want = {**profile_ledger.workload(config, image_size), "versions": _versions(), "device": args.device or _local_device(),
            "workers": config.scaling.max_workers, "batch_size": config.train.batch_size,
            "loader_parallelism": max(1, round(config.scaling.data_cpus))}
    ledger = _ledger_path(config, args)
    estimate = profile_ledger.predict(profile_ledger.read(ledger), want, train_rows)
    print(f"{want['model']} {want['input_size']}, {want['workers']} workers x batch {want['batch_size']} on {want['device']}:")
    print(f"  {estimate.s_per_it:.3g} s/it, epoch of {train_rows} samples {estimate.epoch_s:.3g} s, "
          f"peak memory {estimate.peak_memory_mb:.0f} MB per worker")
    print(f"  {estimate.method}, from {ledger}:")
    for row in estimate.used:
        print(f"    batch {row['batch_size']}, loader parallelism {row['loader_parallelism']}: {row['s_per_it']:.3g} s/it, "
              f"{row['peak_memory_mb']:.0f} MB (torch {row['versions']['torch']}, ray {row['versions']['ray']})")
    return 0


def _data_shape(config: ExperimentConfig) -> tuple[tuple[int, int], int]:
    """The config's image size and train rows: from its data set, or from the synthetic settings that would make it."""
    store = DataStore.at(config.data.uri, config.data.endpoint_url)
    if store.exists(MANIFEST) or not config.data.generate_if_missing:
        manifest = read_manifest(store)
        return tuple(manifest["image_size"]), manifest["splits"]["train"]["rows"]
    synthetic = config.data.synthetic
    return (synthetic.image_size, synthetic.image_size), synthetic.num_train


def _versions() -> dict[str, str]:
    return {name: package_version(name) for name in ("torch", "ray")}


def _local_device() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def _ledger_path(config: ExperimentConfig, args: argparse.Namespace) -> Path:
    return Path(args.ledger or Path(config.output.root) / LEDGER).resolve()


def _ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected whole numbers of at least 1, got {text!r}")
    return values


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.profile", description=__doc__.splitlines()[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="YAML experiment")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value")
    parser.add_argument("--workers", type=_ints, default=None, help="worker counts (default: scaling.num_workers)")
    parser.add_argument("--batch-sizes", type=_ints, default=None, help="per-worker batch sizes (default: train.batch_size)")
    parser.add_argument("--loader-parallelism", type=_ints, default=[1],
                        help="Ray Data read/decode tasks sharing scaling.data_cpus at once (default: 1)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per combination (default: 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    parser.add_argument("--out", help="profile directory (default: OUTPUT_ROOT/profiles/TIME_NAME)")
    parser.add_argument("--ledger", help=f"profile ledger (default: OUTPUT_ROOT/{LEDGER})")
    parser.add_argument("--predict", action="store_true", help="estimate from the ledger instead of measuring")
    parser.add_argument("--device", help="--predict: the device to predict for (default: this machine's)")
    parser.add_argument("--find-batch-size", action="store_true", help="search the largest per-worker batch")
    parser.add_argument("--memory-budget-gb", type=float, help="--find-batch-size: memory per worker (default: the GPU's, "
                        "or on CPU the worker's share of the host's available memory)")
    parser.add_argument("--safety-margin", type=float, default=0.1, help="--find-batch-size: budget share kept free (default: 0.1)")
    parser.add_argument("--max-batch-size", type=int, default=1024, help="--find-batch-size: search no higher (default: 1024)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    if not 0 <= args.safety_margin < 1:
        parser.error("--safety-margin must be in [0, 1)")
    if args.predict and args.find_batch_size:
        parser.error("--predict and --find-batch-size are separate uses; give one")
    return args


def _defaults(args: argparse.Namespace, config: ExperimentConfig) -> None:
    args.workers = args.workers or [config.scaling.max_workers]
    args.batch_sizes = args.batch_sizes or [config.train.batch_size]


if __name__ == "__main__":
    sys.exit(main())
