"""Compositional split of the synthetic scenes: held-out combinations, test tags, subset metrics, table.

The files are checked by parsing them as a user would (attribute phrases read back from the
text with a regular expression, objects from the instances file), not through the generator.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmark.data.compositional import tags_path
from benchmark.data.standard_form import captions_path, instances_path, read_manifest, refs_path
from benchmark.data.synthetic import build_synthetic_dataset
from tests.helpers import tiny_data_spec

COMBINATIONS = [{"color": "red", "shape": "triangle"}, {"size": "small", "color": "blue"}]
SPLITS = {"train": 200, "val": 40, "test": 60}
PHRASE = re.compile(
    r"\b(?:(small|large) )?(?:(red|green|blue|yellow|purple|orange|cyan|white) )?"
    r"(circle|square|triangle|diamond|cross|object)(?:e?s)?\b"
)
RELATION = re.compile(r" (?:left of|right of|above|below) the (.+)$")  # an expression's anchor
RELATION_WORDS = re.compile(r"\b(?:left of|right of|above|below)\b")


def _phrases(text: str) -> list[dict[str, str]]:
    """Every attribute phrase of a caption or expression, as the attributes it fixes."""
    phrases = []
    for size, color, noun in PHRASE.findall(text):
        fixed = {"size": size, "color": color, "shape": "" if noun == "object" else noun}
        phrases.append({k: v for k, v in fixed.items() if v})
    return phrases


def _fits(obj: dict[str, str], fixed: dict[str, str]) -> bool:
    return all(obj[k] == v for k, v in fixed.items())


def _held_out(obj: dict[str, str]) -> bool:
    return any(_fits(obj, c) for c in COMBINATIONS)


def _names_combination(fixed: dict[str, str]) -> bool:
    return any(all(fixed.get(k) == v for k, v in c.items()) for c in COMBINATIONS)


def _read(root: Path, split: str) -> dict[str, Any]:
    """Objects per image (with their annotation ids), captions per image and refs of one split."""
    instances = json.loads(instances_path(root, split).read_text())
    shapes = {c["id"]: c["name"] for c in instances["categories"]}
    objects: dict[int, dict[int, dict[str, str]]] = {img["id"]: {} for img in instances["images"]}
    for ann in instances["annotations"]:
        objects[ann["image_id"]][ann["id"]] = {
            "size": ann["size"],
            "color": ann["color"],
            "shape": shapes[ann["category_id"]],
        }
    captions: dict[int, list[str]] = {i: [] for i in objects}
    for ann in json.loads(captions_path(root, split).read_text())["annotations"]:
        captions[ann["image_id"]].append(ann["caption"])
    refs = json.loads(refs_path(root, split).read_text())["refs"]
    return {"objects": objects, "captions": captions, "refs": refs}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same small spec built with the two combinations held out, and without the key."""
    folder = tmp_path_factory.mktemp("compositional")
    spec = {k: v for k, v in tiny_data_spec(splits=SPLITS).items() if k != "held_out_combinations"}
    build_synthetic_dataset({**spec, "held_out_combinations": COMBINATIONS}, folder / "on")
    build_synthetic_dataset(spec, folder / "off")
    return {"on": folder / "on", "off": folder / "off"}


# -- data -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val"])
def test_train_and_val_never_show_or_name_a_held_out_combination(built: dict[str, Path], split: str) -> None:
    data = _read(built["on"], split)
    objects = [obj for per_image in data["objects"].values() for obj in per_image.values()]
    assert objects and not any(_held_out(obj) for obj in objects)
    for image_id, captions in data["captions"].items():
        for caption in captions:
            phrases = _phrases(caption)
            assert phrases, caption
            assert not any(_names_combination(p) for p in phrases), caption
            # every phrase denotes an object of its image, and none of those is held out
            assert all(any(_fits(o, p) for o in data["objects"][image_id].values()) for p in phrases), caption
    for ref in data["refs"]:
        assert not any(_names_combination(p) for p in _phrases(ref["sentence"])), ref["sentence"]
        targets = [data["objects"][ref["image_id"]][a] for a in ref["ann_ids"]]
        assert not any(_held_out(t) for t in targets), ref
    assert not tags_path(built["on"], split).exists()


