"""Robustness summaries get two-level bootstrap intervals from per-item records kept for every cell.

Cases small enough to check by hand: records that no resample can change give an interval equal
to the point; two seeds that differ only between each other give [lower seed, higher seed]; and on
a toy with known population values the interval covers them at about the nominal rate.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmark.data.dataset import load_split
from benchmark.io import write_json
from benchmark.metrics.bootstrap import (
    REC_THRESHOLDS,
    GroundingItems,
    RetrievalItems,
    _thresholds_up_to,
    batch_metrics,
    percentile_interval,
    resample_weights,
    student_t_quantile,
    two_level,
)
from benchmark.report.robustness import load_cell_items, robustness_latex, robustness_markdown, summary_scores
from benchmark.results import items_path, read_cell_items, write_cell_items
from benchmark.robustness.grid import evaluate_robustness
from benchmark.tasks import get_task

METRICS = {"retrieval": "mean_R"}
CELLS = [("none", 0), ("gaussian_noise", 1), ("gaussian_noise", 2), ("char_swap", 1), ("char_swap", 2)]


def _records(t2i_hits: np.ndarray, i2t_hits: np.ndarray) -> dict[str, np.ndarray]:
    """Retrieval records with K = 1 of images with ``t2i_hits.shape[1]`` captions each: a hit is rank 0."""
    units, captions = t2i_hits.shape
    return {
        "t2i_rank": np.where(t2i_hits.reshape(-1), 0, 1),
        "text_owner": np.repeat(np.arange(units), captions),
        "i2t_rank": np.where(i2t_hits, 0, 1),
        "ks": np.array([1]),
    }


def _uniform(t2i: tuple[int, int], i2t: int, units: int = 6) -> dict[str, np.ndarray]:
    """Every image alike — two captions with hits ``t2i``, its own hit ``i2t`` — so no resample changes a metric:
    t2i_R@1 = mean(t2i), i2t_R@1 = i2t."""
    return _records(np.tile(np.array(t2i, bool), (units, 1)), np.full(units, bool(i2t)))


def _frame_and_items(
    runs: dict[tuple[str, int], dict[tuple[str, int], dict[str, np.ndarray]]],
) -> tuple[pd.DataFrame, dict[Any, Any]]:
    """The tidy rows of each run's cells (their records' metrics at identity weights) and the records."""
    task = get_task("retrieval")
    rows, cell_items = [], {}
    for (method, seed), cells in runs.items():
        key = ("d", "retrieval", method, seed)
        cell_items[key] = {cell: task.items(arrays) for cell, arrays in cells.items()}
        for (corruption, severity), items in cell_items[key].items():
            for metric, value in items.metrics(np.ones(items.units)).items():
                rows.append(
                    {
                        "dataset": "d",
                        "task": "retrieval",
                        "method": method,
                        "seed": seed,
                        "metric": metric,
                        "corruption": corruption,
                        "severity": severity,
                        "value": value,
                    }
                )
    return pd.DataFrame(rows), cell_items


# (t2i hits of an image's two captions, i2t hit) per cell; mean_R = (mean(t2i) + i2t) / 2
REFERENCE = dict(zip(CELLS, [((1, 1), 1), ((1, 0), 1), ((0, 0), 1), ((1, 1), 0), ((1, 0), 0)]))
METHOD = dict(zip(CELLS, [((1, 1), 1), ((1, 1), 0), ((1, 0), 0), ((1, 0), 1), ((0, 0), 0)]))


def _uniform_runs(cells_by_run: dict[tuple[str, int], dict]) -> dict:
    return {run: {cell: _uniform(*spec) for cell, spec in cells.items()} for run, cells in cells_by_run.items()}


def test_records_no_resample_can_change_give_the_point_as_interval() -> None:
    """Identical records across seeds, every image alike: every replicate is the point estimate."""
    runs = _uniform_runs({("r", 0): REFERENCE, ("r", 1): REFERENCE, ("m", 0): METHOD, ("m", 1): METHOD})
    frame, cell_items = _frame_and_items(runs)
    plain, _ = summary_scores(frame, "r", METRICS)
    scores, _ = summary_scores(frame, "r", METRICS, cell_items, resamples=50)
    assert "ci_low" not in plain
    # the point estimates do not change; the records add retrieval's chance level (the gallery sizes), hence the
    # chance-normalised scores
    normalised = scores["score"].str.endswith("_normalised")
    assert set(scores[normalised]["score"]) == {"clean_normalised", "mean_corrupted_normalised"}
    same = scores[~normalised].reset_index(drop=True)
    pd.testing.assert_frame_equal(same[plain.columns], plain)
    defined = scores[scores["value"].notna()]
    assert set(defined["score"]) >= {"mean_corrupted", "relative_drop", "mCE", "relative_robustness", "MMI_t2i"}
    assert np.allclose(defined["ci_low"].astype(float), defined["value"].astype(float), atol=1e-12)
    assert np.allclose(defined["ci_high"].astype(float), defined["value"].astype(float), atol=1e-12)
    assert (scores["ci_resamples"] == 50).all()
    # by hand: m's mean_R under gaussian_noise is (1 + 0)/2, (.5 + 0)/2 → the image family's mean_corrupted .375
    row = scores[(scores["method"] == "m") & (scores["family"] == "image") & (scores["score"] == "mean_corrupted")]
    assert row["value"].tolist() == pytest.approx([0.375] * 2) and row["ci_high"].tolist() == pytest.approx([0.375] * 2)


def test_two_seeds_that_differ_only_between_them_give_the_t_interval() -> None:
    """Two seeds a, b, constant over the item resamples: the interval is the t interval on 1 degree of freedom,
    (a + b)/2 ± |a − b|/2 · t₁ (read at the stratified levels (k + ½)/B), far wider than [a, b] (issue 24).

    m's text family (char_swap): seed 0 mean_R (1 + 0)/2, (.5 + 0)/2 → mean_corrupted .375; seed 1 .25, 0 → .125."""
    shifted = {**METHOD, ("char_swap", 1): ((1, 0), 0), ("char_swap", 2): ((0, 0), 0)}
    seed0 = {**METHOD, ("char_swap", 1): ((1, 1), 0), ("char_swap", 2): ((1, 0), 0)}
    runs = _uniform_runs({("r", 0): REFERENCE, ("m", 0): seed0, ("m", 1): shifted})
    frame, cell_items = _frame_and_items(runs)
    scores, _ = summary_scores(frame, "r", METRICS, cell_items, resamples=400)
    row = scores[(scores["method"] == "m") & (scores["family"] == "text") & (scores["score"] == "mean_corrupted")]
    assert sorted(row["value"]) == pytest.approx([0.125, 0.375])
    t1 = student_t_quantile((np.arange(400) + 0.5) / 400, 1)
    expected = percentile_interval(0.25 + 0.125 * t1)
    assert (row["ci_low"].iloc[0], row["ci_high"].iloc[0]) == pytest.approx(expected, abs=1e-12)
    assert expected[0] < 0.25 - 0.125 * 12 and expected[1] > 0.25 + 0.125 * 12  # t₁'s 97.5 % point is 12.7


