"""Statistics behind every table: mean ± sample std over seeds, intervals honest at S seeds, marks, comparisons.

For each (dataset, task, metric) and learned method:

* the mean and sample standard deviation over seeds with their count ``n``, beside
  ``n_configured``, the seeds that should have given a value (every seed but the not-applicable
  and undefined ones: ``n < n_configured`` means some failed or did not run), and ``seed_values``,
  each seed's value in seed order;
* ``ci_low`` / ``ci_high``: the 95 % percentile interval of the seed-mean from
  :func:`benchmark.metrics.bootstrap.seed_t_replicates` — test units resampled (the same units for
  every seed and method; 1,000 replicates, seeded from (dataset, task)) plus the seeds' spread on a
  t with S − 1 degrees of freedom; ``ci_items_low`` / ``ci_items_high``: the same with the seeds
  fixed (test-item variance only), to show how much of the width each source explains;
* ``eligible``: a learned method that reads both modalities and predicts (not a unimodal reference,
  :func:`unimodal_methods`; not a row whose task's ``prediction_metric`` is 0); ``best``: the
  eligible method with the highest mean in the column; ``not_worse_than_best``: no eligible method
  with a higher mean is significantly above it, Holm over every pair of the column
  (:func:`benchmark.metrics.bootstrap.marks_against_the_best`; italics in main.md, underlined in
  main.tex); ``boot_prob_vs_best`` / ``holm_boot_prob_vs_best``: the (best, method) pair's two-sided
  bootstrap probability and its adjusted value.

Pairwise comparisons (``comparisons.csv``, headline metrics) give the observed difference
``delta_observed`` = mean A − mean B beside the bootstrap mean ``delta_boot_mean``, the paired
interval, the bootstrap probabilities ``boot_prob_not_better`` = P*(Δ ≤ 0) and
``boot_prob_two_sided``, ``holm_boot_prob`` (the pair's value in the all-pairs family of the marks),
``prob_improvement`` (rliable's P(A > B) over seed pairs) and the fraction of seeds in which A beats
B (seeds paired by number). Bootstrap probabilities are proportions of replicates, not p-values.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.metrics.bootstrap import (
    ALPHA,
    RESAMPLES,
    ItemScores,
    difference_replicates,
    difference_summary,
    marks_against_the_best,
    per_seed_distribution,
    percentile_interval,
    probability_of_improvement,
    seed_t_replicates,
)
from benchmark.registry import load_method, method_names
from benchmark.results import NOT_APPLICABLE, UNDEFINED, read_items
from benchmark.seeding import derive_seed
from benchmark.tasks import get_task


def load_items(path: Path, task: str) -> ItemScores | None:
    """Per-item records of one evaluation as the task's bootstrap unit (None for a not-applicable one)."""
    arrays = read_items(path)
    return get_task(task).items(arrays) if arrays else None


Distributions = dict[str, dict[str, np.ndarray]]
"""method → metric → B bootstrap replicates of the seed-mean."""


PerSeed = dict[str, dict[str, np.ndarray]]
"""method → metric → S × B: each seed's metric on the same B item resamples."""


def bootstrap_distributions(
    items_by_method: dict[str, list[ItemScores]], resamples: int, seed: int
) -> tuple[PerSeed, Distributions, Distributions]:
    """(per seed, seed-mean with seed variance, seed-mean with the seeds fixed), on the same item resamples.

    The second is :func:`benchmark.metrics.bootstrap.seed_t_replicates`: the item bootstrap of the
    seed-mean plus the seeds' spread on a t with S − 1 degrees of freedom. Each method's list of items
    is ordered by seed number, so methods with as many seeds are paired seed k with seed k."""
    if not items_by_method:
        return {}, {}, {}
    per_seed = per_seed_distribution(items_by_method, resamples, seed)
    both, items_only = {}, {}
    for method, metrics in per_seed.items():
        both[method] = {name: seed_t_replicates(values, seed) for name, values in metrics.items()}
        items_only[method] = {name: values.mean(axis=0) for name, values in metrics.items()}
    return per_seed, both, items_only