def test_without_the_split_train_would_hold_such_objects(built: dict[str, Path]) -> None:
    """The check above is not vacuous: the same train scenes without the knob contain held-out objects,
    and only train and val change (test is sampled as without the split)."""
    data = _read(built["off"], "train")
    assert sum(_held_out(o) for per_image in data["objects"].values() for o in per_image.values()) > 20
    on, off = read_manifest(built["on"])["files"], read_manifest(built["off"])["files"]
    for split in ("train", "val"):
        assert any(on[k] != off[k] for k in on if k.startswith(f"images/{split}/"))
    assert all(on[k] == off[k] for k in off if "test" in k)


def test_test_split_holds_both_subsets_and_every_tag_follows_the_rule(built: dict[str, Path]) -> None:
    """Recompute every tag from the files: images and refs exactly, captions bracketed by the text."""
    data = _read(built["on"], "test")
    tags = json.loads(tags_path(built["on"], "test").read_text())
    assert tags["combinations"] == COMBINATIONS
    image_tags = {t["id"]: t for t in tags["images"]}
    ref_tags = {r["ref_id"]: r["subset"] for r in tags["refs"]}
    assert set(image_tags) == set(data["objects"]) and set(ref_tags) == {r["ref_id"] for r in data["refs"]}
    for image_id, objs in data["objects"].items():
        held = [o for o in objs.values() if _held_out(o)]
        assert image_tags[image_id]["subset"] == ("held_out" if held else "seen")
        for caption, caption_tag in zip(data["captions"][image_id], image_tags[image_id]["captions"], strict=True):
            phrases = _phrases(caption)
            could_mean_held_out = any(_fits(o, p) for o in held for p in phrases)
            lists_everything = not caption.startswith("a scene with") and not RELATION_WORDS.search(caption)
            if caption_tag == "held_out":
                assert could_mean_held_out, caption
            if not could_mean_held_out or any(_names_combination(p) for p in phrases):
                assert caption_tag == ("held_out" if could_mean_held_out else "seen"), caption
            if lists_everything and held:
                assert caption_tag == "held_out", caption
    anchors = 0
    for ref in data["refs"]:
        objs = data["objects"][ref["image_id"]]
        mentioned = [objs[a] for a in ref["ann_ids"]]
        relation = RELATION.search(ref["sentence"])
        if relation:
            (anchor_phrase,) = _phrases(relation.group(1))
            (anchor,) = [o for o in objs.values() if _fits(o, anchor_phrase)]  # a unique description
            mentioned.append(anchor)
            anchors += _held_out(anchor) and not any(_held_out(objs[a]) for a in ref["ann_ids"])
        assert ref_tags[ref["ref_id"]] == ("held_out" if any(_held_out(o) for o in mentioned) else "seen"), ref
    counts = read_manifest(built["on"])["compositional"]["counts"]["test"]
    assert counts["images"]["held_out"] >= 10 and counts["images"]["seen"] >= 10
    assert counts["captions"]["held_out"] >= 30 and counts["refs"]["held_out"] >= 10
    assert sum(counts["refs"].values()) == len(data["refs"])
    assert anchors >= 1  # some expression is held out through its anchor alone


def test_tags_of_hand_checked_scenes(built: dict[str, Path]) -> None:
    data = _read(built["on"], "test")
    tags = {t["id"]: t for t in json.loads(tags_path(built["on"], "test").read_text())["images"]}
    ref_tags = {r["ref_id"]: r["subset"] for r in json.loads(tags_path(built["on"], "test").read_text())["refs"]}
    # a large green circle, a small purple diamond and a small blue square (held out: {small, blue})
    image = 3000006
    assert sorted(tuple(o.values()) for o in data["objects"][image].values()) == [
        ("large", "green", "circle"),
        ("small", "blue", "square"),
        ("small", "purple", "diamond"),
    ]
    assert data["captions"][image] == [
        "a scene with a green circle and a purple diamond",  # does not mention the blue square
        "a purple diamond left of a small blue square",
        "a blue square, a purple diamond and a green circle",  # mentions it, size unnamed: still held out
    ]
    assert tags[image]["subset"] == "held_out"
    assert tags[image]["captions"] == ["seen", "held_out", "held_out"]
    refs = [r for r in data["refs"] if r["image_id"] == image]
    assert [(r["sentence"], r["ann_ids"]) for r in refs] == [
        ("the large green object right of the green object", []),  # no target; anchor: the green circle
        ("the small objects above the green object", []),
    ]
    assert [ref_tags[r["ref_id"]] for r in refs] == ["seen", "seen"]
    # a small blue triangle among seen objects: the expression "the small triangle ..." targets it
    image = 3000000
    refs = [r for r in data["refs"] if r["image_id"] == image]
    assert [(r["sentence"], ref_tags[r["ref_id"]]) for r in refs] == [
        ("the small objects", "held_out"),
        ("the small triangle right of the green object", "held_out"),
    ]
    assert tags[3000001] == {"id": 3000001, "subset": "seen", "captions": ["seen"] * 3}


