"""Leakage guard: RefCOCO evaluation images never reach the COCO split that methods pretrain on.

RefCOCO/+/g val and test images are COCO train2014 images, so Karpathy's COCO train split
holds many of them. The fixture reproduces that: REFER refs on some Karpathy *train* images are
moved to RefCOCO's testA and val. The profile's wiring (``pretrain_from``) puts the RefCOCO
dataset into the COCO dataset's ``exclude_images``; converting COCO then drops exactly those
images (and their captions), and records how many.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from benchmark.config import load_config, stage_spec
from benchmark.paths import PROFILES_DIR
from tests.helpers import build_small_scenes

GUARDED = ("refcoco_testa", "refcoco_testb", "refcocoplus_testa", "refcocoplus_testb", "refcocog_test")
"""refcoco.yaml's datasets, all pretrained from COCO."""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[int]]:
    """Karpathy COCO + REFER RefCOCO written from the same scenes; returns (root, leaked image ids)."""
    from tests.fixtures.official_formats import write_coco_instances, write_karpathy, write_refer

    tmp = tmp_path_factory.mktemp("leakage")
    build_small_scenes(tmp / "native", {"train": 40, "val": 8, "test": 8})
    written = write_karpathy(tmp / "native", tmp / "root", "coco", lossless=True)
    write_coco_instances(tmp / "native", tmp / "root")
    for collection in ("refcoco", "refcoco+", "refcocog"):
        write_refer(tmp / "native", tmp / "root", collection, lossless=True, test_split="testA+testB")
    karpathy_train = sorted(i for i, path in written["ids"].items() if path.startswith("train2014/"))
    refs_file = tmp / "root" / "refcoco" / "refs(unc).p"
    refs = pickle.loads(refs_file.read_bytes())
    with_refs = sorted({r["image_id"] for r in refs if r["image_id"] in karpathy_train})
    moved = {image_id: ("testA", "val")[k % 2] for k, image_id in enumerate(with_refs[:6])}
    for ref in refs:
        ref["split"] = moved.get(ref["image_id"], ref["split"])
    refs_file.write_bytes(pickle.dumps(refs, protocol=2))
    return tmp / "root", set(moved)


def test_refcoco_profile_excludes_its_evaluation_images_from_coco_pretraining(
    root: tuple[Path, set[int]], tmp_path: Path
) -> None:
    from benchmark.data.dataset import load_split
    from benchmark.datasets import get_adapter

    data_root, leaked = root
    overlay = tmp_path / "overlay.yaml"
    whole = "{image_size: 32, subset: {train: all, val: all, test: all}}"
    overlay.write_text(
        "run_datasets: [refcoco_testa]\n"  # one of the five: the guard still covers all five
        "datasets:\n"
        + "".join(f"  {name}: {whole}\n" for name in ("coco", *GUARDED))
        + "model: {vision: {patch_size: 8}}\n"
    )
    config = load_config([PROFILES_DIR / "refcoco.yaml", overlay], [f"data_root={data_root}"])
    spec = stage_spec(config, "data", dataset="coco")
    assert [block["name"] for block in spec["exclude_images"]] == sorted(GUARDED)
    assert all("subset" not in block and "image_size" not in block for block in spec["exclude_images"])
    settings = {k: v for k, v in spec.items() if k not in ("stage", "dataset")}
    record = get_adapter("karpathy").prepare(settings, tmp_path / "coco")
    guard = record["leakage_guard"]
    assert guard == {"excluded_evaluation_images_of": sorted(GUARDED), "removed_train_images": len(leaked)}
    train = load_split(tmp_path / "coco", "train")
    assert not leaked & set(train.image_ids)
    refcoco = get_adapter("refer")
    refcoco.prepare(
        {k: v for k, v in stage_spec(config, "data", dataset="refcoco_testa").items() if k not in ("stage", "dataset")},
        tmp_path / "refcoco",
    )
    evaluated = set(load_split(tmp_path / "refcoco", "test").image_ids) | set(
        load_split(tmp_path / "refcoco", "val").image_ids
    )
    assert leaked <= evaluated and not evaluated & set(train.image_ids)


def test_without_pretrain_from_nothing_is_excluded(root: tuple[Path, set[int]], tmp_path: Path) -> None:
    from benchmark.datasets import get_adapter

    spec: dict[str, Any] = {
        "kind": "karpathy",
        "root": str(root[0]),
        "collection": "coco",
        "image_size": 32,
        "subset": {"train": "all", "val": "all", "test": "all"},
    }
    record = get_adapter("karpathy").prepare(spec, tmp_path / "coco")
    assert record["leakage_guard"] == {}
