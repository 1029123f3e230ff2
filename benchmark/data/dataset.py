"""Read one split of a dataset in the standard form: pixels, captions, boxes and expressions.

Every image is brought to the model resolution (``image_size`` in the manifest) by the
dataset's transform (:mod:`benchmark.data.images`); boxes are rescaled into that
``size × size`` frame, so everything downstream normalises by one side length. A split that
fits in ``resident_max_mb`` is decoded once and kept resident (the synthetic scenes: the
fast path of a 2-core CPU run); a larger one is decoded lazily, batch by batch.

Parts a dataset does not provide (``parts`` in the manifest: a captions-only retrieval set has
no boxes, a grounding set no captions) come back empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.data.compositional import SUBSETS
from benchmark.data.images import ImageFiles, Images, load_images, take_head
from benchmark.data.standard_form import (
    RESIDENT_MAX_MB,
    SPLITS,
    image_path,
    instances_path,
    load_coco,
    manifest_parts,
    read_captions,
    read_manifest,
    read_refs,
)
from benchmark.errors import DataFileError
from benchmark.io import read_json


@dataclass
class SceneSplit:
    """One split: images (uint8, N×3×H×W), captions per image, boxes and referring expressions."""

    name: str
    image_ids: list[int]
    images: Images  # N×3×S×S uint8: resident tensor, or decoded lazily from the files
    captions: list[list[str]]
    boxes: list[np.ndarray]  # per image: K×4 xywh pixels of the model frame
    categories: list[np.ndarray]  # per image: K category ids
    refs: list[dict[str, Any]] = field(default_factory=list)  # image_index, sentence, boxes (xywh), kind
    category_names: dict[int, str] = field(default_factory=dict)
    objects: list[list[dict[str, str]]] = field(default_factory=list)  # per image: category + attributes
    augment: dict[str, Any] = field(default_factory=dict)  # training augmentation (train split only)
    original_sizes: list[tuple[int, int]] = field(default_factory=list)  # per image (width, height) of its file
    # compositional split (benchmark.data.compositional): "seen" / "held_out" per image and per caption, and
    # each ref's "subset"; empty when the split is not tagged
    image_subsets: list[str] = field(default_factory=list)
    caption_subsets: list[list[str]] = field(default_factory=list)

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
            images=take_head(self.images, count),
            captions=self.captions[:count],
            boxes=self.boxes[:count],
            categories=self.categories[:count],
            objects=self.objects[:count],
            original_sizes=self.original_sizes[:count],
            refs=[r for r in self.refs if r["image_index"] < count],
            image_subsets=self.image_subsets[:count],
            caption_subsets=self.caption_subsets[:count],
        )

    @property
    def tagged(self) -> bool:
        """Whether images, captions and expressions carry seen / held-out tags."""
        return bool(self.image_subsets)

    def untagged(self) -> SceneSplit:
        """The same split without seen / held-out tags (its evaluations report no subset metrics)."""
        if not self.tagged:
            return self
        refs = [{k: v for k, v in r.items() if k != "subset"} for r in self.refs]
        return replace(self, image_subsets=[], caption_subsets=[], refs=refs)

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


def _image_files(root: Path, split: str, manifest: dict[str, Any], records: list[dict[str, Any]]) -> ImageFiles:
    """Where each image of ``split`` is and how it becomes model input, from the manifest's loading keys."""
    image_root = manifest.get("image_root")
    paths = tuple(
        str(Path(image_root) / r["file_name"]) if image_root else str(image_path(root, split, r["file_name"]))
        for r in records
    )
    expected = tuple(
        (int(r["width"]), int(r["height"])) if r.get("width") and r.get("height") else None for r in records
    )
    return ImageFiles(
        paths,
        image_size_of(manifest),
        manifest.get("transform", "resize"),
        expected,
        workers=max(1, torch.get_num_threads()),
        origin=_files_origin(root, split, manifest),
    )


def _files_origin(root: Path, split: str, manifest: dict[str, Any]) -> str:
    """Where a split's image files come from, for a decoding error at training time: the data folder and, for
    official files read in place, what conversion checked and how to check every image before any job."""
    origin = f"split {split!r} of the data in {root}"
    spec = manifest.get("spec", {})
    if not manifest.get("image_root") or "verify_images" not in spec:
        return origin
    origin += f" (a {spec.get('kind', '?')} dataset read from {spec.get('root', manifest['image_root'])})"
    if spec["verify_images"] == "all":
        return f"{origin}; conversion decoded every image, so the file changed since: rebuild the data"
    return (
        f"{origin}; conversion checked every image's header, size and end marker but decoded only a sample: "
        "set 'verify_images: all' in the dataset's block to decode every image before any job trains"
    )