def test_knob_off_builds_byte_identical_files(tmp_path: Path) -> None:
    spec = tiny_data_spec(splits={"train": 24, "val": 8, "test": 8})
    spec = {k: v for k, v in spec.items() if k != "held_out_combinations"}  # the default profile sets it
    build_synthetic_dataset(spec, tmp_path / "absent")
    build_synthetic_dataset({**spec, "held_out_combinations": []}, tmp_path / "empty")
    absent, empty = tmp_path / "absent" / "manifest.json", tmp_path / "empty" / "manifest.json"
    assert absent.read_bytes() == empty.read_bytes()  # sha256 of every file, the spec and its hash
    assert "compositional" not in read_manifest(tmp_path / "empty")


def test_manifest_records_combinations_and_counts(built: dict[str, Path]) -> None:
    record = read_manifest(built["on"])["compositional"]
    assert record["combinations"] == COMBINATIONS
    assert record["tags"] == {"test": "annotations/compositional_test.json"}
    assert "annotations/compositional_test.json" in read_manifest(built["on"])["files"]
    assert sum(record["counts"]["test"]["images"].values()) == SPLITS["test"]


def test_load_split_carries_the_tags_and_robustness_drops_them(built: dict[str, Path], tiny_dataset: Path) -> None:
    from benchmark.data.dataset import load_split
    from benchmark.tasks import get_task

    test = load_split(built["on"], "test")
    assert test.tagged and len(test.image_subsets) == len(test) == len(test.caption_subsets)
    assert all(len(tags) == len(caps) for tags, caps in zip(test.caption_subsets, test.captions))
    assert {r["subset"] for r in test.refs} == {"seen", "held_out"}
    head = test.head(10)
    assert head.image_subsets == test.image_subsets[:10] and head.caption_subsets == test.caption_subsets[:10]
    for task in ("retrieval", "grounding"):
        subset = get_task(task).robustness_subset(test, 10)
        assert not subset.tagged and not any("subset" in r for r in subset.refs)
    assert not load_split(built["on"], "train").tagged
    assert not load_split(built["off"], "test").tagged


@pytest.mark.parametrize(
    ("combinations", "message"),
    [
        ("[{color: pink, shape: triangle}]", r"held_out_combinations.0.color': 'pink' is not a configured color"),
        ("[{color: red}, {size: huge}]", r"held_out_combinations.1.size': 'huge' is not a configured size"),
        ("[{shape: triangle, colour: red}]", r"unknown key .*held_out_combinations.0.colour"),
        ("[{color: red}, {color: red}]", r"held_out_combinations.1': repeats an earlier combination"),
        ("[{size: small}, {size: large}]", r"holds out every \(size, color, shape\) combination"),
    ],
)
def test_invalid_combinations_are_named(combinations: str, message: str) -> None:
    from benchmark.config import load_config
    from benchmark.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[f"datasets.scenes.held_out_combinations={combinations}"])


# -- metrics --------------------------------------------------------------------------------------


def _recall_by_hand(scores: np.ndarray, owner: list[int], queries: list[int], k: int, by_text: bool) -> float:
    """Recall@k of these queries: ranks counted one by one (ties go to the lower gallery index)."""
    hits = 0
    for q in queries:
        if by_text:
            row, positives = scores[q], [owner[q]]
        else:
            row, positives = scores[:, q], [t for t, o in enumerate(owner) if o == q]
        best = min(sum(row[g] > row[p] or (row[g] == row[p] and g < p) for g in range(len(row))) for p in positives)
        hits += best < k
    return hits / len(queries)


