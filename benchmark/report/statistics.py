"""Statistics behind every table: mean ± sample std over seeds, two-level bootstrap CIs, significance.

For each (dataset, task, metric) and learned method:

* the mean and sample standard deviation over seeds with their count ``n``, beside
  ``n_configured``, the seeds that should have given a value (every seed but the not-applicable
  and undefined ones: ``n < n_configured`` means some failed or did not run);
* ``ci_low`` / ``ci_high``: the 95 % percentile interval of the seed-mean from the two-level
  bootstrap of :mod:`benchmark.metrics.bootstrap` — seeds resampled, then test units (the same
  units for every drawn seed and method); 1,000 replicates, seeded from (dataset, task) — so it
  includes seed-to-seed variance; ``ci_items_low`` / ``ci_items_high``: the same with the seeds
  fixed (test-item variance only), to show how much of the width each source explains;
* ``best``: the learned method with the highest mean in the column; ``boot_prob_vs_best``: the
  two-sided bootstrap probability 2 · min(P*(Δ ≤ 0), P*(Δ ≥ 0)) of Δ = best − method on the
  same two-level replicates; ``holm_boot_prob_vs_best``: that probability Holm–Bonferroni-adjusted
  over the column's best-vs-rest comparisons; ``not_worse_than_best``: the best, or a method whose
  adjusted probability exceeds α = 0.05 (italics in main.md, underlined in main.tex).

Pairwise comparisons (``comparisons.csv``, headline metrics) give Δ = A − B with its two-level
paired-bootstrap interval, the bootstrap probabilities ``boot_prob_not_better`` = P*(Δ ≤ 0) and
``boot_prob_two_sided``, ``holm_boot_prob`` on the rows whose A is the column's best (the value
the marks use), and the fraction of seeds in which A beats B (seeds paired by number).
The bootstrap probabilities are proportions of replicates, not p-values of a test.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.metrics.bootstrap import (
    ALPHA,
    RESAMPLES,
    ItemScores,
    holm,
    paired_difference,
    per_seed_distribution,
    percentile_interval,
    resample_seeds,
    two_level,
)
from benchmark.results import NOT_APPLICABLE, UNDEFINED, read_items
from benchmark.seeding import derive_seed
from benchmark.tasks import get_task


def load_items(path: Path, task: str) -> ItemScores | None:
    """Per-item records of one evaluation as the task's bootstrap unit (None for a not-applicable one)."""
    arrays = read_items(path)
    return get_task(task).items(arrays) if arrays else None


Distributions = dict[str, dict[str, np.ndarray]]
"""method → metric → B bootstrap replicates of the seed-mean."""


def bootstrap_distributions(
    items_by_method: dict[str, list[ItemScores]], resamples: int, seed: int
) -> tuple[Distributions, Distributions]:
    """(two-level: seeds and items resampled, items only: seeds fixed), on the same item resamples.

    Each method's list of items is ordered by seed number, so methods with as many seeds are
    resampled in pairs (:func:`benchmark.metrics.bootstrap.resample_seeds`)."""
    if not items_by_method:
        return {}, {}
    per_seed = per_seed_distribution(items_by_method, resamples, seed)
    both, items_only = {}, {}
    for method, metrics in per_seed.items():
        draws = resample_seeds(len(items_by_method[method]), resamples, seed)
        both[method] = {name: two_level(values, draws) for name, values in metrics.items()}
        items_only[method] = {name: values.mean(axis=0) for name, values in metrics.items()}
    return both, items_only


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
        "ci_low": float("nan"),
        "ci_high": float("nan"),
        "ci_items_low": float("nan"),
        "ci_items_high": float("nan"),
        "status": next((s for s in rows["status"] if s != "ok"), "ok"),
        "reference": method in references,
        "boot_prob_vs_best": float("nan"),
        "holm_boot_prob_vs_best": float("nan"),
    }


