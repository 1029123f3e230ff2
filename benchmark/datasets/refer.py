"""``kind: refer`` — RefCOCO, RefCOCO+ and RefCOCOg grounding, from the REFER release or MDETR's files.

Why one module over 400 lines: one adapter file per dataset kind is the plug-in contract; REFER's
pickles, MDETR's files and the restricted unpickler are one format family read one way.

RefCOCO/RefCOCO+ (Kazemzadeh et al., EMNLP 2014; Yu et al., ECCV 2016) and RefCOCOg (Mao et
al., CVPR 2016; UMD split: Nagaraja et al., ECCV 2016) describe one object of a COCO train2014
image per referring expression. Two official forms are read (``format``):

* ``refer`` — lichengunc/refer, read as its ``refer.py`` does: ``<collection>/refs(<split_by>).p``
  (a pickled list of refs ``{ref_id, ann_id, category_id, image_id, split, sent_ids, file_name,
  sentences: [{raw, sent, sent_id, tokens}]}``, one ref per object) and ``<collection>/instances.json``
  (COCO instances: ``images``, ``annotations`` with ``bbox`` xywh pixels, ``categories``). A
  ref's box is its ``ann_id``'s ``bbox``; a split is the refs whose ``split`` equals its name, as
  MDETR's conversion script and TFDS's ``ref_coco`` builder select them.
* ``mdetr`` — the output of ashkamath/mdetr ``scripts/fine-tuning/refexp_coco_format.py``,
  ``mdetr_annotations/finetune_<collection>_<split>.json``: one COCO "image" per expression
  ``{id, original_id (the COCO image id), file_name (COCO_train2014_%012d.jpg), height, width,
  caption (the ref's ``sent``), dataset_name, tokens_negative}`` and exactly one annotation per
  expression ``{id, image_id (= that expression's id), original_id (the COCO ann id), bbox,
  category_id, area, iscrowd, tokens_positive}``, images under ``coco_path/train2014``
  (``datasets/refexp.py``; its ``RefExpEvaluator`` asserts one box per expression). Expressions
  are grouped back into COCO images by ``original_id``.

Both forms of the same data convert to the same standard form, so ``load_split`` returns
identical splits (tested):

* pairs — every expression (``sentences[].sent`` / ``caption``) is one (image, expression) pair,
  ``kind: single``, ``ann_ids: [the referred annotation]``, its target the annotation's COCO box;
* pair order — within a split, by COCO image id, then annotation id, then file order (the refs'
  order and each ref's sentence order, which MDETR's script keeps); ``ref_id`` is the pair's
  position in that order (REFER's ``sent_id`` has no counterpart in MDETR's files);
* images — the train2014 images with ≥ 1 expression in the split, ``file_name``
  ``train2014/<name>`` under the image root ``<root>/coco/images``; the transform is ``resize``
  (boxes scale exactly, :mod:`benchmark.data.images`);
* instances — the objects the split's expressions refer to, the only objects MDETR's files carry
  (so ``ref_all_objects`` predicts every *referred* object of an image, not every COCO object);
* captions — RefCOCO has no captions: each image's expressions in the split serve as its
  captions, the texts a method pretrains (and the tokenizer trains) on when it pretrains here
  rather than on another dataset (``pretrain_from``).

Splits: FuseBench's train and val are the official train and val; its test is ``test_split``:
``testA`` (people) or ``testB`` (other objects) or ``val`` for RefCOCO/RefCOCO+ (unc), ``test`` or
``val`` for RefCOCOg (umd), and ``val`` for RefCOCOg's Google split (``split_by: google``, which
has no released test split; papers report it as val*). With ``test_split: val`` FuseBench's val
*is* its test split — model selection then sees the test data; the manifest says so
(``val_is_test``).

Configuration: ``collection`` (required) — refcoco, refcoco+ or refcocog, REFER's ``dataset``
argument (named ``collection`` as in ``kind: karpathy``, because ``dataset`` in a data-stage spec
is FuseBench's dataset name); ``split_by`` — REFER's ``splitBy``, default unc (refcoco, refcoco+)
or umd (refcocog); ``test_split`` — default testA (unc), test (umd), val (google); ``format`` —
refer (default) or mdetr; plus the keys every official adapter has
(:func:`benchmark.datasets.official.adapter_schema`), ``transform`` fixed to resize.

Official split sizes, checked at conversion (``subset`` to use fewer on purpose):

* images — TFDS ``tensorflow_datasets/vision_language/refcoco/refcoco.py`` (its table, computed
  from the REFER files): RefCOCO unc 16,994 / 1,500 / 750 (testA) / 750 (testB); RefCOCO+ unc
  16,992 / 1,500 / 750 / 750; RefCOCOg umd 21,899 / 1,300 / 2,600 (test); RefCOCOg google
  24,698 / 4,650 (train / val; images overlap between the two, objects do not).
* expressions — RefCOCO unc 120,624 / 10,834 / 5,657 / 5,095 (FlagEval's RefCOCO page, BAAI);
  RefCOCO+ unc 120,191 / 10,758 / 5,726 / 4,889; RefCOCOg umd 80,512 / 4,896 / 9,602 (the
  figures papers report; the evaluation splits' sums, 21,586 / 21,373 / 14,498, equal the
  expression counts of Ref-L4's review of the three benchmarks (JierunChen/Ref-L4), and
  RefCOCO+'s total, 141,564, its paper's). RefCOCOg's Google split: no expression count is
  enforced (none verified).

Unpickling: FuseBench never unpickles a file it did not write, with one exception — these
official REFER ``refs(<split_by>).p`` files, and only the one under the ``root`` a user configured.
They are read with an unpickler that refuses every class and function reference
(``find_class``), so loading can build only lists, dicts, strings and numbers — all a refs file
holds — and cannot run code; a file that names any global is rejected as malformed, naming it.
The files were pickled by Python 2. Python 3 reads them with a plain
``pickle.load`` (MDETR's ``refexp_coco_format.py``; ReLA's ``refer.py`` with ``fix_imports=True``),
so any Python-2 ``str`` they hold is ASCII; they are read with ``encoding="utf-8"``, which decodes
ASCII identically and also a re-pickled file's UTF-8 bytes, where ``latin1`` (needed only for
numpy arrays, which refs do not hold) would garble non-ASCII text.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from benchmark.datasets.official import Converted, ConvertedSplit, OfficialAdapter, adapter_schema
from benchmark.datasets.records import (
    COCO_TRAIN_FOLDER,
    annotation_record,
    image_record,
    read_instances,
)
from benchmark.errors import ConfigError, DataFileError
from benchmark.io import read_json

SPLIT_BY = {"refcoco": ("unc",), "refcoco+": ("unc",), "refcocog": ("umd", "google")}
"""Collection (REFER's ``dataset``) → its official splits (REFER's ``splitBy``), the default first."""
OFFICIAL_SPLITS = {
    "unc": ("train", "val", "testA", "testB"),
    "umd": ("train", "val", "test"),
    "google": ("train", "val"),
}
DEFAULT_TEST_SPLIT = {"unc": "testA", "umd": "test", "google": "val"}
IMAGE_FOLDER = COCO_TRAIN_FOLDER
"""Every REFER image is a COCO train2014 image: ``<root>/coco/images/train2014/<file_name>``."""
TRANSFORM = {"const": "resize", "description": "boxes scale exactly only when the whole image is resized"}

EXPECTED: dict[tuple[str, str], dict[str, dict[str, int]]] = {
    ("refcoco", "unc"): {
        "train": {"images": 16994, "texts": 120624},
        "val": {"images": 1500, "texts": 10834},
        "testA": {"images": 750, "texts": 5657},
        "testB": {"images": 750, "texts": 5095},
    },
    ("refcoco+", "unc"): {
        "train": {"images": 16992, "texts": 120191},
        "val": {"images": 1500, "texts": 10758},
        "testA": {"images": 750, "texts": 5726},
        "testB": {"images": 750, "texts": 4889},
    },
    ("refcocog", "umd"): {
        "train": {"images": 21899, "texts": 80512},
        "val": {"images": 1300, "texts": 4896},
        "test": {"images": 2600, "texts": 9602},
    },
    ("refcocog", "google"): {"train": {"images": 24698}, "val": {"images": 4650}},
}
"""Official sizes per (collection, split_by) and official split; sources in the module docstring."""


# ----------------------------------------------------------------------------- shared with grefcoco.py


@dataclass(frozen=True)
class Pair:
    """One (image, expression) pair as read: COCO image id, target annotation ids, sentence, kind."""

    image_id: int
    ann_ids: tuple[int, ...]
    sentence: str
    kind: str  # single | multi | none


def split_map(test_split: str) -> dict[str, str]:
    """FuseBench split → the official split it is."""
    return {"train": "train", "val": "val", "test": test_split}


def load_refs_pickle(path: Path) -> list[Any]:
    """An official REFER refs pickle, loaded without running code (see the module docstring)."""
    try:
        with open(path, "rb") as handle:
            refs = _PlainDataUnpickler(handle, encoding="utf-8").load()
    except FileNotFoundError:
        raise DataFileError(f"REFER refs file not found: {path}") from None
    except Exception as exc:  # pickle raises many types on a truncated or foreign file
        raise DataFileError(f"REFER refs file {path} is not a readable refs pickle: {exc}") from None
    if not isinstance(refs, list):
        raise DataFileError(f"REFER refs file {path} holds a {type(refs).__name__}, not a list of refs")
    return refs


class _PlainDataUnpickler(pickle.Unpickler):
    """Builds only the built-in containers and scalars; any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"it refers to {module}.{name}; a refs file holds only lists, dicts, strings and numbers"
        )