def unimodal_methods(methods: Iterable[str]) -> frozenset[str]:
    """The methods whose class reads one modality (``FusionMethod.modalities``): references for the fusion
    methods, never a column's best. A name without a method file (a reference row) is not one."""

    files = set(method_names())
    return frozenset(method for method in methods if method in files and len(load_method(method).modalities) == 1)


def _seed_values(rows: pd.DataFrame) -> str:
    """Each seed's value, in seed order, space-separated (``repr`` of the float: the CSV keeps every bit)."""
    rows = rows.dropna(subset=["value"])
    if "seed" in rows and rows["seed"].notna().all():
        rows = rows.sort_values("seed")
    return " ".join(repr(float(v)) for v in rows["value"])


def _record(
    dataset: str, task: str, method: str, metric: str, rows: pd.DataFrame, references: tuple[str, ...]
) -> dict[str, Any]:
    values = rows["value"].dropna().to_numpy(dtype=float)
    expected = rows[~rows["status"].map(lambda s: s == UNDEFINED or s.startswith(NOT_APPLICABLE))]
    return {
        "dataset": dataset,
        "task": task,
        "method": method,
        "metric": metric,
        "mean": float(values.mean()) if len(values) else float("nan"),
        "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
        "n": len(values),
        "n_configured": int(expected["seed"].nunique()),  # references have no seed: 0
        "seed_values": _seed_values(rows),
        "ci_low": float("nan"),
        "ci_high": float("nan"),
        "ci_items_low": float("nan"),
        "ci_items_high": float("nan"),
        "status": next((s for s in rows["status"] if s != "ok"), "ok"),
        "reference": method in references,
        "eligible": False,
        "boot_prob_vs_best": float("nan"),
        "holm_boot_prob_vs_best": float("nan"),
    }


def _eligible(records: list[dict[str, Any]], learned: list[str], task: str, unimodal: frozenset[str]) -> set[str]:
    """The learned multimodal methods that predict: a row whose ``prediction_metric`` is 0 never predicts
    (grounding: T-acc 0, no box above the threshold) and cannot be best on any metric of the task."""
    metric = get_task(task).prediction_metric
    never = {r["method"] for r in records if metric and r["metric"] == metric and r["mean"] == 0}
    return {m for m in learned if m not in unimodal and m not in never}


def _pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _mark_best(
    records: list[dict[str, Any]], eligible: set[str], per_seed: PerSeed, seed: int
) -> tuple[dict[str, str], dict[tuple[str, str, str], float]]:
    """Set best / not-worse / bootstrap probabilities on one (dataset, task)'s records.

    Returns (metric → best, (metric, a, b) → Holm-adjusted two-sided probability of the sorted pair)."""
    bests: dict[str, str] = {}
    adjusted_all: dict[tuple[str, str, str], float] = {}
    for metric in sorted({r["metric"] for r in records}):
        column = [r for r in records if r["metric"] == metric]
        candidates = {
            r["method"]: r["mean"]
            for r in column
            if r["method"] in eligible and not r["reference"] and not np.isnan(r["mean"])
        }
        for record in column:
            record["eligible"] = record["method"] in candidates
        if not candidates:
            continue
        bootstrapped = sorted(m for m in candidates if metric in per_seed.get(m, {}))
        two_sided = {
            (a, b): difference_summary(difference_replicates(per_seed[a][metric], per_seed[b][metric], seed))[
                "boot_prob_two_sided"
            ]
            for a, b in itertools.combinations(bootstrapped, 2)
        }
        best, marks, adjusted = marks_against_the_best(candidates, two_sided, ALPHA)
        bests[metric] = best  # type: ignore[assignment]
        adjusted_all.update({(metric, a, b): p for (a, b), p in adjusted.items()})
        for record in column:
            method = record["method"]
            record["best"] = method == best
            if method in bootstrapped and best in bootstrapped:
                record["not_worse_than_best"] = marks[method]
                if method != best:
                    record["boot_prob_vs_best"] = two_sided[_pair_key(method, best)]
                    record["holm_boot_prob_vs_best"] = adjusted[_pair_key(method, best)]
    return bests, adjusted_all


