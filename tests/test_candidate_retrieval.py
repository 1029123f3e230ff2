"""The fixed-candidate-set retrieval protocol: each query ranks its positives plus K distractors drawn once.

Checked: with K covering the gallery it equals the all-pairs protocol (metrics and ranks); the sets are the
same for every method and every rerun and depend only on the named parts; the chance level is the exact
expectation of a random ranking (against an enumeration); a fusion head scores only the candidate pairs;
the per-item records reproduce the metrics and give the chance per bootstrap resample.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmark.data.dataset import load_split
from benchmark.data.tokenizer import load_tokenizer, special_token_ids
from benchmark.evaluation.candidates import candidate_ranks, draw_candidate_sets
from benchmark.evaluation.retrieval import candidate_scores, evaluate_protocols
from benchmark.metrics.retrieval import chance_hits, retrieval_metrics
from benchmark.models.method import BuildContext
from benchmark.registry import load_method
from benchmark.robustness.grid import evaluate_robustness
from benchmark.tasks import get_task

CPU = torch.device("cpu")
SETTINGS = {
    "ks": [1, 5],
    "max_images": None,
    "exhaustive_max_images": 100,
    "shortlist_k": 3,
    "protocols": ["all_pairs", "candidates"],
    "robustness_protocols": ["candidates"],
    "candidates": 4,
    "dataset": "scenes",
}
METHODS = ("contrastive_clip", "early_concat", "cross_attention")


def _model(method: str, smoke_config: dict[str, Any], tokenizer: Any, image_size: int, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    ctx = BuildContext(smoke_config["model"], image_size, tokenizer.get_vocab_size(), 24, special_token_ids(tokenizer))
    return load_method(method)(ctx).eval()


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_file: Path) -> Any:
    return load_tokenizer(tiny_tokenizer_file, 24)


@pytest.fixture(scope="module")
def test_split(tiny_dataset: Path) -> Any:
    return load_split(tiny_dataset, "test")


@pytest.mark.parametrize("method", METHODS)
def test_candidates_covering_the_gallery_equal_all_pairs(
    method: str, smoke_config: dict, test_split: Any, tokenizer: Any
) -> None:
    """K ≥ every other item: each set is the whole gallery, so ranks and metrics equal the all-pairs ones."""
    model = _model(method, smoke_config, tokenizer, test_split.image_size)
    settings = {**SETTINGS, "candidates": 10**6}
    measured = evaluate_protocols(model, test_split, tokenizer, CPU, 16, settings, ["all_pairs", "candidates"])
    (full, _, full_items), (cand, _, cand_items) = measured["all_pairs"], measured["candidates"]
    assert cand == {k: full[k] for k in cand}
    for key in ("t2i_rank", "i2t_rank", "text_owner"):
        assert np.array_equal(cand_items[key], full_items[key]), key
    assert (cand_items["t2i_gallery"] == len(test_split)).all()
    assert (cand_items["i2t_gallery"] == len(cand_items["t2i_rank"])).all()


def test_candidate_sets_are_the_same_for_every_method_and_rerun(
    smoke_config: dict, test_split: Any, tokenizer: Any
) -> None:
    """The draw reads the dataset, the split, the direction and the query id — never the model."""
    sets = []
    for method, seed in [("contrastive_clip", 0), ("early_concat", 0), ("early_concat", 0), ("cross_attention", 3)]:
        model = _model(method, smoke_config, tokenizer, test_split.image_size, seed)
        _, t2i, _, i2t, _, _ = candidate_scores(model, test_split, tokenizer, CPU, 16, SETTINGS)
        sets.append((t2i, i2t))
    for t2i, i2t in sets[1:]:
        assert np.array_equal(t2i.index, sets[0][0].index) and np.array_equal(i2t.index, sets[0][1].index)
    t2i, i2t = sets[0]
    # each caption: its image plus K other images; each image: its captions plus K others
    owners = [i for i, caps in enumerate(test_split.captions) for _ in caps]
    assert (t2i.size == 1 + SETTINGS["candidates"]).all() and (t2i.positives == 1).all()
    for q, owner in enumerate(owners):
        row = t2i.index[q][t2i.valid[q]]
        assert owner in row and len(set(row.tolist())) == len(row) and list(row) == sorted(row)
        assert t2i.positive[q].sum() == 1 and t2i.index[q][t2i.positive[q]][0] == owner
    counts = np.bincount(owners, minlength=len(test_split))
    assert np.array_equal(i2t.size, counts + SETTINGS["candidates"]) and np.array_equal(i2t.positives, counts)
    # another dataset name draws other sets; the same parts draw the same
    positives = [[o] for o in owners]
    ids = list(range(len(owners)))
    a = draw_candidate_sets(positives, len(test_split), 4, ids, "scenes", "test", "t2i")
    b = draw_candidate_sets(positives, len(test_split), 4, ids, "scenes", "test", "t2i")
    c = draw_candidate_sets(positives, len(test_split), 4, ids, "coco", "test", "t2i")
    assert np.array_equal(a.index, b.index) and not np.array_equal(a.index, c.index)


def test_distractors_are_uniform_over_the_non_positives() -> None:
    """Every non-positive item is drawn equally often (simulated over many query ids)."""
    gallery, positives, draws = 12, [2, 3, 7], 6000
    sets = draw_candidate_sets([positives] * draws, gallery, 3, range(draws), "uniformity")
    counts = np.bincount(sets.index[~sets.positive], minlength=gallery)
    assert counts[positives].sum() == 0
    others = np.delete(counts, positives)
    expected = draws * 3 / (gallery - len(positives))  # 2000
    assert np.abs(others - expected).max() < 5 * math.sqrt(expected)  # ±112 at 5 standard deviations


@pytest.mark.parametrize(
    ("positives", "gallery", "k"), [(1, 5, 1), (2, 6, 1), (3, 7, 2), (2, 4, 3), (4, 4, 1), (0, 5, 2)]
)
def test_chance_is_the_exact_expectation_of_a_random_ranking(positives: int, gallery: int, k: int) -> None:
    """Enumerate every ordering: P(a positive in the top K) equals chance_hits and 1 − C(G−p, K)/C(G, K)."""
    hits = [any(item < positives for item in order[:k]) for order in itertools.permutations(range(gallery))]
    expected = float(np.mean(hits))
    assert chance_hits(np.array([positives]), np.array([gallery]), k)[0] == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(1 - math.comb(gallery - positives, k) / math.comb(gallery, k))


def test_candidate_chance_is_recorded_and_matches_the_reference_row(
    smoke_config: dict, test_split: Any, tokenizer: Any, tiny_dataset: Path
) -> None:
    """R@1 chance: 1/(1+K) per caption query and c/(c+K) per image query with c captions; the evaluation's
    record, the item records' ``chance`` and the reference row agree; the all-pairs chance is unchanged."""
    task = get_task("retrieval")
    model = _model("contrastive_clip", smoke_config, tokenizer, test_split.image_size)
    metrics, record, arrays = task.evaluate(model, test_split, tokenizer, CPU, 16, SETTINGS)
    k = SETTINGS["candidates"]
    counts = np.array([len(c) for c in test_split.captions])
    chance = task.chance(arrays)
    assert chance["cand_t2i_R@1"] == pytest.approx(1 / (1 + k))
    assert chance["cand_i2t_R@1"] == pytest.approx(np.mean(counts / (counts + k)))
    assert {f"cand_{m}": v for m, v in record["candidates"]["chance"].items()} == pytest.approx(
        {m: v for m, v in chance.items() if m.startswith("cand_")}
    )
    reference, _ = task.reference_rows(tiny_dataset, SETTINGS)
    assert reference["chance"] == pytest.approx(chance)
    owners = np.repeat(np.arange(len(counts)), counts)
    assert chance["t2i_R@1"] == pytest.approx(1 / len(counts))
    assert {m: chance[m] for m in ("i2t_R@5", "mean_R")} == pytest.approx(
        {m: reference["chance"][m] for m in ("i2t_R@5", "mean_R")}
    )
    assert set(metrics) == set(task.metric_names(SETTINGS)) | {m for m in metrics if "@seen" in m or "@held" in m}
    # the item records reproduce every metric, and resample chance with the same weights
    items = task.items(arrays)
    assert items.metrics(np.ones(items.units)) == pytest.approx({m: metrics[m] for m in task.metric_names(SETTINGS)})
    weights = np.random.default_rng(0).integers(0, 3, (4, items.units)).astype(float)
    weights[:, 0] += 1
    resampled = items.chance_batch(weights)["cand_i2t_R@1"]
    assert resampled == pytest.approx(weights @ (counts / (counts + k)) / weights.sum(1))
    assert len(owners) == len(arrays["cand_t2i_rank"])