def sentence_of(entry: dict[str, Any], path: Path, where: str) -> str:
    """REFER's ``sent`` of a sentence entry."""
    sent = entry.get("sent") if isinstance(entry, dict) else None
    if not isinstance(sent, str):
        raise DataFileError(f"{path}: {where} has no 'sent' string")
    return sent


def standard_split(
    pairs: Sequence[Pair],
    images: dict[int, dict[str, Any]],
    objects: Sequence[dict[str, Any]],
    source: Path,
) -> ConvertedSplit:
    """The standard form of one split: pairs in order (image, targets, file order), their images and objects.

    Captions: each image's expressions that refer to something (every one for REFER); an image
    whose expressions are all no-target (gRefCOCO) keeps those, so that every image has one.
    """
    order = sorted(range(len(pairs)), key=lambda k: (pairs[k].image_id, pairs[k].ann_ids, k))
    ordered = [pairs[k] for k in order]
    image_ids = sorted({p.image_id for p in ordered})
    missing = [i for i in image_ids if i not in images]
    if missing:
        raise DataFileError(f"{source}: expressions refer to image id(s) {missing[:5]} that its images do not list")
    targeted = {p.image_id for p in ordered if p.kind != "none"}
    return ConvertedSplit(
        images=[{"id": i, **images[i]} for i in image_ids],
        captions=[
            {"image_id": p.image_id, "caption": p.sentence}
            for p in ordered
            if p.kind != "none" or p.image_id not in targeted
        ],
        annotations=sorted(objects, key=lambda a: a["id"]),
        refs=[
            {"ref_id": n, "image_id": p.image_id, "sentence": p.sentence, "ann_ids": list(p.ann_ids), "kind": p.kind}
            for n, p in enumerate(ordered)
        ],
    )