def method_statistics(
    frame: pd.DataFrame,
    items: dict[tuple[str, str, str], list[Any]],
    references: tuple[str, ...],
    resamples: int = RESAMPLES,
    unimodal: frozenset[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-method statistics, pairwise comparisons) for the clean test set.

    ``items`` maps (dataset, task, method) to the per-item records of its seeds, ordered by seed;
    ``unimodal`` (default: :func:`unimodal_methods` of the frame's methods) are never a column's best."""
    clean = frame[frame["corruption"] == "none"]
    unimodal = unimodal_methods(set(clean["method"])) if unimodal is None else unimodal
    stats, comparisons = [], []
    for (dataset, task), block in clean.groupby(["dataset", "task"], sort=True):
        learned = sorted(
            m
            for m in set(block["method"])
            if m not in references
            and (dataset, task, m) in items
            and all(i is not None for i in items[(dataset, task, m)])
        )
        seed = derive_seed("bootstrap", dataset, task)
        per_seed, distributions, items_only = bootstrap_distributions(
            {m: items[(dataset, task, m)] for m in learned}, resamples, seed
        )
        records = []
        for (method, metric), rows in block.groupby(["method", "metric"], sort=True):
            record = _record(dataset, task, method, metric, rows, references)
            if metric in distributions.get(method, {}):
                record["ci_low"], record["ci_high"] = percentile_interval(distributions[method][metric])
                record["ci_items_low"], record["ci_items_high"] = percentile_interval(items_only[method][metric])
            records.append(record)
        eligible = _eligible(records, learned, task, unimodal)
        _, adjusted = _mark_best(records, eligible, per_seed, seed)
        stats.extend(records)
        means = {(r["method"], r["metric"]): r["mean"] for r in records}
        for a, b in itertools.permutations(learned, 2):
            for metric in get_task(task).headline_metrics:
                if metric not in per_seed.get(a, {}) or metric not in per_seed.get(b, {}):
                    continue
                diff = difference_summary(difference_replicates(per_seed[a][metric], per_seed[b][metric], seed))
                comparisons.append(
                    {
                        "dataset": dataset,
                        "task": task,
                        "metric": metric,
                        "a": a,
                        "b": b,
                        "delta_observed": means.get((a, metric), np.nan) - means.get((b, metric), np.nan),
                        "delta_boot_mean": diff["delta"],
                        **{k: v for k, v in diff.items() if k != "delta"},
                        "holm_boot_prob": adjusted.get((metric, *_pair_key(a, b)), float("nan")),
                        "prob_improvement": probability_of_improvement(
                            _values(block, a, metric), _values(block, b, metric)
                        ),
                        **_seed_wins(block, a, b, metric),
                    }
                )
    statistics = pd.DataFrame(stats)
    for column in ("best", "not_worse_than_best", "eligible"):
        if column not in statistics:
            statistics[column] = False
        statistics[column] = statistics[column].fillna(False).astype(bool)
    return statistics, pd.DataFrame(comparisons)


def _values(block: pd.DataFrame, method: str, metric: str) -> np.ndarray:
    """A method's per-seed values of one metric (the table's inputs)."""
    rows = block[(block["method"] == method) & (block["metric"] == metric)]
    return rows["value"].dropna().to_numpy(dtype=float)


def _seed_wins(block: pd.DataFrame, a: str, b: str, metric: str) -> dict[str, Any]:
    """The fraction of seeds (paired by number) in which ``a`` scores above ``b``, and how many seeds."""
    seeds_a = block[(block["method"] == a) & (block["metric"] == metric)].set_index("seed")["value"].dropna()
    seeds_b = block[(block["method"] == b) & (block["metric"] == metric)].set_index("seed")["value"].dropna()
    common = seeds_a.index.intersection(seeds_b.index)
    wins = float((seeds_a[common] > seeds_b[common]).mean()) if len(common) else float("nan")
    return {"seeds_a_beats_b": wins, "seeds": len(common)}
