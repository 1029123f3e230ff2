"""``kind: karpathy`` — COCO and Flickr30k retrieval from Karpathy's split files or LAVIS's.

Two official formats carry the same split (Karpathy & Fei-Fei 2015), and this adapter reads
either into FuseBench's standard form (annotations only; the images are read in place, see
:mod:`benchmark.datasets.official`):

* ``format: karpathy`` — ``dataset_{coco,flickr30k}.json`` from Karpathy's
  ``caption_datasets.zip`` (cs.stanford.edu/people/karpathy/deepimagesent/):
  ``{"images": [{filepath (COCO only), filename, imgid, cocoid (COCO only), split, sentids,
  sentences: [{tokens, raw, imgid, sentid}]}]}``; ``split`` is one of train, restval, val, test
  and **train = train + restval**, as in ruotianluo/ImageCaptioning.pytorch
  ``scripts/prepro_labels.py`` (reads ``filepath``, ``filename``, ``cocoid``, ``split``) and every
  captioning/retrieval paper since.
* ``format: lavis`` — the ALBEF/BLIP/LAVIS annotation files. salesforce/LAVIS
  ``lavis/configs/datasets/coco/defaults_ret.yaml`` stores ``coco/annotations/
  coco_karpathy_{train,val,test}.json`` with images under ``coco/images/``;
  ``lavis/configs/datasets/flickr30k/defaults.yaml`` stores ``flickr30k/annotations/
  {train,val,test}.json`` with images under ``flickr30k/images`` (its download script
  ``lavis/datasets/download_scripts/download_flickr.py`` unpacks them into
  ``flickr30k/images/flickr30k-images/``). ``lavis/datasets/datasets/retrieval_datasets.py``
  (``RetrievalDataset``, ``RetrievalEvalDataset``) and salesforce/ALBEF
  ``dataset/caption_dataset.py`` (``re_train_dataset``, ``re_eval_dataset``) read train rows
  per caption ``{image, caption, image_id}`` and val/test rows per image ``{image, caption:
  [..]}``, and open ``os.path.join(image_root, row["image"])``; ``image_id`` only groups train
  rows (COCO: ``"coco_<cocoid>"``).

Expected layout under ``root``::

    coco/images/{train2014,val2014}/COCO_<folder>_<12-digit id>.jpg
    coco/annotations/dataset_coco.json                      format: karpathy
    coco/annotations/coco_karpathy_{train,val,test}.json    format: lavis
    flickr30k/images/flickr30k-images/<id>.jpg
    flickr30k/annotations/dataset_flickr30k.json            format: karpathy
    flickr30k/annotations/{train,val,test}.json             format: lavis

Decisions, the same for both formats so that they convert to identical standard forms:

* **Image ids**: COCO — ``cocoid`` (Karpathy) or the 12-digit number of the file name (LAVIS's
  ``image``), i.e. the COCO 2014 image id either way. Flickr30k — the number of the file stem
  (``1000092795.jpg`` → 1000092795), the Flickr photo id, in both formats; Karpathy's ``imgid``
  is only a running index and LAVIS's ``image_id`` a grouping key, so neither is used.
* **File names** are relative to the image root: COCO ``<filepath>/<filename>``, i.e.
  ``val2014/COCO_val2014_...jpg`` = LAVIS's ``image``, under ``coco/images``; Flickr30k
  Karpathy ``<filename>`` under ``flickr30k/images/flickr30k-images``, LAVIS
  ``flickr30k-images/<id>.jpg`` under ``flickr30k/images`` — the same files.
* **Captions**: Karpathy's ``sentences[].raw`` (not the lower-cased ``tokens``) and LAVIS's
  ``caption`` strings, in file order, with surrounding white space stripped and nothing else
  changed; FuseBench's tokenizer does the rest. (LAVIS's ``text_processor`` and ALBEF's
  ``pre_caption`` also lower-case, drop punctuation and truncate to 30 words: a model
  difference, not a data one.)
* **Official sizes** (checked at conversion, see :class:`OfficialAdapter`): COCO 113,287 /
  5,000 / 5,000 images with 25,010 test captions (mertyg/vision-language-models-are-bows#20);
  Flickr30k 29,000 / 1,014 / 1,000 images with 5,000 test captions. Val and train caption
  counts are not checked (no source states them).

Protocol: the test split's every image and every caption (5,000 images / 25,010 captions on
COCO, 1,000 / 5,000 on Flickr30k); an image→text query hits when **any** of its captions ranks
within K (:mod:`benchmark.metrics.retrieval`). LAVIS's names (``lavis/tasks/retrieval.py``
``itm_eval``, percentages) map to ours (fractions) as ``txt_r{1,5,10}`` = 100 · ``i2t_R@{1,5,10}``,
``img_r{1,5,10}`` = 100 · ``t2i_R@{1,5,10}`` and ``r_mean`` = 100 · ``mean_R`` with K = 1, 5, 10
(LAVIS's ``txt_r_mean`` and ``img_r_mean`` are the per-direction means; its ``agg_metrics``,
used to pick checkpoints, is ``txt_r_mean``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from benchmark.datasets.official import (
    SPLITS,
    Converted,
    ConvertedSplit,
    OfficialAdapter,
    adapter_schema,
)
from benchmark.datasets.records import SplitCollector, field, image_number, read_instances, text
from benchmark.errors import DataFileError
from benchmark.io import read_json

COLLECTIONS = ("coco", "flickr30k")
FORMATS = ("karpathy", "lavis")
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}
"""Karpathy's split value → FuseBench split (restval joins train)."""
FLICKR_IMAGE_DIR = "flickr30k-images"
OFFICIAL_COUNTS: dict[str, dict[str, dict[str, int]]] = {
    "coco": {"train": {"images": 113_287}, "val": {"images": 5_000}, "test": {"images": 5_000, "texts": 25_010}},
    "flickr30k": {"train": {"images": 29_000}, "val": {"images": 1_014}, "test": {"images": 1_000, "texts": 5_000}},
}


