"""Recall@K on hand-computed matrices: both directions, several captions per image, ties."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.metrics.retrieval import best_positive_rank, chance_retrieval_metrics, recall_at_k, retrieval_metrics


def test_best_positive_rank_by_hand() -> None:
    scores = np.array([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    positives = np.array([[True, False, False], [False, False, True]])
    # query 0: order 1, 2, 0 → positive 0 at rank 2; query 1: order 0, 1, 2 → rank 2
    assert best_positive_rank(scores, positives).tolist() == [2, 2]


def test_ties_rank_lower_index_first() -> None:
    scores = np.array([[0.5, 0.5, 0.5, 0.5]])
    assert best_positive_rank(scores, np.array([[False, False, True, False]])).tolist() == [2]
    assert best_positive_rank(scores, np.array([[True, False, False, False]])).tolist() == [0]
    # a tie with a higher score item still loses to it
    scores = np.array([[0.2, 0.7, 0.7]])
    assert best_positive_rank(scores, np.array([[False, False, True]])).tolist() == [1]
    assert recall_at_k(scores, np.array([[False, False, True]]), [1, 2]) == {1: 0.0, 2: 1.0}


def test_several_captions_per_image_any_caption_counts() -> None:
    # 2 images; captions 0, 1 belong to image 0 and captions 2, 3 to image 1
    owner = [0, 0, 1, 1]
    scores = np.array(
        [  # texts × images
            [0.9, 0.1],  # caption 0 → image 0 (hit@1)
            [0.2, 0.8],  # caption 1 → image 1 first (miss@1, hit@2)
            [0.4, 0.6],  # caption 2 → image 1 (hit@1)
            [0.7, 0.3],  # caption 3 → image 0 first (miss@1)
        ]
    )
    m = retrieval_metrics(scores, owner, ks=[1, 2])
    assert m["t2i_R@1"] == pytest.approx(0.5)
    assert m["t2i_R@2"] == pytest.approx(1.0)
    # image 0 ranks captions by column 0: 0 (0.9), 3 (0.7), 2 (0.4), 1 (0.2) → its caption 0 is first
    # image 1 ranks captions by column 1: 1 (0.8), 2 (0.6), 3, 0 → its first own caption (2) is second
    assert m["i2t_R@1"] == pytest.approx(0.5)
    assert m["i2t_R@2"] == pytest.approx(1.0)
    assert m["mean_R"] == pytest.approx((0.5 + 1.0 + 0.5 + 1.0) / 4)


def test_i2t_with_ties_across_captions() -> None:
    owner = [0, 1, 1]
    scores = np.zeros((3, 2))  # everything tied
    m = retrieval_metrics(scores, owner, ks=[1])
    # t2i: every text's top image is image 0 → only caption 0 hits
    assert m["t2i_R@1"] == pytest.approx(1 / 3)
    # i2t: every image's top text is caption 0 → only image 0 hits
    assert m["i2t_R@1"] == pytest.approx(1 / 2)


def test_k_larger_than_gallery_is_a_hit() -> None:
    assert recall_at_k(np.array([[0.0, 1.0]]), np.array([[True, False]]), [10]) == {10: 1.0}


def test_nan_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        best_positive_rank(np.array([[np.nan, 1.0]]), np.array([[True, False]]))


def test_chance_is_exact_and_matches_a_random_scorer() -> None:
    owner = np.repeat(np.arange(20), 3)
    chance = chance_retrieval_metrics(owner, 20, [1, 5, 10])
    assert chance["t2i_R@1"] == pytest.approx(1 / 20)
    assert chance["i2t_R@1"] == pytest.approx(3 / 60)
    # 1 − C(57, 5)/C(60, 5)
    from math import comb

    assert chance["i2t_R@5"] == pytest.approx(1 - comb(57, 5) / comb(60, 5))
    rng = np.random.default_rng(0)
    sampled = [retrieval_metrics(rng.random((60, 20)), owner, [1, 5, 10]) for _ in range(400)]
    for key, value in chance.items():
        assert np.mean([s[key] for s in sampled]) == pytest.approx(value, abs=0.01), key
