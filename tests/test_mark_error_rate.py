"""The table marks ("not significantly worse than the best") between truly equal methods: their false-positive
rate — a method equal to the best losing its mark — simulated at S = 3, 5, 10 with the tables' own procedure
(scripts/interval_simulation.py), and the comparisons' probability of improvement on hand examples.

300 toy tables × 400 bootstrap replicates per setting, fixed seeds; the test asks ≤ 5 % + 3 points (the binomial
standard error of a 5 % rate over 300 trials is 1.3 %). docs/statistics.md gives the full run (2,000 × 1,000)."""

from __future__ import annotations

import numpy as np
import pandas as pd
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


def test_unimodal_and_never_predicting_rows_are_not_eligible_for_best() -> None:
    """image_only and text_only read one modality (their files' ``modalities``); a grounding row whose T-acc is 0
    never predicts a box, so its N-acc of 100 % is no achievement: neither can be bold or italic."""
    from benchmark.report.statistics import method_statistics, unimodal_methods
    from tests.helpers import retrieval_items_hitting, tidy_retrieval_frame

    assert unimodal_methods(["image_only", "text_only", "late_fusion", "no_such_method"]) == {"image_only", "text_only"}
    values = {"text_only": [0.9, 0.9, 0.9], "fusion": [0.5, 0.6, 0.7], "other": [0.4, 0.5, 0.6]}
    frame = pd.concat(
        [
            tidy_retrieval_frame(values, {}, metric)
            .assign(task="grounding")
            .assign(value=lambda f, metric=metric: f["value"] if metric == "N-acc" else f["value"] / 2)
            for metric in ("N-acc", "T-acc")
        ]
    )
    frame.loc[(frame["method"] == "fusion") & (frame["metric"] == "T-acc"), "value"] = 0.0  # never predicts
    # any per-item records make a method learned; these score retrieval metrics, so only best / eligible are set
    records = {("d", "grounding", m): [retrieval_items_hitting(10, 1, [])] * 3 for m in values}
    stats, _ = method_statistics(frame, records, (), unimodal=frozenset({"text_only"}))
    n_acc = stats[stats["metric"] == "N-acc"].set_index("method")
    assert n_acc["best"].to_dict() == {"fusion": False, "other": True, "text_only": False}
    assert not n_acc.loc["text_only", "eligible"] and not n_acc.loc["fusion", "eligible"]
    assert n_acc.loc["other", "eligible"]


def test_main_markdown_prints_comparisons_and_per_seed_values_on_request() -> None:
    """The comparisons below each table: observed Δ, its interval, P(A > B) and the Holm probability, a
    probability under 0.001 as ``< 0.001``; per-seed values only with ``per_seed``."""
    from benchmark.report.aggregate import main_markdown
    from benchmark.report.aggregate.main_tables import probability_text
    from benchmark.report.statistics import method_statistics
    from tests.helpers import markdown_rows, retrieval_items_hitting, tidy_retrieval_frame

    assert [probability_text(p) for p in (0.0, 0.00099, 0.001, 0.25, float("nan"))] == [
        "< 0.001",
        "< 0.001",
        "0.001",
        "0.250",
        "n/a",
    ]
    frame = tidy_retrieval_frame({"A": [0.9, 0.9, 0.9], "B": [0.2, 0.1, 0.15]}, {})
    items = {
        ("d", "retrieval", "A"): [retrieval_items_hitting(40, 1, [])] * 3,
        ("d", "retrieval", "B"): [retrieval_items_hitting(40, 1, range(6))] * 3,
    }
    stats, comparisons = method_statistics(frame, items, (), resamples=200)
    plain = main_markdown(stats, {"config hash": "x"}, comparisons=comparisons)
    assert "Per-seed values" not in plain
    table = markdown_rows(plain, "Pairwise comparisons")
    assert table["header"] == ["metric", "A", "B", "Δ", "95 % interval", "P(A > B)", "Holm prob."]
    assert table["mean_R"][:4] == ["mean_R", "A", "B", "75.0"]  # 0.9 − 0.15, the observed difference
    assert table["mean_R"][5:] == ["1.000", "< 0.001"]  # A above B on every seed pair and every replicate
    shown = main_markdown(stats, {"config hash": "x"}, comparisons=comparisons, per_seed=True)
    assert markdown_rows(shown, "Per-seed values")["B"] == ["B", "20.0 10.0 15.0"]
