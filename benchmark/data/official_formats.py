"""Write FuseBench's synthetic scenes in the official on-disk formats of the real datasets.

Real-data loaders can then be exercised without the real files: every writer reads a dataset in
FuseBench's standard form (:mod:`benchmark.data.coco`, built by
:func:`benchmark.data.synthetic.build_synthetic_dataset`) and writes the files, names, splits and
fields that the official release has, below one ``root`` folder::

    coco/images/{train2014,val2014}/COCO_<folder>_%012d.jpg     COCO 2014 images
    coco/annotations/dataset_coco.json                           Karpathy split
    coco/annotations/coco_karpathy_{train,val,test}.json         ALBEF / BLIP / LAVIS retrieval
    flickr30k/images/flickr30k-images/<id>.jpg                   flickr30k-images.tar.gz, unpacked
    flickr30k/annotations/dataset_flickr30k.json                 Karpathy split
    flickr30k/annotations/{train,val,test}.json                  LAVIS flickr30k retrieval
    refcoco/refs(unc).p, refcoco+/refs(unc).p, refcocog/refs(umd).p, <each>/instances.json   REFER
    grefcoco/grefs(unc).json, grefcoco/instances.json            gRefCOCO (ReLA)
    mdetr_annotations/finetune_<dataset>_<split>.json            MDETR refexp
    hf/<name>/ (save_to_disk), hf/<name>-{train,validation,test}.parquet   Hugging Face
    webdataset/<split>/shard-%05d.tar + sizes.json               open_clip / img2dataset

Sources of each format (repository, path) and what was checked there:

- Karpathy ``dataset_{coco,flickr30k}.json``: fields as used by bitmind/MS-COCO's parquet
  (``filepath, sentids, filename, imgid, split, sentences{tokens, raw, imgid, sentid}, cocoid``);
  Flickr30k entries have no ``filepath`` and no ``cocoid`` and no ``restval`` split. COCO's
  ``restval`` images are val2014 images (train = 82,783 train2014 + 30,504 restval val2014
  images), so restval images get ``filepath: val2014`` here.
- ALBEF/BLIP/LAVIS retrieval: salesforce/ALBEF ``dataset/caption_dataset.py`` (``re_train_dataset``
  reads per-caption rows ``{image, caption, image_id}``, ``re_eval_dataset`` per-image rows
  ``{image, caption: [..]}``), salesforce/LAVIS ``lavis/datasets/datasets/retrieval_datasets.py``,
  ``lavis/configs/datasets/coco/defaults_ret.yaml`` (``coco/annotations/coco_karpathy_*.json``,
  images ``coco/images/``) and ``lavis/configs/datasets/flickr30k/defaults.yaml``
  (``flickr30k/annotations/{train,val,test}.json``, images ``flickr30k/images``). COCO rows use
  ``image_id: "coco_<cocoid>"``; Flickr30k rows use the running image index (an ``int``). LAVIS and
  ALBEF use ``image_id`` only as a grouping key; the Flickr form was not found in stored sources.
  Flickr images therefore live in ``flickr30k/images/flickr30k-images/`` so that the LAVIS rows
  (``flickr30k-images/<id>.jpg``) and the Karpathy file name (``<id>.jpg``) reach one copy.
- REFER: lichengunc/refer ``refer.py`` (``refs(<splitBy>).p`` pickled list + ``instances.json``;
  ref keys ``ref_id, ann_id, category_id, image_id, split, sent_ids, file_name, sentences[{raw,
  sent, sent_id, tokens}]``). A ref's ``file_name`` is ``COCO_train2014_%012d_<k>.jpg``, whose
  suffix is not the ann id (real: ``..._581857_16.jpg`` for ann 1719310) and is left unexplained
  upstream; MDETR strips it. Here ``k`` is the object's index in its image. Only single-target
  synthetic refs are expressible; synthetic test maps to ``testA`` (or ``testB``), or to ``test``
  for refcocog (umd).
- gRefCOCO: henghuiding/ReLA ``gres_model/data/datasets/grefer.py`` and ``grefcoco.py``
  (``grefs(unc).json``; ``ann_id`` a list, ``[-1]`` for no target), henghuiding/gRefCOCO
  ``mdetr/scripts/fine-tuning/grefexp_coco_format.py`` (``category_id`` a list aligned with
  ``ann_id``) and issue #1 there (refs taken from RefCOCO keep REFER's suffixed ``file_name``,
  new ones use the plain COCO name). ``no_target`` (bool) and ``category_id: [-1]`` for no-target
  refs were not found in stored sources.
- MDETR: ashkamath/mdetr ``scripts/fine-tuning/refexp_coco_format.py`` (one "image" per
  expression ``{file_name, height, width, id, original_id, caption, dataset_name,
  tokens_negative}``, one annotation ``{area, iscrowd, image_id, category_id, id, bbox,
  original_id, tokens_positive}``; ids run across the files written in one call) and
  ``datasets/refexp.py`` (``finetune_<dataset>_<split>.json``, test splits by name). The spans
  come from a rule that stands in for the script's spaCy parse (``scripts/utils/text.py``
  ``get_root_and_nouns`` + ``spans.consolidate_spans``): one noun gives the whole sentence; with a
  relation, the positive span is the first noun phrase and the negative spans are every token
  outside the anchor's noun phrase. The rule was not run against spaCy.
- Hugging Face: the bitmind/MS-COCO dataset card (one row per caption; columns ``image`` (Image),
  ``filepath``, ``sentids``, ``filename``, ``imgid``, ``split`` (the Karpathy split, so train rows
  hold ``train`` and ``restval``), ``sentences`` {tokens, raw, imgid, sentid}, ``cocoid``; splits
  train/validation/test).
- WebDataset: mlfoundations/open_clip ``src/open_clip_train/data.py`` (``get_dataset_size`` sums
  ``sizes.json[basename(shard)]``; samples are consecutive members ``<key>.<ext>`` with image
  extensions ``jpg;png;jpeg;webp`` and ``txt``); img2dataset ``compute_key`` (key = shard × 10^4 +
  index, 5 + 4 digits) with one sample per (image, caption) pair and a ``<key>.json``.

Images: with ``lossless=True`` the official file names hold the synthetic PNG bytes unchanged
(PIL detects the format from the content, so pixels are bit-identical); with ``lossless=False``
they hold JPEG (quality 95) re-encoded from the PNG. Synthetic val/test images serve both as
Karpathy val2014 images and, like every synthetic image, as RefCOCO train2014 images, so one id
can sit in both folders; real COCO has no such overlap.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmark.data.coco import SPLITS, image_path, instances_path, read_captions, read_refs
from benchmark.data.grammar import RELATIONS, plural
from benchmark.data.synthetic import SPLIT_ID_OFFSET
from benchmark.errors import ConfigError
from benchmark.io import atomic_path, read_json, write_json, write_text

COLLECTIONS = ("coco", "flickr30k")
REFER_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
TEST_SPLITS = ("testA", "testB")
BOTH_TEST_SPLITS = "testA+testB"
"""``test_split`` value that puts even test image ids in testA and odd ones in testB (as REFER's two test sets)."""
NO_TARGET = -1
"""gRefCOCO's ``ann_id`` for an expression without target: ``[-1]`` (ReLA grefer.py)."""
COCO_FOLDER = {"train": "train2014", "restval": "val2014", "val": "val2014", "test": "val2014"}
"""Karpathy split -> COCO 2014 image folder (restval, val and test come from val2014)."""
HF_SPLITS = {"train": ("train", "restval"), "validation": ("val",), "test": ("test",)}
LAVIS_SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}
FLICKR_IMAGE_DIR = "flickr30k-images"
JPEG_QUALITY = 95
WDS_KEY_DIGITS = (5, 4)
"""img2dataset key = shard digits + sample-in-shard digits (its defaults for 10,000 per shard)."""
BIG_DEFAULT_SIZES: Mapping[str, int] = {"train": 200, "val": 5000, "test": 5000}
BIG_CAPTIONS_PER_IMAGE = 5
RESTVAL_FRACTION = 0.25
"""Share of synthetic train images that become Karpathy ``restval`` (real COCO: 30,504 / 113,287)."""


