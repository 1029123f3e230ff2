"""The REFER, MDETR and gRefCOCO adapters read the official formats back into the synthetic scenes.

One small synthetic dataset (the default scenes spec, 24/8/8 images of 32 px) is written in each
official format by :mod:`tests.fixtures.official_formats`, converted by the adapter and loaded
with ``load_split``; every split must equal the native ``load_split`` restricted to what the
format can express: REFER and MDETR hold single-target expressions only (so images without one
drop out, and an image's objects are the referred ones), gRefCOCO holds every expression and
object. Pixels are compared exactly (the fixture's files hold the native PNG bytes), boxes to
1e-4 px after scaling to the model frame, sentences as REFER's ``sent`` (the lowercased text).
Pairs come in the adapters' documented order: by image id, then target annotation ids, then
file order; ``ref_id`` is the position.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmark.data.dataset import SceneSplit, load_split
from benchmark.data.standard_form import SPLITS, captions_path, instances_path, read_manifest, read_refs, refs_path
from benchmark.datasets.base import check_adapter
from benchmark.datasets.grefcoco import GRefCoco
from benchmark.datasets.refer import EXPECTED, Refer
from benchmark.errors import ConfigError, DataFileError
from tests.fixtures.official_formats import write_grefcoco, write_mdetr, write_refer
from tests.helpers import SMALL_IMAGE_SIZE, SMALL_SCENES, build_small_scenes

REPO = Path(__file__).resolve().parent.parent
SIZES, IMAGE_SIZE = SMALL_SCENES, SMALL_IMAGE_SIZE
ALL = {split: "all" for split in SPLITS}
TEST_SPLIT = {"refcoco": "testA", "refcoco+": "testA", "refcocog": "test"}
"""The official split the writers put synthetic test expressions in (their defaults)."""


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_scenes(tmp_path_factory.mktemp("grounding") / "native")


@pytest.fixture(scope="module")
def official(native: Path) -> Path:
    """Every grounding format of the native scenes under one root, lossless (PNG bytes in .jpg files)."""
    root = native.parent / "official"
    for dataset in TEST_SPLIT:
        write_refer(native, root, dataset)
    write_mdetr(native, root, "refcoco")
    write_grefcoco(native, root)
    return root


@pytest.fixture(scope="module")
def native_splits(native: Path) -> dict[str, SceneSplit]:
    return {split: load_split(native, split) for split in SPLITS}


def _spec(kind: str, root: Path, **keys: Any) -> dict[str, Any]:
    return {"kind": kind, "root": str(root), "image_size": IMAGE_SIZE, "subset": ALL, **keys}


def _prepared(adapter: Any, spec: dict[str, Any], build_dir: Path) -> dict[str, SceneSplit]:
    adapter.prepare(spec, build_dir)
    return {split: load_split(build_dir, split) for split in SPLITS}


def _expected_pairs(native: Path, split: SceneSplit, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """The native expressions of ``kinds`` in the adapters' pair order (image id, ann ids, file order)."""
    records = read_refs(native, split.name)  # load_split keeps this order, one entry per record
    pairs = [
        {**loaded, "image_id": record["image_id"], "ann_ids": tuple(record["ann_ids"]), "position": k}
        for k, (record, loaded) in enumerate(zip(records, split.refs, strict=True))
        if record["kind"] in kinds
    ]
    return sorted(pairs, key=lambda p: (p["image_id"], p["ann_ids"], p["position"]))


def _assert_matches_native(
    converted: SceneSplit, native: Path, split: SceneSplit, kinds: tuple[str, ...], every_object: bool
) -> None:
    expected = _expected_pairs(native, split, kinds)
    image_ids = sorted({p["image_id"] for p in expected})
    assert converted.image_ids == image_ids
    index = {image_id: k for k, image_id in enumerate(split.image_ids)}
    rows = [index[i] for i in image_ids]
    assert torch.equal(converted.images, split.images[rows])  # bit-identical pixels
    assert [r["ref_id"] for r in converted.refs] == list(range(len(expected)))
    for got, want in zip(converted.refs, expected, strict=True):
        assert converted.image_ids[got["image_index"]] == want["image_id"]
        assert got["sentence"] == want["sentence"].lower()  # REFER's 'sent'
        assert got["kind"] == want["kind"]
        np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-4)
    for k, image_id in enumerate(image_ids):
        native_boxes = split.boxes[index[image_id]]
        if every_object:
            np.testing.assert_allclose(converted.boxes[k], native_boxes, atol=1e-4)
        else:  # the referred objects, by annotation id (= the native order of an image's objects)
            referred = sorted({a for p in expected if p["image_id"] == image_id for a in p["ann_ids"]})
            native_ids = [image_id * 16 + j for j in range(len(native_boxes))]  # the synthetic ann ids
            np.testing.assert_allclose(
                converted.boxes[k], native_boxes[[native_ids.index(a) for a in referred]], atol=1e-4
            )
        own = [p for p in expected if p["image_id"] == image_id]
        targeted = [p["sentence"].lower() for p in own if p["kind"] != "none"]
        assert converted.captions[k] == (targeted or [p["sentence"].lower() for p in own])
    assert converted.category_names == split.category_names


