"""Table footers of a dataset pretrained on another name that dataset's files (sha256) and subset (issue 26, item 7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.report.aggregate import data_footer

COCO = {
    "official_format": "karpathy",
    "sources": {"/data/coco/dataset_coco.json": "a1b2c3d4e5f6a7b8c9d0", "/data/coco/train2014": "0f1e2d3c4b5a69788796"},
    "subset": {"train": {"images": 24, "of_images": 113287, "official_images": 113287}},
    "leakage_guard": {"removed_train_images": 3, "excluded_evaluation_images_of": ["refcoco_testa"]},
}
REFCOCO = {
    "official_format": "refer",
    "sources": {"/data/refcoco/refs(unc).p": "99887766554433221100"},
    "subset": {"test": {"images": 8, "of_images": 750}},
}


def evaluation(dataset: str, note: dict[str, Any], pretraining: dict[str, Any] | None) -> tuple[Path, dict[str, Any]]:
    protocol: dict[str, Any] = {"dataset": note}
    if pretraining is not None:
        protocol["pretraining_data"] = pretraining
    return Path(f"{dataset}.json"), {"spec": {"dataset": dataset, "stage": "evaluate"}, "protocol": protocol}


def test_a_dataset_pretrained_elsewhere_names_that_datasets_files_and_subset() -> None:
    footer = data_footer([evaluation("refcoco_testa", REFCOCO, {"dataset": "coco", **COCO})])
    assert footer == (
        "refcoco_testa (pretrained on coco [dataset_coco.json sha256 a1b2c3d4e5f6; train2014 sha256 0f1e2d3c4b5a; "
        "subset train 24 of 113287 images, official 113,287]; refs(unc).p sha256 998877665544; "
        "subset test 8 of 750 images; 3 train images removed (evaluation images of refcoco_testa))"
    )


def test_a_dataset_pretrained_on_itself_names_its_files_once() -> None:
    footer = data_footer([evaluation("coco", COCO, {"dataset": "coco", **COCO})])
    assert "pretrained on" not in footer and footer.count("dataset_coco.json sha256 a1b2c3d4e5f6") == 1


def test_pretraining_data_from_before_its_files_were_recorded_still_names_the_dataset() -> None:
    footer = data_footer([evaluation("refcoco_testa", REFCOCO, {"dataset": "coco"})])
    assert footer.startswith("refcoco_testa (pretrained on coco; refs(unc).p sha256")