def image_size_of(manifest: dict[str, Any]) -> int:
    """The model resolution: the manifest's ``image_size``, else the generated scenes' own size."""
    size = manifest.get("image_size", manifest.get("spec", {}).get("image_size"))
    if not isinstance(size, int):
        raise DataFileError("dataset manifest states no integer 'image_size' (the model resolution)")
    return size


def _scale(boxes: np.ndarray, record: dict[str, Any], size: int) -> np.ndarray:
    """xywh pixel boxes of the original image → the ``size × size`` model frame (``resize`` transform)."""
    width, height = record.get("width"), record.get("height")
    if not width or not height:
        raise DataFileError(f"image {record.get('id')} has boxes but no width/height in its instances file")
    if (width, height) == (size, size):
        return boxes
    return boxes * np.array([size / width, size / height, size / width, size / height], dtype=np.float32)


def _subset_tags(
    root: Path,
    split: str,
    manifest: dict[str, Any],
    image_ids: list[int],
    captions: dict[int, list[str]],
    refs: list[dict[str, Any]],
) -> tuple[list[str], list[list[str]]]:
    """Seen / held-out tags per image and per caption from the sidecar the manifest lists for ``split``
    (``compositional.tags``); each ref gets its ``subset``. Nothing when the split is not tagged."""

    relative = (manifest.get("compositional") or {}).get("tags", {}).get(split)
    if not relative:
        return [], []
    path = root / relative
    data = read_json(path, what="compositional tags file")
    try:
        by_image = {int(i["id"]): (str(i["subset"]), [str(t) for t in i["captions"]]) for i in data["images"]}
        by_ref = {int(r["ref_id"]): str(r["subset"]) for r in data["refs"]}
        image_subsets = [by_image[i][0] for i in image_ids]
        caption_subsets = [by_image[i][1] for i in image_ids]
        ref_subsets = [by_ref[r["ref_id"]] for r in refs]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFileError(f"compositional tags file {path} is malformed or misses an item: {exc!r}") from None
    wrong_count = [i for i, tags in zip(image_ids, caption_subsets) if len(tags) != len(captions[i])]
    if wrong_count:
        raise DataFileError(
            f"compositional tags file {path}: caption tags do not match the captions of images {wrong_count[:5]}"
        )
    unknown = sorted({*image_subsets, *(t for tags in caption_subsets for t in tags), *ref_subsets} - set(SUBSETS))
    if unknown:
        raise DataFileError(f"compositional tags file {path}: unknown tag(s) {unknown}; allowed: {', '.join(SUBSETS)}")
    for ref, subset in zip(refs, ref_subsets):
        ref["subset"] = subset
    return image_subsets, caption_subsets


def load_split(root: str | Path, split: str) -> SceneSplit:
    """Load ``split`` of the dataset at ``root``; every failure names the offending file."""
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    manifest = read_manifest(root)
    parts = manifest_parts(manifest)
    coco = load_coco(instances_path(root, split))
    image_ids = sorted(coco.getImgIds())
    records = coco.loadImgs(image_ids)
    files = _image_files(root, split, manifest, records)
    if "instances" in parts and files.transform != "resize":
        raise DataFileError(f"dataset {root} has boxes, so its transform must be 'resize', not {files.transform!r}")
    images = load_images(files, float(manifest.get("resident_max_mb", RESIDENT_MAX_MB)))
    size = files.size
    captions_by_id = read_captions(root, split) if "captions" in parts else {i: [] for i in image_ids}
    missing = [] if "captions" not in parts else [i for i in image_ids if not captions_by_id.get(i)]
    if missing:
        raise DataFileError(
            f"captions file for split {split!r} under {root} has no caption for image ids {missing[:5]}"
        )
    boxes, categories, objects = [], [], []
    category_names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    ann_by_id: dict[int, dict[str, Any]] = {}
    for image_id, record in zip(image_ids, records):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        anns.sort(key=lambda a: a["id"])
        scaled = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        scaled = _scale(scaled, record, size) if anns else scaled
        ann_by_id.update({a["id"]: {**a, "bbox": box} for a, box in zip(anns, scaled)})
        boxes.append(scaled)
        categories.append(np.array([a["category_id"] for a in anns], dtype=np.int64))
        objects.append(
            [
                {"category": category_names[a["category_id"]], **{k: str(a[k]) for k in ("color", "size") if k in a}}
                for a in anns
            ]
        )
    index_of = {image_id: k for k, image_id in enumerate(image_ids)}
    refs = []
    for ref in read_refs(root, split) if "refs" in parts else []:
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
    image_subsets, caption_subsets = _subset_tags(root, split, manifest, image_ids, captions_by_id, refs)
    return SceneSplit(
        image_subsets=image_subsets,
        caption_subsets=caption_subsets,
        augment=dict(manifest.get("train_augment") or {}) if split == "train" else {},
        original_sizes=[(int(r.get("width") or size), int(r.get("height") or size)) for r in records],
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
