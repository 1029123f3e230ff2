"""Image↔text retrieval recall@K, as in CLIP_benchmark and LAVIS, with deterministic ties.

Directions are named by query → gallery:

* ``t2i`` (text→image): every caption is a query over all test images; a hit when *its*
  image ranks within K. (CLIP_benchmark calls this "image_retrieval_recall@K"; LAVIS "img_r".)
* ``i2t`` (image→text): every image is a query over all test captions; a hit when **any** of
  its captions ranks within K. (CLIP_benchmark: "text_retrieval_recall@K"; LAVIS: "txt_r".)

Recall@K is the fraction of queries that hit. ``mean_R`` is the mean of R@K over both
directions and every configured K (LAVIS's ``r_mean`` for K = 1, 5, 10).

A query with no positive in the gallery (an image without a caption, as an i2t query) is a
miss at every K, also when K ≥ the gallery size: R@K = (1/Q) Σ_q [r_q < min(K, G)], with r_q the
0-based rank of q's best positive (r_q = G, the gallery size, when it has none). The chance row
(:func:`chance_retrieval_metrics`) gives such a query probability 0, so the two agree.

Ties: items with equal scores are ranked by gallery index, lower first. This is what a stable
descending sort gives, and it makes results independent of the sort implementation
(``torch.topk`` leaves tie order unspecified).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DIRECTIONS = ("t2i", "i2t")


def metric_names(ks: Sequence[int]) -> list[str]:
    """Every retrieval metric in report order: R@K per direction, then mean_R."""
    return [f"{d}_R@{k}" for d in DIRECTIONS for k in ks] + ["mean_R"]


def mean_recall(metrics: dict[str, float], ks: Sequence[int]) -> float:
    """``mean_R``: the mean of R@K over both directions and every K (LAVIS's ``r_mean`` for K = 1, 5, 10)."""
    return float(np.mean([metrics[f"{d}_R@{k}"] for d in DIRECTIONS for k in ks]))


def best_positive_rank(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """0-based rank of the best-ranked positive of each query (gallery size if it has none).

    ``scores`` and ``positives`` are queries × gallery; higher score ranks first and ties go to
    the lower gallery index.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    if scores.shape != positives.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and positives {positives.shape} must be equal 2-D shapes")
    if not np.isfinite(scores).all():
        raise ValueError("retrieval scores contain NaN or infinity")
    n_queries, n_gallery = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    ranks[np.arange(n_queries)[:, None], order] = np.arange(n_gallery)[None, :]
    return np.where(positives, ranks, n_gallery).min(axis=1)


def hits_at_k(best_rank: np.ndarray, k: int, gallery: int | np.ndarray) -> np.ndarray:
    """Per query: a positive ranks within the top K. ``best_rank`` is :func:`best_positive_rank`'s (the
    gallery size for a query without positive), so ``rank < min(K, gallery)`` keeps such a query a miss
    when K ≥ the gallery size. ``gallery`` is one size, or one per query (a candidate set per query,
    :mod:`benchmark.evaluation.candidates`)."""
    return np.asarray(best_rank) < np.minimum(int(k), np.asarray(gallery))


def chance_hits(positives: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """Per query: the probability that a uniformly random ranking of its ``gallery`` items puts one of its
    ``positives`` within the top K — 1 − C(G−p, K)/C(G, K), computed as 1 − Π_{j<p} (G−K−j)/(G−j); 0 for a
    query without positive. Exact, not sampled."""
    positives = np.asarray(positives, dtype=np.int64)
    gallery = np.broadcast_to(np.asarray(gallery, dtype=float), positives.shape)
    miss = np.ones(positives.shape)
    for j in range(int(positives.max(initial=0))):
        factor = np.maximum(0.0, gallery - k - j) / np.maximum(gallery - j, 1.0)
        miss = np.where(j < positives, miss * factor, miss)
    return 1.0 - miss


def recall_at_k(scores: np.ndarray, positives: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Fraction of queries with a positive within the top K, for each K (no positive: a miss)."""
    best = best_positive_rank(scores, positives)
    gallery = np.shape(scores)[1]
    return {int(k): float(hits_at_k(best, k, gallery).mean()) for k in ks}


def retrieval_metrics(
    text_image_scores: np.ndarray,
    text_owner: Sequence[int],
    ks: Sequence[int],
    i2t_scores: np.ndarray | None = None,
) -> dict[str, float]:
    """All recall metrics from a texts × images score matrix and each text's image index.

    ``i2t_scores`` (also texts × images) ranks texts for each image when it differs from the
    t2i matrix, as after a per-direction shortlist and re-ranking.
    """
    scores = np.asarray(text_image_scores)
    image_to_text = scores if i2t_scores is None else np.asarray(i2t_scores)
    if image_to_text.shape != scores.shape:
        raise ValueError(f"i2t scores {image_to_text.shape} and t2i scores {scores.shape} differ in shape")
    owner = np.asarray(text_owner)
    n_texts, n_images = scores.shape
    if owner.shape != (n_texts,):
        raise ValueError(f"text_owner has shape {owner.shape}, expected ({n_texts},)")
    positives = owner[:, None] == np.arange(n_images)[None, :]
    metrics: dict[str, float] = {}
    for k, value in recall_at_k(scores, positives, ks).items():
        metrics[f"t2i_R@{k}"] = value
    for k, value in recall_at_k(image_to_text.T, positives.T, ks).items():
        metrics[f"i2t_R@{k}"] = value
    metrics["mean_R"] = mean_recall(metrics, ks)
    return metrics


def per_query_recall(
    t2i_rank: np.ndarray,
    t2i_gallery: np.ndarray | int,
    i2t_rank: np.ndarray,
    i2t_gallery: np.ndarray | int,
    ks: Sequence[int],
) -> dict[str, float]:
    """Recall@K per direction and ``mean_R`` from each query's best-positive rank within its own gallery
    (a candidate set per query: :mod:`benchmark.evaluation.candidates`)."""
    metrics = {f"t2i_R@{k}": float(hits_at_k(t2i_rank, k, t2i_gallery).mean()) for k in ks}
    metrics |= {f"i2t_R@{k}": float(hits_at_k(i2t_rank, k, i2t_gallery).mean()) for k in ks}
    metrics["mean_R"] = mean_recall(metrics, ks)
    return metrics


def per_query_chance(
    t2i_positives: np.ndarray,
    t2i_gallery: np.ndarray | int,
    i2t_positives: np.ndarray,
    i2t_gallery: np.ndarray | int,
    ks: Sequence[int],
) -> dict[str, float]:
    """The chance level of every metric when each query ranks its own gallery (:func:`chance_hits`, averaged
    over the queries as recall is)."""
    chance = {f"t2i_R@{k}": float(np.mean(chance_hits(t2i_positives, t2i_gallery, k))) for k in ks}
    chance |= {f"i2t_R@{k}": float(np.mean(chance_hits(i2t_positives, i2t_gallery, k))) for k in ks}
    chance["mean_R"] = mean_recall(chance, ks)
    return chance


def chance_retrieval_metrics(text_owner: Sequence[int], n_images: int, ks: Sequence[int]) -> dict[str, float]:
    """Expected recall of a scorer that ranks uniformly at random (exact, not sampled).

    t2i: one positive among ``n_images`` → P(hit@K) = min(K, n)/n.
    i2t: an image with c captions among T texts → P(hit@K) = 1 − C(T−c, K)/C(T, K),
    computed as 1 − Π_{j<c} (T−K−j)/(T−j); averaged over images.
    """
    owner = np.asarray(text_owner)
    counts = np.bincount(owner, minlength=n_images)
    metrics: dict[str, float] = {}
    for k in ks:
        metrics[f"t2i_R@{k}"] = min(k, n_images) / n_images
    for k in ks:
        metrics[f"i2t_R@{k}"] = float(np.mean(chance_hits(counts, np.full(n_images, len(owner)), k)))
    metrics["mean_R"] = mean_recall(metrics, ks)
    return metrics
