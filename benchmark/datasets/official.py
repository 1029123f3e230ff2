"""What every adapter of an official dataset format shares: read, check, cut, guard, convert.

Why one module over 400 lines: the shared behaviour of every official-format adapter (the contract's
base class and the standard-form writer it ends with) reads best in one place.

An official-format adapter (Karpathy/LAVIS retrieval, REFER/MDETR/gRefCOCO grounding, ...)
reads the files a researcher already has from a local ``root`` and converts their
*annotations* into FuseBench's standard form in the run's data folder; the images are never
copied — the manifest's ``image_root`` points at the user's image folder, and every later stage
reads one form (:mod:`benchmark.data.dataset`). The adapter file implements only
:meth:`OfficialAdapter.read` (official files → :class:`Converted`) and declares its layout and
official split sizes; this base class does the rest, the same way for every format:

* ``check`` — before any job: every required file exists, else one message listing each missing
  path and the expected layout (:meth:`OfficialAdapter.layout`);
* split sizes — the official number of images (and texts) per split, checked at conversion; a
  different count is an error naming the file, the split and both numbers, unless the config
  asks for a subset (``subset: {split: N}`` keeps the first N images by id; ``all`` keeps what
  the files hold; either way the subset is recorded in the manifest, the data record and every
  result);
* leakage guard — ``exclude_images`` (filled in by the workflow from the datasets that are
  fine-tuned and evaluated from this one's pretrained models, see ``pretrain_from``) removes
  those datasets' evaluation images from this dataset's training split, as mmdetection's
  ``remove_cocotrain2017_from_refcoco.py`` does, matching images by file name; the number
  removed is recorded;
* images — at conversion, before any job trains: every image file must exist; every file's header
  is read (its format and its size, checked against the annotations) and a JPEG, PNG or GIF must end
  with its end marker, which finds a truncated copy; and a sample of each split's images (16, spread
  over the split; ``verify_images: all``: every one) is decoded as training will. A file that fails
  the cheap checks is decoded to name the problem. What only a full decode can find (damage inside
  the compressed data of a complete-looking file outside the sample) fails at training time, naming
  the file, its split and data folder, and ``verify_images: all``;
* provenance — the sha256 of every official file read goes into the manifest.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from benchmark.data.standard_form import MANIFEST, RESIDENT_MAX_MB, captions_path, instances_path, refs_path
from benchmark.datasets import get_adapter
from benchmark.datasets.base import DatasetAdapter
from benchmark.errors import DataFileError
from benchmark.io import sha256_file, write_json

SPLITS = ("train", "val", "test")
TRANSFORM_KEY = {
    "enum": ["resize", "center_crop"],
    "description": "how an image becomes image_size² (benchmark.data.images); center_crop only without boxes",
}

COMMON_PROPERTIES: dict[str, Any] = {
    "root": {
        "type": "string",
        "minLength": 1,
        "description": "folder in the official layout (default: the top-level 'data_root')",
    },
    "image_size": {"type": "integer", "minimum": 16, "maximum": 1024, "description": "model resolution in pixels"},
    "transform": TRANSFORM_KEY,
    "subset": {
        "type": "object",
        "additionalProperties": False,
        "properties": {s: {"oneOf": [{"type": "integer", "minimum": 1}, {"const": "all"}]} for s in SPLITS},
        "description": "use only the first N images (by id) of these splits, or 'all' the files hold whatever the "
        "official size; skips the official size check, and is recorded with every number",
    },
    "resident_max_mb": {
        "type": "number",
        "minimum": 0,
        "description": "splits up to this size (uint8 at image_size) stay decoded in memory; larger ones stream",
    },
    "train_augment": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "random_resized_crop": {
                "type": "object",
                "additionalProperties": False,
                "required": ["scale", "ratio"],
                "properties": {
                    "scale": {
                        "type": "array",
                        "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                    "ratio": {
                        "type": "array",
                        "items": {"type": "number", "exclusiveMinimum": 0},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                },
            }
        },
        "description": "seeded training augmentation of image-text batches (not grounding): "
        "{random_resized_crop: {scale: [0.5, 1.0], ratio: [0.75, 1.3333]}} as ALBEF; {} for none",
    },
    "verify_images": {
        "enum": ["sample", "all"],
        "description": "decode a sample of each split's images at conversion (default), or all of them",
    },
    "pretrain_from": {
        "type": "string",
        "pattern": "^[a-z][a-z0-9_]*$",
        "description": "pretrain on this other dataset (its train split and tokenizer), fine-tune and evaluate here",
    },
    "exclude_images": {
        "type": "array",
        "items": {"type": "object"},
        "description": "set by the workflow: dataset blocks whose evaluation images leave this training split",
    },
}


def adapter_schema(kind: str, required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """The closed config schema of an official-format adapter: ``kind``, ``root`` and the common keys
    (:data:`COMMON_PROPERTIES`) plus the adapter's own, which win (e.g. a ``transform`` fixed to resize)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind", "root", *required],
        "properties": {"kind": {"const": kind}, **COMMON_PROPERTIES, **properties},
    }