@pytest.mark.parametrize("dataset", list(TEST_SPLIT))
def test_refer_reads_back_the_single_target_expressions(
    dataset: str, official: Path, native: Path, native_splits: dict[str, SceneSplit], tmp_path: Path
) -> None:
    converted = _prepared(Refer(), _spec("refer", official, collection=dataset), tmp_path / "data")
    for split in SPLITS:
        _assert_matches_native(converted[split], native, native_splits[split], ("single",), every_object=False)
    manifest = read_manifest(tmp_path / "data")
    assert manifest["official_splits"] == {"train": "train", "val": "val", "test": TEST_SPLIT[dataset]}
    assert manifest["official_format"] == "refer" and manifest["val_is_test"] is False
    assert set(manifest["sources"]) == {
        str(official / dataset / f"refs({'umd' if dataset == 'refcocog' else 'unc'}).p"),
        str(official / dataset / "instances.json"),
    }


def test_mdetr_and_refer_forms_give_identical_splits(official: Path, tmp_path: Path) -> None:
    refer = _prepared(Refer(), _spec("refer", official, collection="refcoco"), tmp_path / "refer")
    mdetr = _prepared(Refer(), _spec("refer", official, collection="refcoco", format="mdetr"), tmp_path / "mdetr")
    for split in SPLITS:
        a, b = refer[split], mdetr[split]
        assert a.image_ids == b.image_ids and torch.equal(a.images, b.images)
        assert a.captions == b.captions and a.category_names == b.category_names and a.objects == b.objects
        assert all(np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes, strict=True))
        assert all(np.array_equal(x, y) for x, y in zip(a.categories, b.categories, strict=True))
        assert len(a.refs) == len(b.refs)
        for x, y in zip(a.refs, b.refs, strict=True):
            assert x.keys() == y.keys() and np.array_equal(x["boxes"], y["boxes"])
            assert {k: v for k, v in x.items() if k != "boxes"} == {k: v for k, v in y.items() if k != "boxes"}
        for path in (instances_path, captions_path, refs_path):  # the standard-form files, byte for byte
            assert path(tmp_path / "refer", split).read_bytes() == path(tmp_path / "mdetr", split).read_bytes()
    assert read_manifest(tmp_path / "mdetr")["sources"].keys() == {
        str(official / "mdetr_annotations" / f"finetune_refcoco_{s}.json") for s in ("train", "val", "testA")
    }


def test_grefcoco_reads_back_every_expression_and_object(
    official: Path, native: Path, native_splits: dict[str, SceneSplit], tmp_path: Path
) -> None:
    converted = _prepared(GRefCoco(), _spec("grefcoco", official), tmp_path / "data")
    for split in SPLITS:
        _assert_matches_native(
            converted[split], native, native_splits[split], ("single", "multi", "none"), every_object=True
        )
    kinds = {r["kind"] for split in SPLITS for r in converted[split].refs}
    assert kinds == {"single", "multi", "none"}  # the fixture exercises all three
    assert all(len(r["boxes"]) == 0 for s in SPLITS for r in converted[s].refs if r["kind"] == "none")


def test_test_split_val_makes_val_the_test_split(official: Path, tmp_path: Path) -> None:
    converted = _prepared(Refer(), _spec("refer", official, collection="refcoco", test_split="val"), tmp_path / "d")
    assert converted["test"].image_ids == converted["val"].image_ids
    assert [r["sentence"] for r in converted["test"].refs] == [r["sentence"] for r in converted["val"].refs]
    assert read_manifest(tmp_path / "d")["val_is_test"] is True


def test_evaluation_images_are_the_val_and_test_images(official: Path, native_splits: dict[str, SceneSplit]) -> None:
    spec = _spec("refer", official, collection="refcoco")
    expected = {  # file names: COCO's carry the set and the id, so a copy elsewhere still matches
        f"COCO_train2014_{ref_image:012d}.jpg"
        for split in ("val", "test")
        for ref_image in {
            native_splits[split].image_ids[r["image_index"]] for r in native_splits[split].refs if r["kind"] == "single"
        }
    }
    assert Refer().evaluation_images(spec) == expected
    assert Refer().evaluation_images({**spec, "format": "mdetr"}) == expected


