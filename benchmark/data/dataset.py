"""Read a built dataset split through ``datasets`` into tensors that stay in memory.

The splits are small enough to decode once per job and keep resident (on the GPU when there
is one), which is what keeps a 2-core CPU run within minutes and a GPU run from waiting on
a data loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.data.coco import SPLITS, image_path, instances_path, load_coco, read_captions, read_manifest, read_refs
from benchmark.errors import DataFileError


@dataclass
class SceneSplit:
    """One split: images (uint8, N×3×H×W), captions per image, boxes and referring expressions."""

    name: str
    image_ids: list[int]
    images: torch.Tensor
    captions: list[list[str]]
    boxes: list[np.ndarray]  # per image: K×4 xywh pixels
    categories: list[np.ndarray]  # per image: K category ids
    refs: list[dict[str, Any]] = field(default_factory=list)  # image_index, sentence, boxes (xywh), kind
    category_names: dict[int, str] = field(default_factory=dict)
    objects: list[list[dict[str, str]]] = field(default_factory=list)  # per image: category + attributes

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def head(self, count: int | None) -> SceneSplit:
        """The first ``count`` images with their captions, boxes and expressions (all if None)."""
        if count is None or count >= len(self):
            return self
        return replace(
            self,
            image_ids=self.image_ids[:count],
            images=self.images[:count],
            captions=self.captions[:count],
            boxes=self.boxes[:count],
            categories=self.categories[:count],
            objects=self.objects[:count],
            refs=[r for r in self.refs if r["image_index"] < count],
        )

    def caption_ids(self) -> list[list[int]]:
        """Stable id of every caption (image id · 16 + position), for seeding text corruptions."""
        return [[image_id * 16 + k for k in range(len(caps))] for image_id, caps in zip(self.image_ids, self.captions)]

    def caption_pairs(self) -> tuple[list[str], list[int]]:
        """Every caption with the index of its image (the retrieval test set)."""
        texts, owners = [], []
        for index, caps in enumerate(self.captions):
            texts.extend(caps)
            owners.extend([index] * len(caps))
        return texts, owners


def _decode_images(root: Path, split: str, records: list[dict[str, Any]]) -> torch.Tensor:
    """Decode every image through a ``datasets.Dataset`` with an ``Image`` feature."""
    import datasets

    paths = [str(image_path(root, split, r["file_name"])) for r in records]
    for path in paths:
        if not Path(path).is_file():
            raise DataFileError(f"image file not found: {path}")
    table = datasets.Dataset.from_dict({"image": paths}).cast_column("image", datasets.Image())
    arrays = []
    for index, path in enumerate(paths):
        try:
            picture = table[index]["image"].convert("RGB")
        except Exception as exc:  # PIL raises several types for truncated/corrupt files
            raise DataFileError(f"image file {path} is unreadable or corrupt: {exc}") from None
        array = np.asarray(picture, dtype=np.uint8)
        if array.shape[:2] != (records[index]["height"], records[index]["width"]):
            raise DataFileError(
                f"image file {path} is {array.shape[1]}x{array.shape[0]} but the annotations say "
                f"{records[index]['width']}x{records[index]['height']}"
            )
        arrays.append(array)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_split(root: str | Path, split: str) -> SceneSplit:
    """Load ``split`` of the dataset at ``root``; every failure names the offending file."""
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    read_manifest(root)
    coco = load_coco(instances_path(root, split))
    image_ids = sorted(coco.getImgIds())
    records = coco.loadImgs(image_ids)
    images = _decode_images(root, split, records)
    captions_by_id = read_captions(root, split)
    missing = [i for i in image_ids if not captions_by_id.get(i)]
    if missing:
        raise DataFileError(
            f"captions file for split {split!r} under {root} has no caption for image ids {missing[:5]}"
        )
    boxes, categories, objects = [], [], []
    category_names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    ann_by_id: dict[int, dict[str, Any]] = {}
    for image_id in image_ids:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        anns.sort(key=lambda a: a["id"])
        ann_by_id.update({a["id"]: a for a in anns})
        boxes.append(np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4))
        categories.append(np.array([a["category_id"] for a in anns], dtype=np.int64))
        objects.append(
            [
                {"category": category_names[a["category_id"]], **{k: str(a[k]) for k in ("color", "size") if k in a}}
                for a in anns
            ]
        )
    index_of = {image_id: k for k, image_id in enumerate(image_ids)}
    refs = []
    for ref in read_refs(root, split):
        try:
            refs.append(
                {
                    "ref_id": int(ref["ref_id"]),
                    "image_index": index_of[int(ref["image_id"])],
                    "sentence": str(ref["sentence"]),
                    "boxes": np.array([ann_by_id[a]["bbox"] for a in ref["ann_ids"]], dtype=np.float32).reshape(-1, 4),
                    "kind": str(ref["kind"]),
                }
            )
        except KeyError as exc:
            raise DataFileError(
                f"referring expression {ref.get('ref_id')} in split {split!r} under {root} "
                f"points at unknown image or annotation {exc}"
            ) from None
    return SceneSplit(
        name=split,
        image_ids=image_ids,
        images=images,
        captions=[captions_by_id[i] for i in image_ids],
        boxes=boxes,
        categories=categories,
        refs=refs,
        category_names=category_names,
        objects=objects,
    )
