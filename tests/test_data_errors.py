"""A missing or corrupt dataset file fails with its path in the message."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.data.dataset import load_split
from benchmark.data.tokenizer import load_tokenizer
from benchmark.errors import DataFileError
from tests.helpers import REPO


@pytest.fixture()
def dataset_copy(tiny_dataset: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(tiny_dataset, target)
    return target


def _first_image(root: Path) -> Path:
    return sorted((root / "images" / "test").glob("*.png"))[0]


def test_missing_image_is_named(dataset_copy: Path) -> None:
    image = _first_image(dataset_copy)
    image.unlink()
    with pytest.raises(DataFileError, match=f"image file not found: {image}"):
        load_split(dataset_copy, "test")


def test_corrupt_image_is_named(dataset_copy: Path) -> None:
    image = _first_image(dataset_copy)
    image.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataFileError, match=f"image file {image} is unreadable or corrupt"):
        load_split(dataset_copy, "test")


def test_missing_manifest_is_named(dataset_copy: Path) -> None:
    (dataset_copy / "manifest.json").unlink()
    with pytest.raises(DataFileError, match=f"dataset manifest not found: {dataset_copy / 'manifest.json'}"):
        load_split(dataset_copy, "train")


def test_malformed_annotation_json_is_named(dataset_copy: Path) -> None:
    path = dataset_copy / "annotations" / "captions_val.json"
    path.write_text('{"images": [')
    with pytest.raises(DataFileError, match=f"captions file {path} is not valid JSON"):
        load_split(dataset_copy, "val")
    instances = dataset_copy / "annotations" / "instances_test.json"
    instances.write_text("[1, 2]")
    with pytest.raises(DataFileError, match=f"COCO annotation file {instances} is unreadable or malformed"):
        load_split(dataset_copy, "test")


def test_missing_tokenizer_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="tokenizer file not found: .*tok.json"):
        load_tokenizer(tmp_path / "tok.json")


def test_cli_exit_code_3_names_the_file(dataset_copy: Path, tmp_path: Path) -> None:
    (dataset_copy / "annotations" / "captions_train.json").unlink()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmark",
            "tokenizer",
            "--config",
            str(REPO / "workflows/config/smoke.yaml"),
            "--dataset",
            "scenes",
            "--data",
            str(dataset_copy),
            "--out",
            str(tmp_path / "tok.json"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 3
    assert f"captions file not found: {dataset_copy / 'annotations' / 'captions_train.json'}" in result.stderr
    assert not (tmp_path / "tok.json").exists()
