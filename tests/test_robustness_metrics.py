"""Robustness summaries on hand-computed numbers."""

from __future__ import annotations

import pytest

from benchmark.metrics.robustness import (
    NEGLIGIBLE,
    area_under_severity,
    corruption_error,
    effective_robustness,
    relative_corruption_error,
    relative_drop,
    summarize_family,
)

METHOD = {0: 0.8, 1: 0.6, 2: 0.4}
REFERENCE = {0: 0.9, 1: 0.5, 2: 0.3}


def test_relative_drop() -> None:
    # ((0.8 − 0.6) + (0.8 − 0.4)) / 2 / 0.8 = 0.375
    assert relative_drop(0.8, [0.6, 0.4]) == pytest.approx(0.375)
    assert relative_drop(0.0, [0.0]) is None


def test_corruption_errors() -> None:
    # CE = ((1 − .6) + (1 − .4)) / ((1 − .5) + (1 − .3)) = 1.0 / 1.2
    assert corruption_error(METHOD, REFERENCE) == pytest.approx(1.0 / 1.2)
    # relCE = ((.8 − .6) + (.8 − .4)) / ((.9 − .5) + (.9 − .3)) = 0.6 / 1.0
    assert relative_corruption_error(METHOD, REFERENCE) == pytest.approx(0.6)


def test_relative_ce_undefined_when_the_reference_does_not_degrade() -> None:
    """ε = 0.01, |S| = 2: relCE needs Σ_s (M^r₀ − M^r_s) > ε · 2 · M^r₀."""
    assert NEGLIGIBLE == 0.01
    assert relative_corruption_error(METHOD, {0: 0.5, 1: 0.5, 2: 0.5}) is None  # level
    # improves: Σ drop = (.5 − .6) + (.5 − .55) = −0.15 < 0 → undefined, not −0.6 / 0.15 = −4
    assert relative_corruption_error(METHOD, {0: 0.5, 1: 0.6, 2: 0.55}) is None
    # negligible: Σ drop = .005 + .01 = .015 ≤ .01 · 2 · .9 = .018
    assert relative_corruption_error(METHOD, {0: 0.9, 1: 0.895, 2: 0.89}) is None
    # just above: Σ drop = .02 + .02 = .04 > .018 → 0.6 / 0.04 = 15
    assert relative_corruption_error(METHOD, {0: 0.9, 1: 0.88, 2: 0.88}) == pytest.approx(15.0)
    assert relative_corruption_error(METHOD, {0: 0.0, 1: 0.0, 2: 0.0}) is None  # a reference at 0


def test_ce_undefined_when_the_reference_error_is_negligible() -> None:
    """CE needs Σ_s (1 − M^r_s) > ε · |S| = 0.02."""
    assert corruption_error(METHOD, {0: 1.0, 1: 1.0, 2: 1.0}) is None  # a perfect reference: 0 / 0 error
    assert corruption_error(METHOD, {0: 1.0, 1: 0.995, 2: 0.99}) is None  # .015 ≤ .02
    assert corruption_error(METHOD, {0: 1.0, 1: 0.99, 2: 0.98}) == pytest.approx(1.0 / 0.03)  # .03 > .02


def test_area_under_severity() -> None:
    # trapezoid over 0..2: ((.8 + .6)/2 + (.6 + .4)/2) / 2 = 0.6
    assert area_under_severity(METHOD) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="clean value"):
        area_under_severity({1: 0.5, 2: 0.4})


def test_multibench_effective_robustness_by_hand() -> None:
    """ER = Σ_s [M_s − (M^r_s + M₀ − M^r₀)] (MultiBench's effective_robustness_helper).

    METHOD vs REFERENCE: shift M₀ − M^r₀ = −0.1, predicted curve .8, .4, .2;
    ER = (.8 − .8) + (.6 − .4) + (.4 − .2) = 0.4 (the old proportional form gave 0.111).
    """
    assert effective_robustness(METHOD, REFERENCE) == pytest.approx(0.4)
    assert effective_robustness(REFERENCE, REFERENCE) == pytest.approx(0.0)
    # the additive shift: a curve parallel to the reference's has ER = 0, whatever its clean value
    assert effective_robustness({0: 0.6, 1: 0.2, 2: 0.0}, REFERENCE) == pytest.approx(0.0)
    # flat .5 vs REFERENCE: shift −.4, predicted .5, .1, −.1 → ER = 0 + .4 + .6 = 1.0
    assert effective_robustness({0: 0.5, 1: 0.5, 2: 0.5}, REFERENCE) == pytest.approx(1.0)


def test_family_summary_averages_corruptions() -> None:
    curves = {"a": METHOD, "b": {0: 0.8, 1: 0.8, 2: 0.8}}
    reference = {"a": REFERENCE, "b": REFERENCE}
    summary = summarize_family(curves, reference)
    assert summary["relative_drop"].value == pytest.approx((0.2 + 0.4 + 0 + 0) / 4 / 0.8)
    assert summary["mCE"].value == pytest.approx((1.0 / 1.2 + 0.4 / 1.2) / 2)
    assert summary["relative_mCE"].value == pytest.approx((0.6 + 0.0) / 2)
    assert summary["relative_robustness"].value == pytest.approx((0.6 + 0.8) / 2)
    # b: shift −.1, predicted .8, .4, .2 → ER = 0 + .4 + .6 = 1.0; mean with a's 0.4
    assert summary["effective_robustness_multibench"].value == pytest.approx(0.7)
    assert all((s.defined, s.corruptions) == (2, 2) for s in summary.values())
    assert summarize_family(curves, None)["mCE"].value is None


def test_relative_mce_averages_the_defined_corruptions_and_counts_them() -> None:
    """b's reference improves (.9 → .95, .92): relCE_b undefined; relative mCE = relCE_a = 0.6 over 1 of 2."""
    curves = {"a": METHOD, "b": {0: 0.8, 1: 0.8, 2: 0.8}}
    summary = summarize_family(curves, {"a": REFERENCE, "b": {0: 0.9, 1: 0.95, 2: 0.92}})
    assert summary["relative_mCE"].value == pytest.approx(0.6)
    assert (summary["relative_mCE"].defined, summary["relative_mCE"].corruptions) == (1, 2)
    # CE stays defined on both: a 1.0 / 1.2, b (.2 + .2) / (.05 + .08)
    assert summary["mCE"].value == pytest.approx((1.0 / 1.2 + 0.4 / 0.13) / 2)
    assert summary["mCE"].defined == 2
    none = summarize_family({"b": curves["b"]}, {"b": {0: 0.9, 1: 0.95, 2: 0.92}})["relative_mCE"]
    assert (none.value, none.defined, none.corruptions) == (None, 0, 1)