# ----------------------------------------------------------------------------- native input


@dataclass(frozen=True)
class NativeImage:
    """One synthetic image: its id, FuseBench split, PNG file and size in pixels."""

    image_id: int
    split: str
    path: Path
    width: int
    height: int


@dataclass(frozen=True)
class NativeData:
    """A synthetic dataset in memory: images (train, val, test; file order), captions, boxes, refs."""

    images: tuple[NativeImage, ...]
    captions: dict[int, list[str]]
    annotations: tuple[dict[str, Any], ...]
    categories: tuple[dict[str, Any], ...]
    refs: tuple[tuple[str, dict[str, Any]], ...]
    """(FuseBench split, ref) in file order."""

    def object_index(self) -> dict[int, int]:
        """Annotation id -> position of the object among its image's annotations."""
        seen: dict[int, int] = {}
        index = {}
        for ann in self.annotations:
            index[ann["id"]] = seen.get(ann["image_id"], 0)
            seen[ann["image_id"]] = index[ann["id"]] + 1
        return index


def read_native(native_dir: str | Path) -> NativeData:
    """Read every split of a dataset in FuseBench's standard form."""
    root = Path(native_dir)
    images, annotations, refs = [], [], []
    captions: dict[int, list[str]] = {}
    categories: list[dict[str, Any]] = []
    for split in SPLITS:
        instances = read_json(instances_path(root, split), what="instances file")
        images += [
            NativeImage(int(img["id"]), split, image_path(root, split, img["file_name"]), img["width"], img["height"])
            for img in instances["images"]
        ]
        annotations += instances["annotations"]
        categories = instances["categories"]
        captions.update(read_captions(root, split))
        refs += [(split, ref) for ref in read_refs(root, split)]
    return NativeData(tuple(images), captions, tuple(annotations), tuple(categories), tuple(refs))


# ----------------------------------------------------------------------------- image files


def coco_file_name(folder: str, image_id: int) -> str:
    """COCO 2014 file name, e.g. ``COCO_train2014_000000000123.jpg``."""
    return f"COCO_{folder}_{image_id:012d}.jpg"


