"""Robustness summaries on hand-computed numbers."""

from __future__ import annotations

import pytest

from benchmark.metrics.robustness import (
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
    flat = {0: 0.5, 1: 0.5, 2: 0.5}
    assert relative_corruption_error(METHOD, flat) is None  # a reference that never degrades


def test_area_and_effective_robustness() -> None:
    # trapezoid over 0..2: ((.8 + .6)/2 + (.6 + .4)/2) / 2 = 0.6
    assert area_under_severity(METHOD) == pytest.approx(0.6)
    # reference: ((.9 + .5)/2 + (.5 + .3)/2) / 2 = 0.55; ER = 0.6 − 0.8 · 0.55 / 0.9
    assert effective_robustness(METHOD, REFERENCE) == pytest.approx(0.6 - 0.8 * 0.55 / 0.9)
    assert effective_robustness(REFERENCE, REFERENCE) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="clean value"):
        area_under_severity({1: 0.5, 2: 0.4})


def test_family_summary_averages_corruptions() -> None:
    curves = {"a": METHOD, "b": {0: 0.8, 1: 0.8, 2: 0.8}}
    reference = {"a": REFERENCE, "b": REFERENCE}
    summary = summarize_family(curves, reference)
    assert summary["relative_drop"] == pytest.approx((0.2 + 0.4 + 0 + 0) / 4 / 0.8)
    assert summary["mCE"] == pytest.approx((1.0 / 1.2 + 0.4 / 1.2) / 2)
    assert summary["relative_mCE"] == pytest.approx((0.6 + 0.0) / 2)
    assert summary["relative_robustness"] == pytest.approx((0.6 + 0.8) / 2)
    assert summarize_family(curves, None)["mCE"] is None
