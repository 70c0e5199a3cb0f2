import random
import statistics

import pytest

from bench._goal import judge, median_interval


def noisy_turn(rng: random.Random) -> float:
    """Skewed noise, as a shared machine's is: a ratio pushed up or down, down twice as often."""
    return 1.0 + rng.expovariate(1 / 0.05) * rng.choice([1, -1, -1])


def test_the_interval_holds_the_true_median_as_often_as_it_claims():
    rng = random.Random(0)
    true_median = statistics.median(noisy_turn(rng) for _ in range(100_000))
    trials = 2000
    held = sum(low <= true_median <= high for low, high in (median_interval([noisy_turn(rng) for _ in range(9)])
                                                            for _ in range(trials)))
    assert held / trials >= 0.90


def test_too_few_turns_settle_nothing():
    assert median_interval([1.0, 1.1, 1.2, 1.3]) is None
    assert judge([2.0, 2.1, 2.2, 2.3], goal=0.95, at_least=True)["verdict"] == "unsettled"


@pytest.mark.parametrize("turns, verdict", [
    ([0.97, 0.99, 1.02, 0.96, 1.05, 0.98], "met"),
    ([0.90, 0.93, 0.91, 0.94, 0.89, 0.92], "missed"),
    ([0.90, 0.97, 0.99, 0.93, 1.01, 0.94], "unsettled"),  # the median is above the goal, the interval is not
])
def test_a_ratio_that_must_reach_its_goal(turns, verdict):
    assert judge(turns, goal=0.95, at_least=True)["verdict"] == verdict


def test_seconds_that_must_stay_under_their_goal():
    assert judge([3.1, 4.2, 2.5, 4.9, 3.3, 3.8], goal=5.0, at_least=False)["verdict"] == "met"
    assert judge([5.0, 6.2, 5.5, 7.9, 5.3, 5.8], goal=5.0, at_least=False)["verdict"] == "missed"
    assert judge([3.1, 4.2, 5.5, 4.9, 6.3, 3.8], goal=5.0, at_least=False)["verdict"] == "unsettled"