COMMON_DEFAULTS: dict[str, Any] = {
    "image_size": 224,
    "transform": "resize",
    "subset": {},
    "resident_max_mb": RESIDENT_MAX_MB,
    "train_augment": {},
    "verify_images": "sample",
}
IMAGES_VERIFIED_PER_SPLIT = 16
"""``verify_images: sample`` decodes this many images per split, spread evenly over it."""


@dataclass
class ConvertedSplit:
    """One split in the standard form's terms, before it is written."""

    images: list[dict[str, Any]]  # {id, file_name (relative to image_root), width?, height?}
    captions: list[dict[str, Any]] = field(default_factory=list)  # {image_id, caption}
    annotations: list[dict[str, Any]] = field(default_factory=list)  # COCO: {id, image_id, category_id, bbox}
    refs: list[dict[str, Any]] = field(default_factory=list)  # {ref_id, image_id, sentence, ann_ids, kind}

    def keep_images(self, image_ids: Iterable[int]) -> ConvertedSplit:
        """The split restricted to ``image_ids`` (with their captions, boxes and expressions)."""
        keep = set(image_ids)
        return ConvertedSplit(
            [i for i in self.images if i["id"] in keep],
            [c for c in self.captions if c["image_id"] in keep],
            [a for a in self.annotations if a["image_id"] in keep],
            [r for r in self.refs if r["image_id"] in keep],
        )

    def texts(self) -> int:
        return len(self.refs) if self.refs else len(self.captions)


@dataclass
class Converted:
    """What an adapter read: its splits, where the images are, and which official files it read."""

    splits: dict[str, ConvertedSplit]
    image_root: Path
    sources: list[Path]
    categories: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)  # format facts recorded in the manifest
    parts: tuple[str, ...] | None = None  # the parts written, when more than the adapter's ``provides``
    split_sources: dict[str, Path] = field(default_factory=dict)  # the file each split was read from


