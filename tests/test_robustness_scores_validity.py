"""Robustness scores a failing method cannot win (issue 24, item 4): chance and unread modalities, Taori et al.'s
effective robustness, a reference near chance, the defined-corruption set fixed before bootstrapping."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.metrics.bootstrap import RetrievalItems
from benchmark.metrics.robustness import (
    defined_corruptions,
    effective_robustness_taori,
    logit,
    logit_baseline,
    summarize_family,
)
from benchmark.report.robustness import robustness_markdown, summary_scores
from benchmark.tasks import get_task
from tests.helpers import grid_frame

METRICS = {"grounding": "AP"}
ROBUSTNESS = ("relative_drop", "mCE", "relative_mCE", "relative_robustness", "effective_robustness")
ROBUSTNESS += ("effective_robustness_multibench", "MMI")
MODALITIES = {"text_only": ("text",), "image_only": ("image",)}

# late_fusion is the reference; text_only never finds the box (AP 0.002, flat: "perfectly robust" by every
# score that compares a curve with its own clean value) and does not read the image
ROWS = {
    ("late_fusion", 0): {"clean": 0.6, "gaussian_noise": [0.5, 0.3], "defocus_blur": [0.55, 0.4]},
    ("late_fusion", 1): {"clean": 0.5, "gaussian_noise": [0.4, 0.3], "defocus_blur": [0.45, 0.35]},
    ("cross_attention", 0): {"clean": 0.7, "gaussian_noise": [0.6, 0.5], "defocus_blur": [0.65, 0.5]},
    ("early_concat", 0): {"clean": 0.4, "gaussian_noise": [0.3, 0.2], "defocus_blur": [0.3, 0.25]},
    ("text_only", 0): {"clean": 0.002, "gaussian_noise": [0.002, 0.002], "defocus_blur": [0.002, 0.002]},
    ("image_only", 0): {"clean": 0.3, "gaussian_noise": [0.2, 0.1], "defocus_blur": [0.25, 0.2]},
}


def _scores(rows: dict, modalities: dict | None = MODALITIES) -> pd.DataFrame:
    return summary_scores(grid_frame(rows), "late_fusion", METRICS, modalities=modalities)[0]


def _values(scores: pd.DataFrame, method: str, score: str) -> pd.Series:
    return scores[(scores["method"] == method) & (scores["score"] == score)]["value"].astype(float)


def test_a_row_with_clean_score_at_chance_gets_undefined_robustness_scores() -> None:
    """Grounding AP's chance level is 0 (``Task.chance_level``): a clean AP of 0.002 is not a tenth of the way to 1,
    so every robustness score of the row is undefined — even without the modality rule — and says why; its
    measured clean and corrupted AP stay."""
    assert get_task("grounding").chance_level("AP", None) == 0.0
    scores = _scores(ROWS, modalities=None)
    for score in ROBUSTNESS:
        assert _values(scores, "text_only", score).isna().all(), score
        assert not _values(scores, "cross_attention", score).isna().all(), score
    assert _values(scores, "text_only", "clean").tolist() == [0.002]
    assert _values(scores, "text_only", "mean_corrupted").tolist() == [0.002]
    reason = scores[(scores["method"] == "text_only") & (scores["score"] == "relative_drop")]["unscored"].iloc[0]
    assert "not well above chance (0.000)" in reason
    markdown = robustness_markdown(scores, pd.DataFrame(), "late_fusion", 30)
    assert "Not scored (n/a" in markdown and "text_only — clean AP 0.002" in markdown


def test_text_only_cannot_be_best_on_effective_robustness() -> None:
    """Unscored, text_only has no effective robustness (either definition) to be best with; without the rules its
    flat curve would top both, which is the failure they prevent."""
    ungated = summary_scores(grid_frame(ROWS), "late_fusion", {"matching": "match_AUROC", **METRICS})[0]
    multibench = ungated[ungated["score"] == "effective_robustness_multibench"].dropna(subset=["value"])
    assert multibench.groupby("method")["value"].mean().idxmax() != "text_only"  # gated by chance already
    for modalities in (MODALITIES, None):
        scores = _scores(ROWS, modalities)
        for score in ("effective_robustness", "effective_robustness_multibench"):
            rows = scores[scores["score"] == score].dropna(subset=["value"])
            assert "text_only" not in set(rows["method"]), score
            assert rows.groupby("method")["value"].mean().idxmax() != "text_only"


def test_a_unimodal_row_is_not_scored_on_the_modality_it_does_not_read() -> None:
    """text_only working well (clean AP 0.5) is still not scored on image corruptions, which it never sees; image_only
    is scored on them."""
    rows = {**ROWS, ("text_only", 0): {"clean": 0.5, "gaussian_noise": [0.5, 0.5], "defocus_blur": [0.5, 0.5]}}
    scores = _scores(rows)
    for score in ROBUSTNESS:
        assert _values(scores, "text_only", score).isna().all(), score
        assert not _values(scores, "image_only", score).isna().all(), score
    reason = scores[(scores["method"] == "text_only") & (scores["score"] == "mCE")]["unscored"].iloc[0]
    assert reason == "does not read the image"
    without = _scores(rows, modalities=None)  # every method read both: text_only's flat curve scores
    assert _values(without, "text_only", "relative_drop").tolist() == [0.0]


def test_taori_effective_robustness_is_the_distance_above_the_logit_line() -> None:
    """Three rows on logit(corrupted) = logit(clean) − 1 and one above: the fitted line passes through the three
    (least squares with the fourth pulling it up a little); by hand on an exact line ER is 0, and a row with
    corrupted accuracy p above the line's σ(logit(clean) − 1) has ER = p − σ(logit(clean) − 1)."""
    clean = np.array([0.5, 0.7, 0.9])
    corrupted = 1 / (1 + np.exp(-(logit(clean) - 1)))
    baseline = logit_baseline(clean, corrupted)
    assert baseline == pytest.approx((1.0, -1.0))
    assert effective_robustness_taori(0.7, float(corrupted[1]), baseline) == pytest.approx(0.0, abs=1e-12)
    expected = 0.6 - 1 / (1 + math.exp(-(math.log(0.8 / 0.2) - 1)))
    assert effective_robustness_taori(0.8, 0.6, baseline) == pytest.approx(expected)
    assert logit_baseline([0.5], [0.4]) is None and effective_robustness_taori(0.5, 0.4, None) is None