def test_retrieval_subset_recalls_match_a_count_by_hand() -> None:
    from benchmark.metrics.compositional import retrieval_subset_metrics
    from benchmark.metrics.retrieval import metric_names

    rng = np.random.default_rng(3)
    owner = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    t2i = rng.integers(0, 4, size=(10, 5)).astype(float)  # small integers: many ties
    i2t = rng.normal(size=(10, 5))
    caption_tags = ["seen", "held_out", "seen", "seen", "held_out", "held_out", "seen", "held_out", "seen", "seen"]
    image_tags = ["seen", "seen", "held_out", "seen", "held_out"]
    ks = [1, 2, 3]
    got = retrieval_subset_metrics(t2i, i2t, owner, ks, caption_tags, image_tags, metric_names(ks))
    for subset in ("seen", "held_out"):
        captions = [q for q, t in enumerate(caption_tags) if t == subset]
        images = [q for q, t in enumerate(image_tags) if t == subset]
        expected = {f"t2i_R@{k}": _recall_by_hand(t2i, owner, captions, k, True) for k in ks}
        expected |= {f"i2t_R@{k}": _recall_by_hand(i2t, owner, images, k, False) for k in ks}
        for name, value in expected.items():
            assert got[f"{name}@{subset}"] == pytest.approx(value), (name, subset)
        assert got[f"mean_R@{subset}"] == pytest.approx(np.mean(list(expected.values())))
    assert got["t2i_R@1@seen"] != got["t2i_R@1@held_out"]  # the subsets really differ here


def test_grounding_subsets_score_their_pairs_alone() -> None:
    from benchmark.metrics.compositional import grounding_subset_metrics
    from benchmark.metrics.detection import grounding_metrics

    box = np.array([[4.0, 4.0, 10.0, 10.0]])
    targets = [box, box + 20, box, box + 10, np.zeros((0, 4))]
    predictions = [
        (box, np.array([0.9])),  # seen: exact
        (box + 20, np.array([0.8])),  # seen: exact
        (box + 30, np.array([0.9])),  # held out: misses
        (box + 10, np.array([0.7])),  # held out: exact
        (box, np.array([0.2])),  # seen, no target: correctly below the threshold
    ]
    sizes = [(48, 48)] * 5
    subsets = ["seen", "seen", "held_out", "held_out", "seen"]
    names = ("AP", "AP50", "Acc@0.5", "mIoU", "N-acc")
    got = grounding_subset_metrics(targets, predictions, sizes, subsets, names)
    assert got["Acc@0.5@seen"] == 1.0 and got["Acc@0.5@held_out"] == 0.5
    assert got["mIoU@seen"] == 1.0 and got["mIoU@held_out"] == 0.5
    assert got["N-acc@seen"] == 1.0 and got["N-acc@held_out"] is None  # no no-target pair held out
    assert got["AP@seen"] == pytest.approx(1.0) and got["AP@held_out"] < 0.6
    for subset in ("seen", "held_out"):
        keep = [k for k, s in enumerate(subsets) if s == subset]
        alone = grounding_metrics([targets[k] for k in keep], [predictions[k] for k in keep], [sizes[k] for k in keep])
        assert all(got[f"{n}@{subset}"] == alone[n] for n in names)


def test_evaluations_add_subset_rows_only_on_a_tagged_split(
    built: dict[str, Path], tiny_tokenizer_file: Path, smoke_config: dict
) -> None:
    import torch

    from benchmark.data.dataset import load_split
    from benchmark.data.tokenizer import load_tokenizer, special_token_ids
    from benchmark.evaluation.retrieval import retrieval_scores
    from benchmark.models.method import BuildContext
    from benchmark.registry import load_method
    from benchmark.tasks import get_task

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    tokenizer = load_tokenizer(tiny_tokenizer_file, 24)
    test = load_split(built["on"], "test")
    ctx = BuildContext(
        smoke_config["model"], test.image_size, tokenizer.get_vocab_size(), 24, special_token_ids(tokenizer)
    )
    model = load_method("cross_attention")(ctx).eval()
    settings = {
        "retrieval": {"ks": [1, 5, 10], "max_images": 20, "exhaustive_max_images": 100, "shortlist_k": 4},
        "grounding": {"max_detections": 100, "nms_iou": 0.5, "score_threshold": 0.5, "acc_iou": "iou"},
    }
    for name, task_settings in settings.items():
        task = get_task(name)
        tagged, tagged_protocol, tagged_items = task.evaluate(model, test, tokenizer, cpu, 64, task_settings)
        plain, plain_protocol, plain_items = task.evaluate(model, test.untagged(), tokenizer, cpu, 64, task_settings)
        # the per-item records carry the tags, and restricted to a subset reproduce its rows (the net gap's bootstrap)
        tags = {"caption_subset", "image_subset"} if name == "retrieval" else {"pair_subset"}
        assert set(tagged_items) - set(plain_items) == tags
        records = task.items(tagged_items)
        for subset in ("seen", "held_out"):
            values = records.restricted_to(subset).metrics(np.ones(records.units))
            for metric in task.subset_metrics:
                assert values[metric] == pytest.approx(tagged[f"{metric}@{subset}"], abs=1e-12), (metric, subset)
        assert task.items(plain_items).restricted_to("seen") is None
        assert list(plain) == task.metric_names(task_settings)  # exactly today's rows
        assert set(tagged_protocol) - set(plain_protocol) == {
            "subset_queries" if name == "retrieval" else "subset_pairs"
        }
        extra = [f"{m}@{s}" for s in ("seen", "held_out") for m in task.subset_metrics]
        assert list(tagged) == [*task.metric_names(task_settings), *extra]
        assert {k: tagged[k] for k in plain} == plain
        assert not set(extra) & set(task.table_metrics)
    # retrieval's subset rows: the full gallery of the first 20 images, the subset's queries
    t2i, i2t, owners, _ = retrieval_scores(model, test, tokenizer, cpu, 64, settings["retrieval"])
    captions = [t for tags in test.caption_subsets[:20] for t in tags]
    tagged, _, _ = get_task("retrieval").evaluate(model, test, tokenizer, cpu, 64, settings["retrieval"])
    for subset in ("seen", "held_out"):
        queries = [q for q, t in enumerate(captions) if t == subset]
        images = [q for q, t in enumerate(test.image_subsets[:20]) if t == subset]
        assert queries and images
        assert tagged[f"t2i_R@1@{subset}"] == pytest.approx(_recall_by_hand(t2i, owners, queries, 1, True))
        assert tagged[f"i2t_R@1@{subset}"] == pytest.approx(_recall_by_hand(i2t, owners, images, 1, False))