def test_without_the_reference_records_only_reference_free_scores_get_intervals() -> None:
    runs = _uniform_runs({("r", 0): REFERENCE, ("m", 0): METHOD})
    frame, cell_items = _frame_and_items(runs)
    del cell_items[("d", "retrieval", "r", 0)]
    scores, _ = summary_scores(frame, "r", METRICS, cell_items, resamples=20)
    m = scores[(scores["method"] == "m") & scores["value"].notna()].set_index(["family", "score"])
    assert m.loc[("image", "mean_corrupted"), "ci_low"] == pytest.approx(m.loc[("image", "mean_corrupted"), "value"])
    assert m.loc[("image", "relative_robustness"), "ci_low"] == pytest.approx(
        m.loc[("image", "relative_robustness"), "value"]
    )
    assert math.isnan(m.loc[("image", "mCE"), "ci_low"]) and math.isnan(m.loc[("image", "relative_mCE"), "ci_high"])
    assert scores[scores["method"] == "r"]["ci_low"].isna().all()  # r has no records: no interval at all


def _area(clean: float, curve: list[float]) -> float:
    """relative robustness of one curve by hand: the trapezoid area over severities 0, 1, 2, divided by 2."""
    values = [clean, *curve]
    return sum((a + b) / 2 for a, b in zip(values, values[1:])) / (len(values) - 1)