def test_official_sizes_are_enforced_with_the_file_split_and_numbers(
    official: Path, native: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = {r["image_id"] for r in read_refs(native, "train") if r["kind"] == "single"}
    refs_file = official / "refcoco" / "refs(unc).p"
    message = rf"{re.escape(str(refs_file))}: split 'train' has {len(train)} images, the official split has 16994"
    with pytest.raises(DataFileError, match=message):
        Refer().prepare(_spec("refer", official, collection="refcoco", subset={}), tmp_path / "data")
    texts = sum(r["kind"] == "single" for r in read_refs(native, "train"))
    official_sizes = {("refcoco", "unc"): {"train": {"images": len(train), "texts": 120624}}}
    monkeypatch.setattr("benchmark.datasets.refer.EXPECTED", official_sizes)  # images right, expressions not
    message = rf"{re.escape(str(refs_file))}: split 'train' has {texts} texts, the official split has 120624"
    with pytest.raises(DataFileError, match=message):
        Refer().prepare(_spec("refer", official, collection="refcoco", subset={"val": "all", "test": "all"}), tmp_path)
    monkeypatch.undo()
    counts = Refer().expected_counts(_spec("refer", official, collection="refcoco+", test_split="testB"))
    assert counts == {
        "train": EXPECTED[("refcoco+", "unc")]["train"],
        "val": {"images": 1500, "texts": 10758},
        "test": {"images": 750, "texts": 4889},
    }
    assert Refer().expected_counts(_spec("refer", official, collection="refcocog"))["test"] == {
        "images": 2600,
        "texts": 9602,
    }
    google = Refer().expected_counts(_spec("refer", official, collection="refcocog", split_by="google"))
    assert google == {"train": {"images": 24698}, "val": {"images": 4650}, "test": {"images": 4650}}  # test = val


def test_boxes_follow_the_image_to_the_model_resolution(official: Path, tmp_path: Path) -> None:
    """At half the resolution every target box is the full-size one scaled by 0.5 (the resize transform)."""
    full = _prepared(Refer(), _spec("refer", official, collection="refcoco"), tmp_path / "full")["test"]
    half = _prepared(Refer(), _spec("refer", official, collection="refcoco", image_size=16), tmp_path / "half")["test"]
    assert half.images.shape[-2:] == (16, 16) and len(half.refs) == len(full.refs)
    for small, large in zip(half.refs, full.refs, strict=True):
        np.testing.assert_allclose(small["boxes"], large["boxes"] * 0.5, atol=1e-4)


@pytest.mark.parametrize(
    ("adapter", "keys", "missing"),
    [
        (Refer(), {"collection": "refcocog"}, ["refcocog/refs(umd).p", "refcocog/instances.json"]),
        (
            Refer(),
            {"collection": "refcoco", "format": "mdetr", "test_split": "testB"},
            [f"mdetr_annotations/finetune_refcoco_{s}.json" for s in ("train", "val", "testB")],
        ),
        (GRefCoco(), {}, ["grefcoco/grefs(unc).json", "grefcoco/instances.json"]),
    ],
)
def test_missing_files_are_listed_with_the_layout(adapter: Any, keys: dict, missing: list[str], tmp_path: Path) -> None:
    kind = "grefcoco" if isinstance(adapter, GRefCoco) else "refer"
    [(key, message)] = adapter.check(_spec(kind, tmp_path, **keys))
    assert key == "root"
    listed, layout = message.split("Expected layout", 1)
    assert all(str(tmp_path / path) in listed for path in missing), message
    assert "coco/images/train2014/COCO_train2014_" in layout and all(path in layout for path in missing)


def _copy_annotations(official: Path, root: Path, dataset: str) -> Path:
    shutil.copytree(official / dataset, root / dataset)
    return root


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"not a pickle at all", r"is not a readable refs pickle"),
        (pickle.dumps(OrderedDict(), protocol=2), r"refers to collections\.OrderedDict"),  # a global: refused
        (pickle.dumps({"refs": []}, protocol=2), r"holds a dict, not a list of refs"),
        (pickle.dumps([{"split": "train", "image_id": 1}], protocol=2), r"ref 0 is malformed: KeyError\('ann_id'\)"),
    ],
)
def test_malformed_refs_pickle_is_named(content: bytes, named: str, official: Path, tmp_path: Path) -> None:
    root = _copy_annotations(official, tmp_path, "refcoco")
    (root / "refcoco" / "refs(unc).p").write_bytes(content)
    with pytest.raises(DataFileError, match=rf"{re.escape(str(root / 'refcoco' / 'refs(unc).p'))}.*{named}"):
        Refer().prepare(_spec("refer", root, collection="refcoco"), tmp_path / "data")