# -- table ----------------------------------------------------------------------------------------


def _row(
    method: str, seed: int | None, metric: str, value: float | None, task: str = "retrieval", **extra: Any
) -> dict:
    """One main.csv row (:func:`benchmark.results.row`) of dataset scenes."""
    from benchmark.results import row

    return row({"dataset": "scenes", "seed": seed, "task": task}, method, metric, value, **extra)


def test_compositional_table_gap_is_seen_minus_held_out() -> None:
    from benchmark.report.compositional import compositional_markdown, compositional_table

    frame = pd.DataFrame(
        [
            _row("late_fusion", 0, "mean_R", 0.7),
            _row("late_fusion", 0, "mean_R@seen", 0.6),
            _row("late_fusion", 0, "mean_R@held_out", 0.5),
            _row("late_fusion", 1, "mean_R@seen", 0.8),
            _row("late_fusion", 1, "mean_R@held_out", 0.4),
            _row("late_fusion", 1, "t2i_R@1@seen", 0.3),
            _row("late_fusion", 1, "t2i_R@1@held_out", 0.1),
            _row("late_fusion", 0, "mean_R@seen", 0.0, corruption="jpeg", severity=3),  # robustness: ignored
            _row("clip", 0, "mean_R", None, status="not applicable: no"),
            _row("chance", None, "mean_R", 0.05),
        ]
    )
    table = compositional_table(frame)
    assert list(table["method"]) == ["late_fusion", "late_fusion"]
    assert list(table["metric"]) == ["mean_R", "t2i_R@1"]  # in the task's subset_metrics order
    mean_r = table.iloc[0]
    assert mean_r["seen"] == pytest.approx(0.7) and mean_r["held_out"] == pytest.approx(0.45)
    assert mean_r["gap"] == pytest.approx(mean_r["seen"] - mean_r["held_out"]) and mean_r["seeds"] == 2
    assert table.iloc[1]["gap"] == pytest.approx(0.2)
    markdown = compositional_markdown(table, {"config hash": "abc"})
    assert "## scenes — retrieval" in markdown and "mean_R gap" in markdown and "25.0" in markdown
    assert markdown.rstrip().endswith("config hash: abc")


def test_compositional_table_is_empty_without_subset_rows() -> None:
    from benchmark.report.compositional import compositional_markdown, compositional_table

    table = compositional_table(pd.DataFrame([_row("late_fusion", 0, "mean_R", 0.7)]))
    assert table.empty
    assert "No compositional results" in compositional_markdown(table)