def test_intervals_cover_known_population_values_at_about_the_nominal_rate() -> None:
    """Each trial: 40 images whose hit probability in each cell is the population value p plus image noise,
    three seeds drawing their hits from them. mean_corrupted and relative robustness are linear in the
    cells' expected metric, so their population values are known; the 95 % intervals cover them in
    about 95 % of the trials (the two-level bootstrap is slightly conservative, module
    :mod:`benchmark.metrics.bootstrap`)."""
    population = dict(zip(CELLS, [0.8, 0.7, 0.5, 0.75, 0.6]))
    truth = {
        ("image", "mean_corrupted"): (0.7 + 0.5) / 2,
        ("text", "mean_corrupted"): (0.75 + 0.6) / 2,
        ("image", "relative_robustness"): _area(0.8, [0.7, 0.5]),
        ("text", "relative_robustness"): _area(0.8, [0.75, 0.6]),
    }
    rng = np.random.default_rng(2024)
    covered = {name: 0 for name in truth}
    trials, units = 40, 40
    for _ in range(trials):
        q = {cell: np.clip(p + rng.normal(0, 0.15, units), 0, 1) for cell, p in population.items()}
        runs = {
            ("m", seed): {
                cell: _records(rng.random((units, 1)) < q[cell][:, None], rng.random(units) < q[cell]) for cell in CELLS
            }
            for seed in range(3)
        }
        frame, cell_items = _frame_and_items(runs)
        scores, _ = summary_scores(frame, "m", METRICS, cell_items, resamples=200)
        for (fam, score), value in truth.items():
            row = scores[(scores["family"] == fam) & (scores["score"] == score)].iloc[0]
            covered[(fam, score)] += row["ci_low"] <= value <= row["ci_high"]
    for name, count in covered.items():
        assert 0.85 <= count / trials <= 1.0, (name, count)


def test_the_tables_show_the_interval_and_say_what_was_resampled() -> None:
    runs = _uniform_runs({("r", 0): REFERENCE, ("m", 0): METHOD, ("m", 1): METHOD})
    frame, cell_items = _frame_and_items(runs)
    scores, drops = summary_scores(frame, "r", METRICS, cell_items, resamples=200)
    markdown = robustness_markdown(scores, drops, "r", 6)
    assert (
        "two-level bootstrap, 200 replicates: the seeds resampled, then the test units (an image with its captions)"
        in markdown
    )
    m_row = next(line for line in markdown.splitlines() if line.startswith("| m "))
    assert "0.375 ± 0.000 [0.375, 0.375]" in m_row  # mean_corrupted, image family
    latex = robustness_latex(scores, "r", 6, {})
    assert "200 replicates" in latex and "95\\%" in latex and "[0.375, 0.375]" in latex
    plain, plain_drops = summary_scores(frame, "r", METRICS)
    assert "bootstrap" not in robustness_markdown(plain, plain_drops, "r", 6)


def test_cell_items_round_trip_and_load_from_results(tmp_path: Path) -> None:
    cells = {("none", 0): _uniform((1, 0), 1), ("gaussian_noise", 3): _uniform((0, 0), 1)}
    result = tmp_path / "seed0.json"
    write_cell_items(items_path(result), cells)
    back = read_cell_items(items_path(result))
    assert back.keys() == cells.keys()
    assert all((back[c][k] == v).all() for c, arrays in cells.items() for k, v in arrays.items())
    spec = {"stage": "robustness", "dataset": "d", "task": "retrieval", "method": "m", "seed": 0}
    write_json(result, {"spec": spec, "items": items_path(result).name})
    loaded = load_cell_items([(result, {"spec": spec, "items": items_path(result).name}), (result, {"spec": spec})])
    assert set(loaded) == {("d", "retrieval", "m", 0)}
    assert loaded[("d", "retrieval", "m", 0)][("gaussian_noise", 3)].metrics(np.ones(6))["t2i_R@1"] == 0.0
    write_cell_items(tmp_path / "empty.npz", {})
    assert read_cell_items(tmp_path / "empty.npz") == {}