class OfficialAdapter(DatasetAdapter):
    """Base class of the adapters that convert an official format (see the module docstring)."""

    generates = True
    defaults: ClassVar[dict[str, Any]] = {}
    """Per-adapter defaults of its keys (on top of :data:`COMMON_DEFAULTS`); one place, applied by :meth:`settings`
    when the configuration is completed, so they are in every data job's spec."""

    def settings(self, spec: dict[str, Any]) -> dict[str, Any]:
        """``spec`` with every default filled in."""
        return {**copy.deepcopy(COMMON_DEFAULTS), **copy.deepcopy(self.defaults), **spec}

    # --- what an adapter file implements -------------------------------------------------------
    def required_files(self, spec: dict[str, Any]) -> list[Path]:
        """Every official file the configuration needs (images are checked when read)."""
        raise NotImplementedError

    def layout(self, spec: dict[str, Any]) -> str:
        """The expected layout under ``root``, for error messages and docs/datasets.md."""
        raise NotImplementedError

    def expected_counts(self, spec: dict[str, Any]) -> dict[str, dict[str, int]]:
        """Official sizes: split → {"images": n, "texts": m} (either may be absent when not fixed)."""
        return {}

    def read(self, spec: dict[str, Any], build_dir: Path | None = None) -> Converted:
        """Read the official files into the standard form's terms, every split in full.

        ``build_dir`` is the run's data folder, for formats whose images are not files (bytes in
        parquet or tar shards) and must be written there once; None when only the annotations
        are wanted (the leakage guard's :meth:`evaluation_images`).
        """
        raise NotImplementedError

    # --- shared behaviour ----------------------------------------------------------------------
    def root(self, spec: dict[str, Any]) -> Path:
        return Path(spec["root"]).expanduser()

    def check(self, spec: dict[str, Any]) -> list[tuple[str, str]]:
        settings = self.settings(spec)
        crop = settings["train_augment"].get("random_resized_crop")
        for key in ("scale", "ratio") if crop else ():
            if crop[key][0] > crop[key][1]:
                return [(f"train_augment.random_resized_crop.{key}", f"{crop[key]} must be [low, high]")]
        missing = [p for p in self.required_files(settings) if not p.is_file()]
        if not missing:
            return []
        listed = "; ".join(str(p) for p in missing)
        return [
            (
                "root",
                f"missing file(s): {listed}. Expected layout under {self.root(settings)}:\n{self.layout(settings)}",
            )
        ]

    def inputs(self, spec: dict[str, Any]) -> list[Path]:
        settings = self.settings(spec)
        files = list(self.required_files(settings))
        for block in settings.get("exclude_images", []):
            files += get_adapter(block["kind"]).inputs(block)
        return files

    def image_size(self, spec: dict[str, Any]) -> int | None:
        return int(self.settings(spec)["image_size"])

    def train_images(self, spec: dict[str, Any]) -> int | None:
        """``subset.train`` when it is a number, else the official training size (the leakage guard may
        remove some: the job checks the exact count); None for ``subset: {train: all}`` or no official size."""
        settings = self.settings(spec)
        wanted = (settings.get("subset") or {}).get("train")
        if isinstance(wanted, int):
            return wanted
        return None if wanted == "all" else self.expected_counts(settings).get("train", {}).get("images")

    def evaluation_images(self, spec: dict[str, Any]) -> set[str]:
        """File names of every val/test image (what the leakage guard removes elsewhere).

        Matched by file name, not path: COCO's names carry the set and the image id
        (``COCO_train2014_000000123456.jpg``), so a second copy of the images elsewhere is still
        recognised, as mmdetection's script matches by image.
        """
        converted = self.read(self.settings(spec))
        return {_image_key(image["file_name"]) for name in ("val", "test") for image in converted.splits[name].images}

    def prepare(self, spec: dict[str, Any], build_dir: Path) -> dict[str, Any]:

        settings = self.settings(spec)
        converted = self.read(settings, Path(build_dir))
        check_images(
            converted.splits,
            converted.image_root,
            {name: self._source_of(converted, name, settings) for name in SPLITS},
            f"Expected layout under {self.root(settings)}:\n{self.layout(settings)}",
        )
        splits, subset = self._checked_sizes(converted, settings)
        verify_images(converted.image_root, splits, settings)
        splits["train"], guard = self._guarded(converted, splits["train"], settings)
        sources = {str(p): sha256_file(p) for p in sorted(set(converted.sources))}
        manifest = write_standard_form(
            build_dir,
            splits,
            converted.categories,
            {
                "spec": {k: v for k, v in settings.items() if k != "exclude_images"},
                "parts": list(converted.parts or self.provides),
                "image_root": str(converted.image_root.resolve()),
                "image_size": int(settings["image_size"]),
                "transform": settings["transform"],
                "resident_max_mb": settings["resident_max_mb"],
                "train_augment": settings["train_augment"],
                "sources": sources,
                "subset": subset,
                "leakage_guard": guard,
                **converted.notes,
            },
        )
        return {k: manifest[k] for k in ("splits", "sources", "subset", "leakage_guard", "image_root")}

    def _source_of(self, converted: Converted, split: str, settings: dict[str, Any]) -> str:
        """The file ``split`` was read from, for messages (the first source, or ``root``, if not known)."""
        return str(converted.split_sources.get(split) or (converted.sources or [self.root(settings)])[0])

    def _checked_sizes(
        self, converted: Converted, settings: dict[str, Any]
    ) -> tuple[dict[str, ConvertedSplit], dict[str, Any]]:
        """Official split sizes checked; the configured subsets cut. Returns the splits and the subset record."""
        expected = self.expected_counts(settings)
        wanted = settings.get("subset") or {}
        splits, record = {}, {}
        for name in SPLITS:
            split = converted.splits[name]
            source = self._source_of(converted, name, settings)
            ids = sorted(i["id"] for i in split.images)
            if name in wanted:
                count = len(ids) if wanted[name] == "all" else wanted[name]
                if count > len(ids):
                    raise DataFileError(
                        f"{source}: 'subset.{name}' asks for {count} images but split {name!r} has {len(ids)}"
                    )
                split = split.keep_images(ids[:count])
                record[name] = {
                    "images": count,
                    "of_images": len(ids),
                    "texts": split.texts(),
                    "official_images": expected.get(name, {}).get("images"),
                }
            else:
                for what, actual in (("images", len(ids)), ("texts", split.texts())):
                    official = expected.get(name, {}).get(what)
                    if official is not None and official != actual:
                        raise DataFileError(
                            f"{source}: split {name!r} has {actual} {what}, the official split has {official}; "
                            f"pass 'subset: {{{name}: N}}' to use a subset on purpose"
                        )
            splits[name] = split
        return splits, record

    def _guarded(
        self, converted: Converted, train: ConvertedSplit, settings: dict[str, Any]
    ) -> tuple[ConvertedSplit, dict[str, Any]]:
        """``train`` without the evaluation images of the datasets in ``exclude_images``."""
        blocks = settings.get("exclude_images") or []
        if not blocks:
            return train, {}

        excluded: set[str] = set()
        for block in blocks:
            excluded |= get_adapter(block["kind"]).evaluation_images(block)
        keep = [i["id"] for i in train.images if _image_key(i["file_name"]) not in excluded]
        guarded = train.keep_images(keep)
        return guarded, {
            "excluded_evaluation_images_of": sorted(b.get("name", b["kind"]) for b in blocks),
            "removed_train_images": len(train.images) - len(guarded.images),
        }


