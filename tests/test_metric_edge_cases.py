"""Two metric edge cases: a retrieval query without positive when K ≥ the gallery, and grounding without boxes.

(a) An image with no caption is an i2t query with no positive: a miss at every K, also when K is at
least the number of captions (before the fix its rank, the gallery size, counted as < K). Checked
against a recall computed independently (sort, take the top K, look for a positive) and the chance row.
(b) When no method returns any box, COCO stats whose area range has no ground truth are undefined
(pycocotools' −1 → None), not 0.0. Checked against pycocotools run through its own ``loadRes`` path.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from benchmark.metrics.bootstrap import GroundingItems, RetrievalItems
from benchmark.metrics.detection import COCO_STATS, coco_ground_truth, evaluate_pairs, grounding_metrics
from benchmark.metrics.retrieval import best_positive_rank, chance_retrieval_metrics, retrieval_metrics

KS = (1, 2, 5, 10)  # 5 and 10 are at least the 4 captions (the i2t gallery); 10 also exceeds the 5 images


def independent_recall(scores: np.ndarray, positives: np.ndarray, k: int) -> float:
    """Per query: the top-K gallery items by score (ties to the lower index), a hit when one is a positive."""
    hits = []
    for row, positive in zip(scores, positives):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        hits.append(any(positive[j] for j in order[:k]))
    return float(np.mean(hits))


def captionless_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5 images, 4 captions owned by images 0, 0, 1, 3: images 2 and 4 have none. Scores: texts × images."""
    rng = np.random.default_rng(0)
    owner = np.array([0, 0, 1, 3])
    positives = owner[:, None] == np.arange(5)[None, :]
    scores = rng.random((4, 5)) + 0.3 * positives
    return scores, owner, positives


def test_a_query_without_positive_is_a_miss_even_when_k_covers_the_gallery() -> None:
    scores, owner, positives = captionless_case()
    metrics = retrieval_metrics(scores, owner, KS)
    for k in KS:
        assert metrics[f"t2i_R@{k}"] == pytest.approx(independent_recall(scores, positives, k)), k
        assert metrics[f"i2t_R@{k}"] == pytest.approx(independent_recall(scores.T, positives.T, k)), k
    # K ≥ 4 captions: the 3 images with a caption hit, the 2 without miss → 3/5 (it was 5/5)
    assert metrics["i2t_R@5"] == metrics["i2t_R@10"] == pytest.approx(3 / 5)
    assert metrics["t2i_R@5"] == metrics["t2i_R@10"] == 1.0  # every caption has its image
    # the chance row agrees where the ranking no longer matters (K ≥ gallery)
    chance = chance_retrieval_metrics(owner, 5, KS)
    for name in ("i2t_R@5", "i2t_R@10", "t2i_R@5", "t2i_R@10"):
        assert metrics[name] == pytest.approx(chance[name]), name


def test_bootstrap_items_count_a_query_without_positive_as_a_miss() -> None:
    """RetrievalItems reads the stored ranks (gallery size for no positive) the same way, also old records."""
    scores, owner, positives = captionless_case()
    items = RetrievalItems(best_positive_rank(scores, positives), owner, best_positive_rank(scores.T, positives.T), KS)
    assert items.i2t_rank[[2, 4]].tolist() == [4, 4]  # rank = gallery size: no positive
    assert items.metrics(np.ones(5)) == pytest.approx(retrieval_metrics(scores, owner, KS))
    weights = np.array([0, 1, 3, 0, 1])  # image 2 (no caption) drawn 3 times, image 4 once
    resampled = items.metrics(weights)
    assert resampled["i2t_R@10"] == pytest.approx(1 / 5)  # only image 1 of the 5 draws has a caption


def coco_stats_via_load_res(targets: list[np.ndarray], sizes: list[tuple[int, int]]) -> np.ndarray:
    """pycocotools' 12 stats through its own loadRes path: one detection, far from every object, on a
    no-target pair — a lone false positive, which gives the same AP and AR as no detection at all."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    empty = next(k for k, boxes in enumerate(targets) if len(boxes) == 0)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco_ground_truth(targets, sizes)
        gt.createIndex()
        dt = gt.loadRes([{"image_id": empty + 1, "category_id": 1, "bbox": [0.0, 0.0, 2.0, 2.0], "score": 0.9}])
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats)


def test_no_box_at_all_leaves_coco_stats_without_ground_truth_undefined() -> None:
    """Small (< 32²) and medium objects only, and one no-target pair: AP/AR_large have no ground truth."""
    targets = [
        np.array([[10.0, 10.0, 20.0, 20.0]]),  # small: 400 px²
        np.array([[5.0, 5.0, 50.0, 40.0], [60.0, 60.0, 10.0, 10.0]]),  # medium 2000 px², small 100 px²
        np.zeros((0, 4)),  # refers to nothing
    ]
    sizes = [(200, 200)] * 3
    nothing = [(np.zeros((0, 4)), np.zeros(0))] * 3
    metrics, records = evaluate_pairs(targets, nothing, sizes)
    reference = coco_stats_via_load_res(targets, sizes)
    assert reference[COCO_STATS.index("AP_large")] == -1 and reference[COCO_STATS.index("AR_large")] == -1
    for name, value in zip(COCO_STATS, reference):
        assert metrics[name] == (None if value < 0 else pytest.approx(value)), name
    assert metrics["AP_large"] is None and metrics["AR_large"] is None  # was 0.0
    assert metrics["AP"] == 0.0 and metrics["AP_small"] == 0.0 and metrics["AR_medium"] == 0.0
    assert metrics["mIoU"] == 0.0 and metrics["T-acc"] == 0.0 and metrics["N-acc"] == 1.0
    # the bootstrap re-accumulates 0 from the records (positives exist), not NaN
    assert GroundingItems(**records).metrics(np.ones(3))["AP"] == 0.0


def test_no_box_and_no_ground_truth_leaves_every_coco_stat_undefined() -> None:
    """Only no-target expressions and no box: pycocotools has nothing to average (all −1)."""
    metrics = grounding_metrics([np.zeros((0, 4))] * 2, [(np.zeros((0, 4)), np.zeros(0))] * 2, [(64, 64)] * 2)
    assert all(metrics[name] is None for name in COCO_STATS)
    assert metrics["N-acc"] == 1.0 and metrics["mIoU"] is None and metrics["T-acc"] is None
