"""Reporting: bootstrap coverage and exactness, LaTeX tables and macros, plots, the leaderboard."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.metrics.bootstrap import (
    GroundingItems,
    RetrievalItems,
    paired_difference,
    percentile_interval,
    resample_weights,
)
from benchmark.metrics.detection import evaluate_pairs
from benchmark.metrics.retrieval import best_positive_rank, recall_at_k, retrieval_metrics
from benchmark.report.tables import latex_table, macro_name, macros_file
from tests.helpers import (
    AGGREGATE_VALUES,
    GROUNDING_METRICS,
    REPO,
    compile_document,
    grounding_pairs,
    markdown_rows,
    nontrivial_weights,
    require_pdflatex,
    retrieval_items_hitting,
    tidy_retrieval_frame,
    write_evaluation,
)


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


def test_paired_difference_on_a_known_delta_sample() -> None:
    """Δ_i = i² − 400, i = 0..99, shuffled, with NaN resamples mixed in: every statistic is known by hand."""
    rng = np.random.default_rng(5)
    delta = np.arange(100.0) ** 2 - 400  # sorted already: Δ_(i) = i² − 400
    b = rng.integers(0, 1000, 104).astype(float)  # integer-valued: a − b is exact
    a = b.copy()
    kept = np.ones(104, dtype=bool)
    kept[[3, 50, 77, 101]] = False
    a[kept] += rng.permutation(delta)
    a[[3, 77]], b[[50, 101]] = np.nan, np.nan  # a NaN on either side drops the resample
    result = paired_difference(a, b)
    # mean: (Σ i² − 100·400)/100 with Σ_{i<100} i² = 99·100·199/6 = 328350
    assert result["delta"] == pytest.approx(328350 / 100 - 400, rel=1e-14)
    # linear interpolation at position (n − 1)·q = 99·0.025 = 2.475 and 99·0.975 = 96.525 of the sorted Δ:
    assert result["low"] == pytest.approx((2**2 - 400) + 0.475 * (3**2 - 2**2), rel=1e-12)  # −393.625
    assert result["high"] == pytest.approx((96**2 - 400) + 0.525 * (97**2 - 96**2), rel=1e-12)  # 8917.325
    assert result["boot_prob_not_better"] == 21 / 100  # Δ ≤ 0 for i = 0..20, Δ = 0 (i = 20) included
    assert result["boot_prob_two_sided"] == 2 * 21 / 100  # Δ ≥ 0 for i = 20..99: 80 / 100, the larger share
    assert paired_difference(a, a)["boot_prob_not_better"] == 1.0  # identical methods: never better
    assert paired_difference(a, a)["boot_prob_two_sided"] == 1.0  # 2 · 1, capped at 1


def physical_retrieval_metrics(
    t2i_scores: np.ndarray, i2t_scores: np.ndarray, owner: np.ndarray, weights: np.ndarray, ks: tuple[int, ...]
) -> dict[str, float]:
    """Recall@K recomputed on a resampled test set built for real: image u drawn ``weights[u]`` times.

    Galleries stay the full original test set; only the queries are resampled. t2i queries are
    the captions of the drawn images (a caption once per draw of its image), i2t queries are the
    drawn images. ``t2i_scores`` is captions × images, ``i2t_scores`` images × captions.
    """
    n_images = t2i_scores.shape[1]
    positives = owner[:, None] == np.arange(n_images)[None, :]  # caption × image
    drawn = np.repeat(np.arange(n_images), weights)
    captions = np.concatenate([np.flatnonzero(owner == image) for image in drawn])
    t2i = recall_at_k(t2i_scores[captions], positives[captions], ks)
    i2t = recall_at_k(i2t_scores[drawn], positives.T[drawn], ks)
    out = {**{f"t2i_R@{k}": v for k, v in t2i.items()}, **{f"i2t_R@{k}": v for k, v in i2t.items()}}
    out["mean_R"] = sum(out.values()) / len(out)  # mean of R@K over both directions and every K
    return out


def test_retrieval_items_match_recall_recomputed_on_physically_resampled_queries() -> None:
    """RetrievalItems.metrics(w) must equal recall@K of the resampled query set, not only for w = 1."""
    rng = np.random.default_rng(2)
    n_images, ks = 15, (1, 3, 5)
    owner = np.repeat(np.arange(n_images), rng.integers(1, 4, n_images))  # 1–3 captions per image
    positives = owner[:, None] == np.arange(n_images)[None, :]
    t2i_scores = rng.random((len(owner), n_images)) + 0.6 * positives  # informative, so recalls vary
    i2t_scores = rng.random((n_images, len(owner))) + 0.6 * positives.T  # its own ranking (re-ranked i2t)
    items = RetrievalItems(
        best_positive_rank(t2i_scores, positives), owner, best_positive_rank(i2t_scores, positives.T), ks
    )
    assert items.units == n_images

    identity = np.ones(n_images, dtype=int)
    expected = retrieval_metrics(t2i_scores, owner, list(ks), i2t_scores=i2t_scores.T)
    assert items.metrics(identity) == pytest.approx(expected, abs=1e-12)
    assert physical_retrieval_metrics(t2i_scores, i2t_scores, owner, identity, ks) == pytest.approx(expected, abs=1e-12)

    for weights in nontrivial_weights(rng, n_images, 4):
        physical = physical_retrieval_metrics(t2i_scores, i2t_scores, owner, weights, ks)
        assert physical != pytest.approx(expected), "resample too close to the test set to tell anything"
        assert items.metrics(weights) == pytest.approx(physical, abs=1e-12), weights


def test_grounding_items_reproduce_pycocotools_on_the_identity_resample_with_score_ties() -> None:
    """Ties are broken like COCOeval (stable sort over pairs in order)."""
    targets, predictions, sizes = grounding_pairs(np.random.default_rng(3), 200, ties=True)
    metrics, records = evaluate_pairs(targets, predictions, sizes)
    fast = GroundingItems(**records).metrics(np.ones(200))
    for name in GROUNDING_METRICS:
        assert fast[name] == pytest.approx(metrics[name], abs=1e-12), name


def test_grounding_items_match_pycocotools_on_physically_resampled_pairs() -> None:
    """GroundingItems.metrics(w) must equal pycocotools run on the pairs duplicated w times (0: dropped)."""
    rng = np.random.default_rng(4)
    pairs = 60
    targets, predictions, sizes = grounding_pairs(rng, pairs, ties=False)
    metrics, records = evaluate_pairs(targets, predictions, sizes)
    items = GroundingItems(**records)
    assert set(records["n_targets"]) == {0, 1, 2, 3}
    identity = items.metrics(np.ones(pairs))
    for name in GROUNDING_METRICS:
        assert identity[name] == pytest.approx(metrics[name], abs=1e-12), name

    for weights in nontrivial_weights(rng, pairs, 2):
        drawn = np.repeat(np.arange(pairs), weights)
        physical, _ = evaluate_pairs(
            [targets[p] for p in drawn], [predictions[p] for p in drawn], [sizes[p] for p in drawn]
        )
        assert physical["AP"] != pytest.approx(metrics["AP"], abs=1e-6), "resample leaves AP unchanged"
        fast = items.metrics(weights)
        for name in GROUNDING_METRICS:
            assert fast[name] == pytest.approx(physical[name], abs=1e-12), (name, weights)


def test_method_statistics_on_known_seeds_and_degenerate_bootstraps() -> None:
    """Mean, sample std, best / not-worse flags, CIs and seed wins, on inputs whose answers are known by hand.

    The tidy values (what the table reports) and the per-item records (what the bootstrap resamples)
    are independent inputs here. Items: A hits every query; C misses only image 0 of 40, so A − C is
    0 whenever image 0 is not drawn (≈ 36 % of resamples) and C is not significantly worse; B misses
    everything, so A − B = 1 on every resample.
    """
    from benchmark.report.aggregate import main_markdown
    from benchmark.report.statistics import method_statistics

    values = {"A": [0.70, 0.80, 0.90], "B": [0.70, 0.20, 0.30], "C": [0.75, 0.65, 0.85]}
    frame = tidy_retrieval_frame(values, {"chance": 0.95})  # the reference scores highest: still never best
    perfect, one_miss, none = (retrieval_items_hitting(40, 2, m) for m in ([], [0], range(40)))
    items = {
        ("d", "retrieval", "A"): [perfect] * 3,
        ("d", "retrieval", "B"): [none] * 3,
        ("d", "retrieval", "C"): [one_miss] * 3,
    }
    stats, comparisons = method_statistics(frame, items, ("chance",), resamples=300)
    stats = stats[stats["metric"] == "mean_R"].set_index("method")

    # by hand: A = 0.8 ± sqrt((0.1² + 0 + 0.1²)/2) = 0.1 (ddof 0 would give 0.0816);
    # B = 0.4 ± sqrt((0.3² + 0.2² + 0.1²)/2) = sqrt(0.07); C = 0.75 ± sqrt((0 + 0.1² + 0.1²)/2) = 0.1
    expected = {"A": (0.8, 0.1), "B": (0.4, 0.07**0.5), "C": (0.75, 0.1)}
    for method, (mean, std) in expected.items():
        assert stats.loc[method, "mean"] == pytest.approx(mean, abs=1e-12), method
        assert stats.loc[method, "std"] == pytest.approx(std, abs=1e-12), method
        assert stats.loc[method, "n"] == 3
        assert not stats.loc[method, "reference"]
    assert stats.loc["chance", "reference"] and stats.loc["chance", "n"] == 1 and np.isnan(stats.loc["chance", "std"])
    assert stats["best"].to_dict() == {"A": True, "B": False, "C": False, "chance": False}
    assert stats.loc["C", "not_worse_than_best"] and not stats.loc["B", "not_worse_than_best"]
    assert not stats.loc["chance", "not_worse_than_best"]
    assert (stats.loc["A", "ci_low"], stats.loc["A", "ci_high"]) == (1.0, 1.0)
    assert (stats.loc["B", "ci_low"], stats.loc["B", "ci_high"]) == (0.0, 0.0)
    assert stats.loc["C", "ci_high"] == 1.0 and 0.85 < stats.loc["C", "ci_low"] < 1.0  # 1 − (#draws of image 0)/40
    assert np.isnan(stats.loc["chance", "ci_low"]) and np.isnan(stats.loc["chance", "ci_high"])

    pairs = comparisons[comparisons["metric"] == "mean_R"].set_index(["a", "b"])
    assert set(pairs.index) == {(a, b) for a in "ABC" for b in "ABC" if a != b}  # no reference compared
    # per seed A vs C: 0.70 < 0.75, 0.80 > 0.65, 0.90 > 0.85 → A wins 2 of 3
    assert pairs.loc[("A", "C"), "seeds_a_beats_b"] == pytest.approx(2 / 3)
    assert pairs.loc[("C", "A"), "seeds_a_beats_b"] == pytest.approx(1 / 3)
    # A vs B: 0.70 = 0.70 is a tie, not a win; then 0.80 > 0.20, 0.90 > 0.30
    assert pairs.loc[("A", "B"), "seeds_a_beats_b"] == pytest.approx(2 / 3)
    assert pairs.loc[("B", "A"), "seeds_a_beats_b"] == 0.0 and pairs.loc[("A", "B"), "seeds"] == 3
    assert pairs.loc[("A", "B"), "low"] == pairs.loc[("A", "B"), "high"] == 1.0

    markdown = main_markdown(stats.reset_index(), {"config hash": "x"})
    table = markdown_rows(markdown, "## d — retrieval")
    assert table["header"] == ["method", "seeds", "mean_R"]
    assert table["A"] == ["A", "3", "**80.0 ± 10.0**"]  # best: bold
    assert table["C"] == ["C", "3", "_75.0 ± 10.0_"]  # not significantly worse: italics
    assert table["B"] == ["B", "3", "40.0 ± 26.5"]  # significantly worse: unmarked
    assert table["chance"] == ["chance", "—", "95.0"]  # a reference: no seeds, no mark


def test_aggregate_reports_mean_and_sample_std_of_the_per_seed_result_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_aggregate, from result files on disk to main.md / main.csv: each cell is mean ± sample std over seeds."""
    from benchmark.io import write_json
    from benchmark.report import aggregate
    from benchmark.results import metric_rows

    items = {"m1": retrieval_items_hitting(12, 2, []), "m2": retrieval_items_hitting(12, 2, range(12))}
    files = []
    for method, metrics in AGGREGATE_VALUES.items():
        for seed in range(3):
            files.append(tmp_path / "results" / f"{method}_seed{seed}.json")
            write_evaluation(files[-1], method, seed, {m: v[seed] for m, v in metrics.items()}, items[method])
    reference_spec = {"stage": "reference", "dataset": "d", "task": "retrieval", "ks": [1], "seed": None}
    chance = {"t2i_R@1": 1 / 12, "i2t_R@1": 0.16, "mean_R": 0.12}
    files.append(tmp_path / "results" / "chance.json")
    write_json(files[-1], {"spec": reference_spec, "rows": metric_rows(reference_spec, "chance", chance)})

    no_git = {"commit": "0" * 40, "dirty": False}  # no git call
    monkeypatch.setattr("benchmark.report.aggregate.run.git_state", lambda: no_git)
    aggregate.run_aggregate(files, tmp_path / "tables", "hash")

    table = markdown_rows((tmp_path / "tables" / "main.md").read_text(), "## d — retrieval")
    for method, metrics in AGGREGATE_VALUES.items():
        row = dict(zip(table["header"], table[method]))
        assert row["seeds"] == "3"
        for metric, seeds in metrics.items():
            mean = sum(seeds) / 3
            std = (sum((v - mean) ** 2 for v in seeds) / (3 - 1)) ** 0.5
            cell = f"{100 * mean:.1f} ± {100 * std:.1f}"
            # m1 hits every query and m2 none: m1 is best (bold), m2 significantly worse (unmarked)
            assert row[metric] == (f"**{cell}**" if method == "m1" else cell), (method, metric)
    assert dict(zip(table["header"], table["chance"]))["mean_R"] == "12.0"

    csv = pd.read_csv(tmp_path / "tables" / "main.csv", comment="#")
    assert not csv.duplicated(["method", "seed", "metric"]).any()
    written = {
        (method, float(seed), metric): values[seed]
        for method, metrics in AGGREGATE_VALUES.items()
        for metric, values in metrics.items()
        for seed in range(3)
    }
    learned = csv[csv["method"] != "chance"]
    assert {
        (m, s, k): v for m, s, k, v in learned[["method", "seed", "metric", "value"]].itertuples(index=False)
    } == pytest.approx(written, abs=1e-6)
    assert len(learned) == len(written) == 2 * 3 * 3
    chance_rows = csv[csv["method"] == "chance"]
    assert len(chance_rows) == 3 and chance_rows["seed"].isna().all()


