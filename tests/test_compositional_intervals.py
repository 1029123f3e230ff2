"""The compositional net gap's two-level interval: test units resampled from per-item records tagged seen / held-out.

Known answers: the item records restricted to a subset reproduce the evaluation's subset metrics (retrieval
counted by hand on every resample, grounding against COCOeval run on the subset's pairs alone); a hand-made
difference in differences with item noise only (the interval is the hand-computed item bootstrap; the
seed-only interval has no width) and with seed noise only (the t interval on S − 1 degrees of freedom); records
without tags fall back to the seed-only interval with a note; a rerun is bit-identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.metrics.bootstrap import (
    GroundingItems,
    batch_metrics,
    percentile_interval,
    resample_weights,
    student_t_quantile,
)
from benchmark.metrics.compositional import (
    gap_difference,
    grounding_subset_metrics,
    item_gap_difference,
    retrieval_subset_metrics,
    subset_gap_replicates,
)
from benchmark.metrics.detection import evaluate_pairs
from benchmark.metrics.retrieval import best_positive_rank, metric_names
from benchmark.report.compositional import BOTH_LEVELS, SEEDS_ONLY, compositional_markdown, compositional_table
from benchmark.results import read_items, row, write_items
from benchmark.seeding import derive_seed
from benchmark.tasks import get_task
from tests.helpers import grounding_pairs

SUBSETS = ("seen", "held_out")
RESAMPLES = 400


# -- the item records restricted to a subset ------------------------------------------------------------------------


def test_retrieval_records_restricted_to_a_subset_give_its_recall_on_every_resample(tmp_path: Path) -> None:
    """Identity weights: :func:`retrieval_subset_metrics` (the rows); any weights: each subset query's hit weighted by
    its image's multiplicity, the gallery unchanged — also after the tags' round trip through ``.items.npz``."""
    rng = np.random.default_rng(5)
    owner = np.repeat(np.arange(8), 2)
    t2i, i2t = rng.integers(0, 4, (16, 8)).astype(float), rng.normal(size=(16, 8))
    positives = owner[:, None] == np.arange(8)[None, :]
    captions = rng.choice(SUBSETS, 16)
    images = np.array(["seen", "held_out"] * 4)
    arrays = {
        "t2i_rank": best_positive_rank(t2i, positives),
        "text_owner": owner,
        "i2t_rank": best_positive_rank(i2t.T, positives.T),
        "ks": np.array([1, 3]),
        "caption_subset": captions,
        "image_subset": images,
    }
    write_items(tmp_path / "r.items.npz", arrays)
    items = get_task("retrieval").items(read_items(tmp_path / "r.items.npz"))
    rows = retrieval_subset_metrics(t2i, i2t, owner, [1, 3], captions, images, metric_names([1, 3]))
    weights = np.vstack([np.ones(8), resample_weights(8, 30, 2)])
    for subset in SUBSETS:
        restricted = items.restricted_to(subset)
        batch = batch_metrics(restricted, weights)
        assert all(batch[name][0] == pytest.approx(rows[f"{name}@{subset}"]) for name in metric_names([1, 3]))
        t2i_query, i2t_query = captions == subset, images == subset
        for b, w in enumerate(weights):
            t2i_weight, i2t_weight = w[owner] * t2i_query, w * i2t_query
            for k in (1, 3):
                with np.errstate(invalid="ignore"):  # a resample that draws no image of the subset: NaN
                    t2i_hand = (t2i_weight * (arrays["t2i_rank"] < k)).sum() / t2i_weight.sum()
                    i2t_hand = (i2t_weight * (arrays["i2t_rank"] < k)).sum() / i2t_weight.sum()
                assert batch[f"t2i_R@{k}"][b] == pytest.approx(t2i_hand, abs=1e-12, nan_ok=True)
                assert batch[f"i2t_R@{k}"][b] == pytest.approx(i2t_hand, abs=1e-12, nan_ok=True)
    untagged = get_task("retrieval").items({k: v for k, v in arrays.items() if not k.endswith("_subset")})
    assert untagged.restricted_to("seen") is None and subset_gap_replicates(untagged, weights) is None


def test_grounding_records_restricted_to_a_subset_equal_cocoeval_on_its_pairs_alone() -> None:
    """A subset of the pairs: identity weights give :func:`grounding_subset_metrics` (COCOeval on those pairs
    alone); resampled images give the records of a COCOeval run on those pairs alone, scored with the same
    images' multiplicities (an image with pairs of both subsets counts in both)."""
    rng = np.random.default_rng(11)
    pairs = 60
    targets, predictions, sizes = grounding_pairs(rng, pairs, ties=True)
    tags = rng.choice(SUBSETS, pairs)
    pair_image = np.sort(rng.integers(0, 25, pairs))
    _, records = evaluate_pairs(targets, predictions, sizes)
    items = get_task("grounding").items({**records, "pair_image": pair_image, "pair_subset": tags})
    names = ("AP", "AP50", "AP75", "mIoU", "Acc@0.5", "T-acc")
    rows = grounding_subset_metrics(targets, predictions, sizes, list(tags), names)
    weights = np.vstack([np.ones(items.units), resample_weights(items.units, 20, 4)])
    images = np.unique(pair_image)
    for subset in SUBSETS:
        keep = np.flatnonzero(tags == subset)
        batch = batch_metrics(items.restricted_to(subset), weights)
        assert all(batch[name][0] == pytest.approx(rows[f"{name}@{subset}"], abs=1e-12) for name in names)
        _, alone = evaluate_pairs([targets[k] for k in keep], [predictions[k] for k in keep], [sizes[k] for k in keep])
        reference = GroundingItems(**alone, pair_image=pair_image[keep])
        columns = np.searchsorted(images, np.unique(pair_image[keep]))
        expected = batch_metrics(reference, weights[:, columns])
        for name in names:
            np.testing.assert_allclose(batch[name], expected[name], atol=1e-12, err_msg=f"{name}@{subset}")
    assert GroundingItems(**records).restricted_to("seen") is None


