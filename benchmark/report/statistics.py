"""Statistics behind every table: mean ± sample std over seeds, bootstrap CIs, significance.

For each (dataset, task, metric) and learned method: the mean and sample standard deviation
over seeds with their count ``n``, beside ``n_configured``, the seeds that should have given a
value (every seed but the not-applicable and undefined ones: ``n < n_configured`` means some
failed or did not run); a 95 % percentile bootstrap interval of the seed-mean over test
items (1,000 resamples, fixed seed); and whether the method is the best of the column or
not significantly worse than it (paired bootstrap on the same resampled items, two-sided
95 %: the interval of best − method contains 0). Pairwise comparisons add the fraction of
seeds in which A beats B (seeds paired by index).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.metrics.bootstrap import (
    RESAMPLES,
    ItemScores,
    paired_difference,
    percentile_interval,
    seed_mean_distribution,
)
from benchmark.results import NOT_APPLICABLE, UNDEFINED, read_items
from benchmark.seeding import derive_seed
from benchmark.tasks import get_task


def load_items(path: Path, task: str) -> ItemScores | None:
    """Per-item records of one evaluation as the task's bootstrap unit (None for a not-applicable one)."""
    arrays = read_items(path)
    return get_task(task).items(arrays) if arrays else None


def method_statistics(
    frame: pd.DataFrame,
    items: dict[tuple[str, str, str], list[Any]],
    references: tuple[str, ...],
    resamples: int = RESAMPLES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-method statistics, pairwise comparisons) for the clean test set."""
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
        distributions = (
            seed_mean_distribution(
                {m: items[(dataset, task, m)] for m in learned}, resamples, derive_seed("bootstrap", dataset, task)
            )
            if learned
            else {}
        )
        for (method, metric), rows in block.groupby(["method", "metric"], sort=True):
            values = rows["value"].dropna().to_numpy(dtype=float)
            expected = rows[~rows["status"].map(lambda s: s == UNDEFINED or s.startswith(NOT_APPLICABLE))]
            record = {
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
                "status": next((s for s in rows["status"] if s != "ok"), "ok"),
                "reference": method in references,
            }
            if method in distributions and metric in distributions[method]:
                record["ci_low"], record["ci_high"] = percentile_interval(distributions[method][metric])
            stats.append(record)
        table = pd.DataFrame([s for s in stats if s["dataset"] == dataset and s["task"] == task])
        for metric, column in table.groupby("metric"):
            candidates = column[~column["reference"] & column["mean"].notna() & column["method"].isin(learned)]
            if candidates.empty:
                continue
            best = candidates.loc[candidates["mean"].idxmax(), "method"]
            for record in stats:
                if (record["dataset"], record["task"], record["metric"]) != (dataset, task, metric):
                    continue
                record["best"] = record["method"] == best
                if record["method"] in learned and metric in distributions.get(best, {}):
                    diff = paired_difference(distributions[best][metric], distributions[record["method"]][metric])
                    record["not_worse_than_best"] = bool(record["best"] or diff["low"] <= 0)
        for a, b in itertools.permutations(learned, 2):
            for metric in get_task(task).headline_metrics:
                if metric not in distributions.get(a, {}):
                    continue
                diff = paired_difference(distributions[a][metric], distributions[b][metric])
                seeds_a = (
                    block[(block["method"] == a) & (block["metric"] == metric)].set_index("seed")["value"].dropna()
                )
                seeds_b = (
                    block[(block["method"] == b) & (block["metric"] == metric)].set_index("seed")["value"].dropna()
                )
                common = seeds_a.index.intersection(seeds_b.index)
                wins = float((seeds_a[common] > seeds_b[common]).mean()) if len(common) else float("nan")
                comparisons.append(
                    {
                        "dataset": dataset,
                        "task": task,
                        "metric": metric,
                        "a": a,
                        "b": b,
                        **diff,
                        "seeds_a_beats_b": wins,
                        "seeds": len(common),
                    }
                )
    statistics = pd.DataFrame(stats)
    for column in ("best", "not_worse_than_best"):
        if column not in statistics:
            statistics[column] = False
        statistics[column] = statistics[column].fillna(False).astype(bool)
    return statistics, pd.DataFrame(comparisons)
