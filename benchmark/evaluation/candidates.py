"""Fixed candidate sets for retrieval: each query ranks its positives plus K distractors drawn once from the split.

Why: ranking the whole gallery costs a fusion head one forward pass per (image, caption) pair, quadratic in
the split; a candidate set per query costs O(queries × (K + positives)), linear. The draw is seeded from
named parts only — the dataset, the split, the direction and the query's id (a caption id for text→image, an
image id for image→text; :func:`benchmark.seeding.derive_seed`) — never from the method or the run's seed, so
every method and every rerun ranks the same candidates, and a corrupted copy of the split (same ids) too.

Distractors are drawn uniformly without replacement from the gallery items that are not the query's
positives; when K covers them all, the set is the whole gallery and the candidate metrics equal the
all-pairs ones. A set's items are kept in gallery order, so ties go to the lower gallery index as in
:mod:`benchmark.metrics.retrieval`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.metrics.retrieval import best_positive_rank
from benchmark.seeding import derive_seed


@dataclass(frozen=True)
class CandidateSets:
    """Queries × width gallery indices (each row ascending, padded with -1 at the end), which are positives, and
    each query's set size and positive count."""

    index: np.ndarray  # Q × W int64, -1 = padding
    positive: np.ndarray  # Q × W bool
    size: np.ndarray  # Q: candidates in the set (positives + distractors)
    positives: np.ndarray  # Q: positives in the set

    @property
    def valid(self) -> np.ndarray:
        return self.index >= 0


def draw_candidate_sets(
    positives: Sequence[np.ndarray], gallery: int, distractors: int, query_ids: Sequence[int], *parts: object
) -> CandidateSets:
    """Each query's positives (gallery indices) plus ``distractors`` others drawn without replacement, seeded
    from ``(*parts, query id)``; all others when there are at most ``distractors`` of them."""
    if len(positives) != len(query_ids):
        raise ValueError(f"{len(positives)} queries' positives for {len(query_ids)} query ids")
    rows = []
    for pos, query_id in zip(positives, query_ids):
        pos = np.unique(np.asarray(pos, dtype=np.int64))
        others = gallery - len(pos)
        if others <= distractors:
            rows.append((np.arange(gallery), pos))
            continue
        rng = np.random.default_rng(derive_seed("retrieval candidates", *parts, int(query_id)))
        drawn = np.sort(rng.choice(others, distractors, replace=False))
        # the v-th non-positive index is v plus the number of positives at or below it
        shifted = drawn + np.searchsorted(pos - np.arange(len(pos)), drawn, side="right")
        rows.append((np.sort(np.concatenate([pos, shifted])), pos))
    width = max((len(r) for r, _ in rows), default=0)
    index = np.full((len(rows), width), -1, dtype=np.int64)
    for q, (row, _) in enumerate(rows):
        index[q, : len(row)] = row
    positive = np.zeros(index.shape, dtype=bool)
    for q, (_, pos) in enumerate(rows):
        positive[q] = np.isin(index[q], pos) & (index[q] >= 0)
    return CandidateSets(index, positive, (index >= 0).sum(1), np.array([len(p) for _, p in rows], dtype=np.int64))


def candidate_ranks(scores: np.ndarray, sets: CandidateSets) -> np.ndarray:
    """0-based rank of each query's best positive within its candidate set (its set size when it has none);
    ``scores`` is queries × width, aligned with ``sets.index`` (padding ignored)."""
    scores = np.asarray(scores, dtype=np.float64)
    valid = sets.valid
    if not np.isfinite(scores[valid]).all():
        raise ValueError("retrieval scores contain NaN or infinity")
    floor = scores[valid].min(initial=0.0) - 1.0  # padding sits at the end, below every candidate
    ranks = best_positive_rank(np.where(valid, scores, floor), sets.positive)
    return np.where(sets.positives > 0, ranks, sets.size)
