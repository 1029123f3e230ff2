"""Metrics on the seen and held-out subsets of a compositional test split.

When the test split tags its items (:mod:`benchmark.data.compositional`), each task also reports
some of its metrics on each subset, as rows named ``<metric>@<subset>`` — ``mean_R@seen``,
``mean_R@held_out``, ``AP@held_out``. They are not table columns (``Task.table_metrics``); they
feed the compositional table (:mod:`benchmark.report.compositional`).

* **Retrieval** keeps the full gallery and restricts the queries: ``t2i`` metrics over the
  subset's captions ranking every test image, ``i2t`` over the subset's images ranking every
  test caption (a hit when any of the image's captions ranks within K). ``mean_R@<subset>`` is
  the mean of those R@K over both directions and every K, as ``mean_R``.
* **Grounding** restricts the (image, expression) pairs: COCOeval runs on the subset's pairs
  alone (their ground truth and detections), mIoU / Acc@0.5 / N-acc / T-acc average over them.

A subset with no query of a direction (or no pair) gives None (undefined).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmark.data.compositional import SUBSETS
from benchmark.metrics.bootstrap import (
    ItemScores,
    batch_metrics,
    percentile_interval,
    resample_seeds,
    seed_t_replicates,
    two_level,
)
from benchmark.metrics.detection import grounding_metrics
from benchmark.metrics.retrieval import DIRECTIONS, recall_at_k

SEPARATOR = "@"


def subset_metric(metric: str, subset: str) -> str:
    """The row name of ``metric`` on ``subset``: ``mean_R@held_out``."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; allowed: {', '.join(SUBSETS)}")
    return f"{metric}{SEPARATOR}{subset}"


def parse_subset_metric(name: str) -> tuple[str, str] | None:
    """``(metric, subset)`` of a subset row name, None for any other metric (``t2i_R@1`` included)."""
    metric, _, subset = name.rpartition(SEPARATOR)
    return (metric, subset) if metric and subset in SUBSETS else None


def retrieval_subset_metrics(
    t2i_scores: np.ndarray,
    i2t_scores: np.ndarray,
    text_owner: Sequence[int],
    ks: Sequence[int],
    caption_subsets: Sequence[str],
    image_subsets: Sequence[str],
    names: Sequence[str],
) -> dict[str, float | None]:
    """``names`` (retrieval metric names) on each subset: t2i over its caption queries, i2t over its image queries.

    ``t2i_scores`` / ``i2t_scores``: texts × images; ``caption_subsets``: one tag per text,
    ``image_subsets``: one per image."""
    owner = np.asarray(text_owner)
    n_texts, n_images = np.shape(t2i_scores)
    if len(caption_subsets) != n_texts or len(image_subsets) != n_images:
        raise ValueError(
            f"{len(caption_subsets)} caption and {len(image_subsets)} image tags for {n_texts} texts, {n_images} images"
        )
    positives = owner[:, None] == np.arange(n_images)[None, :]
    queries = {
        "t2i": (np.asarray(t2i_scores), positives, np.asarray(caption_subsets)),
        "i2t": (np.asarray(i2t_scores).T, positives.T, np.asarray(image_subsets)),
    }
    metrics: dict[str, float | None] = {}
    for subset in SUBSETS:
        values: dict[str, float | None] = {}
        for direction in DIRECTIONS:
            scores, positive, tags = queries[direction]
            mask = tags == subset
            recalls = recall_at_k(scores[mask], positive[mask], ks) if mask.any() else dict.fromkeys(ks)
            values.update({f"{direction}_R@{k}": recalls[k] for k in ks})
        defined = [v for v in values.values() if v is not None]
        values["mean_R"] = float(np.mean(defined)) if len(defined) == len(values) else None
        metrics.update({subset_metric(name, subset): values[name] for name in names})
    return metrics


def grounding_subset_metrics(
    targets: Sequence[np.ndarray],
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    sizes: Sequence[tuple[int, int]],
    subsets: Sequence[str],
    names: Sequence[str],
    score_threshold: float = 0.5,
    acc_iou: str = "iou",
) -> dict[str, float | None]:
    """``names`` (grounding metric names) on each subset of the (image, expression) pairs, COCOeval included."""
    if not (len(targets) == len(predictions) == len(sizes) == len(subsets)):
        raise ValueError("targets, predictions, sizes and subsets must have one entry per (image, expression) pair")
    metrics: dict[str, float | None] = {}
    for subset in SUBSETS:
        keep = [k for k, tag in enumerate(subsets) if tag == subset]
        values = (
            grounding_metrics(
                [targets[k] for k in keep],
                [predictions[k] for k in keep],
                [sizes[k] for k in keep],
                score_threshold,
                acc_iou,
            )
            if keep
            else {}
        )
        metrics.update({subset_metric(name, subset): values.get(name) for name in names})
    return metrics


