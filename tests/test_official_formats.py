"""The official-format writers produce what each official loader reads.

Every file is read back with plain json/pickle/tarfile/pycocotools/datasets, following the
official reader's own logic (REFER ``refer.py``, ReLA ``grefer.py``, ALBEF ``caption_dataset.py``,
MDETR ``refexp.py``, open_clip ``get_dataset_size``), and compared with the synthetic source.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from benchmark.data.standard_form import SPLITS, read_captions, read_refs
from benchmark.errors import ConfigError
from tests.fixtures.official_formats import (
    RESTVAL_FRACTION,
    main,
    read_native,
    write_big_retrieval_fixture,
    write_karpathy,
    write_mdetr,
    write_refer,
    write_webdataset,
)
from tests.helpers import SMALL_IMAGE_SIZE, SMALL_SCENES, build_small_scenes

REPO = Path(__file__).resolve().parent.parent
SIZES, IMAGE_SIZE = SMALL_SCENES, SMALL_IMAGE_SIZE


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_scenes(tmp_path_factory.mktemp("official") / "native")


@pytest.fixture(scope="module")
def official(native: Path) -> Path:
    """Every format, lossless, written through the command line entry point."""
    root = native.parent / "official"
    assert main(["--native", str(native), "--root", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def lossy(native: Path) -> Path:
    root = native.parent / "lossy"
    write_karpathy(native, root, "coco", lossless=False)
    write_refer(native, root, "refcoco", lossless=False)
    write_webdataset(native, root, "val", lossless=False)
    return root


def _captions(native: Path) -> dict[int, list[str]]:
    return {k: v for split in SPLITS for k, v in read_captions(native, split).items()}


def _refs(native: Path) -> dict[int, dict[str, Any]]:
    return {ref["ref_id"]: {**ref, "split": split} for split in SPLITS for ref in read_refs(native, split)}


def _ids(native: Path, split: str) -> list[int]:
    return sorted(img.image_id for img in read_native(native).images if img.split == split)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _synthetic_pixels(native: Path, image_id: int) -> np.ndarray:
    (path,) = native.glob(f"images/*/{image_id}.png")
    return _pixels(path)


# ----------------------------------------------------------------------------- Karpathy / LAVIS


def test_karpathy_coco_splits_captions_and_files(native: Path, official: Path) -> None:
    data = json.loads((official / "coco/annotations/dataset_coco.json").read_text())
    assert data["dataset"] == "coco"
    images = data["images"]
    counts = Counter(img["split"] for img in images)
    restval = round(SIZES["train"] * RESTVAL_FRACTION)
    assert counts == {"train": SIZES["train"] - restval, "restval": restval, "val": SIZES["val"], "test": SIZES["test"]}
    assert sorted(i["cocoid"] for i in images if i["split"] == "restval") == _ids(native, "train")[-restval:]
    captions = _captions(native)
    sentids = [s["sentid"] for img in images for s in img["sentences"]]
    assert sentids == list(range(len(sentids)))
    for imgid, img in enumerate(images):
        assert set(img) == {"filepath", "filename", "imgid", "cocoid", "sentids", "split", "sentences"}
        assert img["imgid"] == imgid and img["sentids"] == [s["sentid"] for s in img["sentences"]]
        assert [s["raw"] for s in img["sentences"]] == captions[img["cocoid"]]
        assert all(
            s["imgid"] == imgid and s["tokens"] == re.findall(r"\w+", s["raw"].lower()) for s in img["sentences"]
        )
        folder = "train2014" if img["split"] == "train" else "val2014"
        assert img["filepath"] == folder and img["filename"] == f"COCO_{folder}_{img['cocoid']:012d}.jpg"
        assert (official / "coco/images" / img["filepath"] / img["filename"]).is_file()


def test_karpathy_flickr_has_no_cocoid_filepath_or_restval(native: Path, official: Path) -> None:
    data = json.loads((official / "flickr30k/annotations/dataset_flickr30k.json").read_text())
    assert data["dataset"] == "flickr30k"
    assert Counter(img["split"] for img in data["images"]) == SIZES
    for img in data["images"]:
        assert set(img) == {"filename", "imgid", "sentids", "split", "sentences"}
        assert re.fullmatch(r"\d+\.jpg", img["filename"])
        assert (official / "flickr30k/images/flickr30k-images" / img["filename"]).is_file()


@pytest.mark.parametrize(
    ("collection", "files", "image_id"),
    [
        ("coco", "coco_karpathy_{}.json", re.compile(r"coco_\d+")),
        ("flickr30k", "{}.json", None),
    ],
)
def test_lavis_files_read_as_albef_does(
    native: Path, official: Path, collection: str, files: str, image_id: re.Pattern[str] | None
) -> None:
    annotations, image_root = official / collection / "annotations", official / collection / "images"
    captions = _captions(native)
    train = json.loads((annotations / files.format("train")).read_text())
    img_ids: dict[Any, int] = {}  # re_train_dataset: one index per distinct image_id
    for ann in train:
        assert set(ann) == {"image", "caption", "image_id"}
        img_ids.setdefault(ann["image_id"], len(img_ids))
        assert (image_root / ann["image"]).is_file()
        assert image_id.fullmatch(ann["image_id"]) if image_id else isinstance(ann["image_id"], int)
    assert len(img_ids) == SIZES["train"]  # Karpathy train + restval
    assert len(train) == sum(len(captions[i]) for i in _ids(native, "train"))
    for split in ("val", "test"):
        rows = json.loads((annotations / files.format(split)).read_text())
        assert len(rows) == SIZES[split]
        txt2img = [img for img, ann in enumerate(rows) for _ in ann["caption"]]  # re_eval_dataset
        assert len(txt2img) == sum(len(captions[i]) for i in _ids(native, split))
        for ann in rows:
            assert set(ann) == {"image", "caption"} and (image_root / ann["image"]).is_file()
    assert json.loads((annotations / files.format("val")).read_text())[0]["image"].startswith(
        "val2014/COCO_val2014_" if collection == "coco" else "flickr30k-images/"
    )


# ----------------------------------------------------------------------------- image bytes


@pytest.mark.parametrize(
    "pattern",
    [
        "coco/images/train2014/COCO_train2014_{:012d}.jpg",
        "flickr30k/images/flickr30k-images/{}.jpg",
    ],
)
def test_lossless_images_are_bit_identical(native: Path, official: Path, pattern: str) -> None:
    for image_id in _ids(native, "train")[:6]:
        path = official / pattern.format(image_id)
        with Image.open(path) as image:
            assert image.format == "PNG"
        np.testing.assert_array_equal(_pixels(path), _synthetic_pixels(native, image_id))


def test_lossy_images_are_jpeg_of_the_right_size(native: Path, lossy: Path) -> None:
    for image_id in _ids(native, "val")[:4]:
        for path in (
            lossy / f"coco/images/val2014/COCO_val2014_{image_id:012d}.jpg",
            lossy / f"coco/images/train2014/COCO_train2014_{image_id:012d}.jpg",
        ):
            assert path.read_bytes()[:3] == b"\xff\xd8\xff"
            pixels = _pixels(path)
            assert pixels.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
            assert np.abs(pixels.astype(int) - _synthetic_pixels(native, image_id)).mean() < 8


# ----------------------------------------------------------------------------- REFER / gRefCOCO


def test_refer_pickle_indexes_like_refer_py(native: Path, official: Path) -> None:
    raw = (official / "refcoco/refs(unc).p").read_bytes()
    assert raw[:2] == b"\x80\x02"  # pickle protocol 2, like the Python 2 originals
    refs = pickle.loads(raw)
    instances = json.loads((official / "refcoco/instances.json").read_text())
    anns = {ann["id"]: ann for ann in instances["annotations"]}  # REFER.createIndex
    imgs = {img["id"]: img for img in instances["images"]}
    synthetic = _refs(native)
    assert {r["ref_id"] for r in refs} == {i for i, r in synthetic.items() if r["kind"] == "single"}
    assert {r["split"] for r in refs} == {"train", "val", "testA", "testB"}  # write_all: testA+testB
    sent_ids = [s["sent_id"] for r in refs for s in r["sentences"]]
    assert len(set(sent_ids)) == len(sent_ids)
    for ref in refs:
        assert set(ref) == {
            "ref_id",
            "ann_id",
            "category_id",
            "image_id",
            "split",
            "sent_ids",
            "file_name",
            "sentences",
        }
        source = synthetic[ref["ref_id"]]
        assert [ref["ann_id"]] == source["ann_ids"] and anns[ref["ann_id"]]["image_id"] == ref["image_id"]
        assert ref["category_id"] == anns[ref["ann_id"]]["category_id"]
        test = ("testA", "testB")[ref["image_id"] % 2]  # even test image ids in testA, odd in testB
        assert ref["split"] == {"train": "train", "val": "val", "test": test}[source["split"]]
        (sentence,) = ref["sentences"]
        assert sentence["raw"] == sentence["sent"] == source["sentence"] and ref["sent_ids"] == [sentence["sent_id"]]
        assert sentence["tokens"] == source["sentence"].split()
        assert re.fullmatch(r"COCO_train2014_\d{12}_\d+\.jpg", ref["file_name"])
        image_name = "_".join(ref["file_name"].split("_")[:-1]) + ".jpg"  # MDETR's conversion
        assert image_name == imgs[ref["image_id"]]["file_name"]
        assert (official / "coco/images/train2014" / image_name).is_file()
    for ann in instances["annotations"]:
        assert set(ann) == {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"}
        (polygon,) = ann["segmentation"]
        assert len(polygon) == 8


def test_refer_split_conventions(native: Path, tmp_path: Path) -> None:
    refcocog = write_refer(native, tmp_path, "refcocog")
    assert Path(refcocog["refs"]).name == "refs(umd).p" and set(refcocog["splits"]) == {"train", "val", "test"}
    testb = write_refer(native, tmp_path, "refcoco+", test_split="testB")
    assert Path(testb["refs"]).name == "refs(unc).p" and "testB" in testb["splits"]
    with pytest.raises(ConfigError, match="test_split"):
        write_refer(native, tmp_path, "refcoco", test_split="testC")
    with pytest.raises(ConfigError, match="collection"):
        write_karpathy(native, tmp_path, "flickr8k")


def test_grefcoco_indexes_like_grefer(native: Path, official: Path) -> None:
    refs = json.loads((official / "grefcoco/grefs(unc).json").read_text())
    instances = json.loads((official / "grefcoco/instances.json").read_text())
    anns: dict[int, Any] = {-1: None, **{ann["id"]: ann for ann in instances["annotations"]}}  # G_REFER
    synthetic = _refs(native)
    assert {r["ref_id"] for r in refs} == set(synthetic)
    assert {r["split"] for r in refs} == {"train", "val", "testA", "testB"}
    for ref in refs:
        source = synthetic[ref["ref_id"]]
        targets = [anns[a] for a in ref["ann_id"]]
        assert ref["sentences"][0]["raw"] == source["sentence"]
        assert len(ref["category_id"]) == len(ref["ann_id"])
        if source["kind"] == "none":
            assert ref["ann_id"] == [-1] and targets == [None] and ref["no_target"] is True
        else:
            assert ref["ann_id"] == source["ann_ids"] and ref["no_target"] is False
            assert [t["category_id"] for t in targets] == ref["category_id"]
            assert all(t["image_id"] == ref["image_id"] for t in targets)
    assert Counter(r["no_target"] for r in refs)[True] == sum(r["kind"] == "none" for r in synthetic.values())


# ----------------------------------------------------------------------------- MDETR


def test_mdetr_files_load_with_pycocotools(official: Path) -> None:
    from benchmark.data.standard_form import load_coco

    refs = pickle.loads((official / "refcoco/refs(unc).p").read_bytes())
    next_id = 0
    for split in ("train", "val", "testA", "testB"):
        path = official / f"mdetr_annotations/finetune_refcoco_{split}.json"
        coco = load_coco(path)
        expected = [r for r in refs if r["split"] == split]
        assert sorted(coco.imgs) == list(range(next_id, next_id + len(expected)))  # ids run on across files
        next_id += len(expected)
        for image_id, image in coco.imgs.items():
            (ann_id,) = coco.getAnnIds(imgIds=image_id)  # RefExpEvaluator asserts exactly one box
            (ann,) = coco.loadAnns(ann_id)
            ref = next(
                r
                for r in expected
                if r["sentences"][0]["sent"] == image["caption"] and r["image_id"] == image["original_id"]
            )
            assert set(image) == {
                "file_name",
                "height",
                "width",
                "id",
                "original_id",
                "caption",
                "dataset_name",
                "tokens_negative",
            }
            assert (
                image["dataset_name"] == "refcoco"
                and (official / "coco/images/train2014" / image["file_name"]).is_file()
            )
            assert ann["original_id"] == ref["ann_id"] and ann["category_id"] == ref["category_id"]
            for beg, end in ann["tokens_positive"] + image["tokens_negative"]:
                assert 0 <= beg < end <= len(image["caption"])


def test_mdetr_refcocog_uses_the_umd_test_split(native: Path, tmp_path: Path) -> None:
    written = write_mdetr(native, tmp_path, "refcocog")
    assert [Path(p).name for p in written["paths"].values()] == [
        "finetune_refcocog_train.json",
        "finetune_refcocog_val.json",
        "finetune_refcocog_test.json",
    ]


# ----------------------------------------------------------------------------- Hugging Face


def test_hf_parquet_and_disk_copies_load_offline(
    native: Path, official: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    files = {split: str(official / f"hf/coco_karpathy-{split}.parquet") for split in ("train", "validation", "test")}
    parquet = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path))
    on_disk = datasets.load_from_disk(str(official / "hf/coco_karpathy"))
    captions = _captions(native)
    for split, members in {"train": ("train", "restval"), "validation": ("val",), "test": ("test",)}.items():
        ids = _ids(native, {"validation": "val"}.get(split, split))
        for ds in (parquet[split], on_disk[split]):
            assert isinstance(ds.features["image"], datasets.Image)
            assert ds.column_names == [
                "image",
                "filepath",
                "sentids",
                "filename",
                "imgid",
                "split",
                "sentences",
                "cocoid",
            ]
            assert ds["sentences"][0].keys() == {"tokens", "raw", "imgid", "sentid"}
            assert [s["raw"] for s in ds["sentences"]] == [c for i in ids for c in captions[i]]
            assert set(ds["split"]) == set(members)
    first = parquet["train"][0]
    np.testing.assert_array_equal(np.asarray(first["image"].convert("RGB")), _synthetic_pixels(native, first["cocoid"]))


# ----------------------------------------------------------------------------- WebDataset


def _expand(pattern: str) -> list[str]:
    (prefix, first, last, suffix) = re.fullmatch(r"(.*)\{(\d+)\.\.(\d+)\}(.*)", pattern).groups()
    return [f"{prefix}{i:0{len(first)}d}{suffix}" for i in range(int(first), int(last) + 1)]


def _samples(shard: Path) -> list[dict[str, bytes]]:
    """webdataset's group_by_keys: consecutive members with one key form a sample."""
    samples: list[dict[str, bytes]] = []
    with tarfile.open(shard) as tar:
        for member in tar.getmembers():
            key, ext = member.name.split(".", 1)
            if not samples or samples[-1]["__key__"] != key.encode() or ext in samples[-1]:
                samples.append({"__key__": key.encode()})
            samples[-1][ext] = tar.extractfile(member).read()
    return samples