def referred_objects(
    pairs: Sequence[Pair], annotations: dict[int, dict[str, Any]], source: Path
) -> list[dict[str, Any]]:
    """The annotations ``pairs`` refer to, each checked to lie in its expression's image."""
    objects: dict[int, dict[str, Any]] = {}
    for pair in pairs:
        for ann_id in pair.ann_ids:
            ann = annotations.get(ann_id)
            if ann is None:
                raise DataFileError(f"{source}: an expression on image {pair.image_id} refers to unknown ann {ann_id}")
            if ann["image_id"] != pair.image_id:
                raise DataFileError(
                    f"{source}: an expression on image {pair.image_id} refers to ann {ann_id} "
                    f"of image {ann['image_id']}"
                )
            objects[ann_id] = ann
    return list(objects.values())


@dataclass
class Read:
    """What a reader found: pairs per official split, image records, annotations, categories, files."""

    pairs: dict[str, list[Pair]]
    images: dict[int, dict[str, Any]]
    objects: dict[int, dict[str, Any]]
    categories: list[dict[str, Any]]
    sources: dict[str, Path]  # official split → the file its expressions come from

    def converted(
        self,
        splits: dict[str, str],
        select: Callable[[list[Pair], Path], list[dict[str, Any]]],
        hint: dict[str, str] | None = None,
    ) -> dict[str, ConvertedSplit]:
        """FuseBench split → its standard form; ``select(pairs, source)`` picks the split's objects.

        Every split needs expressions: one without names its file and official split (plus its ``hint``).
        """
        out = {}
        for name, official in splits.items():
            pairs, source = self.pairs[official], self.sources[official]
            if not pairs:
                more = (hint or {}).get(official, "")
                raise DataFileError(f"{source}: no expression has split {official!r} (FuseBench's {name} split){more}")
            out[name] = standard_split(pairs, self.images, select(pairs, source), source)
        return out

    def files(self) -> list[Path]:
        return list(dict.fromkeys(self.sources.values()))