def gap_difference(
    method_gaps: Sequence[float], control_gaps: Sequence[float], resamples: int, seed: int, level: float = 0.95
) -> dict[str, float]:
    """The compositional gap net of a control (difference in differences) and its interval.

    ``net = mean_s g_m(s) − mean_t g_c(t)``, g = seen − held-out of one seed, m the method, c the control (the
    method that never reads the text: its gap is how much harder the held-out items are for the image alone, so
    the net gap is what the method loses on unseen *combinations* beyond that). Interval: the two-level bootstrap
    of :mod:`benchmark.metrics.bootstrap` (:func:`~benchmark.metrics.bootstrap.two_level`,
    :func:`~benchmark.metrics.bootstrap.resample_seeds`, paired by seed number as every comparison there) applied
    to each side's per-seed gaps and differenced replicate by replicate; the gaps come from the results' rows, so
    the item level is fixed (``per_seed`` columns identical) and the interval is over seeds only: the fallback
    of :func:`item_gap_difference` for per-item records written before they carried the seen / held-out tags.
    """

    def replicates(gaps: Sequence[float]) -> np.ndarray:
        values = np.asarray(gaps, dtype=float)
        per_seed = np.repeat(values[:, None], resamples, axis=1)  # S × B, items fixed
        return two_level(per_seed, resample_seeds(len(values), resamples, seed))

    if not len(method_gaps) or not len(control_gaps):
        return {"net_gap": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    net = float(np.mean(method_gaps) - np.mean(control_gaps))
    low, high = percentile_interval(replicates(method_gaps) - replicates(control_gaps), level)
    return {"net_gap": net, "ci_low": low, "ci_high": high}


def subset_gap_replicates(items: ItemScores, weights: np.ndarray) -> dict[str, np.ndarray] | None:
    """metric → its gap seen − held-out on each row of ``weights`` (B × units, the whole test set's multiplicities),
    from one evaluation's per-item records; None when the records carry no seen / held-out tags (written
    before they did, or a plug-in task's records without ``restricted_to``).

    Each subset's metric is the item records' own weighted metric restricted to that subset
    (``restricted_to``: retrieval keeps the gallery and counts the subset's queries, grounding re-accumulates
    COCO AP on the subset's pairs), so a row of ones gives the evaluation's ``<metric>@seen`` −
    ``<metric>@held_out``; a resample with no item of a subset gives NaN."""
    restrict = getattr(items, "restricted_to", None)
    if restrict is None:
        return None
    seen, held_out = (restrict(subset) for subset in SUBSETS)
    if seen is None or held_out is None:
        return None
    first, second = batch_metrics(seen, weights), batch_metrics(held_out, weights)
    return {name: first[name] - second[name] for name in first if name in second}


def item_gap_difference(
    method_gaps: Sequence[float],
    control_gaps: Sequence[float],
    method_replicates: np.ndarray,
    control_replicates: np.ndarray,
    seed: int,
    level: float = 0.95,
) -> dict[str, float]:
    """The net gap (as :func:`gap_difference`) with the benchmark's two-level interval over test units and seeds.

    ``method_replicates`` / ``control_replicates``: S × B, row s the gap of the s-th seed the two sides share
    (paired by seed number) on item resample b (:func:`subset_gap_replicates`, the same B resamples of the test
    units for every method and seed). The per-seed difference in differences d_s(w_b) is the per-seed value
    of :func:`~benchmark.metrics.bootstrap.seed_t_replicates` — the item bootstrap of their mean plus their
    spread over seeds on a t with S − 1 degrees of freedom, as every interval of the tables — and the interval
    is its percentile interval. ``net_gap`` is the point estimate from the rows, mean_s g_m(s) − mean_t g_c(t)."""
    if not len(method_gaps) or not len(control_gaps):
        return {"net_gap": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    method, control = np.atleast_2d(method_replicates), np.atleast_2d(control_replicates)
    if method.shape != control.shape or not method.size:
        raise ValueError(
            f"the method's and the control's gap replicates must be seeds × resamples of the shared seeds, "
            f"got {method.shape} and {control.shape}"
        )
    net = float(np.mean(method_gaps) - np.mean(control_gaps))
    low, high = percentile_interval(seed_t_replicates(method - control, seed), level)
    return {"net_gap": net, "ci_low": low, "ci_high": high}
