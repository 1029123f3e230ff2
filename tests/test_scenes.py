"""Synthetic scenes: determinism, COCO validity, split disjointness, referring-expression truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.data.dataset import load_split
from benchmark.data.grammar import AttributeFilter, relation_holds
from benchmark.data.scenes import Scene, SceneObject
from benchmark.data.standard_form import SPLITS, captions_path, instances_path, load_coco, read_manifest, refs_path
from benchmark.data.synthetic import build_synthetic_dataset
from tests.helpers import tiny_data_spec


def test_same_seed_gives_identical_files(tmp_path: Path, tiny_dataset: Path) -> None:
    again = tmp_path / "again"
    build_synthetic_dataset(tiny_data_spec(), again)
    first, second = read_manifest(tiny_dataset), read_manifest(again)
    assert first["files"] == second["files"]  # sha256 of every image and JSON file
    assert len(first["files"]) == 64 + 16 + 24 + 9 + 1  # images, 3 × 3 annotation files, the test split's tags


def test_different_seed_gives_different_files(tmp_path: Path, tiny_dataset: Path) -> None:
    other = tmp_path / "other"
    build_synthetic_dataset(tiny_data_spec(seed=1), other)
    first, second = read_manifest(tiny_dataset)["files"], read_manifest(other)["files"]
    images = [k for k in first if k.startswith("images/")]
    differing = sum(first[k] != second[k] for k in images)
    assert differing == len(images)


def test_scene_does_not_depend_on_split_sizes(tmp_path: Path, tiny_dataset: Path) -> None:
    bigger = tmp_path / "bigger"
    build_synthetic_dataset(tiny_data_spec(splits={"train": 70, "val": 16, "test": 24}), bigger)
    first, second = read_manifest(tiny_dataset)["files"], read_manifest(bigger)["files"]
    assert all(first[k] == second[k] for k in first if k.startswith("images/"))


def test_coco_files_load_and_boxes_lie_inside_images(tiny_dataset: Path) -> None:
    for split in SPLITS:
        coco = load_coco(instances_path(tiny_dataset, split))
        assert coco.getImgIds() and coco.getAnnIds() and coco.getCatIds()
        for ann in coco.loadAnns(coco.getAnnIds()):
            image = coco.loadImgs(ann["image_id"])[0]
            x, y, w, h = ann["bbox"]
            assert w > 0 and h > 0
            assert x >= 0 and y >= 0 and x + w <= image["width"] and y + h <= image["height"]
            assert ann["area"] == pytest.approx(w * h, abs=1e-3)


def test_splits_are_disjoint(tiny_dataset: Path) -> None:
    manifest = read_manifest(tiny_dataset)
    ids, hashes = {}, {}
    for split in SPLITS:
        data = json.loads(instances_path(tiny_dataset, split).read_text())
        ids[split] = {img["id"] for img in data["images"]}
        hashes[split] = {manifest["files"][f"images/{split}/{img['file_name']}"] for img in data["images"]}
        assert len(hashes[split]) == len(ids[split])
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        assert not ids[a] & ids[b]
        assert not hashes[a] & hashes[b]


def test_captions_per_image_and_refs_point_into_their_image(tiny_dataset: Path) -> None:
    spec = tiny_data_spec()
    for split in SPLITS:
        captions = json.loads(captions_path(tiny_dataset, split).read_text())["annotations"]
        per_image = {}
        for cap in captions:
            per_image.setdefault(cap["image_id"], []).append(cap["caption"])
        assert all(len(c) == spec["captions_per_image"] and len(set(c)) == len(c) for c in per_image.values())
        instances = json.loads(instances_path(tiny_dataset, split).read_text())["annotations"]
        owner = {a["id"]: a["image_id"] for a in instances}
        for ref in json.loads(refs_path(tiny_dataset, split).read_text())["refs"]:
            assert all(owner[a] == ref["image_id"] for a in ref["ann_ids"])
            assert ref["kind"] == ("none" if not ref["ann_ids"] else "single" if len(ref["ann_ids"]) == 1 else "multi")


def test_test_split_has_every_referring_kind(tiny_dataset: Path) -> None:
    kinds = read_manifest(tiny_dataset)["splits"]["test"]["ref_kinds"]
    assert set(kinds) == {"single", "multi", "none"}


def _obj(shape: str, color: str, size: str, x: float) -> SceneObject:
    return SceneObject(shape, color, size, (x, 10.0, 8.0, 8.0), (0, 0, 0))


def test_referring_semantics_on_a_hand_built_scene() -> None:
    scene = Scene(
        64,
        40,
        (_obj("circle", "red", "small", 2), _obj("circle", "red", "large", 30), _obj("square", "blue", "small", 50)),
        0,
    )
    red_circles = AttributeFilter(color="red", shape="circle")
    assert [i for i, o in enumerate(scene.objects) if red_circles.matches(o)] == [0, 1]
    assert red_circles.phrase(True) == "red circles"
    assert AttributeFilter(size="small").phrase(False) == "small object"
    anchor = scene.objects[2]
    assert relation_holds("left of", scene.objects[0], anchor, 64)
    assert not relation_holds("right of", scene.objects[0], anchor, 64)
    # centres 4 px apart on a 64 px canvas are within the 5% margin: neither left nor right
    near = _obj("square", "green", "small", 48)
    assert not relation_holds("left of", near, anchor, 64) and not relation_holds("right of", near, anchor, 64)


def test_load_split_through_datasets(tiny_dataset: Path) -> None:
    split = load_split(tiny_dataset, "test")
    assert split.images.shape == (24, 3, 32, 32)
    assert str(split.images.dtype) == "torch.uint8"
    texts, owners = split.caption_pairs()
    assert len(texts) == 24 * 3 and owners[:3] == [0, 0, 0]
    assert all(ref["boxes"].shape[1] == 4 for ref in split.refs)
    assert np.isin([b.shape[0] for b in split.boxes], [2, 3]).all()


def test_default_test_split_has_the_documented_expression_mix(tmp_path: Path) -> None:
    """README: on the default config the test split has 600 referring expressions, 67.2 % single-target,
    20.0 % multi-target and 12.8 % no-target (403 / 120 / 77), counted from the written refs file."""
    from benchmark.config import load_config, stage_spec

    spec = {
        k: v for k, v in stage_spec(load_config(), "data", dataset="scenes").items() if k not in ("stage", "dataset")
    }
    assert spec["splits"]["test"] == 200
    spec["splits"] = {**spec["splits"], "train": 4, "val": 4}  # scenes do not depend on other splits' sizes
    root = tmp_path / "default"
    build_synthetic_dataset(spec, root)
    refs = json.loads(refs_path(root, "test").read_text())
    refs = refs["refs"] if isinstance(refs, dict) else refs
    targets = [len(r["ann_ids"]) for r in refs]
    counts = (sum(n == 1 for n in targets), sum(n > 1 for n in targets), sum(n == 0 for n in targets))
    assert counts == (403, 120, 77)
    assert [round(100 * c / len(targets), 1) for c in counts] == [67.2, 20.0, 12.8]
