"""python -m bench.sparse_fill [--repeats N] [--threads T]: the nearest-measurement fill, and the depth model at KITTI size.

Times core.models.sparse_fill.nearest_fill (scipy's distance transform) against the all-pairs
search it replaced (every pixel against every measurement with cdist, kept here as the reference),
on one image at 88x304, 176x608 and 352x1216 with 5% of the pixels measured, checking that both
give the same depths; then one forward and backward pass of configs/depth_completion.yaml's model
(with its CSPN++ head) on a 352x1216 frame, which runs the fill once in the model. The two fills
differ only where two measurements are equally near (the share of pixels on which they agree is shown). Medians of
--repeats; the all-pairs search runs once at 352x1216 (tens of seconds). Writes
bench/results/sparse_fill.json.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench import _results
from core.config.loading import load_config
from core.models.sparse_fill import nearest_fill
from core.tasks.catalog import build_task
from core.tasks.columns import example_batch
from jobs._cli import DEFAULT_CONFIG
from tests.core.task_batches import manifest_for

SIZES = [(88, 304), (176, 608), (352, 1216)]
MEASURED = 0.05


@torch.no_grad()
def all_pairs_fill(sparse: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The replaced implementation: each pixel against every measured pixel, in chunks of pixels."""
    images = sparse.reshape(sparse.shape[0], *sparse.shape[-2:])
    height, width = images.shape[-2:]
    grid = torch.stack(torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij"), -1).reshape(-1, 2).float()
    filled = torch.zeros_like(images).reshape(len(images), -1)
    for index, image in enumerate(images):
        flat = image.reshape(-1)
        measured = (flat > 0).nonzero().squeeze(1)
        for start in range(0, len(grid), chunk):
            nearest = torch.cdist(grid[start:start + chunk], grid[measured]).argmin(1)
            filled[index, start:start + chunk] = flat[measured[nearest]]
    return filled.reshape(sparse.shape)


def _sparse(size: tuple[int, int]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    depth = torch.rand(1, *size, generator=generator) * 80 + 1
    return depth * (torch.rand(1, *size, generator=generator) < MEASURED)


def _timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _model_step_s(repeats: int) -> float:
    config = load_config(DEFAULT_CONFIG.parent / "depth_completion.yaml")
    task = build_task(config.task, manifest_for(image_size=64))
    model = task.build_model().train()
    batch = {name: torch.from_numpy(values) for name, values in example_batch(task.columns, SIZES[-1], 5).items()}
    batch["sparse_depth"] = _sparse(SIZES[-1])

    def step():
        inputs, targets = task.split_batch(batch, torch.device("cpu"))
        losses = task.losses(model(inputs), targets)
        sum(losses.values()).backward()

    return _timed(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sparse_fill", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for size in SIZES:
        sparse = _sparse(size)
        agree = (nearest_fill(sparse) == all_pairs_fill(sparse)).float().mean().item()
        fill_s = _timed(lambda: nearest_fill(sparse), args.repeats)
        pairs_s = _timed(lambda: all_pairs_fill(sparse), 1 if size == SIZES[-1] else args.repeats)
        rows.append({"size": f"{size[0]}x{size[1]}", "transform_s": fill_s, "all_pairs_s": pairs_s, "ratio": pairs_s / fill_s,
                     "agreeing_pixels": agree})
    step_s = _model_step_s(args.repeats)
    print(f"{'size':>10} {'transform s':>12} {'all pairs s':>12} {'ratio':>9} {'agreeing pixels':>16}")
    for row in rows:
        print(f"{row['size']:>10} {row['transform_s']:>12.4f} {row['all_pairs_s']:>12.3f} {row['ratio']:>9.0f} {row['agreeing_pixels']:>16.1%}")
    print(f"configs/depth_completion.yaml, one forward and backward pass at 352x1216, {args.threads} thread(s): {step_s:.2f} s")
    _results.write("sparse_fill", {"threads": args.threads, "repeats": args.repeats, "fill": rows, "model_step_352x1216_s": step_s})


if __name__ == "__main__":
    main()