def _mark_best(records: list[dict[str, Any]], learned: list[str], distributions: Distributions) -> dict[str, str]:
    """Set best / not-worse / bootstrap probabilities on one (dataset, task)'s records; metric → best."""
    bests: dict[str, str] = {}
    for metric in sorted({r["metric"] for r in records}):
        column = [r for r in records if r["metric"] == metric]
        candidates = [r for r in column if r["method"] in learned and not r["reference"] and not np.isnan(r["mean"])]
        if not candidates:
            continue
        best = max(candidates, key=lambda r: r["mean"])["method"]  # first of tied means, by method name
        bests[metric] = best
        bootstrapped = metric in distributions.get(best, {})
        family = {
            r["method"]: paired_difference(distributions[best][metric], distributions[r["method"]][metric])[
                "boot_prob_two_sided"
            ]
            for r in column
            if bootstrapped
            and r["method"] in learned
            and r["method"] != best
            and metric in distributions.get(r["method"], {})
        }
        adjusted = holm(family)
        for record in column:
            record["best"] = record["method"] == best
            if record["method"] in adjusted:
                record["boot_prob_vs_best"] = family[record["method"]]
                record["holm_boot_prob_vs_best"] = adjusted[record["method"]]
                record["not_worse_than_best"] = bool(adjusted[record["method"]] > ALPHA)
            elif record["best"] and bootstrapped:
                record["not_worse_than_best"] = True
    return bests


def method_statistics(
    frame: pd.DataFrame,
    items: dict[tuple[str, str, str], list[Any]],
    references: tuple[str, ...],
    resamples: int = RESAMPLES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-method statistics, pairwise comparisons) for the clean test set.

    ``items`` maps (dataset, task, method) to the per-item records of its seeds, ordered by seed."""
    clean = frame[frame["corruption"] == "none"]
    stats, comparisons = [], []
    for (dataset, task), block in clean.groupby(["dataset", "task"], sort=True):
        learned = sorted(
            m
            for m in set(block["method"])
            if m not in references
            and (dataset, task, m) in items
            and all(i is not None for i in items[(dataset, task, m)])
        )
        distributions, items_only = bootstrap_distributions(
            {m: items[(dataset, task, m)] for m in learned}, resamples, derive_seed("bootstrap", dataset, task)
        )
        records = []
        for (method, metric), rows in block.groupby(["method", "metric"], sort=True):
            record = _record(dataset, task, method, metric, rows, references)
            if metric in distributions.get(method, {}):
                record["ci_low"], record["ci_high"] = percentile_interval(distributions[method][metric])
                record["ci_items_low"], record["ci_items_high"] = percentile_interval(items_only[method][metric])
            records.append(record)
        bests = _mark_best(records, learned, distributions)
        stats.extend(records)
        for a, b in itertools.permutations(learned, 2):
            for metric in get_task(task).headline_metrics:
                if metric not in distributions.get(a, {}):
                    continue
                diff = paired_difference(distributions[a][metric], distributions[b][metric])
                holm_prob = next(
                    (r["holm_boot_prob_vs_best"] for r in records if r["method"] == b and r["metric"] == metric),
                    float("nan"),
                )
                comparisons.append(
                    {
                        "dataset": dataset,
                        "task": task,
                        "metric": metric,
                        "a": a,
                        "b": b,
                        **diff,
                        "holm_boot_prob": holm_prob if bests.get(metric) == a else float("nan"),
                        **_seed_wins(block, a, b, metric),
                    }
                )
    statistics = pd.DataFrame(stats)
    for column in ("best", "not_worse_than_best"):
        if column not in statistics:
            statistics[column] = False
        statistics[column] = statistics[column].fillna(False).astype(bool)
    return statistics, pd.DataFrame(comparisons)


def _seed_wins(block: pd.DataFrame, a: str, b: str, metric: str) -> dict[str, Any]:
    """The fraction of seeds (paired by number) in which ``a`` scores above ``b``, and how many seeds."""
    seeds_a = block[(block["method"] == a) & (block["metric"] == metric)].set_index("seed")["value"].dropna()
    seeds_b = block[(block["method"] == b) & (block["metric"] == metric)].set_index("seed")["value"].dropna()
    common = seeds_a.index.intersection(seeds_b.index)
    wins = float((seeds_a[common] > seeds_b[common]).mean()) if len(common) else float("nan")
    return {"seeds_a_beats_b": wins, "seeds": len(common)}
