"""MMI (MultiModal Impact score, Qiu et al. 2022) on tables small enough to compute by hand."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from benchmark.metrics.robustness import multimodal_impact
from benchmark.report.robustness import mmi_components, robustness_latex, robustness_markdown, summary_scores

# Retrieval with K = 1, 5: (t2i_R@1, t2i_R@5, i2t_R@1, i2t_R@5) per (corruption, severity).
RETRIEVAL = {
    ("none", 0): (0.5, 0.9, 0.6, 1.0),
    ("keyboard", 1): (0.4, 0.8, 0.6, 0.9),
    ("keyboard", 2): (0.3, 0.8, 0.5, 0.9),
    ("word_delete", 1): (0.5, 0.9, 0.6, 1.0),
    ("word_delete", 2): (0.2, 0.6, 0.4, 0.8),
    ("word_swap", 1): (None, None, None, None),  # not applicable: left out, as in every summary
    ("word_swap", 2): (None, None, None, None),
    ("gaussian_noise", 1): (0.35, 0.7, 0.4, 0.8),
    ("gaussian_noise", 2): (0.35, 0.7, 0.4, 0.8),
}
GROUNDING_AP = {("none", 0): 0.5, ("keyboard", 1): 0.4, ("keyboard", 2): 0.3}


def _frame() -> pd.DataFrame:
    rows = []
    key = {"dataset": "d", "method": "m", "seed": 0}
    for (corruption, severity), values in RETRIEVAL.items():
        named = dict(zip(("t2i_R@1", "t2i_R@5", "i2t_R@1", "i2t_R@5"), values))
        known = [v for v in values if v is not None]
        named["mean_R"] = sum(known) / 4 if len(known) == 4 else None
        for metric, value in named.items():
            rows.append({**key, "task": "retrieval", "corruption": corruption, "severity": severity, "metric": metric})
            rows[-1]["value"] = float("nan") if value is None else value
    for (corruption, severity), value in GROUNDING_AP.items():
        rows.append(
            {**key, "task": "grounding", "corruption": corruption, "severity": severity, "metric": "AP", "value": value}
        )
    return pd.DataFrame(rows)


def test_multimodal_impact_is_the_mean_relative_drop() -> None:
    """Clean 0.8, perturbed 0.6, 0.8, 0.4: MMI = ((0.8−0.6) + 0 + (0.8−0.4)) / 3 / 0.8 = 0.6 / 2.4 = 0.25."""
    assert multimodal_impact(0.8, [0.6, 0.8, 0.4]) == pytest.approx(0.25)
    assert multimodal_impact(0.8, [0.9]) == pytest.approx(-0.125)  # a perturbation that helps gives MMI < 0
    assert multimodal_impact(0.0, [0.1]) is None and multimodal_impact(0.8, []) is None


def test_mmi_per_direction_and_family_by_hand() -> None:
    """Per direction, the score of a cell is the mean of that direction's R@1 and R@5.

    t2i: clean (0.5 + 0.9)/2 = 0.7; text family cells keyboard 0.6, 0.55; word_delete 0.7, 0.4
    (word_swap is not applicable and left out), so
        MMI_t2i(text) = ((0.7−0.6) + (0.7−0.55) + (0.7−0.7) + (0.7−0.4)) / 4 / 0.7 = 0.55 / 2.8 = 0.196428…
    i2t: clean (0.6 + 1.0)/2 = 0.8; cells keyboard 0.75, 0.7; word_delete 0.8, 0.6, so
        MMI_i2t(text) = (0.05 + 0.1 + 0 + 0.2) / 4 / 0.8 = 0.35 / 3.2 = 0.109375.
    Image family (gaussian_noise): t2i 0.525 at both severities → (0.7−0.525)/0.7 = 0.25;
    i2t 0.6 at both → (0.8−0.6)/0.8 = 0.25.
    Grounding, AP: clean 0.5, keyboard 0.4, 0.3 → MMI = (0.1 + 0.2) / 2 / 0.5 = 0.3, equal to
    relative_drop by definition.
    """
    scores, _ = summary_scores(_frame(), "m", {"retrieval": "mean_R", "grounding": "AP"})

    def value(task: str, family: str, score: str) -> float:
        row = scores[(scores["task"] == task) & (scores["family"] == family) & (scores["score"] == score)]
        assert len(row) == 1, (task, family, score)
        return float(row["value"].iloc[0])

    assert value("retrieval", "text", "MMI_t2i") == pytest.approx(0.55 / 2.8)
    assert value("retrieval", "text", "MMI_i2t") == pytest.approx(0.109375)
    assert value("retrieval", "image", "MMI_t2i") == pytest.approx(0.25)
    assert value("retrieval", "image", "MMI_i2t") == pytest.approx(0.25)
    assert value("grounding", "text", "MMI") == pytest.approx(0.3)
    assert value("grounding", "text", "MMI") == pytest.approx(value("grounding", "text", "relative_drop"))
    grounding_scores = set(scores[scores["task"] == "grounding"]["score"])
    assert "MMI" in grounding_scores and "MMI_t2i" not in grounding_scores


def test_mmi_columns_in_the_tables() -> None:
    scores, drops = summary_scores(_frame(), "m", {"retrieval": "mean_R", "grounding": "AP"})
    markdown = robustness_markdown(scores, drops, "m", 30)
    retrieval = markdown[markdown.index("## d — retrieval") :]
    assert re.search(r"effective_robustness_multibench \|\s+MMI_t2i \|\s+MMI_i2t \|", retrieval)
    assert "0.196" in retrieval and "0.109" in retrieval
    grounding = markdown[markdown.index("## d — grounding") : markdown.index("## d — retrieval")]
    assert "MMI" in grounding and "MMI_t2i" not in grounding
    assert "MMI (MultiModal Impact" in markdown
    assert "MMI t2i" in robustness_latex(scores, "m", 30, {})


def test_mmi_components() -> None:
    metrics = ["t2i_R@1", "t2i_R@5", "i2t_R@1", "i2t_R@5", "mean_R"]
    expected = {"MMI_t2i": ["t2i_R@1", "t2i_R@5"], "MMI_i2t": ["i2t_R@1", "i2t_R@5"]}
    assert mmi_components(metrics, "mean_R", "retrieval") == expected  # the task's groups
    assert mmi_components(["AP", "AP50"], "AP", "grounding") == {"MMI": ["AP"]}
    assert mmi_components(["mean_R"], "mean_R", "retrieval") == {"MMI": ["mean_R"]}  # no per-direction rows