@pytest.mark.parametrize("method", ["early_concat", "cross_attention"])
def test_a_fusion_head_scores_only_the_candidate_pairs(
    method: str, smoke_config: dict, test_split: Any, tokenizer: Any
) -> None:
    """Count the fusion head's rows: each (image, caption) candidate pair once, far fewer than all pairs."""
    model = _model(method, smoke_config, tokenizer, test_split.image_size)
    rows = []
    handle = model.match_head.register_forward_hook(lambda _m, _i, out: rows.append(out.shape[0]))
    scores_t2i, t2i, scores_i2t, i2t, owners, record = candidate_scores(model, test_split, tokenizer, CPU, 16, SETTINGS)
    handle.remove()
    pairs = {(int(i), q) for q, row in enumerate(t2i.index) for i in row if i >= 0}
    pairs |= {(q, int(t)) for q, row in enumerate(i2t.index) for t in row if t >= 0}
    assert sum(rows) == record["pairs_scored"] == len(pairs) < len(owners) * len(test_split)
    # and a slot's score is the fusion head's on that pair (the same in both directions)
    slot = {(int(i), q): scores_t2i[q, j] for q, row in enumerate(t2i.index) for j, i in enumerate(row) if i >= 0}
    for q, row in enumerate(i2t.index):
        for j, t in enumerate(row):
            if (q, int(t)) in slot:
                assert scores_i2t[q, j] == slot[(q, int(t))]


