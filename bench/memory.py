"""python -m bench.memory [--epochs E]: memory of the quickstart, and optimizer state per rank under DDP and ZeRO.

(1) The quickstart (configs/quickstart.yaml, --epochs epochs) trains with this process as its
    driver: the largest worker's peak RSS per epoch (metrics.jsonl memory/worker_peak_mb), the
    driver's peak RSS (ru_maxrss of this process), and the object store's use, sampled from the
    raylet every half second (peak, and bytes spilled to disk in all). Goal: nothing spilled.
(2) Optimizer-state bytes per rank for the quickstart model on 2 gloo processes
    (bench._optimizer_state): DDP, where every rank holds AdamW's whole state, against DeepSpeed
    ZeRO 1 and 2, which partition it (the ZeRO paper's accounting: 1/N of it per rank).
Table printed; JSON to bench/results/memory.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import threading
from pathlib import Path

import ray
import torch.multiprocessing as mp

from bench import _optimizer_state, _results
from core.config.loading import load_config
from core.runs.run_dir import read_metrics
from data_pipeline.storage.datastore import DataStore
from data_pipeline.sources.synthetic import ensure_dataset
from jobs import train

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "configs" / "quickstart.yaml"
MB = 2**20


class ObjectStoreSampler(threading.Thread):
    """Polls the raylet's object store stats (private Ray API: the public one prints them as text)."""

    def __init__(self, every_s: float = 0.5):
        super().__init__(daemon=True)
        self.every_s, self.peak_bytes, self.spilled_bytes = every_s, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        from ray._private.internal_api import get_memory_info_reply, get_state_from_address

        while not self.done.wait(self.every_s):
            if not ray.is_initialized():
                continue
            stats = get_memory_info_reply(get_state_from_address()).store_stats
            self.peak_bytes = max(self.peak_bytes, stats.object_store_bytes_used)
            self.spilled_bytes = stats.spilled_bytes_total


def quickstart(epochs: int, out: Path) -> dict[str, float]:
    sampler = ObjectStoreSampler()
    sampler.start()
    try:
        code = train.main([str(QUICKSTART), f"output.root={out}", f"train.epochs={epochs}"])
    finally:
        sampler.done.set()
        sampler.join()
        ray.shutdown()
    if code != 0:
        raise SystemExit(f"the quickstart failed ({code}); see the run directory under {out}")
    (run_dir,) = out.iterdir()
    workers = [r["memory/worker_peak_mb"] for r in read_metrics(run_dir)]
    return {"worker_peak_mb_by_epoch": workers, "worker_peak_mb": max(workers),
            "driver_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "object_store_peak_mb": sampler.peak_bytes / MB, "object_store_spilled_mb": sampler.spilled_bytes / MB}


def optimizer_state(data: Path) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_optimizer_state.worker, args=(_optimizer_state.free_port(), out, str(data), str(QUICKSTART)), nprocs=_optimizer_state.WORLD)
        ranks = [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(_optimizer_state.WORLD)]
    return {strategy: {"per_rank_mb": [r[strategy] / MB for r in ranks], "share_of_ddp": ranks[0][strategy] / ranks[0]["ddp"]}
            for strategy in ("ddp", "zero1", "zero2")} | {"params": ranks[0]["params"]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    config = load_config(QUICKSTART)
    data = REPO / config.data.uri
    ensure_dataset(DataStore.at(data), config.data.synthetic)
    states = optimizer_state(data)
    with tempfile.TemporaryDirectory() as tmp:
        run = quickstart(args.epochs, Path(tmp))
    _print(run, states, args.epochs)
    _results.write("memory", {"settings": vars(args), "quickstart": run, "optimizer_state": states})


def _print(run: dict, states: dict, epochs: int) -> None:
    print(f"\nquickstart, {epochs} epoch(s), 2 workers")
    print(f"{'largest worker peak RSS':<34}{run['worker_peak_mb']:>10.0f} MB")
    print(f"{'driver peak RSS':<34}{run['driver_peak_mb']:>10.0f} MB")
    print(f"{'object store peak (sampled)':<34}{run['object_store_peak_mb']:>10.1f} MB")
    print(f"{'object store spilled':<34}{run['object_store_spilled_mb']:>10.1f} MB")
    print(f"\nAdamW state per rank, quickstart model ({states['params'] / 1e6:.1f} M parameters), 2 ranks")
    print(f"{'strategy':<12}{'rank 0 MB':>12}{'rank 1 MB':>12}{'of DDP':>10}")
    for strategy in ("ddp", "zero1", "zero2"):
        ranks = states[strategy]["per_rank_mb"]
        print(f"{strategy:<12}{ranks[0]:>12.1f}{ranks[1]:>12.1f}{states[strategy]['share_of_ddp']:>10.2f}")


if __name__ == "__main__":
    main()
