"""Judging a bench's goal on a shared, noisy machine: from paired figures, not from one median against another.

Each turn of a bench measures the variants side by side, so a turn's ratio (or difference) cancels what
the machine did to both; the median of those, with a confidence interval taken from the order
statistics (it assumes nothing of the noise's shape), says whether a goal is met, missed, or not
settled by this many turns.
"""
from __future__ import annotations

import statistics
from math import comb

CONFIDENCE = 0.90


def median_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The narrowest interval of order statistics (x_k, x_n+1-k) that holds the true median with at least
    `confidence`; None where the turns are too few for any (5 turns reach 0.94, 4 only 0.88)."""
    ordered, n = sorted(values), len(values)
    best = None
    for k in range(1, n // 2 + 1):
        outside = 2 * sum(comb(n, i) for i in range(k)) / 2 ** n
        if 1 - outside < confidence:
            break
        best = (ordered[k - 1], ordered[n - k])
    return best


def judge(values: list[float], goal: float, at_least: bool) -> dict:
    """The median of the paired figures, its interval, and "met", "missed" or "unsettled" against the goal."""
    interval = median_interval(values)
    if interval is None:
        verdict = "unsettled"
    else:
        low, high = interval
        good, bad = (low >= goal, high < goal) if at_least else (high < goal, low >= goal)
        verdict = "met" if good else "missed" if bad else "unsettled"
    return {"median": statistics.median(values), "interval": interval, "confidence": CONFIDENCE,
            "goal": (">= " if at_least else "< ") + f"{goal:g}", "verdict": verdict, "turns": len(values)}


def describe(name: str, judged: dict, unit: str = "") -> str:
    interval = judged["interval"]
    span = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "none (too few turns)"
    return (f"{name}: median of {judged['turns']} paired turns {judged['median']:.3f}{unit}, "
            f"{judged['confidence']:.0%} interval {span}; goal {judged['goal']}{unit}: {judged['verdict']}")
