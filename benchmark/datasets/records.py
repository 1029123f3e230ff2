"""Reading official annotation records: typed fields with messages that name the entry, and captions per split.

Shared by the adapters of caption datasets (Karpathy/LAVIS JSON, 🤗 datasets, WebDataset): every
image id belongs to exactly one split, a caption row of a known image adds a caption, and every
failure is a :class:`~benchmark.errors.DataFileError` naming the file, the entry and the key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.datasets.official import SPLITS, ConvertedSplit
from benchmark.errors import DataFileError
from benchmark.io import read_json

COCO_TRAIN_FOLDER = "train2014"
"""The COCO image folder RefCOCO/+/g and gRefCOCO images come from."""
_TRAILING_NUMBER = re.compile(r"(\d+)$")


def image_number(name: str, where: str) -> int:
    """The number that ends a file stem: ``COCO_val2014_000000328757.jpg`` → 328757, ``1000092795.jpg`` → 1000092795."""
    match = _TRAILING_NUMBER.search(Path(name).stem)
    if match is None:
        raise DataFileError(f"{where}: image file name {name!r} does not end in a number (the image id)")
    return int(match.group(1))


def field(record: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``record[key]``, checked to be of ``kind``; a DataFileError naming ``where`` and ``key`` otherwise."""
    if not isinstance(record, dict):
        raise DataFileError(f"{where} is a {type(record).__name__}, expected an object with key {key!r}")
    if key not in record:
        raise DataFileError(f"{where} lacks key {key!r}")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise DataFileError(f"{where}: {key!r} is {value!r} ({type(value).__name__}), expected {expected}")
    return value


def text(value: Any, where: str) -> str:
    """A caption as FuseBench keeps it: the string with surrounding white space stripped."""
    if not isinstance(value, str):
        raise DataFileError(f"{where}: caption {value!r} is a {type(value).__name__}, expected a string")
    return value.strip()


class SplitCollector:
    """Images and captions per FuseBench split, each image id in exactly one split."""

    def __init__(self) -> None:
        self.files: dict[str, dict[int, str]] = {s: {} for s in SPLITS}  # split → id → file name
        self.captions: dict[str, dict[int, list[str]]] = {s: {} for s in SPLITS}
        self.origin: dict[int, tuple[str, str]] = {}  # id → (split, file it was read from)

    def add(
        self, split: str, image_id: int, file_name: str, captions: list[str], where: str, source: str, merge: bool
    ) -> None:
        """Add an image; with ``merge`` (rows per caption), a repeat in the same split and file adds captions."""
        known = self.origin.get(image_id)
        if known is None:
            self.origin[image_id] = (split, source)
            self.files[split][image_id] = file_name
            self.captions[split][image_id] = list(captions)
            return
        if known[0] != split:
            raise DataFileError(
                f"{where}: image id {image_id} ({file_name}) is in split {split!r} here and already in split "
                f"{known[0]!r} (read from {known[1]}); an image may belong to one split only"
            )
        if not merge or known[1] != source or self.files[split][image_id] != file_name:
            raise DataFileError(
                f"{where}: image id {image_id} ({file_name}) appears twice in split {split!r} "
                f"(first as {self.files[split][image_id]} in {known[1]})"
            )
        self.captions[split][image_id].extend(captions)

    def converted(self) -> dict[str, ConvertedSplit]:
        splits = {}
        for name in SPLITS:
            empty = [i for i, caps in self.captions[name].items() if not caps]
            if empty:
                split, source = self.origin[empty[0]]
                raise DataFileError(f"{source}: image id {empty[0]} of split {split!r} has no caption")
            splits[name] = ConvertedSplit(
                images=[{"id": i, "file_name": f} for i, f in self.files[name].items()],
                captions=[{"image_id": i, "caption": c} for i, caps in self.captions[name].items() for c in caps],
            )
        return splits


@dataclass(frozen=True)
class Instances:
    """A COCO instances file indexed: image records, annotations and categories."""

    images: dict[int, dict[str, Any]]  # id → {file_name (relative to the image root), width, height}
    annotations: dict[int, dict[str, Any]]  # id → {id, image_id, category_id, bbox}
    categories: list[dict[str, Any]]

    def objects_of(self, image_ids: set[int]) -> list[dict[str, Any]]:
        """Every annotation of these images."""
        return [a for a in self.annotations.values() if a["image_id"] in image_ids]


def read_instances(path: Path, what: str, folder: str = COCO_TRAIN_FOLDER) -> Instances:
    """A COCO instances file (REFER's and gRefCOCO's ``instances.json``, COCO's ``instances_*2014.json``);
    image file names are put under ``folder``; a malformed entry raises DataFileError naming the file."""

    data = read_json(path, what=what)
    try:
        images = {int(i["id"]): image_record(i, folder) for i in data["images"]}
        annotations = {
            int(a["id"]): annotation_record(a, int(a["image_id"]), int(a["id"]), path) for a in data["annotations"]
        }
        categories = [{"id": int(c["id"]), "name": str(c["name"])} for c in data["categories"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataFileError(f"{what} {path} is malformed: {exc!r}") from None
    return Instances(images, annotations, categories)


def image_record(image: dict[str, Any], folder: str = COCO_TRAIN_FOLDER) -> dict[str, Any]:
    """A COCO image entry as the standard form's image record (file under ``folder``, default ``train2014/``)."""
    return {
        "file_name": f"{folder}/{image['file_name']}",
        "width": int(image["width"]),
        "height": int(image["height"]),
    }


def annotation_record(ann: dict[str, Any], image_id: int, ann_id: int, path: Path) -> dict[str, Any]:
    """The fields of a COCO annotation the standard form keeps, its box checked."""
    bbox = ann["bbox"]
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
        raise DataFileError(f"{path}: annotation {ann_id} has bbox {bbox!r}, expected [x, y, width, height]")
    if not all(math.isfinite(v) for v in bbox) or bbox[2] < 0 or bbox[3] < 0:
        raise DataFileError(f"{path}: annotation {ann_id} has bbox {bbox!r}, not a finite box")
    box = [float(v) for v in bbox]
    return {"id": ann_id, "image_id": image_id, "category_id": int(ann["category_id"]), "bbox": box}