def test_evaluate_robustness_keeps_each_measured_cells_records(tiny_dataset: Path) -> None:
    """Records per (corruption, severity) as the evaluation returns them; a not-applicable cell has none."""
    test = load_split(tiny_dataset, "test")
    settings = {
        "max_images": 4,
        "severities": [2],
        "image": ["contrast"],
        "text": ["char_swap"],
        "missing": ["image"],
    }

    def evaluate(split: Any, **_: Any) -> tuple[dict[str, float], dict[str, Any], dict[str, np.ndarray]]:
        return {"n": float(len(split))}, {}, {"captions": np.array([len(c) for c in split.captions])}

    items: dict[Any, Any] = {}
    results = evaluate_robustness(test, get_task("retrieval"), settings, evaluate, {}, items=items)
    assert [(c, s, status) for c, s, _, status in results][:3] == [
        ("none", 0, "ok"),
        ("contrast", 2, "ok"),
        ("char_swap", 2, "ok"),
    ]
    assert results[3][3].startswith("not applicable")  # retrieval: missing modality
    assert set(items) == {("none", 0), ("contrast", 2), ("char_swap", 2)}
    assert (items[("none", 0)]["captions"] == np.array([len(c) for c in test.captions[:4]])).all()


def test_two_level_mean_skips_undefined_seeds_as_the_table_does() -> None:
    per_seed = np.array([[1.0, np.nan, np.nan], [3.0, 2.0, np.nan]])
    draws = np.array([[0, 1], [0, 1], [0, 0]])
    assert two_level(per_seed, draws, skip_undefined=True)[:2] == pytest.approx([2.0, 2.0])
    assert math.isnan(two_level(per_seed, draws, skip_undefined=True)[2])
    assert math.isnan(two_level(per_seed, draws)[1])  # the default: a replicate with an undefined seed is NaN


def test_batched_metrics_equal_row_by_row() -> None:
    """``metrics_batch`` scores every replicate at once; each row equals one ``metrics`` call, and the fast count of
    recall thresholds equals searchsorted's on values at, just above and just below each threshold."""
    rng = np.random.default_rng(0)
    retrieval = RetrievalItems(rng.integers(0, 12, 30), np.repeat(np.arange(10), 3), rng.integers(0, 30, 10), (1, 5))
    pairs, detections = 12, 60
    grounding = GroundingItems(
        top_iou=rng.random(pairs),
        acc_hit=rng.random(pairs) < 0.5,
        n_targets=rng.integers(0, 3, pairs),
        detected=rng.random(pairs) < 0.5,
        dt_scores=rng.random(detections).round(1),  # ties: the stable order matters
        dt_matches=rng.random((10, detections)) < 0.3,
        dt_ignore=rng.random((10, detections)) < 0.1,
        dt_pair=rng.integers(0, pairs, detections),
        gt_ignore=rng.random(15) < 0.1,
        gt_pair=rng.integers(0, pairs, 15),
        pair_image=rng.integers(0, 5, pairs),
    )
    for items in (retrieval, grounding):
        weights = resample_weights(items.units, 25, 1)
        batch = batch_metrics(items, weights)
        for b, w in enumerate(weights):
            row = items.metrics(w)
            assert row.keys() == batch.keys()
            assert all(np.isclose(row[k], batch[k][b], atol=1e-12, equal_nan=True) for k in row), (items, b)
    values = np.concatenate(
        [REC_THRESHOLDS, np.nextafter(REC_THRESHOLDS, 2), np.nextafter(REC_THRESHOLDS, -1), rng.random(1000)]
    )
    values = np.clip(values, 0, 1)
    assert (_thresholds_up_to(values) == np.searchsorted(REC_THRESHOLDS, values, side="right")).all()