def read_karpathy_file(path: Path, collection: str) -> SplitCollector:
    """Karpathy's ``dataset_<collection>.json`` (see the module docstring for ids and file names)."""
    data = read_json(path, what="Karpathy split file")
    entries = data.get("images") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DataFileError(f"Karpathy split file {path} has no 'images' list at its top level")
    collected = SplitCollector()
    for index, entry in enumerate(entries):
        where = f"{path}: images[{index}]"
        split = field(entry, "split", str, where)
        if split not in KARPATHY_SPLITS:
            raise DataFileError(f"{where} has split {split!r}; allowed: {', '.join(KARPATHY_SPLITS)}")
        filename = field(entry, "filename", str, where)
        if collection == "coco":
            file_name = f"{field(entry, 'filepath', str, where)}/{filename}"
            image_id = field(entry, "cocoid", int, where)
        else:
            file_name, image_id = filename, image_number(filename, where)
        sentences = field(entry, "sentences", list, where)
        captions = [text(field(s, "raw", str, f"{where}.sentences[{k}]"), where) for k, s in enumerate(sentences)]
        collected.add(KARPATHY_SPLITS[split], image_id, file_name, captions, where, str(path), merge=False)
    return collected


def read_lavis_files(paths: dict[str, Path]) -> SplitCollector:
    """LAVIS/ALBEF retrieval files: train rows per caption, val/test rows per image."""
    collected = SplitCollector()
    for split, path in paths.items():
        rows = read_json(path, what="LAVIS retrieval file")
        if not isinstance(rows, list):
            raise DataFileError(f"LAVIS retrieval file {path} is a {type(rows).__name__}, expected a list of rows")
        for index, row in enumerate(rows):
            where = f"{path}: row {index}"
            image = field(row, "image", str, where)
            if split == "train":
                field(row, "image_id", (str, int), where)  # LAVIS groups train rows by it; FuseBench by the file
                captions = [text(field(row, "caption", str, where), where)]
            else:
                captions = [text(c, f"{where}: caption[{k}]") for k, c in enumerate(field(row, "caption", list, where))]
            collected.add(split, image_number(image, where), image, captions, where, str(path), merge=split == "train")
    return collected


def add_coco_instances(splits: dict[str, ConvertedSplit], paths: list[Path]) -> list[dict[str, Any]]:
    """Give every image its COCO size and objects (box, category) from ``paths``; return the categories.

    Late fusion learns these categories as concepts in each modality (the text model from the
    caption alone); the boxes are never a retrieval target.
    """
    images: dict[int, dict[str, Any]] = {}
    objects: dict[int, list[dict[str, Any]]] = {}
    categories: dict[int, dict[str, Any]] = {}
    for path in paths:
        instances = read_instances(path, "COCO instances file", folder=path.stem.removeprefix("instances_"))
        images.update(instances.images)
        for ann in instances.annotations.values():
            objects.setdefault(ann["image_id"], []).append(ann)
        categories.update({c["id"]: c for c in instances.categories})
    for name, split in splits.items():
        for record in split.images:
            image = images.get(record["id"])
            if image is None:
                listed = ", ".join(map(str, paths))
                raise DataFileError(f"image id {record['id']} of split {name!r} is in none of {listed}")
            record.update(width=image["width"], height=image["height"])
        split.annotations = [a for record in split.images for a in objects.get(record["id"], [])]
    return [categories[c] for c in sorted(categories)]