def test_taori_effective_robustness_in_the_table_fits_every_scored_row() -> None:
    """The table's effective_robustness of a row: its mean_corrupted minus the line fitted through the scored rows'
    (clean, mean_corrupted), the unscored text_only and image-blind rows left out of the fit."""
    scores = _scores(ROWS)
    image = scores[scores["family"] == "image"]
    scored = sorted(set(image[image["score"] == "effective_robustness"].dropna(subset=["value"])["method"]))
    assert scored == ["cross_attention", "early_concat", "image_only", "late_fusion"]
    points = [
        (float(_values(image, m, "clean").iloc[s]), float(_values(image, m, "mean_corrupted").iloc[s]), m, s)
        for m in scored
        for s in range(len(_values(image, m, "clean")))
    ]
    baseline = logit_baseline([p[0] for p in points], [p[1] for p in points])
    for clean, corrupted, method, seed in points:
        assert float(_values(image, method, "effective_robustness").iloc[seed]) == pytest.approx(
            effective_robustness_taori(clean, corrupted, baseline)
        )


def test_a_reference_near_chance_defines_no_reference_relative_score() -> None:
    """With late_fusion at AP 0.05 (below a tenth of the way from chance 0 to 1), no relative mCE, mCE or
    MultiBench effective robustness is defined for anyone; relative drop and Taori's ER (no reference) remain."""
    rows = {
        **ROWS,
        ("late_fusion", 0): {"clean": 0.05, "gaussian_noise": [0.04, 0.03], "defocus_blur": [0.04, 0.03]},
        ("late_fusion", 1): {"clean": 0.05, "gaussian_noise": [0.04, 0.02], "defocus_blur": [0.03, 0.03]},
    }
    scores = _scores(rows)
    for score in ("mCE", "relative_mCE", "effective_robustness_multibench"):
        assert _values(scores, "cross_attention", score).isna().all(), score
    assert not _values(scores, "cross_attention", "relative_drop").isna().any()
    assert not _values(scores, "cross_attention", "effective_robustness").isna().any()


def test_the_defined_corruption_set_is_given_not_redecided() -> None:
    """summarize_family averages relative CE over the corruptions it is given (the measured reference's), not over
    those a replicate's reference happens to pass the ε rule on: a replicate reference that stays level under
    defocus_blur still gets a relCE there, from its (nonzero) denominator."""
    measured = {"gaussian_noise": {0: 0.7, 1: 0.6, 2: 0.4}, "defocus_blur": {0: 0.7, 1: 0.65, 2: 0.6}}
    defined = defined_corruptions(measured)
    assert defined["relative_mCE"] == ["gaussian_noise", "defocus_blur"]
    replicate = {"gaussian_noise": {0: 0.7, 1: 0.6, 2: 0.4}, "defocus_blur": {0: 0.7, 1: 0.699, 2: 0.6995}}
    curves = {"gaussian_noise": {0: 0.5, 1: 0.4, 2: 0.3}, "defocus_blur": {0: 0.5, 1: 0.5, 2: 0.499}}
    redecided = summarize_family(curves, replicate)["relative_mCE"]
    fixed = summarize_family(curves, replicate, defined)["relative_mCE"]
    assert (redecided.defined, fixed.defined) == (1, 2)
    assert fixed.value == pytest.approx((0.3 / 0.4 + 0.001 / 0.0015) / 2)


def test_retrieval_chance_comes_from_the_gallery() -> None:
    """Retrieval's chance level is the exact expectation of a random ranking of the evaluation's galleries: 4 images
    with 2 captions each among 8: R@1 t2i 1/4, i2t 1 − (7/8)(6/7) = 1/4; R@2 t2i 1/2, i2t 1 − (6/8)(5/7) = 13/28."""
    items = RetrievalItems(
        t2i_rank=np.zeros(8, int), text_owner=np.repeat(np.arange(4), 2), i2t_rank=np.zeros(4, int), ks=(1, 2)
    )
    task = get_task("retrieval")
    assert task.chance_level("t2i_R@1", items) == pytest.approx(0.25)
    assert task.chance_level("i2t_R@1", items) == pytest.approx(0.25)
    assert task.chance_level("i2t_R@2", items) == pytest.approx(13 / 28)
    assert task.chance_level("mean_R", items) == pytest.approx((0.25 + 0.25 + 0.5 + 13 / 28) / 4)
    assert task.chance_level("mean_R", None) is None