# -- hand-made differences in differences ---------------------------------------------------------------------------


def _arrays(seen: np.ndarray, held_out: np.ndarray, tagged: bool = True) -> dict[str, np.ndarray]:
    """Retrieval records, K = 1: images of the seen then of the held-out subset, row u of ``seen`` / ``held_out``
    the hits of image u's captions (a hit is rank 0, a miss rank 1); every image finds its own captions."""
    hits = np.vstack([seen, held_out]).astype(bool)
    units, captions = hits.shape
    tags = np.repeat(SUBSETS, [len(seen), len(held_out)])
    arrays = {
        "t2i_rank": np.where(hits.reshape(-1), 0, 1),
        "text_owner": np.repeat(np.arange(units), captions),
        "i2t_rank": np.zeros(units, dtype=int),
        "ks": np.array([1]),
    }
    if tagged:
        arrays |= {"caption_subset": np.repeat(tags, captions), "image_subset": tags}
    return arrays


def _frame(runs: dict[tuple[str, int], dict[str, np.ndarray]]) -> tuple[pd.DataFrame, dict]:
    """main.csv rows of t2i_R@1 on each subset (each run's records at identity weights) and the records by seed."""
    task = get_task("retrieval")
    rows, items = [], {}
    for (method, seed), arrays in runs.items():
        records = task.items(arrays)
        items.setdefault(("scenes", "retrieval", method), {})[seed] = records
        owner, hits = arrays["text_owner"], arrays["t2i_rank"] == 0
        seen = owner < (owner.max() + 1) // 2  # the tests' records: as many seen as held-out images
        for subset, captions in zip(SUBSETS, (seen, ~seen)):
            value = float(hits[captions].mean())
            spec = {"dataset": "scenes", "seed": seed, "task": "retrieval"}
            rows.append(row(spec, method, f"t2i_R@1@{subset}", value))
    return pd.DataFrame(rows), items


def _late(table: pd.DataFrame) -> pd.Series:
    return table[(table["method"] == "late_fusion") & (table["metric"] == "t2i_R@1")].iloc[0]


def _item_noise_case(tagged: bool = True) -> dict[tuple[str, int], dict[str, np.ndarray]]:
    """20 seen and 20 held-out images, one caption each, hits drawn once: the same records for every seed (no seed
    noise), so the gaps change only with the resampled images."""
    rng = np.random.default_rng(8)
    method = _arrays(rng.random((20, 1)) < 0.8, rng.random((20, 1)) < 0.4, tagged)
    control = _arrays(rng.random((20, 1)) < 0.7, rng.random((20, 1)) < 0.5, tagged)
    return {**{("late_fusion", s): method for s in range(3)}, **{("image_only", s): control for s in range(3)}}