class Karpathy(OfficialAdapter):
    description = "COCO / Flickr30k retrieval (Karpathy split) from dataset_<collection>.json or LAVIS's files"
    provides = ("images", "captions")
    tasks = ("retrieval",)
    config_schema: ClassVar[dict[str, Any]] = adapter_schema(
        "karpathy",
        ["collection"],
        {
            "collection": {
                "enum": list(COLLECTIONS),
                "description": "which dataset: coco (5k test) or flickr30k (1k test)",
            },
            "format": {
                "enum": list(FORMATS),
                "description": "karpathy: dataset_<collection>.json; lavis: the ALBEF/BLIP/LAVIS annotation files",
            },
            "instances": {
                "type": "boolean",
                "description": "COCO only: also read instances_{train,val}2014.json, the object categories late "
                "fusion learns as concepts (needs transform: resize)",
            },
        },
    )
    defaults: ClassVar[dict[str, Any]] = {"format": "karpathy", "transform": "center_crop", "instances": False}

    def check(self, spec: dict[str, Any]) -> list[tuple[str, str]]:
        settings = self.settings(spec)
        if settings["instances"] and settings["collection"] != "coco":
            return [("instances", "only COCO has instance annotations (instances_{train,val}2014.json)")]
        if settings["instances"] and settings["transform"] != "resize":
            return [("transform", "must be 'resize' with instances: true (a centre crop would cut the boxes)")]
        return super().check(spec)

    def instance_files(self, spec: dict[str, Any]) -> list[Path]:
        """COCO's own instance annotations of the 2014 images (Karpathy's splits draw on both sets)."""
        if not spec["instances"]:
            return []
        folder = self.root(spec) / "coco" / "annotations"
        return [folder / f"instances_{name}2014.json" for name in ("train", "val")]

    def annotation_files(self, spec: dict[str, Any]) -> dict[str, Path]:
        """The annotation file of each split (one shared file for ``format: karpathy``)."""
        collection, folder = spec["collection"], self.root(spec) / spec["collection"] / "annotations"
        if spec["format"] == "karpathy":
            return dict.fromkeys(SPLITS, folder / f"dataset_{collection}.json")
        prefix = "coco_karpathy_" if collection == "coco" else ""
        return {split: folder / f"{prefix}{split}.json" for split in SPLITS}

    def image_root(self, spec: dict[str, Any]) -> Path:
        images = self.root(spec) / spec["collection"] / "images"
        if spec["collection"] == "flickr30k" and spec["format"] == "karpathy":
            return images / FLICKR_IMAGE_DIR  # Karpathy's Flickr file names carry no folder
        return images

    def required_files(self, spec: dict[str, Any]) -> list[Path]:
        return list(dict.fromkeys(self.annotation_files(spec).values())) + self.instance_files(spec)

    def layout(self, spec: dict[str, Any]) -> str:
        root = self.root(spec)
        annotations = dict.fromkeys(self.annotation_files(spec).values())
        lines = [f"  {p.relative_to(root)}   (format: {spec['format']})" for p in annotations]
        if spec["collection"] == "coco":
            lines += [f"  coco/images/{f}/COCO_{f}_<12-digit id>.jpg" for f in ("train2014", "val2014")]
            lines += [f"  {p.relative_to(root)}   (instances: true)" for p in self.instance_files(spec)]
        else:
            lines.append(f"  flickr30k/images/{FLICKR_IMAGE_DIR}/<id>.jpg")
        return "\n".join(lines)

    def expected_counts(self, spec: dict[str, Any]) -> dict[str, dict[str, int]]:
        return OFFICIAL_COUNTS[spec["collection"]]

    def read(self, spec: dict[str, Any], build_dir: Path | None = None) -> Converted:
        files = self.annotation_files(spec)
        if spec["format"] == "karpathy":
            collected = read_karpathy_file(files["train"], spec["collection"])
        else:
            collected = read_lavis_files(files)
        splits, image_root = collected.converted(), self.image_root(spec)
        categories: list[dict[str, Any]] = []
        if spec["instances"]:
            categories = add_coco_instances(splits, self.instance_files(spec))
        return Converted(
            splits=splits,
            image_root=image_root,
            sources=self.required_files(spec),
            split_sources=files,
            categories=categories,
            parts=("images", "captions", "instances") if spec["instances"] else None,
            notes={
                "official_format": {
                    "collection": spec["collection"],
                    "format": spec["format"],
                    "image_id": "COCO image id" if spec["collection"] == "coco" else "number of the file stem",
                    "captions": "as in the file, surrounding white space stripped",
                }
            },
        )