def test_malformed_json_is_named(official: Path, tmp_path: Path) -> None:
    shutil.copytree(official / "mdetr_annotations", tmp_path / "mdetr_annotations")
    broken = tmp_path / "mdetr_annotations" / "finetune_refcoco_val.json"
    broken.write_text("{not json")
    with pytest.raises(DataFileError, match=rf"{re.escape(str(broken))} is not valid JSON"):
        Refer().read(_spec("refer", tmp_path, collection="refcoco", format="mdetr"))
    data = json.loads((official / "mdetr_annotations" / "finetune_refcoco_val.json").read_text())
    data["annotations"] = data["annotations"][1:]  # the first expression loses its box
    broken.write_text(json.dumps(data))
    with pytest.raises(DataFileError, match=rf"{re.escape(str(broken))}: expression \d+ has 0 boxes"):
        Refer().read(_spec("refer", tmp_path, collection="refcoco", format="mdetr"))

    root = _copy_annotations(official, tmp_path / "g", "grefcoco")
    grefs = root / "grefcoco" / "grefs(unc).json"
    refs = json.loads(grefs.read_text())
    grefs.write_text("[{]")
    with pytest.raises(DataFileError, match=rf"{re.escape(str(grefs))} is not valid JSON"):
        GRefCoco().read(_spec("grefcoco", root))
    targeted = next(k for k, r in enumerate(refs) if r["ann_id"] != [-1])
    refs[targeted]["no_target"] = True
    grefs.write_text(json.dumps(refs))
    with pytest.raises(DataFileError, match=rf"{re.escape(str(grefs))}: ref \d+ has no_target=True but ann_id"):
        GRefCoco().read(_spec("grefcoco", root))
    (root / "grefcoco" / "instances.json").write_text('{"images": [{"id": 1}]}')
    with pytest.raises(DataFileError, match=r"instances\.json is malformed"):
        GRefCoco().read(_spec("grefcoco", root))


def test_settings_defaults_and_config_problems(tmp_path: Path) -> None:
    check_adapter(Refer, {"grounding": ("images", "instances", "refs")})
    check_adapter(GRefCoco, {"grounding": ("images", "instances", "refs")})
    for cls in (Refer, GRefCoco):  # a data-stage spec is {stage, dataset: <FuseBench name>, **block}: no clash
        assert not {"stage", "dataset"} & set(cls.config_schema["properties"])
    adapter = Refer()
    for dataset, split_by, test_split in (("refcoco", "unc", "testA"), ("refcocog", "umd", "test")):
        settings = adapter.settings({"kind": "refer", "root": str(tmp_path), "collection": dataset})
        assert (settings["split_by"], settings["test_split"], settings["format"]) == (split_by, test_split, "refer")
    google = adapter.settings({"kind": "refer", "root": str(tmp_path), "collection": "refcocog", "split_by": "google"})
    assert google["test_split"] == "val"
    assert GRefCoco().settings({"kind": "grefcoco", "root": str(tmp_path)})["test_split"] == "testA"
    problems = {
        "split_by": {"collection": "refcoco", "split_by": "umd"},
        "test_split": {"collection": "refcocog", "test_split": "testA"},
        "format": {"collection": "refcocog", "split_by": "google", "format": "mdetr"},
    }
    for key, keys in problems.items():
        spec = _spec("refer", tmp_path, **keys)
        [(where, message)] = adapter.check(spec)
        assert where == key, message
        with pytest.raises(ConfigError, match=f"'{key}'"):
            adapter.read(spec)


@pytest.mark.parametrize(
    ("cls", "kind", "keys"), [(Refer, "refer", {"collection": "refcoco"}), (GRefCoco, "grefcoco", {})]
)
def test_a_missing_image_is_named_at_conversion(
    cls: type, kind: str, keys: dict[str, Any], official: Path, tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "root"
    shutil.copytree(official, root)
    image = sorted((root / "coco" / "images" / "train2014").iterdir())[-1]
    image.unlink()
    with pytest.raises(DataFileError, match=rf"image file\(s\) of split .* not found: .*{image.name}"):
        cls().prepare(_spec(kind, root, **keys), tmp_path / "data")