def test_item_noise_only_the_interval_is_the_item_bootstrap_of_the_difference_in_differences() -> None:
    """Every seed alike: the seed-only interval has no width, the two-level one is the percentile interval of the
    difference in differences computed by hand on the main statistics' image resamples (the seeds' spread is 0),
    and contains the observed net gap."""
    runs = _item_noise_case()
    frame, items = _frame(runs)
    late = _late(compositional_table(frame, control="image_only", resamples=RESAMPLES, items=items))
    weights = resample_weights(40, RESAMPLES, derive_seed("bootstrap", "scenes", "retrieval"))

    def gap(arrays: dict[str, np.ndarray]) -> np.ndarray:
        hits, seen = (arrays["t2i_rank"] == 0).astype(float), np.arange(40) < 20
        return (weights[:, seen] @ hits[seen]) / weights[:, seen].sum(1) - (weights[:, ~seen] @ hits[~seen]) / (
            weights[:, ~seen].sum(1)
        )

    by_hand = gap(runs[("late_fusion", 0)]) - gap(runs[("image_only", 0)])
    observed = _late_gap(runs, "late_fusion") - _late_gap(runs, "image_only")
    assert late["net_gap"] == pytest.approx(observed) and late["net_interval"] == BOTH_LEVELS
    assert (late["net_low"], late["net_high"]) == pytest.approx(percentile_interval(by_hand), abs=1e-12)
    assert late["net_low"] < late["net_gap"] < late["net_high"]
    seeds_only = _late(compositional_table(frame, control="image_only", resamples=RESAMPLES))
    assert seeds_only["net_interval"] == SEEDS_ONLY
    assert seeds_only["net_low"] == pytest.approx(seeds_only["net_high"])  # no seed noise: no width
    assert late["net_high"] - late["net_low"] > 0.2  # 20 images per subset: item noise of several points


def _late_gap(runs: dict[tuple[str, int], dict[str, np.ndarray]], method: str) -> float:
    hits = runs[(method, 0)]["t2i_rank"] == 0
    return float(hits[:20].mean() - hits[20:].mean())


def test_seed_noise_only_the_interval_is_the_t_interval_of_the_per_seed_differences() -> None:
    """Every image of a subset alike (4 captions each), so no resample moves a gap: late_fusion's held-out hits
    are 1, 2, 3 of 4 over seeds 0–2 (gaps 0.75, 0.5, 0.25), image_only's 3 of 4 (gap 0.25), seen all hit.
    Differences 0.5, 0.25, 0 → net gap 0.25 and the t interval 0.25 ± t_{2, 0.975} · 0.25 / √3 (0.25: their
    standard deviation)."""
    runs = {}
    for seed in range(3):
        held = np.tile(np.arange(4) < seed + 1, (10, 1))
        runs[("late_fusion", seed)] = _arrays(np.ones((10, 4)), held)
        runs[("image_only", seed)] = _arrays(np.ones((10, 4)), np.tile(np.arange(4) < 3, (10, 1)))
    frame, items = _frame(runs)
    table = compositional_table(frame, control="image_only", resamples=1000, items=items)
    late = _late(table)
    assert late["gap"] == pytest.approx(0.5) and late["net_gap"] == pytest.approx(0.25)
    # the t on 2 degrees of freedom at the 1,000 stratified levels (k + ½)/B, whose percentile interval is the
    # t interval up to the levels' spacing
    stratified = 0.25 + 0.25 / np.sqrt(3) * student_t_quantile((np.arange(1000) + 0.5) / 1000, 2)
    assert (late["net_low"], late["net_high"]) == pytest.approx(percentile_interval(stratified), abs=1e-12)
    half = float(student_t_quantile(0.975, 2)) * 0.25 / np.sqrt(3)
    assert (late["net_low"], late["net_high"]) == pytest.approx((0.25 - half, 0.25 + half), rel=0.02)
    control = table[table["method"] == "image_only"].iloc[0]
    assert (control["net_gap"], control["net_low"], control["net_high"]) == (0.0, 0.0, 0.0)


def test_seeds_are_paired_by_number() -> None:
    """The per-seed difference pairs seed k of the method with seed k of the control: the same gaps in another seed
    order give another interval (here, paired, every seed's difference is 0.25: no width)."""
    gaps = {0: 1, 1: 2, 2: 3}
    runs = {}
    for seed, held in gaps.items():
        runs[("late_fusion", seed)] = _arrays(np.ones((10, 4)), np.tile(np.arange(4) < held - 1, (10, 1)))
        runs[("image_only", seed)] = _arrays(np.ones((10, 4)), np.tile(np.arange(4) < held, (10, 1)))
    frame, items = _frame(runs)
    late = _late(compositional_table(frame, control="image_only", resamples=RESAMPLES, items=items))
    assert late["net_gap"] == pytest.approx(0.25)
    assert late["net_low"] == pytest.approx(0.25) and late["net_high"] == pytest.approx(0.25)