def test_webdataset_shards_and_sizes(native: Path, official: Path) -> None:
    written = write_webdataset(native, official, "train", shard_size=16)
    folder = Path(written["dir"])
    shards = _expand(written["pattern"])
    sizes = json.loads((folder / "sizes.json").read_text())
    assert shards == list(sizes)
    captions = _captions(native)
    expected = [(i, c) for i in _ids(native, "train") for c in captions[i]]
    assert sum(int(sizes[name]) for name in shards) == len(expected) == written["samples"]  # open_clip get_dataset_size
    seen = []
    for shard_index, name in enumerate(shards):
        samples = _samples(folder / name)
        assert len(samples) == sizes[name]
        for index, sample in enumerate(samples):
            key = sample["__key__"].decode()
            assert key == f"{shard_index:05d}{index:04d}" and set(sample) == {"__key__", "png", "txt", "json"}
            meta = json.loads(sample["json"])
            assert meta["key"] == key and meta["caption"] == sample["txt"].decode()
            seen.append((meta["image_id"], sample["txt"].decode()))
    assert seen == expected
    first = _samples(folder / shards[0])[0]
    with Image.open(io.BytesIO(first["png"])) as image:
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), _synthetic_pixels(native, seen[0][0]))


def test_lossy_webdataset_holds_jpeg(lossy: Path) -> None:
    (shard, *_) = sorted((lossy / "webdataset/val").glob("shard-*.tar"))
    sample = _samples(shard)[0]
    assert "jpg" in sample and "png" not in sample and sample["jpg"][:3] == b"\xff\xd8\xff"


# ----------------------------------------------------------------------------- COCO-size fixture


@pytest.mark.integration  # an official-size fixture
def test_big_fixture_has_coco_karpathy_sizes(tmp_path: Path) -> None:
    written = write_big_retrieval_fixture(tmp_path)
    assert written["seconds"] < 30
    data = json.loads((tmp_path / "coco/annotations/dataset_coco.json").read_text())
    images = Counter(img["split"] for img in data["images"])
    captions = Counter()
    for img in data["images"]:
        captions[img["split"]] += len(img["sentences"])
    assert images == {"train": 200, "val": 5000, "test": 5000}
    assert captions == {"train": 1000, "val": 25_000, "test": 25_010}
    assert Counter(len(i["sentences"]) for i in data["images"] if i["split"] == "test") == {5: 4990, 6: 10}
    test_rows = json.loads((tmp_path / "coco/annotations/coco_karpathy_test.json").read_text())
    assert len(test_rows) == 5000 and sum(len(r["caption"]) for r in test_rows) == 25_010
    sample = tmp_path / "coco/images" / test_rows[0]["image"]
    assert sample.read_bytes()[:3] == b"\xff\xd8\xff" and _pixels(sample).shape == (8, 8, 3)