# ----------------------------------------------------------------------------- the adapter


class Refer(OfficialAdapter):
    description = "RefCOCO / RefCOCO+ / RefCOCOg referring expressions (REFER refs pickle or MDETR JSON)"
    provides = ("images", "captions", "instances", "refs")
    tasks = ("grounding",)
    config_schema: ClassVar[dict[str, Any]] = adapter_schema(
        "refer",
        ["collection"],
        {
            "transform": TRANSFORM,
            "collection": {"enum": list(SPLIT_BY), "description": "which REFER dataset: refcoco, refcoco+ or refcocog"},
            "split_by": {
                "enum": sorted({s for splits in SPLIT_BY.values() for s in splits}),
                "description": "official split: unc (refcoco, refcoco+), umd or google (refcocog); default unc / umd",
            },
            "format": {"enum": ["refer", "mdetr"], "description": "REFER's refs pickle or MDETR's finetune JSON"},
            "test_split": {
                "enum": sorted({s for splits in OFFICIAL_SPLITS.values() for s in splits if s != "train"}),
                "description": "the official split that is FuseBench's test split (val is always official val): "
                "val|testA|testB for unc (default testA), val|test for umd (default test), val for google",
            },
        },
    )
    defaults: ClassVar[dict[str, Any]] = {"format": "refer"}

    def settings(self, spec: dict[str, Any]) -> dict[str, Any]:
        """``spec`` with every default filled in, the dataset-dependent ``split_by`` and ``test_split`` too."""
        settings = super().settings(spec)
        if settings.get("collection") in SPLIT_BY:
            settings.setdefault("split_by", SPLIT_BY[settings["collection"]][0])
            if settings["split_by"] in DEFAULT_TEST_SPLIT:
                settings.setdefault("test_split", DEFAULT_TEST_SPLIT[settings["split_by"]])
        return settings

    def check(self, spec: dict[str, Any]) -> list[tuple[str, str]]:
        return self._problems(self.settings(spec)) or super().check(spec)

    def _problems(self, settings: dict[str, Any]) -> list[tuple[str, str]]:
        dataset, split_by, test_split = settings["collection"], settings["split_by"], settings["test_split"]
        if split_by not in SPLIT_BY[dataset]:
            return [("split_by", f"{dataset} has split_by {' or '.join(SPLIT_BY[dataset])}, not {split_by!r}")]
        allowed = OFFICIAL_SPLITS[split_by][1:]
        if test_split not in allowed:
            return [("test_split", f"{dataset} ({split_by}) has test splits {', '.join(allowed)}, not {test_split!r}")]
        if settings["format"] == "mdetr" and split_by == "google":
            return [("format", "MDETR's finetune files are RefCOCOg's umd split; use format: refer for google")]
        return []

    # --- files ---------------------------------------------------------------------------------
    def _official_splits(self, settings: dict[str, Any]) -> dict[str, str]:
        return split_map(settings["test_split"])

    def _refs_file(self, settings: dict[str, Any]) -> Path:
        return self.root(settings) / settings["collection"] / f"refs({settings['split_by']}).p"

    def _instances_file(self, settings: dict[str, Any]) -> Path:
        return self.root(settings) / settings["collection"] / "instances.json"

    def _mdetr_file(self, settings: dict[str, Any], official: str) -> Path:
        return self.root(settings) / "mdetr_annotations" / f"finetune_{settings['collection']}_{official}.json"

    def required_files(self, spec: dict[str, Any]) -> list[Path]:
        settings = self.settings(spec)
        if settings["format"] == "mdetr":
            officials = dict.fromkeys(self._official_splits(settings).values())
            return [self._mdetr_file(settings, official) for official in officials]
        return [self._refs_file(settings), self._instances_file(settings)]

    def layout(self, spec: dict[str, Any]) -> str:
        settings = self.settings(spec)
        images = f"  coco/images/{IMAGE_FOLDER}/COCO_{IMAGE_FOLDER}_<12-digit image id>.jpg   COCO 2014 train images"
        if settings["format"] == "mdetr":
            files = [
                f"  mdetr_annotations/finetune_{settings['collection']}_{official}.json   MDETR refexp_coco_format.py"
                for official in dict.fromkeys(self._official_splits(settings).values())
            ]
        else:
            dataset, split_by = settings["collection"], settings["split_by"]
            files = [
                f"  {dataset}/refs({split_by}).p   REFER refs (lichengunc/refer)",
                f"  {dataset}/instances.json   REFER's COCO instances",
            ]
        return "\n".join([images, *files])

    def expected_counts(self, spec: dict[str, Any]) -> dict[str, dict[str, int]]:
        settings = self.settings(spec)
        official = EXPECTED.get((settings["collection"], settings["split_by"]), {})
        return {name: official[split] for name, split in self._official_splits(settings).items() if split in official}

    # --- reading -------------------------------------------------------------------------------
    def read(self, spec: dict[str, Any], build_dir: Path | None = None) -> Converted:
        """The official files in the standard form's terms (the images are files: ``build_dir`` is not used)."""
        settings = self.settings(spec)
        problems = self._problems(settings)
        if problems:
            raise ConfigError("; ".join(f"'{key}': {message}" for key, message in problems))
        splits = self._official_splits(settings)
        reader = self._read_mdetr if settings["format"] == "mdetr" else self._read_refer
        read = reader(settings, splits)
        sources = read.files()
        if settings["format"] == "refer":
            sources.append(self._instances_file(settings))
        return Converted(
            splits=read.converted(splits, lambda pairs, source: referred_objects(pairs, read.objects, source)),
            image_root=self.root(settings) / "coco" / "images",
            sources=sources,
            split_sources={name: read.sources[official] for name, official in splits.items()},
            categories=read.categories,
            notes={
                "official_format": settings["format"],
                "official_splits": splits,
                "val_is_test": settings["test_split"] == "val",
                "pairs": "one per expression; ordered by image id, annotation id, file order; ref_id = position",
            },
        )

    def _read_refer(self, settings: dict[str, Any], splits: dict[str, str]) -> Read:
        refs_file, instances_file = self._refs_file(settings), self._instances_file(settings)
        refs = load_refs_pickle(refs_file)
        instances = read_instances(instances_file, "REFER instances file")
        pairs: dict[str, list[Pair]] = {official: [] for official in splits.values()}
        for index, ref in enumerate(refs):
            try:
                if ref["split"] not in pairs:
                    continue
                image_id, ann_id = int(ref["image_id"]), int(ref["ann_id"])
                sentences = ref["sentences"]
                texts = [sentence_of(s, refs_file, f"ref {ref.get('ref_id', index)}") for s in sentences]
            except (KeyError, TypeError, ValueError) as exc:
                raise DataFileError(f"{refs_file}: ref {index} is malformed: {exc!r}") from None
            pairs[ref["split"]] += [Pair(image_id, (ann_id,), text, "single") for text in texts]
        sources = {official: refs_file for official in pairs}
        return Read(pairs, instances.images, instances.annotations, instances.categories, sources)

    def _read_mdetr(self, settings: dict[str, Any], splits: dict[str, str]) -> Read:

        read = Read({}, {}, {}, [], {})
        for official in dict.fromkeys(splits.values()):
            path = read.sources[official] = self._mdetr_file(settings, official)
            data = read_json(path, what="MDETR refexp file")
            try:
                read.pairs[official] = _mdetr_pairs(data, path, read.images, read.objects)
                if not read.categories:
                    read.categories = [{"id": int(c["id"]), "name": str(c["name"])} for c in data["categories"]]
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise DataFileError(f"MDETR refexp file {path} is malformed: {exc!r}") from None
        return read


def _mdetr_pairs(
    data: dict[str, Any], path: Path, images: dict[int, dict[str, Any]], objects: dict[int, dict[str, Any]]
) -> list[Pair]:
    """The pairs of one MDETR finetune file; its COCO images and objects are added to ``images``/``objects``."""
    boxes: dict[int, list[dict[str, Any]]] = {}
    for ann in data["annotations"]:
        boxes.setdefault(int(ann["image_id"]), []).append(ann)
    pairs = []
    for entry in data["images"]:
        found = boxes.get(int(entry["id"]), [])
        if len(found) != 1:
            raise DataFileError(
                f"{path}: expression {entry['id']} has {len(found)} boxes; MDETR's refexp files have exactly one"
            )
        coco_id, ann_id = int(entry["original_id"]), int(found[0]["original_id"])
        for table, key, record in (
            (images, coco_id, image_record(entry)),
            (objects, ann_id, annotation_record(found[0], coco_id, ann_id, path)),
        ):
            if table.setdefault(key, record) != record:
                raise DataFileError(f"{path}: id {key} has two different records: {table[key]} and {record}")
        pairs.append(Pair(coco_id, (ann_id,), str(entry["caption"]), "single"))
    return pairs