def test_candidate_ranks_ignore_padding_and_break_ties_by_gallery_index() -> None:
    sets = draw_candidate_sets([[0, 2], [1]], 3, 5, [0, 1], "ties")  # both sets are the whole gallery (3 items)
    scores = np.array([[1.0, 1.0, 1.0], [0.0, 0.5, 0.5]])
    assert candidate_ranks(scores, sets).tolist() == [0, 0]
    scores = np.array([[0.0, 1.0, 1.0], [2.0, 0.5, 0.5]])
    assert candidate_ranks(scores, sets).tolist() == [1, 1]
    owner = np.array([0, 1])  # the same as the all-pairs rank on a 2-text × 3-image matrix
    full = retrieval_metrics(np.array([[0.0, 1.0, 1.0], [2.0, 0.5, 0.5]]), owner, [1])
    assert full["t2i_R@1"] == 0.0


def test_robustness_cells_use_the_candidate_protocol_with_item_records(
    smoke_config: dict, test_split: Any, tokenizer: Any
) -> None:
    """The grid measures ``cand_`` metrics on the whole split; every cell's records give its chance and metrics;
    the clean cell equals the main evaluation's candidate numbers."""
    task = get_task("retrieval")
    model = _model("early_concat", smoke_config, tokenizer, test_split.image_size)
    settings = task.robustness_settings(SETTINGS, len(test_split))
    grid = {"max_images": None, "severities": [2], "image": ["contrast"], "text": ["char_swap"], "missing": []}

    def evaluate(split: Any, **missing: Any) -> Any:
        return task.evaluate(model, split, tokenizer, CPU, 16, settings, **missing)

    items: dict[Any, Any] = {}
    results = evaluate_robustness(test_split, task, grid, evaluate, {}, items=items)
    clean = task.evaluate(model, test_split.untagged(), tokenizer, CPU, 16, SETTINGS)[0]
    assert results[0][2] == {m: clean[m] for m in task.metric_names(settings)}
    assert all(m.startswith("cand_") for m in results[0][2])
    for corruption, severity, metrics, _ in results:
        cell = task.items(items[(corruption, severity)])
        assert cell.metrics(np.ones(cell.units)) == pytest.approx(metrics)
        assert task.chance(items[(corruption, severity)]) == pytest.approx(task.chance(items[("none", 0)]))
    assert task.robustness_metric("mean_R", {m for _, _, m, _ in results for m in m}) == "cand_mean_R"
    assert task.robustness_groups(list(results[0][2]), "cand_mean_R") == {
        "t2i": ["cand_t2i_R@1", "cand_t2i_R@5"],
        "i2t": ["cand_i2t_R@1", "cand_i2t_R@5"],
    }


def test_tasks_without_a_chance_level_record_none() -> None:
    """``protocol.chance`` of a grounding result is empty: only tasks that define a chance level fill it."""
    assert get_task("grounding").chance({}) == {}