def test_macro_names_are_valid_unique_and_readable() -> None:
    assert macro_name("cross_attention", "Det", "AP", "mean") == r"\fbCrossAttentionDetAPMean"
    assert macro_name("contrastive_clip", "Ret", "t2i_R@1", "std") == r"\fbContrastiveClipRetTToIRAtOneStd"
    assert macro_name("late_fusion", "Det", "Acc@0.5", "ci low") == r"\fbLateFusionDetAccAtHalfCiLow"
    with pytest.raises(ValueError, match="duplicate macro"):
        macros_file([(r"\fbA", "1"), (r"\fbA", "2")], {})


def test_generated_macros_and_tables_compile(tmp_path: Path) -> None:
    require_pdflatex()
    names = [
        macro_name(m, t, metric, stat)
        for m in ("cross_attention", "early_concat")
        for t in ("Ret", "Det")
        for metric in ("mean_R", "AP", "Acc@0.5", "t2i_R@10")
        for stat in ("mean", "ci high")
    ]
    assert len(set(names)) == len(names) and all(re.fullmatch(r"\\fb[A-Za-z]+", n) for n in names)
    (tmp_path / "macros.tex").write_text(
        macros_file([(n, f"{i}.5") for i, n in enumerate(names)], {"config hash": "x"})
    )
    frame = pd.DataFrame(
        {
            "method": ["cross_attention", "a&b_c"],
            "AP": ["17.3 ± 0.6", "n/a"],
            **{f"col{i}": ["1", "2"] for i in range(9)},
        }
    )  # wide: exercises \resizebox
    bold = frame.map(lambda _: False)
    bold.iloc[0, 1] = True
    (tmp_path / "table.tex").write_text(
        latex_table(frame, "A caption with 95 % and under_scores.", "tab:x", {"config hash": "x"}, bold=bold)
    )
    compile_document("\\input{macros.tex}\\input{table.tex}" + " ".join(names), tmp_path)