def test_table_keeps_each_task_to_its_own_metrics_and_counts_seeds() -> None:
    """Two tasks in one frame: no task gets the other's metrics, and seeds counts the seeds defining both."""
    import pandas as pd

    from benchmark.report.compositional import compositional_table

    frame = pd.DataFrame(
        [
            _row("m", seed, f"AP@{subset}", value, task="grounding")
            for seed in (0, 1)
            for subset, value in (("seen", 0.5 + seed / 10), ("held_out", 0.2))
        ]
        + [_row("m", seed, f"mean_R@{subset}", 0.6) for seed in (0, 1) for subset in ("seen", "held_out")]
    )
    table = compositional_table(frame)
    assert sorted(zip(table["task"], table["metric"])) == [("grounding", "AP"), ("retrieval", "mean_R")]
    assert table["seeds"].tolist() == [2, 2]
    grounding = table[table["task"] == "grounding"].iloc[0]
    assert grounding["seen"] == pytest.approx(0.55) and grounding["gap"] == pytest.approx(0.35)


def test_net_gap_is_the_difference_in_differences_with_an_interval_over_seeds() -> None:
    """Hand-made: image_only's gaps 0.2, 0.2, 0.2 (seeds 0–2); late_fusion's 0.3, 0.35, 0.25 → net gap
    0.3 − 0.2 = 0.1; the control's own net gap is 0. The interval comes from resampling the method's three seeds (the
    control's gaps are equal, so they add nothing): it lies within the range of gap − 0.2 over seeds, [0.05, 0.15],
    and contains the net gap; a method without the control's metric has none."""
    from benchmark.metrics.compositional import gap_difference
    from benchmark.report.compositional import compositional_markdown, compositional_table

    rows = []
    for method, gaps in (("image_only", (0.2, 0.2, 0.2)), ("late_fusion", (0.3, 0.35, 0.25))):
        for seed, gap in enumerate(gaps):
            rows += [_row(method, seed, "mean_R@seen", 0.6), _row(method, seed, "mean_R@held_out", 0.6 - gap)]
    rows += [_row("late_fusion", 0, "t2i_R@1@seen", 0.5), _row("late_fusion", 0, "t2i_R@1@held_out", 0.4)]
    table = compositional_table(pd.DataFrame(rows), control="image_only", resamples=400)
    late = table[(table["method"] == "late_fusion") & (table["metric"] == "mean_R")].iloc[0]
    assert late["gap"] == pytest.approx(0.3) and late["net_gap"] == pytest.approx(0.1)
    assert 0.05 - 1e-9 <= late["net_low"] <= 0.1 <= late["net_high"] <= 0.15 + 1e-9
    assert late["net_low"] < late["net_high"]
    control = table[(table["method"] == "image_only")].iloc[0]
    assert control["net_gap"] == pytest.approx(0.0) and control["net_low"] == pytest.approx(0.0)
    assert np.isnan(table[table["metric"] == "t2i_R@1"].iloc[0]["net_gap"])
    assert "net gap" in compositional_markdown(table) and "10.0 [" in compositional_markdown(table)
    # the same seed draws give the same interval; no gap on either side gives NaN
    assert gap_difference([0.3, 0.35, 0.25], [0.2] * 3, 400, 7) == gap_difference([0.3, 0.35, 0.25], [0.2] * 3, 400, 7)
    assert np.isnan(gap_difference([], [0.2], 10, 0)["net_gap"])


def test_the_control_keeps_the_tagged_test_split_and_trains_on_the_held_out_combinations(
    built: dict[str, Path], tmp_path: Path
) -> None:
    """``held_out_in_train: true`` (the gap's upper bound): train and val are the scenes built without the split
    (so they hold the held-out combinations), test and its seen / held-out tags are the split's, byte for byte;
    ``false`` is the same dataset as no key."""
    spec = {k: v for k, v in tiny_data_spec(splits=SPLITS).items() if k != "held_out_combinations"}
    control = build_synthetic_dataset(
        {**spec, "held_out_combinations": COMBINATIONS, "held_out_in_train": True}, tmp_path / "c"
    )
    files, on, off = control["files"], read_manifest(built["on"])["files"], read_manifest(built["off"])["files"]
    for name, digest in files.items():
        source = on if name.startswith(("images/test", "annotations/compositional")) or "test" in name else off
        assert source[name] == digest, name
    assert control["compositional"]["counts"] == read_manifest(built["on"])["compositional"]["counts"]
    data = _read(tmp_path / "c", "train")
    assert sum(_held_out(o) for per_image in data["objects"].values() for o in per_image.values()) > 20
    same = build_synthetic_dataset(
        {**spec, "held_out_combinations": COMBINATIONS, "held_out_in_train": False}, tmp_path / "f"
    )
    assert same["files"] == read_manifest(built["on"])["files"] and same["spec"] == read_manifest(built["on"])["spec"]
