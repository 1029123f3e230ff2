"""FuseBench's standard form of a dataset: COCO-format instances (boxes), captions and referring expressions.

A dataset folder holds, per split ``s``::

    images/<s>/<image_id>.png
    annotations/instances_<s>.json   COCO instances: images, annotations (bbox xywh), categories
    annotations/captions_<s>.json    COCO captions: images, annotations {image_id, caption}
    annotations/refs_<s>.json        referring expressions: {ref_id, image_id, sentence, ann_ids, kind}
    manifest.json                    what was built, from which spec, with a sha256 per file

The same layout is what a converter for COCO / RefCOCO / Flickr30k writes, so one loader
reads synthetic and real data.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from benchmark.errors import DataFileError
from benchmark.io import read_json

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
RESIDENT_MAX_MB = 2048
"""Default ``resident_max_mb``: splits up to this many MB of uint8 pixels are decoded once and kept resident."""


DATASET_PARTS = ("images", "captions", "instances", "refs")
"""The parts a dataset in the standard form can provide; a task ``requires`` some, an adapter ``provides`` some."""


def instances_path(root: Path, split: str) -> Path:
    return root / "annotations" / f"instances_{split}.json"


def captions_path(root: Path, split: str) -> Path:
    return root / "annotations" / f"captions_{split}.json"


def refs_path(root: Path, split: str) -> Path:
    return root / "annotations" / f"refs_{split}.json"


def image_path(root: Path, split: str, file_name: str) -> Path:
    return root / "images" / split / file_name


def load_coco(path: Path) -> Any:
    """Load a COCO instances file with pycocotools (quietly), naming the file on failure."""
    from pycocotools.coco import COCO

    if not path.is_file():
        raise DataFileError(f"COCO annotation file not found: {path}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except Exception as exc:  # pycocotools raises bare AssertionError/JSONDecodeError
        raise DataFileError(f"COCO annotation file {path} is unreadable or malformed: {exc!r}") from None


def read_manifest(root: Path) -> dict[str, Any]:
    """The dataset's manifest; a missing one means the dataset was never (fully) built."""
    manifest = read_json(root / MANIFEST, what="dataset manifest")
    if "splits" not in manifest or "spec" not in manifest:
        raise DataFileError(f"dataset manifest {root / MANIFEST} lacks 'splits' or 'spec'; rebuild the dataset")
    return manifest


def manifest_parts(manifest: dict[str, Any]) -> tuple[str, ...]:
    """The parts the dataset provides (``parts``; every part when the manifest predates the key)."""
    parts = manifest.get("parts", list(DATASET_PARTS))
    unknown = sorted(set(parts) - set(DATASET_PARTS))
    if unknown:
        raise DataFileError(f"dataset manifest names unknown part(s) {unknown}; known: {', '.join(DATASET_PARTS)}")
    return tuple(parts)


def read_captions(root: Path, split: str) -> dict[int, list[str]]:
    """Captions per image id, in file order."""
    path = captions_path(root, split)
    data = read_json(path, what="captions file")
    try:
        captions: dict[int, list[str]] = {int(img["id"]): [] for img in data["images"]}
        for ann in data["annotations"]:
            captions[int(ann["image_id"])].append(str(ann["caption"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFileError(f"captions file {path} is malformed: {exc!r}") from None
    return captions


def read_refs(root: Path, split: str) -> list[dict[str, Any]]:
    """Referring expressions in file order."""
    path = refs_path(root, split)
    data = read_json(path, what="referring-expression file")
    refs = data.get("refs") if isinstance(data, dict) else None
    if not isinstance(refs, list):
        raise DataFileError(f"referring-expression file {path} has no 'refs' list")
    return refs
