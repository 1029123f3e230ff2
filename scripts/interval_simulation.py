"""Coverage of the seed-mean intervals and false-positive rate of the table marks, simulated with the benchmark's
own procedure (docs/statistics.md quotes the numbers this prints; tests/test_interval_coverage.py and
tests/test_mark_error_rate.py run it smaller).

A toy benchmark is a crossed seed × item table y_si = a_s + b_i + e_si (true mean 0): seed effects a
(one model per training seed), item effects b shared by every seed (the same test items), noise e. The
interval of the seed-mean is computed as ``main_stats.csv``'s: :func:`benchmark.metrics.bootstrap.per_seed_distribution`
(every seed on the same item resamples), then :func:`~benchmark.metrics.bootstrap.seed_t_replicates` and
:func:`~benchmark.metrics.bootstrap.percentile_interval`. The pigeonhole bootstrap the tables used before
(seeds resampled too, :func:`~benchmark.metrics.bootstrap.two_level`) is simulated beside it.

For the marks, K truly equal methods share the item effects b and each has its own seed effects, its own
method × item effects c and noise; a false positive is a method that loses its "not significantly worse
than the best" mark (:func:`~benchmark.metrics.bootstrap.marks_against_the_best` on the paired
:func:`~benchmark.metrics.bootstrap.difference_replicates`, as ``_mark_best`` of
:mod:`benchmark.report.statistics` calls them).

Regimes (standard deviations of a, b, c, e on 100 items): seed-dominated, seed spread well above the item
part of the mean's error; item-dominated, the reverse.

    python scripts/interval_simulation.py --replicates 2000 --resamples 1000
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from benchmark.metrics.bootstrap import (
    LEVEL,
    difference_replicates,
    difference_summary,
    marks_against_the_best,
    per_seed_distribution,
    percentile_interval,
    resample_seeds,
    seed_t_replicates,
    two_level,
)

ITEMS = 100
REGIMES = {
    # (seed sd, item sd, method × item sd, noise sd)
    "seed-dominated": (0.3, 0.3, 0.05, 0.5),
    "item-dominated": (0.02, 1.0, 0.5, 0.5),
}
SEED_COUNTS = (3, 5, 10)


@dataclass
class MeanItems:
    """One seed's per-item scores; the metric is their weighted mean (``ItemScores`` with ``metrics_batch``)."""

    values: np.ndarray

    @property
    def units(self) -> int:
        return len(self.values)

    def metrics(self, weights: np.ndarray) -> dict[str, float]:
        return {"score": float(weights @ self.values / weights.sum())}

    def metrics_batch(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        return {"score": weights @ self.values / weights.sum(axis=1)}


def toy_methods(rng: np.random.Generator, methods: int, seeds: int, regime: str) -> list[list[MeanItems]]:
    """``methods`` truly equal methods of ``seeds`` seeds each on the same ``ITEMS`` items (true mean 0)."""
    sd_seed, sd_item, sd_method_item, sd_noise = REGIMES[regime]
    shared = rng.normal(0, sd_item, (1, ITEMS))
    out = []
    for _ in range(methods):
        y = (
            rng.normal(0, sd_seed, (seeds, 1))
            + shared
            + rng.normal(0, sd_method_item, (1, ITEMS))
            + rng.normal(0, sd_noise, (seeds, ITEMS))
        )
        out.append([MeanItems(row) for row in y])
    return out


def coverage(seeds: int, regime: str, replicates: int, resamples: int, seed: int = 0) -> dict[str, float]:
    """Share of ``replicates`` toy benchmarks whose 95 % interval holds the true mean: ``seed_t`` (the tables'),
    ``pigeonhole`` (seeds resampled, the tables' before) and ``items_only`` (seeds fixed)."""
    rng = np.random.default_rng([seed, seeds, len(regime)])
    hits = {"seed_t": 0, "pigeonhole": 0, "items_only": 0}
    for trial in range(replicates):
        (runs,) = toy_methods(rng, 1, seeds, regime)
        per_seed = per_seed_distribution({"m": runs}, resamples, trial)["m"]["score"]
        for name, values in (
            ("seed_t", seed_t_replicates(per_seed, trial)),
            ("pigeonhole", two_level(per_seed, resample_seeds(seeds, resamples, trial))),
            ("items_only", per_seed.mean(axis=0)),
        ):
            low, high = percentile_interval(values, LEVEL)
            hits[name] += low <= 0 <= high
    return {name: count / replicates for name, count in hits.items()}


def mark_false_positive_rate(
    seeds: int, regime: str, replicates: int, resamples: int, methods: int = 2, seed: int = 0
) -> float:
    """Share of ``replicates`` toy tables of ``methods`` truly equal methods in which some method loses its
    "not significantly worse than the best" mark."""
    rng = np.random.default_rng([seed, seeds, methods, len(regime)])
    names = [f"m{k}" for k in range(methods)]
    false_positives = 0
    for trial in range(replicates):
        runs = dict(zip(names, toy_methods(rng, methods, seeds, regime)))
        per_seed = {m: v["score"] for m, v in per_seed_distribution(runs, resamples, trial).items()}
        means = {m: float(np.mean([r.values.mean() for r in runs[m]])) for m in names}
        two_sided = {
            (a, b): difference_summary(difference_replicates(per_seed[a], per_seed[b], trial))["boot_prob_two_sided"]
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        }
        _, marks, _ = marks_against_the_best(means, two_sided)
        false_positives += not all(marks.values())
    return false_positives / replicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=2000, help="toy benchmarks per setting")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap replicates (the tables': 1000)")
    parser.add_argument("--methods", type=int, nargs="+", default=[2, 4], help="equal methods in a mark simulation")
    args = parser.parse_args()
    print("| regime | S | seed-t (tables) | pigeonhole (before) | items only |", "|---|---|---|---|---|", sep="\n")
    for regime in REGIMES:
        for s in SEED_COUNTS:
            c = coverage(s, regime, args.replicates, args.resamples)
            print(f"| {regime} | {s} | {c['seed_t']:.1%} | {c['pigeonhole']:.1%} | {c['items_only']:.1%} |")
    print()
    print("| regime | S | " + " | ".join(f"FPR, {k} equal methods" for k in args.methods) + " |")
    print("|---|---|" + "---|" * len(args.methods))
    for regime in REGIMES:
        for s in SEED_COUNTS:
            rates = [mark_false_positive_rate(s, regime, args.replicates, args.resamples, k) for k in args.methods]
            print(f"| {regime} | {s} | " + " | ".join(f"{r:.1%}" for r in rates) + " |")


if __name__ == "__main__":
    main()
