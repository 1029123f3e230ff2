"""Retrieval adapters (``kind: karpathy``, ``kind: hf_retrieval``) against the official formats.

A small synthetic dataset (the default ``scenes`` block, 24/8/8 images of 32 px) is written in
each official format by :mod:`tests.fixtures.official_formats` (``lossless=True``: PNG bytes
under the official names), converted back by the adapter, and must load exactly as the native
dataset: same pixels, same captions in the same order, same image ids in the same order. Ids
survive because the writers carry the synthetic id (train 1,000,000 + i, val 2,000,000 + i,
test 3,000,000 + i) as COCO's ``cocoid`` and 12-digit file number, as the Flickr30k file stem
and as the 🤗 ``cocoid`` column, which is what the adapters read back. Karpathy's ``restval``
images join train, as they must.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from jsonschema import Draft202012Validator

from benchmark.data.dataset import SceneSplit, load_split
from benchmark.data.images import as_tensor
from benchmark.data.standard_form import read_captions
from benchmark.datasets.base import check_adapter
from benchmark.datasets.hf_retrieval import HfRetrieval
from benchmark.datasets.karpathy import Karpathy
from benchmark.datasets.official import SPLITS
from benchmark.errors import DataFileError
from tests.helpers import SMALL_IMAGE_SIZE, SMALL_SCENES, build_small_scenes

SIZES, SIZE = SMALL_SCENES, SMALL_IMAGE_SIZE
WHOLE = {"subset": dict(SIZES)}  # every image, on purpose: the official sizes are COCO's/Flickr's
KINDS = {Karpathy: "karpathy", HfRetrieval: "hf_retrieval"}


@pytest.fixture(scope="module")
def formats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The native dataset and every retrieval format written from it, once per module."""
    from tests.fixtures.official_formats import write_hf_retrieval, write_karpathy, write_lavis_retrieval

    tmp = tmp_path_factory.mktemp("retrieval")
    build_small_scenes(tmp / "native")
    root = tmp / "root"
    written = {}  # collection → what write_karpathy returns (its "ids": image id → path under the image root)
    for collection in ("coco", "flickr30k"):
        written[collection] = write_karpathy(tmp / "native", root, collection, lossless=True)
        write_lavis_retrieval(tmp / "native", root, collection, lossless=True)
    write_hf_retrieval(tmp / "native", root, name="coco_karpathy", lossless=True)
    native = {split: load_split(tmp / "native", split) for split in SPLITS}
    return {"root": root, "native_dir": tmp / "native", "native": native, "written": written}


def adapter_spec(cls: type, root: Path, **keys: Any) -> dict[str, Any]:
    return {"kind": KINDS[cls], "root": str(root), "image_size": SIZE, **keys}


def assert_same(build_dir: Path, native: dict[str, SceneSplit]) -> None:
    for split in SPLITS:
        got, want = load_split(build_dir, split), native[split]
        assert got.image_ids == want.image_ids, split
        assert got.captions == want.captions, split
        assert torch.equal(as_tensor(got.images), as_tensor(want.images)), split


def test_adapters_meet_the_contract() -> None:
    requirements = {"retrieval": ("images", "captions"), "grounding": ("images", "instances", "refs")}
    for cls, kind in KINDS.items():
        cls.kind = kind
        check_adapter(cls, requirements)
    karpathy = Draft202012Validator(Karpathy.config_schema)
    assert karpathy.is_valid({"kind": "karpathy", "root": "d", "collection": "coco", "format": "lavis"})
    assert not karpathy.is_valid({"kind": "karpathy", "root": "d", "collection": "coco30k"})
    assert not karpathy.is_valid({"kind": "karpathy", "root": "d", "collection": "coco", "split": "test"})
    hf = Draft202012Validator(HfRetrieval.config_schema)
    assert hf.is_valid({"kind": "hf_retrieval", "root": "d", "path": "hf/x"})
    assert hf.is_valid({"kind": "hf_retrieval", "root": "d", "source": "parquet", "path": {"train": ["a", "b*"]}})
    assert not hf.is_valid({"kind": "hf_retrieval", "root": "d", "source": "parquet", "path": "x.parquet"})
    assert not hf.is_valid({"kind": "hf_retrieval", "root": "d", "path": {"train": "a"}})  # disk needs a folder
    assert not hf.is_valid({"kind": "hf_retrieval", "root": "d", "path": "x", "columns": {"image": "image"}})


