"""``kind: grefcoco`` — gRefCOCO: referring expressions with one, several or no target (GRES / GREC).

gRefCOCO (Liu, Ding and Jiang, "GRES: Generalized Referring Expression Segmentation", CVPR 2023;
boxes: He et al., "GREC", 2023) extends RefCOCO (unc split, COCO train2014 images) with
expressions that refer to several objects or to none. The release, read here as
henghuiding/ReLA ``gres_model/data/datasets/grefer.py`` (``G_REFER``) and ``grefcoco.py``
(``load_grefcoco_json``) read it:

* ``grefcoco/grefs(unc).json`` — a list of refs ``{ref_id, image_id, split, sentences: [{raw,
  sent, sent_id, tokens}], sent_ids, ann_id, category_id, file_name}``. ``ann_id`` is a list (an
  int in refs carried over from RefCOCO: ``G_REFER._toList``); ``[-1]`` means no target
  (``load_grefcoco_json`` asserts ``ref['ann_id'] == [-1]`` for an empty ref). A ``no_target``
  boolean, when present, must agree (it is not read by ReLA);
* ``grefcoco/instances.json`` — COCO instances (images, annotations with ``bbox``, categories).

Each sentence is one (image, expression) pair (``sent``, as GREC's
``mdetr/scripts/fine-tuning/grefexp_coco_format.py`` takes it): ``kind`` ``none`` with no
``ann_ids`` for ``[-1]``, ``single`` for one annotation, ``multi`` for several; its targets are
those annotations' COCO boxes, crowd ones included (as GREC's box conversion keeps them;
ReLA's mask loader drops crowd annotations). Splits: ``train``, ``val``, ``testA``, ``testB``
(the first release held testA/testB back for a CodaLab challenge; a split without expressions
is an error naming the file). FuseBench's train and val are the official ones, its test is
``test_split`` (default testA). Pair order, ``ref_id``, images and the image root as in
:mod:`benchmark.datasets.refer` (``<root>/coco/images/train2014/``); instances are every COCO
object of the split's images (``instances.json`` holds them all); captions are each image's
expressions that refer to something (an image whose expressions are all no-target keeps those).

No official split size is enforced: none was found in a source to check it against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from benchmark.datasets.official import Converted, OfficialAdapter, adapter_schema
from benchmark.datasets.refer import (
    IMAGE_FOLDER,
    TRANSFORM,
    Pair,
    Read,
    read_instances,
    referred_objects,
    sentence_of,
    split_map,
)
from benchmark.errors import DataFileError
from benchmark.io import read_json

OFFICIAL_SPLITS = ("train", "val", "testA", "testB")
NO_TARGET = -1
"""``ann_id`` ``[-1]``: the expression refers to nothing (ReLA ``grefcoco.py``)."""


def targets_of(ref: dict[str, Any], path: Path, index: int) -> tuple[int, ...]:
    """The annotation ids a gRefCOCO ref refers to (empty for no target), checked against ``no_target``."""
    ann_ids = ref["ann_id"] if isinstance(ref["ann_id"], list) else [ref["ann_id"]]
    ids, name = tuple(int(a) for a in ann_ids), ref.get("ref_id", index)
    if not ids:
        raise DataFileError(f"{path}: ref {name} has an empty ann_id (no target is [-1])")
    if NO_TARGET in ids and ids != (NO_TARGET,):
        raise DataFileError(f"{path}: ref {name} mixes ann_id -1 (no target) with targets {ids}")
    targets = () if ids == (NO_TARGET,) else ids
    if "no_target" in ref and bool(ref["no_target"]) != (not targets):
        raise DataFileError(f"{path}: ref {name} has no_target={ref['no_target']} but ann_id {list(ids)}")
    return targets


class GRefCoco(OfficialAdapter):
    description = "gRefCOCO expressions with one, several or no target (ReLA's grefs(unc).json)"
    provides = ("images", "captions", "instances", "refs")
    tasks = ("grounding",)
    config_schema: ClassVar[dict[str, Any]] = adapter_schema(
        "grefcoco",
        [],
        {
            "transform": TRANSFORM,
            "test_split": {
                "enum": [s for s in OFFICIAL_SPLITS if s != "train"],
                "description": "the official split that is FuseBench's test split (val is always official val)",
            },
        },
    )
    defaults: ClassVar[dict[str, Any]] = {"test_split": "testA"}

    def _refs_file(self, settings: dict[str, Any]) -> Path:
        return self.root(settings) / "grefcoco" / "grefs(unc).json"

    def _instances_file(self, settings: dict[str, Any]) -> Path:
        return self.root(settings) / "grefcoco" / "instances.json"

    def required_files(self, spec: dict[str, Any]) -> list[Path]:
        settings = self.settings(spec)
        return [self._refs_file(settings), self._instances_file(settings)]

    def layout(self, spec: dict[str, Any]) -> str:
        return "\n".join(
            [
                f"  coco/images/{IMAGE_FOLDER}/COCO_{IMAGE_FOLDER}_<12-digit image id>.jpg   COCO 2014 train images",
                "  grefcoco/grefs(unc).json   gRefCOCO refs (henghuiding/gRefCOCO)",
                "  grefcoco/instances.json   gRefCOCO's COCO instances",
            ]
        )

    def read(self, spec: dict[str, Any], build_dir: Path | None = None) -> Converted:
        """The official files in the standard form's terms (the images are files: ``build_dir`` is not used)."""

        settings = self.settings(spec)
        splits = split_map(settings["test_split"])
        refs_file, instances_file = self._refs_file(settings), self._instances_file(settings)
        refs = read_json(refs_file, what="gRefCOCO refs file")
        if not isinstance(refs, list):
            raise DataFileError(f"gRefCOCO refs file {refs_file} holds a {type(refs).__name__}, not a list of refs")
        instances = read_instances(instances_file, "gRefCOCO instances file")
        pairs: dict[str, list[Pair]] = {official: [] for official in splits.values()}
        for index, ref in enumerate(refs):
            try:
                if ref["split"] not in pairs:
                    continue
                targets, image_id = targets_of(ref, refs_file, index), int(ref["image_id"])
                texts = [sentence_of(s, refs_file, f"ref {ref.get('ref_id', index)}") for s in ref["sentences"]]
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise DataFileError(f"{refs_file}: ref {index} is malformed: {exc!r}") from None
            kind = "none" if not targets else "single" if len(targets) == 1 else "multi"
            pairs[ref["split"]] += [Pair(image_id, targets, text, kind) for text in texts]
        sources = dict.fromkeys(pairs, refs_file)
        read = Read(pairs, instances.images, instances.annotations, instances.categories, sources)

        def every_object(pairs: list[Pair], source: Path) -> list[dict[str, Any]]:
            referred_objects(pairs, instances.annotations, source)  # checks every target lies in its image
            return instances.objects_of({p.image_id for p in pairs})

        held_back = "; the first gRefCOCO release held testA/testB back (use test_split: val, or the full release)"
        hint = {split: held_back for split in ("testA", "testB")}
        return Converted(
            splits=read.converted(splits, every_object, hint),
            image_root=self.root(settings) / "coco" / "images",
            sources=[refs_file, instances_file],
            split_sources=dict.fromkeys(splits, refs_file),
            categories=instances.categories,
            notes={
                "official_format": "grefcoco",
                "official_splits": splits,
                "val_is_test": settings["test_split"] == "val",
                "pairs": "one per expression; ordered by image id, annotation ids, file order; ref_id = position",
            },
        )
