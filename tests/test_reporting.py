"""Reporting: bootstrap coverage and exactness, LaTeX tables and macros, plots, the leaderboard."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.metrics.bootstrap import (
    GroundingItems, RetrievalItems, paired_difference, percentile_interval, resample_weights,
)
from benchmark.metrics.detection import evaluate_pairs
from benchmark.metrics.retrieval import best_positive_rank, retrieval_metrics
from benchmark.report.tables import latex_table, macro_name, macros_file
from tests.conftest import REPO


def require_pdflatex() -> None:
    if shutil.which("pdflatex"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("CI must have pdflatex: `make test` installs it from Debian (make tex)")
    pytest.skip("pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended "
                "texlive-fonts-recommended lmodern); the LaTeX compile tests need it")


def compile_document(body: str, tmp_path: Path, preamble: str = "") -> None:
    from benchmark.report.paper import compile_latex

    source = tmp_path / "doc.tex"
    source.write_text("\\documentclass{article}\\usepackage[utf8]{inputenc}\\usepackage[T1]{fontenc}"
                      "\\usepackage{lmodern}\\usepackage{booktabs}\\usepackage{graphicx}" + preamble
                      + "\\begin{document}" + body + "\\end{document}\n")
    compile_latex(source, [tmp_path], tmp_path / "doc.pdf", passes=1)
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_bootstrap_interval_covers_the_true_mean_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(0)
    trials, n, covered = 200, 60, 0
    for trial in range(trials):
        sample = rng.normal(loc=1.0, scale=2.0, size=n)
        weights = resample_weights(n, 1000, seed=trial)
        means = (weights * sample).sum(axis=1) / weights.sum(axis=1)
        low, high = percentile_interval(means)
        covered += low <= 1.0 <= high
    assert 0.88 <= covered / trials <= 0.99, covered / trials


def test_paired_difference_detects_a_real_gap_and_not_a_null_one() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0.6, 0.02, 1000)
    assert paired_difference(a, a - 0.05)["low"] > 0
    null = paired_difference(a, a + rng.normal(0, 0.02, 1000))
    assert null["low"] <= 0 <= null["high"]


def test_retrieval_items_reproduce_the_metrics_on_the_identity_resample() -> None:
    rng = np.random.default_rng(2)
    owner = np.repeat(np.arange(15), 3)
    scores = rng.random((45, 15))
    positives = owner[:, None] == np.arange(15)[None, :]
    items = RetrievalItems(best_positive_rank(scores, positives), owner, best_positive_rank(scores.T, positives.T), (1, 5, 10))
    expected = retrieval_metrics(scores, owner, [1, 5, 10])
    assert items.metrics(np.ones(15)) == pytest.approx(expected)


def test_grounding_items_reproduce_pycocotools_on_the_identity_resample() -> None:
    rng = np.random.default_rng(3)
    targets, predictions = [], []
    for _ in range(200):
        n = int(rng.integers(0, 3))
        boxes = np.column_stack([rng.uniform(0, 30, (n, 2)), rng.uniform(5, 15, (n, 2))])
        noise = np.column_stack([rng.uniform(0, 30, (3, 2)), rng.uniform(5, 15, (3, 2))])
        guess = np.vstack([noise, boxes + rng.normal(0, 1.5, boxes.shape)])
        targets.append(boxes)
        predictions.append((guess, rng.uniform(0, 1, len(guess)).round(2)))  # rounded: ties included
    metrics, records = evaluate_pairs(targets, predictions, [(48, 48)] * 200)
    fast = GroundingItems(**records).metrics(np.ones(200))
    for name in ("AP", "AP50", "AP75", "AR@100", "mIoU", "Acc@0.5", "N-acc"):
        assert fast[name] == pytest.approx(metrics[name], abs=1e-12), name


def test_macro_names_are_valid_unique_and_readable() -> None:
    assert macro_name("cross_attention", "Det", "AP", "mean") == r"\fbCrossAttentionDetAPMean"
    assert macro_name("contrastive_clip", "Ret", "t2i_R@1", "std") == r"\fbContrastiveClipRetTToIRAtOneStd"
    assert macro_name("late_fusion", "Det", "Acc@0.5", "ci low") == r"\fbLateFusionDetAccAtHalfCiLow"
    with pytest.raises(ValueError, match="duplicate macro"):
        macros_file([(r"\fbA", "1"), (r"\fbA", "2")], {})


def test_generated_macros_and_tables_compile(tmp_path: Path) -> None:
    require_pdflatex()
    names = [macro_name(m, t, metric, stat) for m in ("cross_attention", "early_concat") for t in ("Ret", "Det")
             for metric in ("mean_R", "AP", "Acc@0.5", "t2i_R@10") for stat in ("mean", "ci high")]
    assert len(set(names)) == len(names) and all(re.fullmatch(r"\\fb[A-Za-z]+", n) for n in names)
    (tmp_path / "macros.tex").write_text(macros_file([(n, f"{i}.5") for i, n in enumerate(names)], {"config hash": "x"}))
    frame = pd.DataFrame({"method": ["cross_attention", "a&b_c"], "AP": ["17.3 ± 0.6", "n/a"],
                          **{f"col{i}": ["1", "2"] for i in range(9)}})  # wide: exercises \resizebox
    bold = frame.map(lambda _: False)
    bold.iloc[0, 1] = True
    (tmp_path / "table.tex").write_text(latex_table(frame, "A caption with 95 % and under_scores.", "tab:x",
                                                    {"config hash": "x"}, bold=bold))
    compile_document("\\input{macros.tex}\\input{table.tex}" + " ".join(names), tmp_path)


def test_robustness_plot_has_one_panel_per_measured_corruption(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from benchmark.report import plots

    captured = {}
    monkeypatch.setattr(plots, "save", lambda figure, stem: captured.setdefault("figure", figure) and [])
    rows = []
    for method in ("a", "b"):
        rows.append({"task": "grounding", "metric": "AP", "method": method, "corruption": "none", "severity": 0, "seed": 0, "value": 0.5})
        for corruption in ("contrast", "keyboard", "missing_text"):
            for severity in (1, 3):
                value = float("nan") if corruption == "missing_text" else 0.4
                rows.append({"task": "grounding", "metric": "AP", "method": method, "corruption": corruption,
                             "severity": severity, "seed": 0, "value": value})
    plots.robustness_curves(pd.DataFrame(rows), "grounding", "AP", plots.method_colors(["a", "b"]), tmp_path / "x")
    visible = [ax for ax in captured["figure"].axes if ax.get_visible()]
    assert sorted(ax.get_title() for ax in visible) == ["contrast", "keyboard"]  # n/a everywhere: no panel
    assert all(len(ax.lines) >= 2 for ax in visible)


def test_readme_leaderboard_is_generated_from_the_reference_run() -> None:
    from benchmark.report.leaderboard import update_readme

    reference = REPO / "results" / "reference"
    assert (reference / "provenance.json").is_file(), "results/reference is committed with the repository"
    assert not update_readme(REPO / "README.md", reference, check=True), "README out of date: run `make leaderboard`"
