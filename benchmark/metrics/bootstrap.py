"""Bootstrap over test items: confidence intervals and paired method comparisons.

The unit resampled is the test item: an image with its captions for retrieval (galleries
stay fixed, so a query's rank is unchanged and recall@K becomes a weighted mean of per-query
hits), an (image, expression) pair for grounding (COCO AP is re-accumulated from COCOeval's
own per-pair match records, exactly as ``COCOeval.accumulate`` does; the identity resample
reproduces pycocotools' AP).

Every method and seed is evaluated on the *same* resampled items, from one generator with a
fixed seed. For each resample b the metric is averaged over seeds, which gives

* a 95 % percentile interval of the seed-mean over test items, and
* paired differences Δ_b = A_b − B_b between methods for significance: B is "not
  significantly worse" than A when the 2.5th percentile of Δ is ≤ 0 (two-sided, 95 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from benchmark.metrics.retrieval import mean_recall

RESAMPLES = 1000
LEVEL = 0.95
REC_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)  # COCOeval's 101 points


class ItemScores(Protocol):
    units: int

    def metrics(self, weights: np.ndarray) -> dict[str, float]:
        """Metric values when test unit u counts ``weights[u]`` times (1 everywhere = the test set)."""


@dataclass
class RetrievalItems:
    """Per-query best ranks; ranks are 0-based positions of the best positive."""

    t2i_rank: np.ndarray  # per caption
    text_owner: np.ndarray  # per caption: its image (the resampling unit)
    i2t_rank: np.ndarray  # per image
    ks: tuple[int, ...]

    @property
    def units(self) -> int:
        return len(self.i2t_rank)

    def metrics(self, weights: np.ndarray) -> dict[str, float]:
        text_weights = weights[self.text_owner]
        out = {}
        for k in self.ks:
            out[f"t2i_R@{k}"] = float((text_weights * (self.t2i_rank < k)).sum() / text_weights.sum())
        for k in self.ks:
            out[f"i2t_R@{k}"] = float((weights * (self.i2t_rank < k)).sum() / weights.sum())
        out["mean_R"] = mean_recall(out, self.ks)
        return out


@dataclass
class GroundingItems:
    """Per-pair records from :func:`benchmark.metrics.detection.evaluate_pairs`."""

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

    def __post_init__(self) -> None:
        # COCOeval concatenates pairs in order and sorts by score with a stable mergesort
        self._order = np.argsort(-self.dt_scores, kind="mergesort")
        keep = ~self.dt_ignore[:, self._order]
        self._tp = np.logical_and(self.dt_matches[:, self._order], keep)
        self._fp = np.logical_and(~self.dt_matches[:, self._order], keep)
        self._pair_sorted = self.dt_pair[self._order]

    @property
    def units(self) -> int:
        return len(self.top_iou)

    def _average_precision(self, weights: np.ndarray) -> dict[str, float]:
        positives = float((weights[self.gt_pair] * (~self.gt_ignore)).sum())
        if positives == 0:
            return {"AP": float("nan"), "AP50": float("nan"), "AP75": float("nan"), "AR@100": float("nan")}
        w = weights[self._pair_sorted].astype(float)
        tp = np.cumsum(self._tp * w, axis=1)
        fp = np.cumsum(self._fp * w, axis=1)
        recall = tp / positives
        precision = tp / (fp + tp + np.spacing(1))
        precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # the monotone envelope
        table = np.zeros((len(recall), len(REC_THRESHOLDS)))
        for t in range(len(recall)):
            index = np.searchsorted(recall[t], REC_THRESHOLDS, side="left")
            valid = index < recall.shape[1]
            table[t, valid] = precision[t, index[valid]]
        final_recall = recall[:, -1] if recall.shape[1] else np.zeros(len(recall))
        return {
            "AP": float(table.mean()),
            "AP50": float(table[0].mean()),
            "AP75": float(table[5].mean()),
            "AR@100": float(final_recall.mean()),
        }

    def metrics(self, weights: np.ndarray) -> dict[str, float]:
        out = self._average_precision(weights)
        with_target = self.n_targets > 0
        single, none = self.n_targets == 1, self.n_targets == 0

        def weighted(values: np.ndarray, mask: np.ndarray) -> float:
            total = weights[mask].sum()
            return float((weights[mask] * values[mask]).sum() / total) if total else float("nan")

        out["mIoU"] = weighted(np.nan_to_num(self.top_iou), with_target)
        out["Acc@0.5"] = weighted(self.acc_hit.astype(float), single)
        out["N-acc"] = weighted((~self.detected).astype(float), none)
        out["T-acc"] = weighted(self.detected.astype(float), with_target)
        return out


def resample_weights(units: int, resamples: int, seed: int) -> np.ndarray:
    """B × units multiplicities of a with-replacement resample of the units."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, units, units), minlength=units) for _ in range(resamples)])


def seed_mean_distribution(
    items_by_method: dict[str, list[ItemScores]], resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """method → metric → B values of the seed-mean, all methods on the same resamples."""
    units = {items.units for seeds in items_by_method.values() for items in seeds}
    if len(units) != 1:
        raise ValueError(f"methods were evaluated on different test sets (units {sorted(units)})")
    weights = resample_weights(units.pop(), resamples, seed)
    out: dict[str, dict[str, np.ndarray]] = {}
    for method, seeds in items_by_method.items():
        per_seed = [[items.metrics(w) for w in weights] for items in seeds]
        names = per_seed[0][0].keys()
        out[method] = {name: np.mean([[r[name] for r in runs] for runs in per_seed], axis=0) for name in names}
    return out


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval (NaN-free values)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> dict[str, float]:
    """Δ = a − b on the same resamples: mean, percentile interval, one-sided p = P(Δ ≤ 0)."""
    delta = np.asarray(a, float) - np.asarray(b, float)
    delta = delta[~np.isnan(delta)]
    low, high = percentile_interval(delta, level)
    return {
        "delta": float(delta.mean()) if len(delta) else float("nan"),
        "low": low,
        "high": high,
        "p_not_better": float((delta <= 0).mean()) if len(delta) else float("nan"),
    }