@pytest.mark.parametrize("collection", ["coco", "flickr30k"])
@pytest.mark.parametrize("form", ["karpathy", "lavis"])
def test_official_format_converts_to_the_native_dataset(
    formats: dict[str, Any], collection: str, form: str, tmp_path: Path
) -> None:
    spec = adapter_spec(Karpathy, formats["root"], collection=collection, format=form, **WHOLE)
    assert Karpathy().check(spec) == []
    record = Karpathy().prepare(spec, tmp_path)
    assert {s: record["splits"][s]["images"] for s in SPLITS} == SIZES
    assert_same(tmp_path, formats["native"])
    image_root = formats["root"] / collection / "images"
    expected_root = image_root / "flickr30k-images" if (collection, form) == ("flickr30k", "karpathy") else image_root
    assert Path(record["image_root"]) == expected_root.resolve()


@pytest.mark.parametrize(
    "keys",
    [
        {"path": "hf/coco_karpathy"},
        {
            "source": "parquet",
            "path": {
                "train": "hf/coco_karpathy-train.parquet",
                "validation": "hf/*-validation.parquet",
                "test": ["hf/coco_karpathy-test.parquet"],
            },
        },
    ],
    ids=["disk", "parquet"],
)
def test_hf_dataset_converts_to_the_native_dataset(formats: dict[str, Any], keys: dict, tmp_path: Path) -> None:
    spec = adapter_spec(HfRetrieval, formats["root"], **keys, **WHOLE)
    assert HfRetrieval().check(spec) == []
    HfRetrieval().prepare(spec, tmp_path)
    assert_same(tmp_path, formats["native"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert Path(manifest["image_root"]) == tmp_path.resolve()  # embedded bytes were written here, once
    assert len(list((tmp_path / "images").glob("*/*.png"))) == sum(SIZES.values())


def test_hf_json_rows_per_image_with_image_paths(formats: dict[str, Any], tmp_path: Path) -> None:
    """One row per image, captions a list, ids ``"coco_<id>"``, images as paths under root."""
    root, files = formats["root"], {}
    for split, name in (("train", "train"), ("val", "validation"), ("test", "test")):
        captions = read_captions(formats["native_dir"], split)
        rows = [
            {"file": f"coco/images/{formats['written']['coco']['ids'][i]}", "texts": caps, "key": f"coco_{i}"}
            for i, caps in reversed(captions.items())  # row order must not matter for images
        ]
        files[name] = f"json/{name}.jsonl"
        (root / "json").mkdir(exist_ok=True)
        (root / files[name]).write_text("".join(json.dumps(r) + "\n" for r in rows))
    columns = {"image": "file", "caption": "texts", "image_id": "key"}
    spec = adapter_spec(HfRetrieval, root, source="json", path=files, columns=columns, **WHOLE)
    HfRetrieval().prepare(spec, tmp_path)
    assert_same(tmp_path, formats["native"])
    assert json.loads((tmp_path / "manifest.json").read_text())["image_root"] == str(root.resolve())


def test_official_size_mismatch_is_an_error_unless_a_subset_is_asked_for(
    formats: dict[str, Any], tmp_path: Path
) -> None:
    path = formats["root"] / "coco" / "annotations" / "dataset_coco.json"
    with pytest.raises(DataFileError) as caught:
        Karpathy().prepare(adapter_spec(Karpathy, formats["root"], collection="coco"), tmp_path / "all")
    for part in (str(path), "split 'train'", "24 images", "113287", "subset"):
        assert part in str(caught.value)
    subset = {"train": 10, "val": 8, "test": 8}
    record = Karpathy().prepare(adapter_spec(Karpathy, formats["root"], collection="coco", subset=subset), tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["subset"]["train"] == {"images": 10, "of_images": 24, "texts": 50, "official_images": 113287}
    assert record["subset"] == manifest["subset"]
    assert load_split(tmp_path, "train").image_ids == formats["native"]["train"].image_ids[:10]


@pytest.mark.parametrize("collection, form", [("coco", "karpathy"), ("flickr30k", "lavis")])
def test_check_lists_missing_files_and_the_layout(tmp_path: Path, collection: str, form: str) -> None:
    problems = Karpathy().check(adapter_spec(Karpathy, tmp_path, collection=collection, format=form))
    assert [key for key, _ in problems] == ["root"]
    message = problems[0][1]
    expected = ["dataset_coco.json"] if form == "karpathy" else ["train.json", "val.json", "test.json"]
    for name in expected:
        assert str(tmp_path / collection / "annotations" / name) in message
    assert ("COCO_val2014_<12-digit id>.jpg" if collection == "coco" else "flickr30k-images/<id>.jpg") in message


def copy_annotations(root: Path, new_root: Path, collection: str) -> Path:
    """The annotation folder of ``collection`` alone under ``new_root`` (errors come before images are read)."""
    shutil.copytree(root / collection / "annotations", new_root / collection / "annotations")
    return new_root / collection / "annotations"


def test_malformed_json_names_the_file(formats: dict[str, Any], tmp_path: Path) -> None:
    folder = copy_annotations(formats["root"], tmp_path / "root", "coco")
    (folder / "coco_karpathy_val.json").write_text('[{"image": "val2014/x.jpg", "caption": [')
    spec = adapter_spec(Karpathy, tmp_path / "root", collection="coco", format="lavis", **WHOLE)
    with pytest.raises(DataFileError, match="coco_karpathy_val.json is not valid JSON"):
        Karpathy().prepare(spec, tmp_path / "out")


def _no_sentences(data: dict) -> None:
    del data["images"][3]["sentences"]


def _unknown_split(data: dict) -> None:
    data["images"][3]["split"] = "testing"


def _train_image_in_test(data: dict) -> None:
    data["images"].append({**data["images"][0], "split": "test"})


def _val_image_twice(data: dict) -> None:
    data["images"].append(next(image for image in data["images"] if image["split"] == "val"))


@pytest.mark.parametrize(
    "damage, expected",
    [
        (_no_sentences, r"images\[3\] lacks key 'sentences'"),
        (_unknown_split, r"images\[3\] has split 'testing'; allowed: train, restval, val, test"),
        (_train_image_in_test, r"image id 1000000 .* is in split 'test' here and already in split 'train'"),
        (_val_image_twice, r"image id 2000000 .* appears twice in split 'val'"),
    ],
    ids=["missing-key", "unknown-split", "id-in-two-splits", "id-twice-in-a-split"],
)
def test_bad_karpathy_content_names_the_file_and_the_value(
    formats: dict[str, Any], tmp_path: Path, damage: Any, expected: str
) -> None:
    folder = copy_annotations(formats["root"], tmp_path / "root", "coco")
    data = json.loads((folder / "dataset_coco.json").read_text())
    damage(data)
    (folder / "dataset_coco.json").write_text(json.dumps(data))
    with pytest.raises(DataFileError, match=expected) as caught:
        Karpathy().prepare(adapter_spec(Karpathy, tmp_path / "root", collection="coco", **WHOLE), tmp_path / "out")
    assert str(folder / "dataset_coco.json") in str(caught.value)


def test_lavis_image_in_two_files_names_both(formats: dict[str, Any], tmp_path: Path) -> None:
    folder = copy_annotations(formats["root"], tmp_path / "root", "flickr30k")
    train = json.loads((folder / "train.json").read_text())
    test = json.loads((folder / "test.json").read_text())
    test.append({"image": train[0]["image"], "caption": ["a leaked image"]})
    (folder / "test.json").write_text(json.dumps(test))
    spec = adapter_spec(Karpathy, tmp_path / "root", collection="flickr30k", format="lavis", **WHOLE)
    with pytest.raises(DataFileError, match="already in split 'train'") as caught:
        Karpathy().prepare(spec, tmp_path / "out")
    assert str(folder / "test.json") in str(caught.value) and str(folder / "train.json") in str(caught.value)


def test_hf_unknown_split_or_column_is_named(formats: dict[str, Any], tmp_path: Path) -> None:
    splits = {"train": "train", "val": "valid", "test": "test"}
    spec = adapter_spec(HfRetrieval, formats["root"], path="hf/coco_karpathy", splits=splits, **WHOLE)
    assert "valid/state.json" in HfRetrieval().check(spec)[0][1]
    with pytest.raises(DataFileError, match=r"has no split 'valid' \(splits.val\); it has \['test', 'train'"):
        HfRetrieval().prepare(spec, tmp_path / "a")
    columns = {"image": "image", "caption": "captions", "image_id": "cocoid"}
    spec = adapter_spec(HfRetrieval, formats["root"], path="hf/coco_karpathy", columns=columns, **WHOLE)
    with pytest.raises(DataFileError, match=r"has no column\(s\) \['captions'\]"):
        HfRetrieval().prepare(spec, tmp_path / "b")


@pytest.mark.integration  # an official-size fixture (make test; make test-fast leaves it)
def test_coco_size_fixture_passes_the_official_check_and_fails_one_caption_short(tmp_path: Path) -> None:
    """5,000 val/test images and 25,010 test captions as in COCO Karpathy (~8 s, mostly writing 10,200 JPEGs)."""
    from tests.fixtures.official_formats import write_big_retrieval_fixture

    written = write_big_retrieval_fixture(tmp_path / "big")
    train = written["splits"]["train"]["images"]
    for form in ("karpathy", "lavis"):
        spec = adapter_spec(Karpathy, tmp_path / "big", collection="coco", format=form, subset={"train": train})
        record = Karpathy().prepare(spec, tmp_path / form)
        assert record["splits"]["test"] == {"images": 5000, "captions": 25010, "objects": 0, "refs": 0}
        assert record["splits"]["val"]["images"] == 5000
    path = tmp_path / "big" / "coco" / "annotations" / "dataset_coco.json"
    data = json.loads(path.read_text())
    next(image for image in data["images"] if image["split"] == "test")["sentences"].pop()
    path.write_text(json.dumps(data))
    spec = adapter_spec(Karpathy, tmp_path / "big", collection="coco", subset={"train": train})
    with pytest.raises(DataFileError) as caught:
        Karpathy().prepare(spec, tmp_path / "short")
    for part in (str(path), "split 'test'", "25009 texts", "25010"):
        assert part in str(caught.value)


def test_coco_instances_give_every_image_its_objects_and_categories(formats: dict[str, Any], tmp_path: Path) -> None:
    """``instances: true`` reads COCO's instances_{train,val}2014.json: the native boxes and categories come back."""
    from benchmark.data.concepts import concept_vocabulary
    from tests.fixtures.official_formats import write_coco_instances

    root = tmp_path / "root"
    shutil.copytree(formats["root"] / "coco", root / "coco")
    write_coco_instances(formats["native_dir"], root)
    spec = adapter_spec(Karpathy, root, collection="coco", instances=True, transform="resize", **WHOLE)
    assert Karpathy().check(spec) == []
    Karpathy().prepare(spec, tmp_path / "build")
    for split in SPLITS:
        got, want = load_split(tmp_path / "build", split), formats["native"][split]
        assert [b.tolist() for b in got.boxes] == [b.tolist() for b in want.boxes], split
        assert [c.tolist() for c in got.categories] == [c.tolist() for c in want.categories], split
        assert got.refs == []
    # late fusion's concepts on COCO are the categories only (COCO has no colour attributes)
    native_concepts = concept_vocabulary(formats["native"]["train"])
    got_concepts = concept_vocabulary(load_split(tmp_path / "build", "train"))
    assert got_concepts == tuple(c for c in native_concepts if c.startswith("category:")) and got_concepts
    bad = {**spec, "transform": "center_crop"}
    assert [key for key, _ in Karpathy().check(bad)] == ["transform"]
    assert [key for key, _ in Karpathy().check({**spec, "collection": "flickr30k"})] == ["instances"]


def test_an_unreadable_image_is_named_at_conversion(formats: dict[str, Any], tmp_path: Path) -> None:
    """``verify_images`` decodes a sample of every split (or, opt-in, every image) before any job trains."""
    root = tmp_path / "root"
    shutil.copytree(formats["root"] / "coco", root / "coco")
    first_test = formats["written"]["coco"]["ids"][formats["native"]["test"].image_ids[0]]
    broken = root / "coco" / "images" / first_test
    broken.write_bytes(broken.read_bytes()[:40])  # a truncated download
    spec = adapter_spec(Karpathy, root, collection="coco", **WHOLE)
    with pytest.raises(DataFileError, match=str(broken.name)):
        Karpathy().prepare({**spec, "verify_images": "all"}, tmp_path / "all")
    with pytest.raises(DataFileError, match=str(broken.name)):  # the sample includes each split's first image
        Karpathy().prepare(spec, tmp_path / "sample")