def _image_bytes(src: Path, lossless: bool) -> bytes:
    """The PNG bytes as they are, or a JPEG (quality 95) re-encoded from them."""
    if lossless:
        return src.read_bytes()
    buffer = io.BytesIO()
    with Image.open(src) as image:
        image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _write_bytes(dest: Path, data: bytes) -> None:
    """Atomically write ``data`` (no fsync: image files are many and cheap to rewrite)."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def _place_images(pairs: Iterable[tuple[Path, Path]], lossless: bool) -> int:
    """Copy or re-encode each (synthetic PNG, official path); return how many were written."""
    count = 0
    for src, dest in pairs:
        _write_bytes(dest, _image_bytes(src, lossless))
        count += 1
    return count


def _write_pickle(path: Path, obj: Any) -> None:
    """Pickle with protocol 2, the protocol of the original (Python 2) REFER files."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        pickle.dump(obj, handle, protocol=2)


def _replace_dir(dest: Path, fill: Callable[[Path], Any]) -> None:
    """Call ``fill(tmp_dir)`` on a sibling temporary folder, then swap it in for ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        fill(tmp / "out")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp / "out", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- retrieval (Karpathy)


@dataclass(frozen=True)
class RetrievalImage:
    """An image of a retrieval split: id, Karpathy split (train|restval|val|test), captions."""

    image_id: int
    split: str
    captions: tuple[str, ...]


def _check_collection(collection: str) -> None:
    if collection not in COLLECTIONS:
        raise ConfigError(f"collection must be one of {COLLECTIONS}, got {collection!r}")


def karpathy_tokens(raw: str) -> list[str]:
    """Karpathy-style tokens: lower case, punctuation removed, split on white space."""
    return re.sub(r"[^\w\s]", "", raw.lower()).split()


def _retrieval_images(data: NativeData, collection: str, restval_fraction: float) -> list[RetrievalImage]:
    """Synthetic train/val/test -> Karpathy train/restval/val/test (restval only for COCO)."""
    if not 0.0 <= restval_fraction < 1.0:
        raise ConfigError(f"restval_fraction must be in [0, 1), got {restval_fraction}")
    train = sorted(img.image_id for img in data.images if img.split == "train")
    fraction = restval_fraction if collection == "coco" else 0.0
    restval = set(train[len(train) - round(len(train) * fraction) :])
    return [
        RetrievalImage(
            img.image_id,
            "restval" if img.image_id in restval else img.split,
            tuple(data.captions.get(img.image_id, [])),
        )
        for img in data.images
    ]


def _image_root(root: Path, collection: str) -> Path:
    """The folder image paths of the annotation files are relative to (LAVIS ``images.storage``)."""
    return root / collection / "images"


def _relative_image(collection: str, image: RetrievalImage) -> str:
    """The ``image`` field of a LAVIS row: ``train2014/COCO_...jpg`` or ``flickr30k-images/<id>.jpg``."""
    if collection == "coco":
        folder = COCO_FOLDER[image.split]
        return f"{folder}/{coco_file_name(folder, image.image_id)}"
    return f"{FLICKR_IMAGE_DIR}/{image.image_id}.jpg"


def _place_retrieval_images(
    data: NativeData, root: Path, collection: str, images: Sequence[RetrievalImage], lossless: bool
) -> int:
    sources = {img.image_id: img.path for img in data.images}
    base = _image_root(root, collection)
    return _place_images(((sources[i.image_id], base / _relative_image(collection, i)) for i in images), lossless)


def _karpathy_entry(collection: str, image: RetrievalImage, imgid: int, first_sentid: int) -> dict[str, Any]:
    sentids = list(range(first_sentid, first_sentid + len(image.captions)))
    folder, filename = _relative_image(collection, image).split("/")
    entry: dict[str, Any] = {
        "filename": filename,
        "imgid": imgid,
        "sentids": sentids,
        "split": image.split,
        "sentences": [
            {"tokens": karpathy_tokens(raw), "raw": raw, "imgid": imgid, "sentid": sentid}
            for raw, sentid in zip(image.captions, sentids)
        ],
    }
    if collection == "coco":
        entry.update(filepath=folder, cocoid=image.image_id)
    return entry


def karpathy_json(images: Sequence[RetrievalImage], collection: str) -> dict[str, Any]:
    """Karpathy's ``dataset_<collection>.json`` content: running ``imgid`` and ``sentid``."""
    entries, sentid = [], 0
    for imgid, image in enumerate(images):
        entries.append(_karpathy_entry(collection, image, imgid, sentid))
        sentid += len(image.captions)
    return {"images": entries, "dataset": collection}


def _lavis_image_id(collection: str, image: RetrievalImage, index: int) -> str | int:
    return f"coco_{image.image_id}" if collection == "coco" else index