def test_robustness_plot_has_one_panel_per_measured_corruption(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from benchmark.report import plots

    captured = {}
    monkeypatch.setattr(plots, "save", lambda figure, stem: captured.setdefault("figure", figure) and [])
    rows = []
    for method in ("a", "b"):
        rows.append(
            {
                "dataset": "scenes",
                "task": "grounding",
                "metric": "AP",
                "method": method,
                "corruption": "none",
                "severity": 0,
                "seed": 0,
                "value": 0.5,
            }
        )
        for corruption in ("contrast", "keyboard", "missing_text"):
            for severity in (1, 3):
                value = float("nan") if corruption == "missing_text" else 0.4
                rows.append(
                    {
                        "dataset": "scenes",
                        "task": "grounding",
                        "metric": "AP",
                        "method": method,
                        "corruption": corruption,
                        "severity": severity,
                        "seed": 0,
                        "value": value,
                    }
                )
    plots.robustness_curves(pd.DataFrame(rows), "grounding", "AP", plots.method_colors(["a", "b"]), tmp_path / "x")
    visible = [ax for ax in captured["figure"].axes if ax.get_visible()]
    assert sorted(ax.get_title() for ax in visible) == ["contrast", "keyboard"]  # n/a everywhere: no panel
    assert all(len(ax.lines) >= 2 for ax in visible)


def test_readme_leaderboard_is_generated_from_the_reference_run() -> None:
    from benchmark.report.leaderboard import RESULTS_PAGE, update_readme

    reference = REPO / "results" / "reference"
    assert (reference / "provenance.json").is_file(), "results/reference is committed with the repository"
    page = REPO / RESULTS_PAGE
    assert not update_readme(page, reference, check=True), f"{page} out of date: run `make leaderboard`"
