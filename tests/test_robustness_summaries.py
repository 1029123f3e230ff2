"""Robustness tables: one corruption set per family, the reference's mean curve, undefined relative CE."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmark.report.robustness import common_corruptions, robustness_latex, robustness_markdown, summary_scores
from tests.helpers import grid_frame

NAN = float("nan")
METRICS = {"grounding": "AP"}


def _value(scores: pd.DataFrame, method: str, family: str, score: str, seed: int | None = None) -> float:
    rows = scores[(scores["method"] == method) & (scores["family"] == family) & (scores["score"] == score)]
    if seed is not None:
        rows = rows[rows["seed"] == seed]
    assert len(rows) >= 1, (method, family, score)
    return float(rows["value"].astype(float).mean())


# The reference r has two seeds; its mean curve is clean .7, gaussian_noise .6, .4, defocus_blur .75, .75 —
# it *improves* under defocus blur (Σ drop = −0.1), so relCE(defocus_blur) is undefined for every method.
REFERENCE_SEEDS = {
    ("r", 0): {"clean": 0.8, "gaussian_noise": [0.6, 0.4], "defocus_blur": [0.85, 0.9]},
    ("r", 1): {"clean": 0.6, "gaussian_noise": [0.6, 0.4], "defocus_blur": [0.65, 0.6]},
}
METHOD_SEED = {("m", 0): {"clean": 0.5, "gaussian_noise": [0.4, 0.3], "defocus_blur": [0.5, 0.4]}}


def test_improving_reference_makes_relative_ce_undefined_and_the_row_counts_coverage() -> None:
    """m against r's mean curve (never seed 0 against seed 0):

    relCE(gaussian_noise) = ((.5 − .4) + (.5 − .3)) / ((.7 − .6) + (.7 − .4)) = .3 / .4 = 0.75
    (against r's seed 0 alone it would be .3 / .6 = 0.5); relCE(defocus_blur) undefined, so
    relative mCE = 0.75 over 1 of 2 corruptions. CE(gn) = (.6 + .7) / (.4 + .6) = 1.3,
    CE(db) = (.5 + .6) / (.25 + .25) = 2.2, mCE = 1.75 over 2 of 2.
    """
    scores, drops = summary_scores(grid_frame({**REFERENCE_SEEDS, **METHOD_SEED}), "r", METRICS)
    assert _value(scores, "m", "image", "relative_mCE") == pytest.approx(0.75)
    assert _value(scores, "m", "image", "mCE") == pytest.approx(1.75)
    relative = scores[(scores["method"] == "m") & (scores["score"] == "relative_mCE")].iloc[0]
    assert (relative["defined"], relative["corruptions"]) == (1, 2)
    markdown = robustness_markdown(scores, drops, "r", 30)
    header = next(line for line in markdown.splitlines() if line.startswith("| method"))
    assert [c.strip() for c in header.strip("|").split("|")][:8] == [
        "method",
        "clean",
        "mean_corrupted",
        "relative_drop",
        "mCE",
        "mCE over",
        "relative_mCE",
        "relative_mCE over",
    ]
    m_row = next(line for line in markdown.splitlines() if line.startswith("| m "))
    assert "| 1.750 " in m_row and "| 2/2 " in m_row and "| 0.750 " in m_row and "| 1/2 " in m_row
    assert "undefined when the reference's mean relative drop under it is at most 0.01" in markdown
    assert "over all 2 corruptions of the family" in markdown


def test_reference_is_its_mean_curve_over_seeds() -> None:
    """r's own seeds against r's mean: relCE(gn) 1.5 and 0.5, CE(gn) 1.0 / 1.0 (both .4 + .6 error)…,
    mean exactly 1; MultiBench ER per seed −0.075 and +0.075, mean exactly 0."""
    scores, _ = summary_scores(grid_frame({**REFERENCE_SEEDS, **METHOD_SEED}), "r", METRICS)
    assert _value(scores, "r", "image", "relative_mCE", seed=0) == pytest.approx(1.5)
    assert _value(scores, "r", "image", "relative_mCE", seed=1) == pytest.approx(0.5)
    assert _value(scores, "r", "image", "relative_mCE") == pytest.approx(1.0)
    assert _value(scores, "r", "image", "mCE") == pytest.approx(1.0)
    assert _value(scores, "r", "image", "effective_robustness_multibench", seed=0) == pytest.approx(-0.075)
    assert _value(scores, "r", "image", "effective_robustness_multibench") == pytest.approx(0.0)


def test_multibench_effective_robustness_in_the_table() -> None:
    """m: shift M₀ − M^r₀ = .5 − .7 = −.2. gaussian_noise: predicted .4, .2 → ER = 0 + 0 + .1 = 0.1;
    defocus_blur: predicted .55, .55 → ER = −.05 − .15 = −0.2; mean over the two = −0.05."""
    scores, drops = summary_scores(grid_frame({**REFERENCE_SEEDS, **METHOD_SEED}), "r", METRICS)
    assert _value(scores, "m", "image", "effective_robustness_multibench") == pytest.approx(-0.05)
    assert "effective_robustness_multibench" in robustness_markdown(scores, drops, "r", 30)
    assert "effective robustness (MultiBench)" in robustness_latex(scores, "r", 30, {})
    assert "MultiBench" in robustness_latex(scores, "r", 30, {})


DIFFERENT_SETS = {
    # a runs both image corruptions and only missing_text; b cannot run defocus_blur and runs only missing_image
    ("a", 0): {
        "clean": 0.8,
        "gaussian_noise": [0.6, 0.4],
        "defocus_blur": [0.8, 0.8],
        "keyboard": [0.7, 0.6],
        "missing_image": [NAN, NAN],
        "missing_text": [0.8, 0.8],
    },
    ("b", 0): {
        "clean": 0.6,
        "gaussian_noise": [0.5, 0.4],
        "defocus_blur": [NAN, NAN],
        "keyboard": [0.6, 0.3],
        "missing_image": [0.6, 0.6],
        "missing_text": [NAN, NAN],
    },
    # a failed job: no clean value, no curve; it must not empty the common set
    ("c", 0): {
        "clean": NAN,
        "gaussian_noise": [NAN, NAN],
        "defocus_blur": [NAN, NAN],
        "keyboard": [NAN, NAN],
        "missing_image": [NAN, NAN],
        "missing_text": [NAN, NAN],
    },
}


def test_rows_are_restricted_to_the_corruptions_every_method_ran() -> None:
    """image: only gaussian_noise is common, so a's relative drop is (.2 + .4) / 2 / .8 = 0.375, not
    (.2 + .4 + 0 + 0) / 4 / .8 = 0.1875 over its own set; missing: no common corruption, no summary."""
    frame = grid_frame(DIFFERENT_SETS)
    scores, drops = summary_scores(frame, "a", METRICS)
    assert _value(scores, "a", "image", "relative_drop") == pytest.approx(0.375)
    assert _value(scores, "b", "image", "relative_drop") == pytest.approx((0.1 + 0.2) / 2 / 0.6)
    assert _value(scores, "a", "text", "relative_drop") == pytest.approx((0.1 + 0.2) / 2 / 0.8)
    assert "missing" not in set(scores["family"])
    image = scores[scores["family"] == "image"]
    assert set(image["corruptions"]) == {1} and set(image["of"]) == {2} and set(image["left_out"]) == {"defocus_blur"}
    assert set(scores["method"]) == {"a", "b"}
    markdown = robustness_markdown(scores, drops, "a", 30)
    assert "**image**, over the 1 of 2 corruptions every method ran (left out, not run by every method: " in markdown
    assert "defocus_blur)" in markdown
    assert "**text**, over all 1 corruption of the family" in markdown
    assert "**missing**: no summary — no corruption of this family was run by every method" in markdown
    # the per-corruption table keeps every measured cell, defocus_blur and both missing corruptions included
    assert {"defocus_blur", "missing_image", "missing_text"} <= set(drops["corruption"])
    assert "over the 1 of 2 corruptions every method ran" in robustness_latex(scores, "a", 30, {})


def test_common_corruptions_ignores_unmeasured_keys() -> None:
    curves = {
        ("d", "t", "a", 0): {"gaussian_noise": {0: 0.5, 1: 0.4}, "keyboard": {0: 0.5, 1: 0.4}},
        ("d", "t", "b", 0): {"gaussian_noise": {0: 0.5, 1: 0.4}},
        ("d", "t", "c", 0): {},  # failed or not applicable to the task
    }
    assert common_corruptions(curves) == {"image": ["gaussian_noise"]}
    assert common_corruptions({("d", "t", "c", 0): {}}) == {}


def test_mmi_follows_the_common_set() -> None:
    """Grounding MMI = relative drop over the same corruptions: a's image MMI = 0.375, not 0.1875."""
    scores, _ = summary_scores(grid_frame(DIFFERENT_SETS), "a", METRICS)
    assert _value(scores, "a", "image", "MMI") == pytest.approx(0.375)
    mmi = scores[(scores["score"] == "MMI") & (scores["family"] == "image")]
    assert set(mmi["left_out"]) == {"defocus_blur"}
    assert not math.isnan(_value(scores, "b", "image", "MMI"))