def check_images(splits: dict[str, ConvertedSplit], image_root: Path, sources: dict[str, str], hint: str) -> None:
    """Every image file of every split exists: a wrong or half-unpacked image folder fails at
    conversion, before any job trains, not at a random step hours later (one ``stat`` per image)."""
    for name, split in splits.items():
        missing = [image_root / i["file_name"] for i in split.images if not (image_root / i["file_name"]).is_file()]
        if missing:
            listed = ", ".join(str(p) for p in missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise DataFileError(
                f"{len(missing)} of {len(split.images)} image file(s) of split {name!r} (listed in {sources[name]}) "
                f"not found: {listed}. {hint}"
            )


def verify_images(image_root: Path, splits: dict[str, ConvertedSplit], settings: dict[str, Any]) -> None:
    """Check every image's header, size and end marker (:func:`~benchmark.data.images.looks_complete`), and
    decode those that fail and a sample of every split (or all of them) as training will: a truncated or
    unreadable file, or one whose size disagrees with its annotations, is a DataFileError naming it now,
    before any job trains."""
    from benchmark.data.images import decode_image, looks_complete

    for split in splits.values():
        sample = split.images
        if settings["verify_images"] == "sample" and len(sample) > IMAGES_VERIFIED_PER_SPLIT:
            step = len(sample) / IMAGES_VERIFIED_PER_SPLIT
            sample = [sample[int(k * step)] for k in range(IMAGES_VERIFIED_PER_SPLIT)]
        sampled = {id(image) for image in sample}
        for image in split.images:
            path = Path(image_root) / image["file_name"]
            expected = (image["width"], image["height"]) if image.get("width") and image.get("height") else None
            if id(image) in sampled or not looks_complete(path, expected):
                decode_image(path, int(settings["image_size"]), settings["transform"], expected)


def _image_key(file_name: str) -> str:
    """An image's identity across datasets: its file name (COCO's carries the set and the id)."""
    return Path(file_name).name


def write_standard_form(
    out_dir: Path,
    splits: dict[str, ConvertedSplit],
    categories: list[dict[str, Any]],
    manifest_fields: dict[str, Any],
) -> dict[str, Any]:
    """Write the converted annotations in the standard form (files of the parts provided) and the manifest."""

    out_dir = Path(out_dir)
    parts = manifest_fields["parts"]
    files, counts = {}, {}
    for name, split in splits.items():
        written = [instances_path(out_dir, name)]
        write_json(
            written[0],
            {"images": split.images, "annotations": _coco_annotations(split.annotations), "categories": categories},
        )
        if "captions" in parts:
            written.append(captions_path(out_dir, name))
            annotations = [{"id": k, **c} for k, c in enumerate(split.captions)]
            write_json(written[-1], {"images": [{"id": i["id"]} for i in split.images], "annotations": annotations})
        if "refs" in parts:
            written.append(refs_path(out_dir, name))
            write_json(written[-1], {"refs": split.refs})
        files.update({str(p.relative_to(out_dir)): sha256_file(p) for p in written})
        counts[name] = {
            "images": len(split.images),
            "captions": len(split.captions),
            "objects": len(split.annotations),
            "refs": len(split.refs),
        }
    manifest = {**manifest_fields, "splits": counts, "files": files}
    write_json(out_dir / MANIFEST, manifest)
    return manifest


def _coco_annotations(annotations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """COCO instance fields pycocotools needs (``area``, ``iscrowd``) filled in where absent."""
    return [
        {
            "area": float(a["bbox"][2] * a["bbox"][3]),
            "iscrowd": 0,
            **{k: v for k, v in a.items() if k != "segmentation"},
        }
        for a in annotations
    ]
