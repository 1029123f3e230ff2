"""Bootstrap over test items with a small-sample seed part: confidence intervals and paired comparisons.

A number in a table is the mean over S training seeds of a metric on I test units. Both are
samples: a new seed gives a different model, a new test set different items. The interval of
the seed-mean must include both sources. The test units are resampled with replacement
(multiplicities w_b), the *same* draw for every seed and every method — the test items are the
same items in every run — and each seed is scored on each resample: m_s(w_b)
(:func:`per_seed_distribution`, S × B per method and metric). Replicate b of the seed-mean is

  T_b = ȳ(w_b) + s_b/√S · t_{S−1}(u_b)      (:func:`seed_t_replicates`)

with ȳ(w_b) the mean of the S seeds on resample b, s_b their sample standard deviation and
t_{S−1}(u_b) Student's t quantile on S − 1 degrees of freedom at a stratified level u_b. The seed
part is the small-sample t interval of a mean of S values (exact for normal seed effects), the item
part the item bootstrap; the percentile interval of T is their convolution. For y_si = μ + a_s +
b_i + e_si, s_b² estimates σ_a² + σ_e²/I and the item part σ_b²/I + σ_e²/(SI): the interaction is
counted about twice (slightly conservative). Bootstrapping the seeds instead (Owen's pigeonhole
bootstrap, :func:`two_level`, what the tables used before) undercounts the seed term by (S − 1)/S
and, with 3 seeds, has 10 distinct seed multisets: it covered 80 % where 95 % was claimed
(docs/statistics.md gives the simulation, ``scripts/interval_simulation.py``). Accounting for seed
variance beside test-set variance is what Bouthillier et al. recommend ("Accounting for variance in
machine learning benchmarks", MLSys 2021). With one seed the interval covers test-item variance only.

Differences (:func:`difference_replicates`) are built the same way from the per-seed differences of
two methods on the same item resamples, seeds paired by number; with unequal seed counts, Welch's
variance on the Welch–Satterthwaite degrees of freedom. The seed-free distribution (seeds fixed, items
resampled, the mean over all S seeds) is kept beside it to show how much of the width the items explain.

The unit resampled is the task's ``bootstrap_unit``: an image with its captions for retrieval
(galleries stay fixed, so a query's rank is unchanged and recall@K becomes a weighted mean of
per-query hits), an image with all its referring expressions for grounding (an image's
expressions share its objects and are correlated; COCO AP is re-accumulated from COCOeval's
own per-pair match records, exactly as ``COCOeval.accumulate`` does, and the identity resample
reproduces pycocotools' AP).

All B replicates are scored at once (``metrics_batch``, B × units multiplicities): recall@K is a
weighted mean, so a matrix product; COCO AP needs, per IoU threshold, the weighted true- and
false-positive counts only at the true-positive detections (the interpolated precision at a
recall threshold is taken at the first detection reaching it, always a true positive, and the
precision envelope's maxima lie there too), and those counts are products of the multiplicities
with per-unit counts fixed by the records — the same table of precisions as re-accumulating
every detection, at a cost that does not grow with the false positives. The robustness
summaries (:mod:`benchmark.report.robustness`) bootstrap every (corruption, severity) cell so.

Marks (:func:`marks_against_the_best`): every pair of eligible methods is tested with its two-sided
bootstrap probability 2 · min(P*(Δ ≤ 0), P*(Δ ≥ 0)), Holm–Bonferroni-adjusted over all pairs of one
table column; a method is significantly worse than the best when a method with a higher mean is
significantly above it. The probability of improvement (:func:`probability_of_improvement`) is
rliable's. Bootstrap probabilities are not p-values of a test.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from benchmark.metrics.retrieval import DIRECTIONS, chance_hits, hits_at_k

RESAMPLES = 1000
LEVEL = 0.95
ALPHA = 1 - LEVEL
"""Family-wise level of the Holm-corrected "not significantly worse than the best" marks (every pair)."""
REC_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)  # COCOeval's 101 points


class ItemScores(Protocol):
    units: int

    def metrics(self, weights: np.ndarray) -> dict[str, float]:
        """Metric values when test unit u counts ``weights[u]`` times (1 everywhere = the test set)."""


def batch_metrics(items: ItemScores, weights: np.ndarray) -> dict[str, np.ndarray]:
    """metric → B values, ``items.metrics`` of each row of ``weights`` (B × units): in one pass when the
    items have ``metrics_batch`` (the built-in ones), else row by row (a plug-in task's own items)."""
    weights = np.atleast_2d(weights)
    batch = getattr(items, "metrics_batch", None)
    if batch is not None:
        return dict(batch(weights))
    rows = [items.metrics(w) for w in weights]
    return {name: np.array([row[name] for row in rows], dtype=float) for name in rows[0]}


def _first_row(batch: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(values[0]) for name, values in batch.items()}


@dataclass
class RetrievalItems:
    """Per-query best ranks; ranks are 0-based positions of the best positive (the gallery size when
    a query has none: never a hit, :func:`benchmark.metrics.retrieval.hits_at_k`).

    ``t2i_gallery`` / ``i2t_gallery``: each query's gallery size when it ranks its own candidate set
    (:mod:`benchmark.evaluation.candidates`); None: every query ranks the whole gallery (all images, all
    captions). ``prefix`` starts every metric name (``cand_`` for the candidate protocol).

    ``caption_subset`` / ``image_subset``: each query's compositional tag (``seen`` / ``held_out``,
    :mod:`benchmark.data.compositional`) on a tagged split, None elsewhere and in records written before
    they were kept; ``t2i_query`` / ``i2t_query``: which queries count (None: all), set by
    :meth:`restricted_to`."""

    t2i_rank: np.ndarray  # per caption
    text_owner: np.ndarray  # per caption: its image (the resampling unit)
    i2t_rank: np.ndarray  # per image
    ks: tuple[int, ...]
    t2i_gallery: np.ndarray | None = None  # per caption
    i2t_gallery: np.ndarray | None = None  # per image
    prefix: str = ""
    caption_subset: np.ndarray | None = None  # per caption
    image_subset: np.ndarray | None = None  # per image
    t2i_query: np.ndarray | None = None  # per caption: a query of these metrics
    i2t_query: np.ndarray | None = None  # per image

    def restricted_to(self, subset: str) -> RetrievalItems | None:
        """The metrics on the queries tagged ``subset`` alone (t2i: its captions, i2t: its images), every query
        still ranking the whole gallery, as :func:`benchmark.metrics.compositional.retrieval_subset_metrics`;
        the units and their weights are unchanged. None without tags."""
        if self.caption_subset is None or self.image_subset is None:
            return None
        return replace(
            self,
            t2i_query=np.asarray(self.caption_subset) == subset,
            i2t_query=np.asarray(self.image_subset) == subset,
        )

    @property
    def units(self) -> int:
        return len(self.i2t_rank)

    def _galleries(self) -> tuple[np.ndarray | int, np.ndarray | int]:
        images, texts = len(self.i2t_rank), len(self.t2i_rank)  # the whole t2i and i2t galleries
        t2i = images if self.t2i_gallery is None else np.asarray(self.t2i_gallery)
        i2t = texts if self.i2t_gallery is None else np.asarray(self.i2t_gallery)
        return t2i, i2t

    def metrics(self, weights: np.ndarray) -> dict[str, float]:
        return _first_row(self.metrics_batch(np.asarray(weights)[None]))

    def metrics_batch(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric for each row of ``weights`` (B × units): recall@K is the weighted share of hits."""
        t2i, i2t = self._galleries()
        hits = {f"t2i_R@{k}": hits_at_k(self.t2i_rank, k, t2i) for k in self.ks}
        hits |= {f"i2t_R@{k}": hits_at_k(self.i2t_rank, k, i2t) for k in self.ks}
        return self._weighted(weights, hits)

    def chance(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """The chance level of every metric (the exact expectation of a uniformly random ranking of each query's
        gallery), on the test set or when unit u counts ``weights[u]`` times."""
        weights = np.ones(self.units) if weights is None else np.asarray(weights)
        return _first_row(self.chance_batch(weights[None]))

    def chance_batch(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """:meth:`chance` of each row of ``weights`` (B × units): the weighted mean of each query's chance, as
        recall is the weighted mean of its hits, so (R − chance) / (1 − chance) can be resampled with R."""
        t2i, i2t = self._galleries()
        captions = np.bincount(self.text_owner, minlength=self.units)  # an image query's positives
        per_query = {f"t2i_R@{k}": chance_hits(np.ones(len(self.t2i_rank)), t2i, k) for k in self.ks}
        per_query |= {f"i2t_R@{k}": chance_hits(captions, i2t, k) for k in self.ks}
        return self._weighted(weights, per_query)

    def _weighted(self, weights: np.ndarray, per_query: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-query values → their weighted means per row of ``weights``, ``mean_R`` too, names prefixed."""
        weights = np.asarray(weights, dtype=float)
        text_weights = weights[:, self.text_owner]  # B × captions
        if self.t2i_query is not None:  # a subset's queries (restricted_to): the others weigh 0
            text_weights = text_weights * self.t2i_query
        image_weights = weights if self.i2t_query is None else weights * self.i2t_query
        out = {}
        for name, values in per_query.items():
            row_weights = text_weights if name.startswith("t2i") else image_weights
            with np.errstate(invalid="ignore"):  # a resample without a query of the subset: NaN (undefined)
                out[name] = row_weights @ np.asarray(values, dtype=float) / row_weights.sum(1)
        # mean_R (benchmark.metrics.retrieval.mean_recall) of each row
        out["mean_R"] = np.mean([out[f"{d}_R@{k}"] for d in DIRECTIONS for k in self.ks], axis=0)
        return {f"{self.prefix}{name}": values for name, values in out.items()}


@dataclass
class MergedItems:
    """Several protocols' records of the same test units (e.g. all-pairs and candidate-set retrieval) as one
    :class:`ItemScores`: the union of their metrics, every part resampled with the same weights."""

    parts: list[ItemScores]

    def __post_init__(self) -> None:
        units = {part.units for part in self.parts}
        if len(units) != 1:
            raise ValueError(f"merged item records have different test units ({sorted(units)})")

    @property
    def units(self) -> int:
        return self.parts[0].units

    def metrics(self, weights: np.ndarray) -> dict[str, float]:
        return _first_row(self.metrics_batch(np.asarray(weights)[None]))

    def metrics_batch(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        return {name: values for part in self.parts for name, values in batch_metrics(part, weights).items()}

    def chance_batch(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """The parts' chance levels (those that have them)."""
        return {
            name: values
            for part in self.parts
            if hasattr(part, "chance_batch")
            for name, values in part.chance_batch(weights).items()
        }

    def chance(self, weights: np.ndarray | None = None) -> dict[str, float]:
        weights = np.ones(self.units) if weights is None else np.asarray(weights)
        return _first_row(self.chance_batch(weights[None]))

    def restricted_to(self, subset: str) -> ItemScores | None:
        """The parts' restrictions to ``subset`` (those whose records carry the tags); None when none does."""
        restricted = (getattr(part, "restricted_to", lambda _: None)(subset) for part in self.parts)
        parts = [part for part in restricted if part is not None]
        return None if not parts else parts[0] if len(parts) == 1 else MergedItems(parts)


@dataclass
class UnitSubset:
    """Records of some of the test units (``items``) scored on resamples of all of them: unit k of ``items`` is
    unit ``unit_index[k]`` of the ``units`` the weights count, so a subset is resampled with the same draws as
    the whole test set (:meth:`GroundingItems.restricted_to`)."""

    items: ItemScores
    unit_index: np.ndarray
    units: int

    def metrics(self, weights: np.ndarray) -> dict[str, float]:
        return _first_row(self.metrics_batch(np.asarray(weights)[None]))

    def metrics_batch(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        return batch_metrics(self.items, np.atleast_2d(weights)[:, self.unit_index])


@dataclass
class GroundingItems:
    """Per-pair records from :func:`benchmark.metrics.detection.evaluate_pairs`, resampled by image.

    ``pair_image`` (per pair: its image, written by :func:`benchmark.evaluation.grounding.evaluate_grounding`)
    makes the unit an image with all its expressions; records without it (written before it
    existed, or by :func:`~benchmark.metrics.detection.evaluate_pairs` alone) fall back to one unit
    per (image, expression) pair. ``weights`` passed to :meth:`metrics` are per unit. ``pair_subset``: each
    pair's compositional tag on a tagged split (:meth:`restricted_to`), None elsewhere."""

    top_iou: np.ndarray  # per pair: IoU of the top box with its best target (NaN without target)
    acc_hit: np.ndarray  # per pair: the top box meets Acc@0.5 in the evaluation's acc_iou form
    n_targets: np.ndarray
    detected: np.ndarray  # per pair: some box scores ≥ score_threshold (N-acc, T-acc)
    dt_scores: np.ndarray
    dt_matches: np.ndarray  # T × D
    dt_ignore: np.ndarray  # T × D
    dt_pair: np.ndarray
    gt_ignore: np.ndarray
    gt_pair: np.ndarray
    pair_image: np.ndarray | None = None  # per pair: its image's index in the split (the resampling unit)
    pair_subset: np.ndarray | None = None  # per pair: seen / held_out (a tagged split)

    def __post_init__(self) -> None:
        if self.pair_image is None:
            self._unit = np.arange(len(self.top_iou))
        else:
            if len(self.pair_image) != len(self.top_iou):
                raise ValueError(f"pair_image has {len(self.pair_image)} entries for {len(self.top_iou)} pairs")
            self._unit = np.unique(self.pair_image, return_inverse=True)[1].reshape(-1)  # images with ≥ 1 pair
        # COCOeval concatenates pairs in order and sorts by score with a stable mergesort
        order = np.argsort(-self.dt_scores, kind="mergesort")
        keep = ~self.dt_ignore[:, order]
        self._tp = np.logical_and(self.dt_matches[:, order], keep)
        self._fp = np.logical_and(~self.dt_matches[:, order], keep)
        self._unit_sorted = self._unit[self.dt_pair[order]]  # per detection, in score order: its unit
        self._positives = np.bincount(self._unit[self.gt_pair[~self.gt_ignore]], minlength=self.units).astype(float)

    @property
    def units(self) -> int:
        return int(self._unit.max()) + 1 if len(self._unit) else 0

    def restricted_to(self, subset: str) -> UnitSubset | None:
        """The metrics on the pairs tagged ``subset`` alone — COCOeval's records of those pairs (each pair is
        its own COCO image, so its records do not depend on the others; the order, and so the score sort's
        ties, is kept), as :func:`benchmark.metrics.compositional.grounding_subset_metrics` — resampled with
        the whole set's unit weights (an image with pairs of both subsets counts in both). None without tags."""
        if self.pair_subset is None:
            return None
        keep = np.asarray(self.pair_subset) == subset
        renumber = np.cumsum(keep) - 1  # a kept pair's index among the kept ones
        dt, gt = keep[self.dt_pair], keep[self.gt_pair]
        part = GroundingItems(
            top_iou=self.top_iou[keep],
            acc_hit=self.acc_hit[keep],
            n_targets=self.n_targets[keep],
            detected=self.detected[keep],
            dt_scores=self.dt_scores[dt],
            dt_matches=self.dt_matches[:, dt],
            dt_ignore=self.dt_ignore[:, dt],
            dt_pair=renumber[self.dt_pair[dt]],
            gt_ignore=self.gt_ignore[gt],
            gt_pair=renumber[self.gt_pair[gt]],
            pair_image=None if self.pair_image is None else self.pair_image[keep],
        )
        # the part numbers its units by rank, as the whole set does: the kept units in increasing order
        return UnitSubset(part, np.unique(self._unit[keep]), self.units)

    def _average_precision(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """AP, AP50, AP75 and AR@100 of each row of ``weights`` (B × units), as ``COCOeval.accumulate``.

        Per IoU threshold, the precision at recall threshold r is the envelope (the best precision at
        or after) at the first detection whose recall reaches r, which is a true positive: so the sum
        over recall thresholds is Σ over true positives of envelope × (recall thresholds first reached
        there). Each row's counts are ``weights`` times the per-unit counts at the true positives."""
        positives = weights @ self._positives  # B
        thresholds = len(self._tp)
        table = np.zeros((len(weights), thresholds))  # mean precision over the recall thresholds
        final_recall = np.zeros((len(weights), thresholds))
        with np.errstate(divide="ignore", invalid="ignore"):
            for t in range(thresholds):
                true, false = np.flatnonzero(self._tp[t]), np.flatnonzero(self._fp[t])
                if not len(true):
                    continue
                # per unit, how many true / false positives rank at or above each true positive
                tp = weights @ _counts_up_to(true, self._unit_sorted[true], true, self.units)  # B × true positives
                fp = weights @ _counts_up_to(false, self._unit_sorted[false], true, self.units)
                recall = tp / positives[:, None]
                precision = tp / (fp + tp + np.spacing(1))
                envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
                reached = np.diff(_thresholds_up_to(recall), axis=1, prepend=0)
                table[:, t] = (envelope * reached).sum(1) / len(REC_THRESHOLDS)
                final_recall[:, t] = recall[:, -1]
        out = {"AP": table.mean(1), "AP50": table[:, 0], "AP75": table[:, 5], "AR@100": final_recall.mean(1)}
        for values in out.values():
            values[positives == 0] = np.nan
        return out

    def metrics(self, weights: np.ndarray) -> dict[str, float]:
        return _first_row(self.metrics_batch(np.asarray(weights)[None]))

    def metrics_batch(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric for each row of ``weights`` (B × units)."""
        weights = np.asarray(weights, dtype=float)
        out = self._average_precision(weights)
        pair_weights = weights[:, self._unit]  # B × pairs: each pair's image's multiplicity
        with_target = self.n_targets > 0
        single, none = self.n_targets == 1, self.n_targets == 0

        def weighted(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
            total = pair_weights[:, mask].sum(1)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(total > 0, pair_weights[:, mask] @ values[mask] / total, np.nan)

        out["mIoU"] = weighted(np.nan_to_num(self.top_iou), with_target)
        out["Acc@0.5"] = weighted(self.acc_hit.astype(float), single)
        out["N-acc"] = weighted((~self.detected).astype(float), none)
        out["T-acc"] = weighted(self.detected.astype(float), with_target)
        out["no_target_balanced_acc"] = (out["N-acc"] + out["T-acc"]) / 2  # NaN where either is
        return out


def _thresholds_up_to(values: np.ndarray) -> np.ndarray:
    """How many recall thresholds are ≤ each value: ``np.searchsorted(REC_THRESHOLDS, values, side="right")``,
    four times faster on these evenly spaced thresholds — the index the spacing gives, minus one, is
    corrected by comparing with the next three thresholds (the float error of either is far below a
    step). NaN values count 0."""
    last = len(REC_THRESHOLDS) - 1
    padded = np.append(REC_THRESHOLDS, np.inf)
    base = np.clip(np.floor(np.nan_to_num(values) * last) - 1, 0, last - 1).astype(np.int64)
    return base + (padded[base] <= values) + (padded[base + 1] <= values) + (padded[base + 2] <= values)


def _counts_up_to(positions: np.ndarray, units: np.ndarray, columns: np.ndarray, count: int) -> np.ndarray:
    """count × len(columns): how many of ``positions`` (each of unit ``units``) of each unit lie at or before each
    column (positions and columns are indices into one ordered sequence)."""
    span = int(max(positions.max(initial=-1), columns.max(initial=-1))) + 1
    keys = np.sort(units.astype(np.int64) * span + positions)
    starts = np.arange(count, dtype=np.int64)[:, None] * span
    return (np.searchsorted(keys, starts + columns[None, :], side="right") - np.searchsorted(keys, starts)).astype(
        float
    )


def resample_weights(units: int, resamples: int, seed: int) -> np.ndarray:
    """B × units multiplicities of a with-replacement resample of the units."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, units, (resamples, units))  # the same stream as one row per call
    offsets = np.arange(resamples)[:, None] * units
    return np.bincount((draws + offsets).reshape(-1), minlength=resamples * units).reshape(resamples, units)


def resample_seeds(count: int, resamples: int, seed: int) -> np.ndarray:
    """B × count indices of a with-replacement resample of ``count`` seeds; the same for the same
    ``(count, seed)``, so methods with as many seeds are resampled in pairs (seed k with seed k)."""
    return np.random.default_rng([seed, count]).integers(0, count, (resamples, count))


def per_seed_distribution(
    items_by_method: dict[str, list[ItemScores]], resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """method → metric → S × B values m_s(w_b): each seed on the same B item resamples (all methods)."""
    units = {items.units for seeds in items_by_method.values() for items in seeds}
    if len(units) != 1:
        raise ValueError(f"methods were evaluated on different test sets (units {sorted(units)})")
    weights = resample_weights(units.pop(), resamples, seed)
    out: dict[str, dict[str, np.ndarray]] = {}
    for method, seeds in items_by_method.items():
        per_seed = [batch_metrics(items, weights) for items in seeds]
        out[method] = {name: np.array([run[name] for run in per_seed]) for name in per_seed[0]}
    return out


def two_level(per_seed: np.ndarray, seed_draws: np.ndarray, skip_undefined: bool = False) -> np.ndarray:
    """T_b = mean over the drawn seeds J_b (row b of ``seed_draws``) of m_j(w_b); ``per_seed`` is S × B.

    Owen's pigeonhole bootstrap (seeds resampled too): no longer behind any interval, kept as the
    baseline the coverage simulation compares :func:`seed_t_replicates` with (it undercovers at few seeds).

    ``skip_undefined``: the mean of the drawn seeds' defined (non-NaN) values, NaN when none is — as a
    table's mean over the seeds whose score is defined (a robustness ratio undefined for one seed)."""
    per_seed = np.asarray(per_seed, dtype=float)
    drawn = per_seed[seed_draws, np.arange(per_seed.shape[1])[:, None]]
    if not skip_undefined:
        return drawn.mean(axis=1)
    defined = ~np.isnan(drawn)
    count = defined.sum(axis=1)
    return np.where(count > 0, np.where(defined, drawn, 0.0).sum(axis=1) / np.maximum(count, 1), np.nan)


def seed_mean_distribution(
    items_by_method: dict[str, list[ItemScores]],
    resamples: int = RESAMPLES,
    seed: int = 0,
    seeds_resampled: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """method → metric → B values of the seed-mean, all methods on the same item resamples.

    ``seeds_resampled`` (default): seed variance included, :func:`seed_t_replicates` (the item
    bootstrap plus the seeds' spread on a t with S − 1 degrees of freedom; lists of items ordered by
    seed); False: seeds fixed, items only."""
    per_seed = per_seed_distribution(items_by_method, resamples, seed)
    return {
        method: {
            name: seed_t_replicates(values, seed) if seeds_resampled else values.mean(axis=0)
            for name, values in metrics.items()
        }
        for method, metrics in per_seed.items()
    }


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval (NaN-free values)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def student_t_quantile(level: np.ndarray | float, df: np.ndarray | int) -> np.ndarray:
    """The ``level`` quantile of Student's t with integer ``df`` ≥ 1 degrees of freedom (arrays broadcast).

    The distribution function of t on an integer number of degrees of freedom has a closed form
    (Abramowitz & Stegun 26.7.3–4: with θ = arctan(t/√ν), P(|T| ≤ t) is a finite sum of powers of
    cos θ), inverted here by bisection to float precision: no dependency for one function."""
    level, df = np.broadcast_arrays(np.asarray(level, dtype=float), np.asarray(df, dtype=np.int64))
    if (df < 1).any():
        raise ValueError(f"Student t needs at least 1 degree of freedom, got {int(df.min())}")
    if ((level <= 0) | (level >= 1)).any():
        raise ValueError("Student t quantile levels must lie strictly between 0 and 1")
    target = np.abs(2 * level - 1)  # P(|T| ≤ q) for q = |quantile|
    low, high = np.zeros(level.shape), np.full(level.shape, 1.0)
    while (too_low := _t_central(high, df) < target).any():  # bracket: t quantiles are unbounded on 1 df
        high = np.where(too_low, high * 2, high)
    for _ in range(200):
        middle = (low + high) / 2
        below = _t_central(middle, df) < target
        low, high = np.where(below, middle, low), np.where(below, high, middle)
        if (high - low <= 1e-13 * np.maximum(high, 1.0)).all():
            break
    return np.sign(level - 0.5) * (low + high) / 2


def _t_central(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """P(|T| ≤ t), T ~ t on integer ``df`` (Abramowitz & Stegun 26.7.3 for odd, 26.7.4 for even df)."""
    theta = np.arctan(t / np.sqrt(df))
    cos2, sin = np.cos(theta) ** 2, np.sin(theta)
    odd = df % 2 == 1
    term = np.where(odd, np.cos(theta), 1.0)  # odd: cos θ, then ·(2k)/(2k+1)·cos²θ; even: 1, then ·(2k−1)/(2k)·cos²θ
    total = term.copy()
    for k in range(1, int(df.max()) // 2 + 1):
        active = np.where(odd, 2 * k + 1 <= df - 2, 2 * k <= df - 2)  # powers of cos θ up to ν − 2
        ratio = np.where(odd, (2 * k) / (2 * k + 1), (2 * k - 1) / (2 * k))
        term = np.where(active, term * ratio * cos2, 0.0)
        total = total + term
    odd_value = 2 / np.pi * (theta + np.where(df > 1, sin * total, 0.0))
    return np.where(odd, odd_value, sin * total)


def t_levels(resamples: int, seed: int, count: int) -> np.ndarray:
    """B quantile levels, one per replicate: (k + ½)/B for k = 0 … B − 1, shuffled by ``(seed, count)``.

    Stratified rather than drawn: the tails of a t on 2 degrees of freedom are heavy, and B random
    draws would move a 2.5 % quantile by about a tenth of its size; the same levels for the same
    (seed, seed count), so a rerun gives the same bits."""
    order = np.random.default_rng([seed, count, 1]).permutation(resamples)
    return (order + 0.5) / resamples


@functools.lru_cache(maxsize=256)
def _stratified_t(resamples: int, df: int) -> np.ndarray:
    """Student t quantiles at (k + ½)/B, k = 0 … B − 1: every :func:`t_levels` level, computed once."""
    values = student_t_quantile((np.arange(resamples) + 0.5) / resamples, df)
    values.setflags(write=False)
    return values


def _t_at(levels: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Student t quantiles at ``levels`` on ``df`` (per element); stratified levels are read from a table."""
    levels, df = np.broadcast_arrays(np.asarray(levels, float), np.asarray(df, np.int64))
    resamples = len(levels)
    index = np.round(levels * resamples - 0.5).astype(np.int64)
    if resamples and np.array_equal((index + 0.5) / resamples, levels) and (df >= 1).all():
        out = np.empty(levels.shape)
        for value in np.unique(df):
            where = df == value
            out[where] = _stratified_t(resamples, int(value))[index[where]]
        return out
    return student_t_quantile(levels, df)


def seed_t_replicates(
    per_seed: np.ndarray, seed: int, skip_undefined: bool = False, levels: np.ndarray | None = None
) -> np.ndarray:
    """B replicates T_b = ȳ(w_b) + s_b/√S_b · t_{S_b−1}(u_b) of the seed-mean (``per_seed``: S × B, m_s(w_b)).

    ȳ(w_b) is the mean over the S seeds on item resample b (the item part: every seed on the same
    resampled items), s_b the sample standard deviation of the seeds on it, and t_{S−1}(u_b) Student's t
    quantile at the stratified level u_b (:func:`t_levels`). The percentile interval of T is the
    item-bootstrap distribution convolved with the small-sample t interval of a mean of S values: with
    seed variance dominant it is the t interval on S − 1 degrees of freedom (exact for normal seed
    effects), with item variance dominant the item bootstrap's. One seed has no seed spread to
    estimate: T_b = m_1(w_b), items only.

    ``skip_undefined``: per replicate, the seeds whose value is defined (non-NaN) only, with their
    count (a robustness ratio undefined for one seed); NaN when none is. Otherwise a replicate with
    an undefined seed is NaN."""
    per_seed = np.atleast_2d(np.asarray(per_seed, dtype=float))
    seeds, resamples = per_seed.shape
    defined = ~np.isnan(per_seed)
    if skip_undefined:
        count = defined.sum(axis=0)
        values = np.where(defined, per_seed, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = values.sum(axis=0) / count
            spread = np.where(defined, per_seed - mean, 0.0)
            variance = (spread**2).sum(axis=0) / np.maximum(count - 1, 1)
    else:
        count = np.full(resamples, seeds)
        mean = per_seed.mean(axis=0)
        variance = per_seed.var(axis=0, ddof=1) if seeds > 1 else np.zeros(resamples)
    levels = t_levels(resamples, seed, seeds) if levels is None else levels
    several = count > 1
    t = np.where(several, _t_at(levels, np.maximum(count - 1, 1)), 0.0)
    with np.errstate(invalid="ignore"):
        out = mean + np.where(several, np.sqrt(variance / np.maximum(count, 1)) * t, 0.0)
    return np.where(count > 0, out, np.nan)


def difference_replicates(per_seed_a: np.ndarray, per_seed_b: np.ndarray, seed: int) -> np.ndarray:
    """B replicates of Δ = seed-mean of A − seed-mean of B, both S × B on the same item resamples.

    With as many seeds, seeds are paired by number (as :func:`resample_seeds` pairs them) and Δ is
    :func:`seed_t_replicates` of the per-seed differences. With different counts the two seed parts
    are independent: Welch's variance s_A²/S_A + s_B²/S_B on the Welch–Satterthwaite degrees of
    freedom, rounded down (conservative)."""
    a, b = np.atleast_2d(np.asarray(per_seed_a, float)), np.atleast_2d(np.asarray(per_seed_b, float))
    if a.shape == b.shape:
        return seed_t_replicates(a - b, seed)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A and B have {a.shape[1]} and {b.shape[1]} bootstrap replicates")
    resamples = a.shape[1]
    parts = [x.var(axis=0, ddof=1) / len(x) if len(x) > 1 else np.zeros(resamples) for x in (a, b)]
    variance = parts[0] + parts[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        welch = variance**2 / sum(p**2 / (len(x) - 1) for p, x in zip(parts, (a, b)) if len(x) > 1)
    df = np.clip(np.floor(np.nan_to_num(welch, nan=1.0)), 1, None).astype(np.int64)
    t = _t_at(t_levels(resamples, seed, len(a) * 1000 + len(b)), df)
    return a.mean(axis=0) - b.mean(axis=0) + np.sqrt(variance) * t


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + ½ P(X = Y) over every pair of a seed of A (``x``) and a seed of B (``y``).

    The probability of improvement of Agarwal et al., "Deep reinforcement learning at the edge of the
    statistical precipice" (NeurIPS 2021), as ``rliable.metrics.probability_of_improvement`` computes it
    on one task: the Mann–Whitney U statistic over N · M run pairs. NaN values are left out."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if not len(x) or not len(y):
        return float("nan")
    greater = (x[:, None] > y[None, :]).mean()
    equal = (x[:, None] == y[None, :]).mean()
    return float(greater + 0.5 * equal)


def marks_against_the_best(
    means: dict[str, float], two_sided: dict[tuple[str, str], float], alpha: float = ALPHA
) -> tuple[str | None, dict[str, bool], dict[tuple[str, str], float]]:
    """(best, method → not significantly worse than the best, pair → Holm-adjusted probability).

    The best is the highest mean (the first by name among ties). Every pair of the eligible methods is a
    hypothesis of equality, with its two-sided bootstrap probability (``two_sided``, keyed by sorted
    pair); Holm's step-down adjustment runs over all of them, and a method is significantly worse than
    the best when some method with a higher mean is significantly above it. Holm controls the
    family-wise error over every pair, so a method truly equal to the best — which can only lose its
    mark by a true null rejected — keeps it with probability ≥ 1 − α, whichever method the data
    make the best (a best-vs-rest family would not: picking the best first makes its K − 1
    comparisons look further apart than K − 1 tests allow)."""
    if not means:
        return None, {}, {}
    best = max(sorted(means), key=lambda m: means[m])
    adjusted_by_name = holm({f"{a}\0{b}": p for (a, b), p in two_sided.items()})
    adjusted = {tuple(name.split("\0")): p for name, p in adjusted_by_name.items()}
    marks = {}
    for method in means:
        beaten = any(
            p <= alpha and means[other] > means[method]
            for (a, b), p in adjusted.items()
            if method in (a, b)
            for other in ((b,) if a == method else (a,))
        )
        marks[method] = method == best or not beaten
    return best, marks, adjusted  # type: ignore[return-value]


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> dict[str, float]:
    """:func:`difference_summary` of Δ = a − b on the same resamples."""
    return difference_summary(np.asarray(a, float) - np.asarray(b, float), level)


def difference_summary(delta: np.ndarray, level: float = LEVEL) -> dict[str, float]:
    """Replicates of a difference Δ: mean, percentile interval, and the bootstrap probabilities
    P*(Δ ≤ 0) (``boot_prob_not_better``: the share of replicates in which a is not ahead) and
    2 · min(P*(Δ ≤ 0), P*(Δ ≥ 0)) (``boot_prob_two_sided``, capped at 1: the smallest 1 − level at
    which the percentile interval of Δ reaches 0). Proportions of bootstrap replicates, not p-values."""
    delta = np.asarray(delta, float)
    delta = delta[~np.isnan(delta)]
    low, high = percentile_interval(delta, level)
    return {
        "delta": float(delta.mean()) if len(delta) else float("nan"),
        "low": low,
        "high": high,
        "boot_prob_not_better": float((delta <= 0).mean()) if len(delta) else float("nan"),
        "boot_prob_two_sided": float(min(1.0, 2 * min((delta <= 0).mean(), (delta >= 0).mean())))
        if len(delta)
        else float("nan"),
    }


def holm(probabilities: dict[str, float]) -> dict[str, float]:
    """Holm–Bonferroni step-down adjustment of a family of probabilities (S. Holm, "A simple
    sequentially rejective multiple test procedure", Scand. J. Statist. 6, 1979).

    Sorted ascending, p_(1) ≤ … ≤ p_(m): adjusted p_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j));
    a hypothesis is rejected at family-wise level α when its adjusted value is ≤ α. NaN values
    are left out of the family and stay NaN."""
    finite = sorted(((p, name) for name, p in probabilities.items() if not np.isnan(p)), key=lambda x: x[0])
    m, running, out = len(finite), 0.0, {name: float("nan") for name in probabilities}
    for j, (p, name) in enumerate(finite):
        running = max(running, min(1.0, (m - j) * p))
        out[name] = running
    return out
