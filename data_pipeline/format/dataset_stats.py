"""What every data set's manifest states about its train split, and the progress line of long writes.

Statistics are added up per sample (in whichever process decoded it) and merged, so a parallel
conversion and the single-process generator compute them alike.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np


def sample_stats(rgb: np.ndarray | None, depth: np.ndarray | None, labels: np.ndarray | None,
                 num_classes: int, ignore_index: int) -> dict[str, Any]:
    """Sums over one sample's pixels; any image may be absent (no depth in Cityscapes, no labels in KITTI)."""
    stats: dict[str, Any] = {}
    if rgb is not None:
        flat = rgb.reshape(-1, 3) / 255.0
        stats.update(rgb_sum=flat.sum(0).tolist(), rgb_sq=(flat**2).sum(0).tolist(), pixels=len(flat))
    if depth is not None:
        valid = depth[depth > 0].astype(np.float64)
        stats.update(depth_sum=float(valid.sum()), depth_sq=float((valid**2).sum()), depth_count=int(valid.size))
    if labels is not None:
        labelled = labels[labels != ignore_index]
        stats["class_pixels"] = np.bincount(labelled.ravel(), minlength=num_classes)[:num_classes].tolist()
    return stats


class Stats:
    """Normalisation statistics of a split, merged from sample_stats."""

    def __init__(self, num_classes: int):
        self.totals: dict[str, Any] = {"rgb_sum": np.zeros(3), "rgb_sq": np.zeros(3), "pixels": 0, "depth_sum": 0.0,
                                       "depth_sq": 0.0, "depth_count": 0, "class_pixels": np.zeros(num_classes, np.int64)}

    def add(self, sample: dict[str, Any]) -> None:
        for key, value in sample.items():
            self.totals[key] = self.totals[key] + (np.asarray(value) if isinstance(value, list) else value)

    def summary(self) -> dict[str, Any]:
        t = self.totals
        rgb_mean = t["rgb_sum"] / t["pixels"] if t["pixels"] else None
        depth_mean = t["depth_sum"] / t["depth_count"] if t["depth_count"] else None
        return {
            "rgb_mean": rgb_mean.tolist() if rgb_mean is not None else None,
            "rgb_std": np.sqrt(t["rgb_sq"] / t["pixels"] - rgb_mean**2).tolist() if rgb_mean is not None else None,
            "depth_mean_m": depth_mean,
            "depth_std_m": math.sqrt(t["depth_sq"] / t["depth_count"] - depth_mean**2) if depth_mean is not None else None,
            "class_pixels": t["class_pixels"].tolist(),
        }


class Progress:
    """A line on stderr about every tenth of the work, with the time left."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.done = label, total, 0
        self.start = time.monotonic()
        self.every = max(1, total // 10)

    def step(self) -> None:
        self.done += 1
        if self.done % self.every and self.done != self.total:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        print(f"{self.label}: {self.done}/{self.total} samples, {elapsed:.0f} s, about {eta:.0f} s left", file=sys.stderr, flush=True)