def lavis_rows(images: Sequence[RetrievalImage], collection: str) -> dict[str, list[dict[str, Any]]]:
    """LAVIS/ALBEF annotation rows per file split: per caption for train, per image for val/test."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for split, karpathy_splits in LAVIS_SPLITS.items():
        members = [img for img in images if img.split in karpathy_splits]
        if split == "train":
            rows[split] = [
                {
                    "image": _relative_image(collection, img),
                    "caption": caption,
                    "image_id": _lavis_image_id(collection, img, n),
                }
                for n, img in enumerate(members)
                for caption in img.captions
            ]
        else:
            rows[split] = [
                {"image": _relative_image(collection, img), "caption": list(img.captions)} for img in members
            ]
    return rows


def _lavis_path(root: Path, collection: str, split: str) -> Path:
    name = f"coco_karpathy_{split}.json" if collection == "coco" else f"{split}.json"
    return root / collection / "annotations" / name


def _karpathy_path(root: Path, collection: str) -> Path:
    return root / collection / "annotations" / f"dataset_{collection}.json"


def _split_counts(images: Sequence[RetrievalImage]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for img in images:
        entry = counts.setdefault(img.split, {"images": 0, "captions": 0})
        entry["images"] += 1
        entry["captions"] += len(img.captions)
    return counts


def _write_karpathy_files(root: Path, collection: str, images: Sequence[RetrievalImage]) -> Path:
    path = _karpathy_path(root, collection)
    write_json(path, karpathy_json(images, collection))
    return path


def _write_lavis_files(root: Path, collection: str, images: Sequence[RetrievalImage]) -> dict[str, str]:
    written = {}
    for split, rows in lavis_rows(images, collection).items():
        path = _lavis_path(root, collection, split)
        write_json(path, rows)
        written[split] = str(path)
    return written


def write_karpathy(
    native_dir: str | Path,
    root: str | Path,
    collection: str = "coco",
    lossless: bool = True,
    restval_fraction: float = RESTVAL_FRACTION,
) -> dict[str, Any]:
    """Write Karpathy's ``dataset_<collection>.json`` and its images.

    Args:
        native_dir: a dataset in FuseBench's standard form.
        root: the folder that receives the official layout (see the module docstring).
        collection: ``"coco"`` or ``"flickr30k"``.
        lossless: PNG bytes under the official ``.jpg`` names (True) or real JPEG (False).
        restval_fraction: the last fraction of synthetic train images (by id) that become
            ``restval`` (COCO only; Flickr30k's Karpathy split has none).

    Returns:
        ``{"path", "image_root", "splits": {split: {"images", "captions"}}, "images_written",
        "ids": {image id: image path relative to image_root}}``.
    """
    _check_collection(collection)
    root, data = Path(root), read_native(native_dir)
    images = _retrieval_images(data, collection, restval_fraction)
    return {
        "path": str(_write_karpathy_files(root, collection, images)),
        "image_root": str(_image_root(root, collection)),
        "splits": _split_counts(images),
        "images_written": _place_retrieval_images(data, root, collection, images, lossless),
        "ids": {img.image_id: _relative_image(collection, img) for img in images},
    }


def write_coco_instances(
    native_dir: str | Path, root: str | Path, restval_fraction: float = RESTVAL_FRACTION
) -> dict[str, Any]:
    """COCO's ``instances_{train,val}2014.json`` for the images :func:`write_karpathy` places.

    Each file holds the images of its folder (Karpathy train → train2014; restval, val and test →
    val2014) with their objects, in REFER's instance form (:func:`refer_instances`), so
    ``kind: karpathy`` with ``instances: true`` finds every image's categories.
    """
    root, data = Path(root), read_native(native_dir)
    folder_of = {i.image_id: COCO_FOLDER[i.split] for i in _retrieval_images(data, "coco", restval_fraction)}
    everything = refer_instances(data)
    written = {}
    for folder in ("train2014", "val2014"):
        ids = {image_id for image_id, f in folder_of.items() if f == folder}
        content = {
            **everything,
            "images": [
                {**image, "file_name": coco_file_name(folder, image["id"])}
                for image in everything["images"]
                if image["id"] in ids
            ],
            "annotations": [a for a in everything["annotations"] if a["image_id"] in ids],
        }
        path = root / "coco" / "annotations" / f"instances_{folder}.json"
        write_json(path, content)
        written[folder] = {"path": str(path), "images": len(content["images"])}
    return written


def write_lavis_retrieval(
    native_dir: str | Path, root: str | Path, collection: str = "coco", lossless: bool = True
) -> dict[str, Any]:
    """Write the ALBEF/BLIP/LAVIS retrieval files (train = Karpathy train + restval) and images.

    Returns ``{"paths": {split: path}, "image_root", "rows": {split: n}, "images_written"}``.
    """
    _check_collection(collection)
    root, data = Path(root), read_native(native_dir)
    images = _retrieval_images(data, collection, restval_fraction=RESTVAL_FRACTION)
    paths = _write_lavis_files(root, collection, images)
    return {
        "paths": paths,
        "image_root": str(_image_root(root, collection)),
        "rows": {split: len(rows) for split, rows in lavis_rows(images, collection).items()},
        "images_written": _place_retrieval_images(data, root, collection, images, lossless),
    }


# ----------------------------------------------------------------------------- Hugging Face


def _hf_features() -> Any:
    from datasets import Features, List, Value
    from datasets import Image as HFImage

    sentence = {
        "tokens": List(Value("string")),
        "raw": Value("string"),
        "imgid": Value("int32"),
        "sentid": Value("int32"),
    }
    return Features(
        {
            "image": HFImage(),
            "filepath": Value("string"),
            "sentids": List(Value("int32")),
            "filename": Value("string"),
            "imgid": Value("int32"),
            "split": Value("string"),
            "sentences": sentence,
            "cocoid": Value("int32"),
        }
    )


def _hf_rows(entries: Sequence[dict[str, Any]], image_bytes: Mapping[int, bytes]) -> dict[str, list[Any]]:
    """One row per caption, columns as in bitmind/MS-COCO."""
    columns: dict[str, list[Any]] = {name: [] for name in _hf_features()}
    for entry in entries:
        for sentence in entry["sentences"]:
            columns["image"].append({"bytes": image_bytes[entry["cocoid"]], "path": entry["filename"]})
            columns["sentences"].append(sentence)
            for name in ("filepath", "sentids", "filename", "imgid", "split", "cocoid"):
                columns[name].append(entry[name])
    return columns


def write_hf_retrieval(
    native_dir: str | Path, root: str | Path, name: str = "coco_karpathy", lossless: bool = True
) -> dict[str, Any]:
    """Write COCO Karpathy retrieval as a ``datasets.DatasetDict`` and as parquet files.

    Columns (bitmind/MS-COCO, one row per caption): ``image`` (``datasets.Image``, bytes plus the
    COCO file name as ``path``), ``filepath`` (train2014|val2014), ``sentids`` (list[int32]),
    ``filename``, ``imgid`` (int32), ``split`` (Karpathy split: train rows hold ``train`` and
    ``restval``), ``sentences`` ({tokens, raw, imgid, sentid}), ``cocoid`` (int32). Splits
    ``train``, ``validation``, ``test``. Written to ``root/hf/<name>`` (``save_to_disk``) and
    ``root/hf/<name>-<split>.parquet``.

    Returns ``{"dataset_dir", "parquet": {split: path}, "rows": {split: n}}``.
    """
    from datasets import Dataset, DatasetDict

    root, data = Path(root), read_native(native_dir)
    images = _retrieval_images(data, "coco", restval_fraction=RESTVAL_FRACTION)
    entries = karpathy_json(images, "coco")["images"]
    image_bytes = {img.image_id: _image_bytes(img.path, lossless) for img in data.images}
    features = _hf_features()
    dataset = DatasetDict(
        {
            split: Dataset.from_dict(
                _hf_rows([e for e in entries if e["split"] in members], image_bytes), features=features
            )
            for split, members in HF_SPLITS.items()
        }
    )
    out = root / "hf"
    _replace_dir(out / name, lambda tmp: dataset.save_to_disk(str(tmp)))
    parquet = {}
    for split, part in dataset.items():
        path = out / f"{name}-{split}.parquet"
        with atomic_path(path) as tmp:
            part.to_parquet(str(tmp))
        parquet[split] = str(path)
    return {"dataset_dir": str(out / name), "parquet": parquet, "rows": {s: len(d) for s, d in dataset.items()}}


# ----------------------------------------------------------------------------- WebDataset


def webdataset_key(shard: int, index: int) -> str:
    """img2dataset's ``compute_key``: shard × 10^4 + index, zero-padded to 9 digits."""
    shard_digits, sample_digits = WDS_KEY_DIGITS
    return f"{shard * 10**sample_digits + index:0{shard_digits + sample_digits}d}"


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o444
    tar.addfile(info, io.BytesIO(data))


def _write_shard(path: Path, samples: Sequence[tuple[str, str, bytes, str, dict[str, Any]]]) -> None:
    """Members of one sample are consecutive, as webdataset's ``group_by_keys`` requires."""
    with atomic_path(path) as tmp, tarfile.open(tmp, "w") as tar:
        for key, ext, image, caption, meta in samples:
            _add_member(tar, f"{key}.{ext}", image)
            _add_member(tar, f"{key}.txt", caption.encode("utf-8"))
            _add_member(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode("utf-8"))


def write_webdataset(
    native_dir: str | Path, root: str | Path, split: str = "train", shard_size: int = 16, lossless: bool = True
) -> dict[str, Any]:
    """Write one synthetic split as open_clip/img2dataset WebDataset shards plus ``sizes.json``.

    One sample per (image, caption) pair; members ``<key>.png`` (lossless) or ``<key>.jpg``,
    ``<key>.txt`` (the caption), ``<key>.json`` (``key, caption, image_id, width, height,
    status``). Shards go to ``root/webdataset/<split>/shard-%05d.tar``.

    Returns ``{"dir", "pattern" (brace form, e.g. ``shard-{00000..00003}.tar``), "shards",
    "sizes", "samples"}``.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    if not 1 <= shard_size <= 10 ** WDS_KEY_DIGITS[1]:
        raise ConfigError(f"shard_size must be in [1, {10 ** WDS_KEY_DIGITS[1]}], got {shard_size}")
    data, out = read_native(native_dir), Path(root) / "webdataset" / split
    ext = "png" if lossless else "jpg"
    pairs = [(img, c) for img in data.images if img.split == split for c in data.captions.get(img.image_id, [])]
    sizes: dict[str, int] = {}
    for shard, start in enumerate(range(0, len(pairs), shard_size)):
        chunk = pairs[start : start + shard_size]
        samples = []
        for index, (img, caption) in enumerate(chunk):
            key = webdataset_key(shard, index)
            meta = {
                "key": key,
                "caption": caption,
                "image_id": img.image_id,
                "width": img.width,
                "height": img.height,
                "status": "success",
            }
            samples.append((key, ext, _image_bytes(img.path, lossless), caption, meta))
        name = f"shard-{shard:05d}.tar"
        _write_shard(out / name, samples)
        sizes[name] = len(chunk)
    write_json(out / "sizes.json", sizes)
    last = max(len(sizes) - 1, 0)
    return {
        "dir": str(out),
        "pattern": f"shard-{{00000..{last:05d}}}.tar",
        "shards": list(sizes),
        "sizes": sizes,
        "samples": len(pairs),
    }


# ----------------------------------------------------------------------------- referring expressions


def _ref_split(native_split: str, dataset: str, test_split: str, image_id: int = 0) -> str:
    """The official split of a synthetic split's expression; ``testA+testB`` alternates test images by id."""
    if native_split != "test":
        return native_split
    if REFER_SPLIT_BY.get(dataset) == "umd":
        return "test"
    if test_split == BOTH_TEST_SPLITS:
        return TEST_SPLITS[image_id % 2]
    return test_split


def _ref_splits(dataset: str, test_split: str) -> list[str]:
    """Every official split written, in order."""
    tests = list(TEST_SPLITS) if test_split == BOTH_TEST_SPLITS and REFER_SPLIT_BY.get(dataset) != "umd" else []
    return ["train", "val", *(tests or [_ref_split("test", dataset, test_split)])]


def _check_refer_args(dataset: str, test_split: str) -> None:
    if dataset not in (*REFER_SPLIT_BY, "grefcoco"):
        raise ConfigError(f"dataset must be one of {(*REFER_SPLIT_BY, 'grefcoco')}, got {dataset!r}")
    if test_split not in (*TEST_SPLITS, BOTH_TEST_SPLITS):
        raise ConfigError(f"test_split must be one of {(*TEST_SPLITS, BOTH_TEST_SPLITS)}, got {test_split!r}")


def _sentence(text: str, sent_id: int) -> dict[str, Any]:
    return {"tokens": text.lower().split(), "raw": text, "sent": text.lower(), "sent_id": sent_id}


def _refer_refs(data: NativeData, dataset: str, test_split: str) -> list[dict[str, Any]]:
    """REFER refs (single target, scalar ids) or, for ``grefcoco``, gRefCOCO refs (id lists)."""
    generalized = dataset == "grefcoco"
    anns = {ann["id"]: ann for ann in data.annotations}
    position = data.object_index()
    refs = []
    for split, ref in data.refs:
        if not generalized and ref["kind"] != "single":
            continue
        targets = [anns[a] for a in ref["ann_ids"]]
        sent_id = len(refs)
        record: dict[str, Any] = {
            "ref_id": ref["ref_id"],
            "image_id": ref["image_id"],
            "split": _ref_split(split, dataset, test_split, ref["image_id"]),
            "sent_ids": [sent_id],
            "sentences": [_sentence(ref["sentence"], sent_id)],
            "file_name": coco_file_name("train2014", ref["image_id"]),
        }
        if len(targets) == 1:  # RefCOCO-style ref: REFER's suffixed file name
            record["file_name"] = record["file_name"][: -len(".jpg")] + f"_{position[targets[0]['id']]}.jpg"
        ann_ids = [t["id"] for t in targets] or [NO_TARGET]
        cat_ids = [t["category_id"] for t in targets] or [NO_TARGET]
        if generalized:
            record.update(ann_id=ann_ids, category_id=cat_ids, no_target=not targets)
        else:
            record.update(ann_id=ann_ids[0], category_id=cat_ids[0])
        refs.append(record)
    return refs


def _box_polygon(bbox: Sequence[float]) -> list[float]:
    x, y, w, h = bbox
    return [round(v, 2) for v in (x, y, x + w, y, x + w, y + h, x, y + h)]


def refer_instances(data: NativeData) -> dict[str, Any]:
    """REFER's ``instances.json``: COCO train2014 names, box polygons, no synthetic extra keys."""
    return {
        "info": {"description": "FuseBench synthetic scenes in REFER layout", "version": "1"},
        "licenses": [],
        "images": [
            {
                "id": img.image_id,
                "file_name": coco_file_name("train2014", img.image_id),
                "height": img.height,
                "width": img.width,
            }
            for img in data.images
        ],
        "annotations": [
            {
                "id": ann["id"],
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "bbox": ann["bbox"],
                "area": ann["area"],
                "iscrowd": ann["iscrowd"],
                "segmentation": [_box_polygon(ann["bbox"])],
            }
            for ann in data.annotations
        ],
        "categories": list(data.categories),
    }


def _place_train2014(data: NativeData, root: Path, lossless: bool) -> int:
    folder = root / "coco" / "images" / "train2014"
    return _place_images(
        ((img.path, folder / coco_file_name("train2014", img.image_id)) for img in data.images), lossless
    )


def _split_counts_of(refs: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ref in refs:
        counts[ref["split"]] = counts.get(ref["split"], 0) + 1
    return counts


def _write_refs(
    native_dir: str | Path, root: str | Path, dataset: str, test_split: str, lossless: bool
) -> dict[str, Any]:
    _check_refer_args(dataset, test_split)
    root, data = Path(root), read_native(native_dir)
    refs = _refer_refs(data, dataset, test_split)
    folder = root / dataset
    if dataset == "grefcoco":
        refs_path = folder / "grefs(unc).json"
        write_json(refs_path, refs)
    else:
        refs_path = folder / f"refs({REFER_SPLIT_BY[dataset]}).p"
        _write_pickle(refs_path, refs)
    write_json(folder / "instances.json", refer_instances(data))
    return {
        "refs": str(refs_path),
        "instances": str(folder / "instances.json"),
        "image_dir": str(root / "coco" / "images" / "train2014"),
        "splits": _split_counts_of(refs),
        "images_written": _place_train2014(data, root, lossless),
    }


def write_refer(
    native_dir: str | Path, root: str | Path, dataset: str = "refcoco", lossless: bool = True, test_split: str = "testA"
) -> dict[str, Any]:
    """Write REFER's ``<dataset>/refs(unc|umd).p`` and ``instances.json`` plus train2014 images.

    Only single-target synthetic refs are written (one sentence each). Synthetic test refs take
    ``test_split`` (testA|testB, or ``testA+testB``: even test image ids in testA, odd in testB)
    for refcoco/refcoco+ and ``test`` for refcocog (umd).

    Returns ``{"refs", "instances", "image_dir", "splits": {split: n}, "images_written"}``.
    """
    if dataset not in REFER_SPLIT_BY:
        raise ConfigError(f"dataset must be one of {tuple(REFER_SPLIT_BY)}, got {dataset!r}")
    return _write_refs(native_dir, root, dataset, test_split, lossless)


def write_grefcoco(
    native_dir: str | Path, root: str | Path, lossless: bool = True, test_split: str = "testA"
) -> dict[str, Any]:
    """Write gRefCOCO's ``grefcoco/grefs(unc).json`` and ``instances.json`` with every synthetic ref.

    ``ann_id`` and ``category_id`` are lists (``[-1]`` without target) and ``no_target`` a bool.
    Returns the same keys as :func:`write_refer`.
    """
    return _write_refs(native_dir, root, "grefcoco", test_split, lossless)


# ----------------------------------------------------------------------------- MDETR


RELATION_WORDS = frozenset(word for relation in RELATIONS for word in relation.split())


def _noun_phrases(words: Sequence[str], nouns: frozenset[str]) -> list[list[int]]:
    """Word indices of each noun phrase: a noun and the non-relation words just before it."""
    phrases, start = [], 0
    for i, word in enumerate(words):
        if word in RELATION_WORDS:
            start = i + 1
        elif word in nouns:
            phrases.append(list(range(start, i + 1)))
            start = i + 1
    return phrases


def mdetr_spans(caption: str, nouns: frozenset[str]) -> tuple[list[list[int]], list[list[int]]]:
    """(tokens_positive, tokens_negative) character spans as MDETR's refexp script would give.

    Stands in for ``get_root_and_nouns`` + ``consolidate_spans``: with at most one noun both are
    the whole caption; otherwise the root is the first noun phrase and the negative spans cover
    every token outside the other noun phrases.
    """
    matches = list(re.finditer(r"\S+", caption))
    words = [m.group() for m in matches]
    phrases = _noun_phrases(words, nouns)
    if len(phrases) <= 1:
        return [[0, len(caption)]], [[0, len(caption)]]
    others = {i for phrase in phrases[1:] for i in phrase}
    positive = [[matches[i].start(), matches[i].end()] for i in phrases[0]]
    negative = [[m.start(), m.end()] for i, m in enumerate(matches) if i not in others]
    return positive, negative


def _category_nouns(categories: Iterable[dict[str, Any]]) -> frozenset[str]:
    names = [c["name"] for c in categories] + ["object"]
    return frozenset(names + [plural(n) for n in names])


def mdetr_refexp(
    refs: Sequence[dict[str, Any]],
    instances: dict[str, Any],
    dataset: str,
    split: str,
    next_img_id: int = 0,
    next_id: int = 0,
) -> tuple[dict[str, Any], int, int]:
    """``refexp_coco_format.convert`` on in-memory REFER refs: one image + one box per sentence."""
    anns = {a["id"]: a for a in instances["annotations"]}
    imgs = {i["id"]: i for i in instances["images"]}
    nouns = _category_nouns(instances["categories"])
    images, annotations = [], []
    for item in (r for r in refs if r["split"] == split):
        ann = anns[item["ann_id"]]
        for sentence in item["sentences"]:
            refexp = sentence["sent"]
            positive, negative = mdetr_spans(refexp, nouns)
            image = imgs[item["image_id"]]
            images.append(
                {
                    "file_name": "_".join(item["file_name"].split("_")[:-1]) + ".jpg",
                    "height": image["height"],
                    "width": image["width"],
                    "id": next_img_id,
                    "original_id": item["image_id"],
                    "caption": refexp,
                    "dataset_name": dataset,
                    "tokens_negative": negative,
                }
            )
            annotations.append(
                {
                    "area": ann["area"],
                    "iscrowd": ann["iscrowd"],
                    "image_id": next_img_id,
                    "category_id": item["category_id"],
                    "id": next_id,
                    "bbox": ann["bbox"],
                    "original_id": item["ann_id"],
                    "tokens_positive": positive,
                }
            )
            next_img_id, next_id = next_img_id + 1, next_id + 1
    content = {
        "info": instances["info"],
        "licenses": instances["licenses"],
        "images": images,
        "annotations": annotations,
        "categories": instances["categories"],
    }
    return content, next_img_id, next_id


def write_mdetr(
    native_dir: str | Path, root: str | Path, dataset: str = "refcoco", lossless: bool = True, test_split: str = "testA"
) -> dict[str, Any]:
    """Write MDETR's ``mdetr_annotations/finetune_<dataset>_<split>.json`` for every REFER split.

    Splits as :func:`write_refer`; ids run on from one split's file to the next (train, val,
    test), as in the original script. Images go to ``coco/images/train2014`` (MDETR's
    ``coco_path/train2014``).

    Returns ``{"paths": {split: path}, "expressions": {split: n}, "image_dir", "images_written"}``.
    """
    if dataset not in REFER_SPLIT_BY:
        raise ConfigError(f"dataset must be one of {tuple(REFER_SPLIT_BY)}, got {dataset!r}")
    _check_refer_args(dataset, test_split)
    root, data = Path(root), read_native(native_dir)
    refs, instances = _refer_refs(data, dataset, test_split), refer_instances(data)
    paths, counts, next_img_id, next_id = {}, {}, 0, 0
    for split in _ref_splits(dataset, test_split):
        content, next_img_id, next_id = mdetr_refexp(refs, instances, dataset, split, next_img_id, next_id)
        path = root / "mdetr_annotations" / f"finetune_{dataset}_{split}.json"
        write_json(path, content)
        paths[split], counts[split] = str(path), len(content["images"])
    return {
        "paths": paths,
        "expressions": counts,
        "image_dir": str(root / "coco" / "images" / "train2014"),
        "images_written": _place_train2014(data, root, lossless),
    }


# ----------------------------------------------------------------------------- COCO-size fixture


def _big_images(sizes: Mapping[str, int], test_captions: int, rng: np.random.Generator) -> list[RetrievalImage]:
    """COCO-size Karpathy splits: 5 captions per image, test topped up to ``test_captions``."""
    extra = test_captions - BIG_CAPTIONS_PER_IMAGE * sizes["test"]
    if not 0 <= extra <= sizes["test"]:
        raise ConfigError(f"test_captions must be in [5, 6] × test images ({sizes['test']}), got {test_captions}")
    six = set(rng.choice(sizes["test"], size=extra, replace=False).tolist())
    images = []
    for split in ("train", "val", "test"):
        for index in range(sizes[split]):
            image_id = SPLIT_ID_OFFSET[split] + index
            count = BIG_CAPTIONS_PER_IMAGE + int(split == "test" and index in six)
            captions = tuple(f"Noise image {image_id}, caption {k + 1}." for k in range(count))
            images.append(RetrievalImage(image_id, split, captions))
    return images


def _noise_jpeg(rng: np.random.Generator, side: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
        buffer, format="JPEG", quality=JPEG_QUALITY
    )
    return buffer.getvalue()


def write_big_retrieval_fixture(
    root: str | Path,
    images_per_split: Mapping[str, int] = BIG_DEFAULT_SIZES,
    test_captions: int = 25_010,
    side: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Write a COCO-size Karpathy ``dataset_coco.json``, the LAVIS files and tiny real JPEGs.

    Test has exactly ``images_per_split["test"]`` images and ``test_captions`` captions (five
    each, the remainder six, like real COCO's 5,000 / 25,010); val and train five each. Images
    are ``side``×``side`` seeded noise, real JPEG, under ``coco/images/{train2014,val2014}``.

    Returns ``{"path", "lavis", "splits", "images_written", "seconds"}``.
    """
    start = time.perf_counter()
    root, rng = Path(root), np.random.default_rng(seed)
    sizes = {split: int(images_per_split.get(split, 0)) for split in ("train", "val", "test")}
    images = _big_images(sizes, test_captions, rng)
    base = _image_root(root, "coco")
    for image in images:
        _write_bytes(base / _relative_image("coco", image), _noise_jpeg(rng, side))
    path = _write_karpathy_files(root, "coco", images)
    lavis = _write_lavis_files(root, "coco", images)
    return {
        "path": str(path),
        "lavis": lavis,
        "splits": _split_counts(images),
        "images_written": len(images),
        "seconds": round(time.perf_counter() - start, 3),
    }


# ----------------------------------------------------------------------------- CLI


def write_all(native_dir: str | Path, root: str | Path, lossless: bool = True, big: bool = False) -> dict[str, Any]:
    """Every format above from one synthetic dataset; the COCO-size fixture under ``root/big``."""
    root = Path(root)
    summary: dict[str, Any] = {}
    for collection in COLLECTIONS:
        summary[f"karpathy_{collection}"] = write_karpathy(native_dir, root, collection, lossless)
        summary[f"lavis_{collection}"] = write_lavis_retrieval(native_dir, root, collection, lossless)
    summary["coco_instances"] = write_coco_instances(native_dir, root)
    for dataset in REFER_SPLIT_BY:
        summary[f"refer_{dataset}"] = write_refer(native_dir, root, dataset, lossless, BOTH_TEST_SPLITS)
        summary[f"mdetr_{dataset}"] = write_mdetr(native_dir, root, dataset, lossless, BOTH_TEST_SPLITS)
    summary["grefcoco"] = write_grefcoco(native_dir, root, lossless, BOTH_TEST_SPLITS)
    summary["hf"] = write_hf_retrieval(native_dir, root, lossless=lossless)
    for split in SPLITS:
        summary[f"webdataset_{split}"] = write_webdataset(native_dir, root, split, lossless=lossless)
    if big:
        summary["big"] = write_big_retrieval_fixture(root / "big")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.data.official_formats", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--native", required=True, help="dataset in FuseBench's standard form")
    parser.add_argument("--root", required=True, help="folder that receives the official layouts")
    parser.add_argument("--lossy", action="store_true", help="real JPEG (quality 95) instead of PNG bytes")
    parser.add_argument("--big", action="store_true", help="also write the COCO-size retrieval fixture to ROOT/big")
    args = parser.parse_args(argv)
    summary = write_all(args.native, args.root, lossless=not args.lossy, big=args.big)
    write_text(
        Path(args.root) / "official_formats.json", json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n"
    )
    print(
        json.dumps(
            {name: {k: v for k, v in part.items() if k != "ids"} for name, part in summary.items()},
            indent=2,
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
