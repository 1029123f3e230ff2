"""The table marks ("not significantly worse than the best") between truly equal methods: their false-positive
rate — a method equal to the best losing its mark — simulated at S = 3, 5, 10 with the tables' own procedure
(scripts/interval_simulation.py), and the comparisons' probability of improvement on hand examples.

300 toy tables × 400 bootstrap replicates per setting, fixed seeds; the test asks ≤ 5 % + 3 points (the binomial
standard error of a 5 % rate over 300 trials is 1.3 %). docs/statistics.md gives the full run (2,000 × 1,000)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.metrics.bootstrap import marks_against_the_best, probability_of_improvement
from scripts.interval_simulation import REGIMES, mark_false_positive_rate

REPLICATES, RESAMPLES = 300, 400


@pytest.mark.parametrize("regime", sorted(REGIMES))
@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_equal_methods_keep_their_mark(seeds: int, regime: str) -> None:
    assert mark_false_positive_rate(seeds, regime, REPLICATES, RESAMPLES, methods=2, seed=1) <= 0.08


def test_four_equal_methods_keep_their_marks_at_three_seeds() -> None:
    """Picking the best of four first is what a best-vs-rest family gets wrong; Holm over every pair does not."""
    assert mark_false_positive_rate(3, "seed-dominated", 200, RESAMPLES, methods=4, seed=3) <= 0.08


def test_marks_on_a_hand_made_family() -> None:
    """Holm over the pairs (.001, .03, .2): .003, .06, .2. Only B–C is rejected; C is below B, so C loses its
    mark; A (below B, but A–B not rejected) keeps it; ties in the mean go to the first name."""
    means = {"A": 0.8, "B": 0.9, "C": 0.5}
    best, marks, adjusted = marks_against_the_best(means, {("A", "B"): 0.2, ("A", "C"): 0.03, ("B", "C"): 0.001})
    assert best == "B" and marks == {"A": True, "B": True, "C": False}
    assert adjusted == pytest.approx({("A", "B"): 0.2, ("A", "C"): 0.06, ("B", "C"): 0.003})
    assert marks_against_the_best({"X": 1.0, "W": 1.0}, {("W", "X"): 1.0})[0] == "W"
    assert marks_against_the_best({}, {}) == (None, {}, {})


def test_probability_of_improvement_is_rliable_s() -> None:
    """rliable.metrics.probability_of_improvement on one task: Σ_i Σ_j [x_i > y_j] + ½ [x_i = y_j] over N · M
    run pairs (its ``_probability_of_improvement`` uses scipy's Mann–Whitney U / (N · M)). x = (1, 3, 3, 5),
    y = (2, 3, 4), counted by hand: x = 1 beats none; each x = 3 beats 2 and ties 3 (1 + ½); x = 5 beats all
    three → 0 + 2 · 1.5 + 3 = 6 of 12 pairs."""
    assert probability_of_improvement(np.array([1, 3, 3, 5]), np.array([2, 3, 4])) == pytest.approx(6 / 12)
    assert probability_of_improvement(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5  # symmetric: ½
    assert probability_of_improvement(np.array([3.0, np.nan]), np.array([1.0, 2.0])) == 1.0  # NaN left out
    assert np.isnan(probability_of_improvement(np.array([np.nan]), np.array([1.0])))
    x, y = np.array([0.3, 0.7, 0.9]), np.array([0.5, 0.6])
    assert probability_of_improvement(x, y) + probability_of_improvement(y, x) == pytest.approx(1.0)