def test_records_without_tags_fall_back_to_the_seed_only_interval_with_a_note() -> None:
    """Records written before the tags: the interval is :func:`gap_difference`'s (seeds only), marked † with a
    sentence in compositional.md; one untagged seed of a side is enough to fall back."""
    runs = _item_noise_case(tagged=False)
    frame, items = _frame(runs)
    table = compositional_table(frame, control="image_only", resamples=RESAMPLES, items=items)
    late = _late(table)
    seed = derive_seed("compositional net gap", "scenes", "retrieval", "t2i_R@1")
    gaps = [_late_gap(runs, "late_fusion")] * 3, [_late_gap(runs, "image_only")] * 3
    expected = gap_difference(*gaps, RESAMPLES, seed)
    assert late["net_interval"] == SEEDS_ONLY
    assert (late["net_gap"], late["net_low"], late["net_high"]) == pytest.approx(
        (expected["net_gap"], expected["ci_low"], expected["ci_high"])
    )
    text = compositional_markdown(table)
    assert "†" in text and "written before they carried the seen / held-out tags" in text
    mixed = _item_noise_case()
    mixed[("late_fusion", 1)] = _arrays(np.ones((20, 1)), np.zeros((20, 1)), tagged=False)
    frame, items = _frame(mixed)
    table = compositional_table(frame, control="image_only", resamples=RESAMPLES, items=items)
    assert _late(table)["net_interval"] == SEEDS_ONLY
    assert (table[table["method"] == "image_only"]["net_interval"] == BOTH_LEVELS).all()
    items[("scenes", "retrieval", "image_only")] = dict.fromkeys(range(3))  # no records at all (not applicable)
    assert _late(compositional_table(frame, "image_only", resamples=10, items=items))["net_interval"] == SEEDS_ONLY
    frame, items = _frame(_item_noise_case())
    assert "†" not in compositional_markdown(compositional_table(frame, "image_only", resamples=10, items=items))


def test_a_rerun_is_bit_identical_and_the_grounding_gap_is_resampled_too() -> None:
    """The same records give the same table bit for bit, grounding rows (COCO AP restricted to a subset) included."""
    rng = np.random.default_rng(1)
    runs = _item_noise_case()
    frame, items = _frame(runs)
    targets, predictions, sizes = grounding_pairs(rng, 40, ties=False)
    tags = np.repeat(SUBSETS, 20)
    pair_image = np.arange(40) // 2
    grounding_rows = []
    for method in ("late_fusion", "image_only"):
        for seed in range(2):
            noisy = [(p + rng.normal(0, 2, p.shape), s) for p, s in predictions]
            _, records = evaluate_pairs(targets, noisy, sizes)
            items[("scenes", "grounding", method)] = items.get(("scenes", "grounding", method), {}) | {
                seed: get_task("grounding").items({**records, "pair_image": pair_image, "pair_subset": tags})
            }
            values = grounding_subset_metrics(targets, noisy, sizes, list(tags), ("AP", "Acc@0.5"))
            spec = {"dataset": "scenes", "seed": seed, "task": "grounding"}
            grounding_rows += [row(spec, method, name, value) for name, value in values.items()]
    frame = pd.concat([frame, pd.DataFrame(grounding_rows)], ignore_index=True)
    first = compositional_table(frame, control="image_only", resamples=RESAMPLES, items=items)
    second = compositional_table(frame, control="image_only", resamples=RESAMPLES, items=items)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    grounding = first[(first["task"] == "grounding") & (first["method"] == "late_fusion")]
    assert set(grounding["metric"]) == {"AP", "Acc@0.5"} and (grounding["net_interval"] == BOTH_LEVELS).all()
    assert (grounding["net_low"] < grounding["net_high"]).all()
    assert ((grounding["net_low"] <= grounding["net_gap"]) & (grounding["net_gap"] <= grounding["net_high"])).all()


def test_item_gap_difference_needs_paired_replicates() -> None:
    with pytest.raises(ValueError, match="seeds × resamples"):
        item_gap_difference([0.1], [0.0, 0.0], np.zeros((1, 5)), np.zeros((2, 5)), 0)
    assert np.isnan(item_gap_difference([], [0.0], np.zeros((1, 5)), np.zeros((1, 5)), 0)["net_gap"])


def test_a_subset_no_resample_draws_is_undefined_there() -> None:
    """One held-out image among 30: resamples that miss it give NaN gaps, left out of the interval."""
    items = get_task("retrieval").items(_arrays(np.ones((29, 1)), np.zeros((1, 1))))
    weights = resample_weights(30, 200, 0)
    gaps = subset_gap_replicates(items, weights)["t2i_R@1"]
    drawn = weights[:, 29] > 0
    assert np.isnan(gaps[~drawn]).all() and (gaps[drawn] == 1.0).all() and (~drawn).any()
