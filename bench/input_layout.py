"""python -m bench.input_layout [--steps N] [--warmup W] [--repeats R] [--threads T] [--device D] [--precision P]:
training steps/s of the quickstart model for three memory layouts of its weights and input images.

  contiguous:     weights and images channels-first (B, C, H, W), as core.tasks.image_inputs gives them;
  mixed:          channels-first weights, channels-last images: the (B, H, W, C) batch permuted and not
                  copied, as the tasks gave it before;
  channels_last:  both channels-last (model.to(memory_format=torch.channels_last)).
The same FPN ResNet-18 (bench.overhead's set-up: the quickstart's model on a batch of its data, 8
images of 64x64; cross-entropy, AdamW) from the same seed and on the same images in each. Every pass
runs in a process of its own, as a worker does: passes of different layouts in one process slowed each other (mixed at 0.81 and 0.85
of contiguous at 1 and 2 threads there, against 0.92 and 0.96 in processes of their own). The
layouts take turns, each turn starting one later, and the ratios to contiguous are taken within
each turn (bench._goal: their median and its 90% interval).
--device cuda (the default where a GPU is) with --precision bf16 is where channels-last is meant to
pay. JSON goes to bench/results/input_layout.json.
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from bench import _goal, _results
from bench.overhead import _setup

LAYOUTS = ("contiguous", "mixed", "channels_last")


def _variant(layout: str, threads: int, device: torch.device) -> tuple:
    """(model, optimizer, images, labels): bench.overhead's model (from the same seed) and first batch, laid out."""
    task, batches, model, optimizer = _setup(threads)
    images, labels = task.split_batch(batches[0], device)
    model.to(device)  # in place: the optimizer keeps the same parameters
    if layout == "channels_last":
        model.to(memory_format=torch.channels_last)
    laid_out = images if layout == "contiguous" else images.contiguous(memory_format=torch.channels_last)
    return model, optimizer, laid_out, labels


def one_pass(layout: str, args: argparse.Namespace) -> float:
    """Steps/s of --steps steps after --warmup, in the process this runs in."""
    device = torch.device(args.device)
    model, optimizer, images, labels = _variant(layout, args.threads, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            _synchronize(device)
            start = time.perf_counter()
        with autocast:
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _synchronize(device)
    return args.steps / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.input_layout", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=9, help="turns; 5 or more for an interval")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()
    rates: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
    for turn in range(args.repeats):
        order = LAYOUTS[turn % len(LAYOUTS):] + LAYOUTS[:turn % len(LAYOUTS)]
        for layout in order:
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as fresh:
                rates[layout].append(fresh.submit(one_pass, layout, args).result())
        print(f"turn {turn + 1}/{args.repeats}: " + ", ".join(f"{layout} {rates[layout][-1]:.2f}" for layout in LAYOUTS),
              flush=True)
    _report(rates, args)


def _report(rates: dict[str, list[float]], args) -> None:
    paired = {layout: [r / c for r, c in zip(rates[layout], rates["contiguous"])] for layout in LAYOUTS[1:]}
    where = f"{args.device}, {args.precision}" + (f", torch threads {args.threads}" if args.device == "cpu" else "")
    print(f"\nsteps/s, medians of {args.repeats} turns ({where}); ratios to contiguous taken per turn, with their "
          f"{_goal.CONFIDENCE:.0%} interval:")
    print("| layout | steps/s | / contiguous | interval |\n|---|---|---|---|")
    print(f"| contiguous | {statistics.median(rates['contiguous']):.2f} | 1 | |")
    figures = {}
    for layout, ratios in paired.items():
        interval = _goal.median_interval(ratios)
        span = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "too few turns"
        print(f"| {layout} | {statistics.median(rates[layout]):.2f} | {statistics.median(ratios):.3f} | {span} |")
        figures[layout] = {"median_ratio": statistics.median(ratios), "interval": interval}
    _results.write("input_layout", {"settings": vars(args), "steps_per_s": rates, "to_contiguous": figures})


if __name__ == "__main__":
    main()
