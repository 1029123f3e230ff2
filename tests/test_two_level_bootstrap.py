"""The two-level bootstrap (seeds, then test units), image-level grounding units and Holm's correction.

Known answers: a crossed seed × item toy with known variance components (coverage simulated with
a fixed seed), hand-computed seed draws, pycocotools on physically duplicated images, and
Holm's step-down adjustment computed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from benchmark.metrics.bootstrap import (
    GroundingItems,
    holm,
    percentile_interval,
    resample_seeds,
    seed_mean_distribution,
    two_level,
)
from benchmark.metrics.detection import evaluate_pairs
from tests.helpers import (
    GROUNDING_METRICS,
    grounding_pairs,
    nontrivial_weights,
    retrieval_items_hitting,
    tidy_retrieval_frame,
)


@dataclass
class MeanItems:
    """A toy evaluation: per-item scores of one seed; the metric is their (weighted) mean."""

    values: np.ndarray

    @property
    def units(self) -> int:
        return len(self.values)

    def metrics(self, weights: np.ndarray) -> dict[str, float]:
        return {"score": float(weights @ self.values / weights.sum())}


def crossed_toy(rng: np.random.Generator, seeds: int, items: int, sd: tuple[float, float, float]) -> list[MeanItems]:
    """y_si = a_s + b_i + e_si (true mean 0): seed effects a, item effects b shared by every seed, noise e."""
    a = rng.normal(0, sd[0], (seeds, 1))
    b = rng.normal(0, sd[1], (1, items))
    e = rng.normal(0, sd[2], (seeds, items))
    return [MeanItems(row) for row in a + b + e]


def test_two_level_interval_covers_the_truth_at_about_the_nominal_rate() -> None:
    """Seeds and items both vary: the seed-mean's variance is σ_a²/S + σ_b²/I + σ_e²/(SI) = 0.009 + 0.01
    + 0.00025 here. The two-level interval should cover the true mean (0) about 95 % of the time; the
    bootstrap's own approximations ((S−1)/S on the seed term, 3× the tiny interaction term) put its
    expected coverage near 94 %. Resampling items only misses the seed term (expected coverage ≈ 84 %).

    200 toy benchmarks × 500 replicates, fixed seed. Tolerance: with 200 trials the binomial
    standard error of a 95 % coverage is 1.5 %; the test accepts [0.89, 0.99] for the two-level
    interval (about 4 standard errors below nominal) and asks the items-only one to be at least
    5 points lower."""
    rng = np.random.default_rng(20211)
    trials, covered_both, covered_items = 200, 0, 0
    for trial in range(trials):
        seeds = crossed_toy(rng, seeds=10, items=100, sd=(0.3, 1.0, 0.5))
        both = seed_mean_distribution({"m": seeds}, resamples=500, seed=trial)["m"]["score"]
        items_only = seed_mean_distribution({"m": seeds}, 500, trial, seeds_resampled=False)["m"]["score"]
        low, high = percentile_interval(both)
        covered_both += low <= 0 <= high
        low, high = percentile_interval(items_only)
        covered_items += low <= 0 <= high
    assert 0.89 <= covered_both / trials <= 0.99, covered_both / trials
    assert covered_items / trials <= covered_both / trials - 0.05, (covered_items / trials, covered_both / trials)


def test_two_level_takes_the_drawn_seeds_on_each_replicate() -> None:
    """T_b = mean over the drawn seeds J_b of m_j(w_b), by hand on a 3-seed × 2-replicate matrix."""
    per_seed = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0]])  # S × B
    draws = np.array([[0, 0, 2], [1, 2, 2]])  # B × S
    assert two_level(per_seed, draws) == pytest.approx([(1 + 1 + 4) / 3, (20 + 40 + 40) / 3])


def test_seed_draws_are_deterministic_and_paired_by_seed_count() -> None:
    """Same (count, seed): the same draws, so two methods with as many seeds are resampled seed k with seed k;
    B = A + 0.25 on every seed and item then gives Δ = 0.25 on every replicate."""
    assert (resample_seeds(3, 50, 7) == resample_seeds(3, 50, 7)).all()
    assert not (resample_seeds(3, 50, 7) == resample_seeds(3, 50, 8)).all()
    assert resample_seeds(5, 50, 7).shape == (50, 5) and resample_seeds(5, 50, 7).max() == 4
    rng = np.random.default_rng(3)
    a = crossed_toy(rng, seeds=4, items=30, sd=(1.0, 1.0, 1.0))
    b = [MeanItems(items.values + 0.25) for items in a]
    c = crossed_toy(rng, seeds=2, items=30, sd=(1.0, 1.0, 1.0))  # fewer seeds: its own draws, still runs
    out = seed_mean_distribution({"A": a, "B": b, "C": c}, resamples=200, seed=11)
    assert out["B"]["score"] - out["A"]["score"] == pytest.approx(np.full(200, 0.25), abs=1e-12)
    again = seed_mean_distribution({"A": a, "B": b, "C": c}, resamples=200, seed=11)
    assert (again["C"]["score"] == out["C"]["score"]).all()
    fixed = seed_mean_distribution({"A": a}, resamples=200, seed=11, seeds_resampled=False)["A"]["score"]
    assert fixed.std() < out["A"]["score"].std()  # seed variance is in the two-level spread only


def test_method_statistics_intervals_and_marks_include_seed_variance() -> None:
    """A's seeds score 1, 1 and 0 on every item (seed 3 misses everything); B scores 1 on every seed.

    Items only, A's seed-mean is 2/3 on every resample: interval [2/3, 2/3], and B − A = 1/3 always,
    so A would be significantly worse. With seed variance (t on S − 1 = 2 degrees of freedom), A's
    seed-mean is 2/3 + s/√3 · t₂ with s = sd(1, 1, 0) = 1/√3, so s/√3 = 1/3: the interval is the t
    interval 2/3 ± 4.303/3 (read at the stratified levels (k + ½)/B), wider than the seeds' range as
    three values demand. B − A has per-seed differences 0, 0, 1: the same spread around 1/3, so
    P*(Δ ≤ 0) = P(t₂ ≤ −1) = 0.211 and the two-sided probability 0.423 > 0.05: A keeps its mark. The
    marks and comparisons.csv use the seed-inclusive replicates."""
    from benchmark.metrics.bootstrap import student_t_quantile
    from benchmark.report.statistics import method_statistics

    frame = tidy_retrieval_frame({"A": [1.0, 1.0, 0.0], "B": [1.0, 1.0, 1.0]}, {"chance": 0.05})
    perfect, none = retrieval_items_hitting(40, 2, []), retrieval_items_hitting(40, 2, range(40))
    items = {("d", "retrieval", "A"): [perfect, perfect, none], ("d", "retrieval", "B"): [perfect] * 3}
    stats, comparisons = method_statistics(frame, items, ("chance",))
    stats = stats[stats["metric"] == "mean_R"].set_index("method")
    t2 = student_t_quantile((np.arange(1000) + 0.5) / 1000, 2)
    assert (stats.loc["A", "ci_items_low"], stats.loc["A", "ci_items_high"]) == pytest.approx((2 / 3, 2 / 3))
    expected = percentile_interval(2 / 3 + t2 / 3)
    assert (stats.loc["A", "ci_low"], stats.loc["A", "ci_high"]) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx((2 / 3 - 4.303 / 3, 2 / 3 + 4.303 / 3), abs=0.02)
    assert (stats.loc["B", "ci_low"], stats.loc["B", "ci_high"]) == (1.0, 1.0)  # no spread at all
    assert stats.loc["B", "best"] and stats.loc["A", "not_worse_than_best"]
    assert stats.loc["A", "boot_prob_vs_best"] == pytest.approx(2 * 0.2113, abs=0.002)
    assert stats.loc["A", "holm_boot_prob_vs_best"] == stats.loc["A", "boot_prob_vs_best"]  # a family of one
    assert np.isnan(stats.loc["B", "boot_prob_vs_best"])  # the best is not compared with itself
    assert stats.loc["A", "seed_values"] == "1.0 1.0 0.0"

    pairs = comparisons[comparisons["metric"] == "mean_R"].set_index(["a", "b"])
    assert "p_not_better" not in comparisons and "boot_prob_not_better" in comparisons
    assert pairs.loc[("B", "A"), "boot_prob_not_better"] == pytest.approx(0.2113, abs=0.001)
    assert (pairs.loc[("B", "A"), "low"], pairs.loc[("B", "A"), "high"]) == pytest.approx(
        percentile_interval(1 / 3 + t2 / 3), abs=1e-12
    )
    assert pairs.loc[("B", "A"), "delta_observed"] == pytest.approx(1 / 3)
    assert pairs.loc[("B", "A"), "holm_boot_prob"] == stats.loc["A", "holm_boot_prob_vs_best"]
    assert pairs.loc[("A", "B"), "holm_boot_prob"] == pairs.loc[("B", "A"), "holm_boot_prob"]  # one pair, one test
    # rliable's probability of improvement over the 3 × 3 seed pairs: B > A in 3 (A's 0), ties in 6
    assert pairs.loc[("B", "A"), "prob_improvement"] == pytest.approx((3 + 0.5 * 6) / 9)


def test_marks_are_holm_adjusted_over_every_pair_of_the_column() -> None:
    """The not-worse marks follow Holm over all pairs of eligible methods: a method loses its mark when a method
    with a higher mean is significantly above it."""
    from benchmark.report.statistics import method_statistics

    values = {"A": [0.9, 0.9, 0.9], "B": [0.85, 0.8, 0.9], "C": [0.5, 0.5, 0.5], "D": [0.88, 0.9, 0.86]}
    frame = tidy_retrieval_frame(values, {})
    items = {
        ("d", "retrieval", "A"): [retrieval_items_hitting(30, 1, [])] * 3,
        ("d", "retrieval", "B"): [retrieval_items_hitting(30, 1, m) for m in ([0], [1, 2], [])],
        ("d", "retrieval", "C"): [retrieval_items_hitting(30, 1, range(15))] * 3,
        ("d", "retrieval", "D"): [retrieval_items_hitting(30, 1, m) for m in ([3], [], [4])],
    }
    stats, comparisons = method_statistics(frame, items, (), resamples=400)
    stats = stats[stats["metric"] == "mean_R"].set_index("method")
    pairs = comparisons[comparisons["metric"] == "mean_R"].set_index(["a", "b"])
    family = {f"{a}{b}": pairs.loc[(a, b), "boot_prob_two_sided"] for a, b in ("AB", "AC", "AD", "BC", "BD", "CD")}
    adjusted = holm(family)
    for a, b in ("AB", "AC", "AD", "BC", "BD", "CD"):
        assert pairs.loc[(a, b), "holm_boot_prob"] == pytest.approx(adjusted[a + b])
    for method in "BCD":
        assert stats.loc[method, "holm_boot_prob_vs_best"] == pytest.approx(adjusted["A" + method])
    means = stats["mean"].to_dict()
    for method in "BCD":
        beaten = any(
            adjusted["".join(sorted(method + o))] <= 0.05 and means[o] > means[method] for o in "ABCD" if o != method
        )
        assert stats.loc[method, "not_worse_than_best"] == (not beaten)
    assert not stats.loc["C", "not_worse_than_best"] and stats.loc["A", "best"]


def test_holm_on_a_hand_computed_family() -> None:
    """p = (.01, .04, .03, .20): sorted a .01, c .03, b .04, d .20 → 4·.01 = .04; max(.04, 3·.03) = .09;
    max(.09, 2·.04) = .09; max(.09, .20) = .20. At α = .05 only a is rejected (Bonferroni would give
    a .04, b .16, c .12, d .80)."""
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.20})
    assert adjusted == pytest.approx({"a": 0.04, "b": 0.09, "c": 0.09, "d": 0.20})
    # capped at 1, monotone, NaN left out of the family (m = 2 here)
    adjusted = holm({"x": 0.6, "y": float("nan"), "z": 0.3})
    assert adjusted["z"] == pytest.approx(0.6) and adjusted["x"] == pytest.approx(0.6) and np.isnan(adjusted["y"])
    assert holm({"x": 0.7, "z": 0.9}) == pytest.approx({"x": 1.0, "z": 1.0})
    assert holm({}) == {}


def image_grounding(rng: np.random.Generator, images: int):
    """Pairs of ``images`` images, 1–4 expressions each, in image order; pair_image says whose each pair is."""
    per_image = rng.integers(1, 5, images)
    pair_image = np.repeat(np.arange(images) * 3 + 1, per_image)  # sparse image indices, as in a split
    targets, predictions, sizes = grounding_pairs(rng, len(pair_image), ties=False)
    return targets, predictions, sizes, pair_image


def test_grounding_bootstrap_resamples_images_with_all_their_expressions() -> None:
    """GroundingItems with ``pair_image`` has one unit per image, and metrics(w) equals pycocotools on the
    test set rebuilt with every expression of image u repeated w[u] times (0: the image's pairs dropped)."""
    rng = np.random.default_rng(8)
    images = 25
    targets, predictions, sizes, pair_image = image_grounding(rng, images)
    metrics, records = evaluate_pairs(targets, predictions, sizes)
    items = GroundingItems(**records, pair_image=pair_image)
    assert items.units == images
    assert GroundingItems(**records).units == len(pair_image)  # old records: one unit per pair
    identity = items.metrics(np.ones(images))
    for name in GROUNDING_METRICS:
        assert identity[name] == pytest.approx(metrics[name], abs=1e-12), name
    dense = np.unique(pair_image, return_inverse=True)[1]
    for weights in nontrivial_weights(rng, images, 2):
        drawn = np.concatenate([np.flatnonzero(dense == u) for u in np.repeat(np.arange(images), weights)])
        physical, _ = evaluate_pairs(
            [targets[p] for p in drawn], [predictions[p] for p in drawn], [sizes[p] for p in drawn]
        )
        fast = items.metrics(weights)
        for name in GROUNDING_METRICS:
            assert fast[name] == pytest.approx(physical[name], abs=1e-12), (name, weights)


def test_grounding_records_of_an_evaluation_carry_each_pair_s_image(
    tiny_dataset: Path, tiny_tokenizer_file: Path, smoke_config: dict
) -> None:
    """evaluate_grounding writes ``pair_image`` (the split's image index of each pair) beside the pair records,
    and the bootstrap then has one unit per image with an expression."""
    import torch

    from benchmark.data.dataset import load_split
    from benchmark.data.tokenizer import load_tokenizer, special_token_ids
    from benchmark.evaluation.grounding import evaluate_grounding
    from benchmark.models.method import BuildContext
    from benchmark.registry import load_method

    torch.manual_seed(0)
    tokenizer = load_tokenizer(tiny_tokenizer_file, 24)
    test = load_split(tiny_dataset, "test")
    ctx = BuildContext(
        smoke_config["model"], test.image_size, tokenizer.get_vocab_size(), 24, special_token_ids(tokenizer)
    )
    model = load_method("cross_attention")(ctx).eval()
    settings = {"max_detections": 100, "nms_iou": 0.5, "score_threshold": 0.5, "acc_iou": "iou"}
    _, _, items = evaluate_grounding(model, test, tokenizer, torch.device("cpu"), 64, settings)
    assert items["pair_image"].tolist() == [ref["image_index"] for ref in test.refs]
    images = {ref["image_index"] for ref in test.refs}
    assert len(images) < len(test.refs), "the tiny split should have images with several expressions"
    assert GroundingItems(**items).units == len(images)
