"""``kind: webdataset`` — a pretraining corpus of image–text pairs in WebDataset tar shards.

The shards are the ones open_clip trains on (``--dataset-type webdataset --train-data
'cc3m/{00000..00331}.tar'``) and img2dataset writes (``--output_format webdataset``): tar files
whose consecutive members ``<key>.<ext>`` form one sample, with an image ``<key>.jpg``,
``.png``, ``.jpeg`` or ``.webp``, its caption ``<key>.txt`` and, from img2dataset, a
``<key>.json`` of metadata (ignored here). mlfoundations/open_clip
``src/open_clip_train/data.py`` is the reference reader: members are grouped into samples by
webdataset's ``base_plus_ext`` (key = the name up to its first dot, extension lower-cased),
the image is the first of ``jpg;png;jpeg;webp`` a sample has, and ``get_dataset_size`` sums
``sizes.json[<shard file name>]`` from the first shard's folder. img2dataset's key is the shard
number × 10^4 + the sample's index in it (``000000012``), unique across shards.

Configuration: ``shards``, a pattern relative to ``root`` expanded as open_clip and webdataset
expand it (``::`` separates patterns, then bash brace expansion by ``braceexpand``:
``cc3m/{00000..00331}.tar``, ``{cc3m,cc12m}/{00000..00009}.tar``); ``max_samples`` stops after
that many samples (the shards after it are not read). There is no evaluation task here: the
corpus serves another dataset's ``pretrain_from``, so it has a train split only; val and test
are written empty. Official split sizes do not exist; ``sizes.json``, where present beside the
shards, takes their place: when every shard was read, the number of samples read from the
shards of its folder must equal the sum of their entries, else a DataFileError names the file
and both numbers.

Conversion (one pass, shard after shard, in the pattern's order; memory holds one sample's
bytes at a time, plus one small record per sample for the standard form's JSON):

* **one sample = one image with its caption** (img2dataset writes one sample per pair, so an
  image with five captions is five samples and five image files); **image id = the sample's
  running index** over the shards in order, from 0;
* the image's **original bytes** go to ``<data folder>/images/train/<key>.<ext>`` (no
  re-encoding: JPEG stays JPEG, PNG stays lossless), and ``image_root`` is the data folder;
  width and height come from the image header;
* the caption is the ``.txt`` text (UTF-8) with surrounding white space stripped, as every
  caption in FuseBench (:func:`benchmark.datasets.karpathy.text`).

Strictness, unlike open_clip's training pipeline (which logs and skips): a shard that is not a
readable tar, a sample without ``.txt`` or image, a caption that is not UTF-8, an image whose
header no decoder recognises, or a key used twice is a DataFileError naming the shard and the
key. Truncation: ``tarfile``'s stream mode stops *silently* at a header cut short, dropping the
rest of the shard, so a plain (uncompressed) shard must end with tar's end-of-archive marker (two
zero blocks), and nothing but zeros may follow the point where ``tarfile`` stopped; compressed
shards (gzip, bzip2, xz, zstd) detect a cut by themselves. A file cut short and then padded
with zeros (a preallocated download) can still pass: ``sizes.json`` is the check for that.

Reading: the members come from webdataset's own ``tar_file_iterator`` (streaming ``tarfile``
mode ``r|*``, so ``.tar.gz`` works too, with the member list cleared after each member so memory
stays flat) and are grouped by its ``group_by_keys`` — open_clip reads through the same
iterator and a copy of that grouping (which starts a new sample where webdataset's, and so this
adapter, rejects a repeated member). The ``webdataset`` pipeline classes (``WebDataset``,
decoders, shuffling) are not used: conversion needs neither decoding nor shuffling, and errors
must name the member.

Provenance: the manifest's ``sources`` are the shards opened (with ``max_samples``, those never
reached are left out) and each ``sizes.json``, with their sha256.

Limits: the leakage guard (``exclude_images``) compares file paths, and the images written here
exist only in the data folder, so it removes nothing from a shard corpus (it records 0 removed).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from braceexpand import braceexpand
from PIL import Image, UnidentifiedImageError

from benchmark.datasets.official import SPLITS, Converted, ConvertedSplit, OfficialAdapter, adapter_schema
from benchmark.datasets.records import text
from benchmark.errors import DataFileError
from benchmark.io import atomic_path, read_json

IMAGE_EXTENSIONS = ("jpg", "png", "jpeg", "webp")
"""Image members in open_clip's order of preference (``DEFAULT_IMAGE_KEY = "jpg;png;jpeg;webp"``)."""
TEXT_EXTENSION = "txt"
SIZES_FILE = "sizes.json"
"""open_clip's per-folder sample count: ``{<shard file name>: samples}``."""
END_OF_ARCHIVE = bytes(1024)
"""How a tar ends (two zero blocks, POSIX ustar). ``tarfile``'s stream mode stops without error at
a header cut short, so a plain shard truncated between members is caught by this check only."""
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
"""gzip, bzip2, xz, zstd: compressed shards (``.tar.gz``, ...) detect truncation by themselves."""
PATTERN_SEPARATOR = "::"
"""Separates patterns in one ``shards`` string (webdataset ``shardlists.expand_urls``, open_clip ``--train-data``)."""


def expand_shards(pattern: str) -> list[str]:
    """The shard names of ``pattern``: ``::``-separated parts, each brace-expanded, in order.

    Example: ``"a/{00..02}.tar::b/x.tar"`` → ``["a/00.tar", "a/01.tar", "a/02.tar", "b/x.tar"]``.
    """

    return [name for part in pattern.split(PATTERN_SEPARATOR) for name in braceexpand(part)]


class WebDatasetCorpus(OfficialAdapter):
    description = "image-text pretraining corpus in WebDataset tar shards (open_clip / img2dataset), train only"
    provides = ("images", "captions")
    tasks = ()
    config_schema: ClassVar[dict[str, Any]] = adapter_schema(
        "webdataset",
        ["shards"],
        {
            "shards": {
                "type": "string",
                "minLength": 1,
                "description": "shard pattern under root, brace-expanded, '::' between patterns: "
                "'cc3m/{00000..00331}.tar'",
            },
            "max_samples": {
                "type": "integer",
                "minimum": 1,
                "description": "read only the first N samples (shard order); the remaining shards are not read",
            },
        },
    )
    defaults: ClassVar[dict[str, Any]] = {"transform": "center_crop"}

    # --- files -------------------------------------------------------------------------------
    def shard_paths(self, spec: dict[str, Any]) -> list[Path]:
        """Every shard the pattern names, in order (an absolute pattern ignores ``root``)."""
        root = self.root(spec)
        return [root / name for name in expand_shards(spec["shards"])]

    def required_files(self, spec: dict[str, Any]) -> list[Path]:
        return self.shard_paths(spec)

    def sizes_files(self, spec: dict[str, Any]) -> list[Path]:
        """The ``sizes.json`` of each shard folder that has one."""
        folders = dict.fromkeys(p.parent for p in self.shard_paths(spec))
        return [f / SIZES_FILE for f in folders if (f / SIZES_FILE).is_file()]

    def inputs(self, spec: dict[str, Any]) -> list[Path]:
        return super().inputs(spec) + self.sizes_files(self.settings(spec))

    def check(self, spec: dict[str, Any]) -> list[tuple[str, str]]:
        twice = sorted(n for n, k in Counter(expand_shards(self.settings(spec)["shards"])).items() if k > 1)
        if twice:
            return [("shards", f"the pattern names shard(s) {', '.join(twice)} more than once")]
        return super().check(spec)

    def layout(self, spec: dict[str, Any]) -> str:
        paths = self.shard_paths(spec)
        shown = f"{paths[0]}" if len(paths) == 1 else f"{paths[0]} … {paths[-1]} ({len(paths)} shards)"
        return (
            f"  {spec['shards']}   → {shown}\n"
            f"  each shard a tar of consecutive members <key>.{{{','.join(IMAGE_EXTENSIONS)}}} + <key>.{TEXT_EXTENSION}"
            f" (+ <key>.json), as img2dataset writes them\n"
            f"  optional {SIZES_FILE} beside the shards: {{<shard file name>: samples}} (open_clip)"
        )

    def evaluation_images(self, spec: dict[str, Any]) -> set[str]:
        """None: a pretraining corpus has no val/test split (and nothing need be read to say so)."""
        return set()

    # --- reading -----------------------------------------------------------------------------
    def read(self, spec: dict[str, Any], build_dir: Path | None = None) -> Converted:
        """Stream the shards into the train split, writing each image under ``build_dir`` (None: nothing written)."""
        limit, shards, train = spec.get("max_samples"), self.shard_paths(spec), ConvertedSplit(images=[])
        counts: dict[Path, int] = {}  # shard → samples taken from it, for every shard opened
        first_shard: dict[str, Path] = {}  # key → shard it came from (keys name files: unique)
        cut = False  # max_samples reached with samples left: sizes.json cannot be checked
        for shard in shards:
            counts[shard] = 0
            for key, members in shard_samples(shard):
                if limit is not None and len(train.images) >= limit:
                    cut = True
                    break
                if key in first_shard:
                    raise DataFileError(
                        f"WebDataset shard {shard}: sample key {key!r} was already used in {first_shard[key]}; "
                        "keys name the image files, so they must be unique across shards"
                    )
                first_shard[key] = shard
                train.images.append(_image(len(train.images), shard, key, members, build_dir))
                train.captions.append({"image_id": train.images[-1]["id"], "caption": _caption(shard, key, members)})
                counts[shard] += 1
            if cut:
                break
        if not train.images:
            raise DataFileError(f"the WebDataset shards {spec['shards']!r} under {self.root(spec)} hold no sample")
        sizes = self.sizes_files(spec)
        for sizes_file in sizes if not cut else []:
            _check_sizes(sizes_file, counts)
        splits = {name: train if name == "train" else ConvertedSplit(images=[]) for name in SPLITS}
        return Converted(
            splits=splits,
            image_root=build_dir if build_dir is not None else self.root(spec) / "<not prepared>",
            sources=[*counts, *sizes],
            notes={
                "official_format": {  # the key every result's data note carries (benchmark.stages.dataset_note)
                    "format": "webdataset",
                    "shards": spec["shards"],
                    "shards_named": len(shards),
                    "shards_read": len(counts),
                    "samples": len(train.images),
                    "max_samples": limit,
                    "cut_by_max_samples": cut,
                    "sizes_checked": [] if cut else [str(p) for p in sizes],
                    "image_id": "running index of the sample over the shards in pattern order, from 0",
                    "images": "original bytes written to images/train/<key>.<ext>; one file per sample",
                    "captions": "<key>.txt as UTF-8, surrounding white space stripped",
                }
            },
        )


class _MemberWatch:
    """``select_files`` hook of ``tar_file_iterator`` that selects every member and remembers the last.

    It is called with each member's name before the member's data is read, so when reading fails
    the member at fault is known (webdataset's own messages name only the file object).
    """

    def __init__(self) -> None:
        self.name: str | None = None

    def __call__(self, name: str) -> bool:
        self.name = name
        return True


def shard_samples(shard: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` of each sample of one shard, streamed, as webdataset groups them.

    Raises:
        DataFileError: naming the shard (and the key being read) when it cannot be opened, or is
            not a readable tar (truncated, corrupt, not a tar), or a sample repeats a member.
    """
    try:
        with open(shard, "rb") as handle:
            plain = not handle.read(len(max(COMPRESSED_MAGIC, key=len))).startswith(COMPRESSED_MAGIC)
            if plain:
                _check_end_marker(handle, shard)
            handle.seek(0)
            yield from _grouped(handle, shard, plain)
    except OSError as exc:
        raise DataFileError(f"WebDataset shard {shard} cannot be read: {exc}") from None


def _check_end_marker(handle: io.BufferedReader, shard: Path) -> None:
    """A plain tar ends with two zero blocks; without them it was cut short (see :data:`END_OF_ARCHIVE`)."""
    size = handle.seek(0, io.SEEK_END)
    handle.seek(max(size - len(END_OF_ARCHIVE), 0))
    if size < len(END_OF_ARCHIVE) or handle.read() != END_OF_ARCHIVE:
        raise DataFileError(
            f"WebDataset shard {shard} is truncated: its last {len(END_OF_ARCHIVE)} bytes are not tar's "
            f"end-of-archive marker (two zero blocks), so the file was cut short ({size} bytes)"
        )


def _grouped(handle: io.BufferedReader, shard: Path, plain: bool) -> Iterator[tuple[str, dict[str, bytes]]]:

    from webdataset.tariterators import base_plus_ext, group_by_keys, tar_file_iterator

    watch = _MemberWatch()
    members = ({**m, "__url__": str(shard)} for m in tar_file_iterator(handle, select_files=watch))
    samples = group_by_keys(members)
    while True:
        try:
            sample = next(samples)
        except StopIteration:
            break
        except Exception as exc:  # tarfile, gzip/zlib/lzma and webdataset each raise their own types
            key = base_plus_ext(watch.name)[0] if watch.name else None
            where = f"at sample key {key!r} (member {watch.name!r})" if watch.name else "before its first member"
            reason = str(exc.args[0]).split(" @ ")[0] if exc.args else ""
            raise DataFileError(
                f"WebDataset shard {shard} is truncated or corrupt {where}: {type(exc).__name__}: {reason}"
            ) from None
        yield sample["__key__"], {k: v for k, v in sample.items() if not k.startswith("__")}
    if plain and any(chunk.strip(b"\0") for chunk in iter(lambda: handle.read(1 << 20), b"")):
        last = f"sample key {base_plus_ext(watch.name)[0]!r} (member {watch.name!r})" if watch.name else "its start"
        raise DataFileError(
            f"WebDataset shard {shard} is corrupt after {last}: the next tar header is unreadable, and data follows it"
        )


def _image(image_id: int, shard: Path, key: str, members: dict[str, bytes], image_dir: Path | None) -> dict[str, Any]:
    """The sample's image record; its bytes written unchanged under ``image_dir`` (when preparing)."""
    ext = next((e for e in IMAGE_EXTENSIONS if e in members), None)
    if ext is None or TEXT_EXTENSION not in members:
        lacking = " and ".join(
            what
            for what, present in (("a .txt member", TEXT_EXTENSION in members), ("an image member", ext))
            if not present
        )
        raise DataFileError(
            f"WebDataset shard {shard}: sample key {key!r} lacks {lacking} (it has {', '.join(sorted(members))}); "
            f"every sample needs <key>.{TEXT_EXTENSION} and one of <key>.{{{','.join(IMAGE_EXTENSIONS)}}}"
        )
    relative = PurePosixPath(key)
    if relative.is_absolute() or ".." in relative.parts:
        raise DataFileError(f"WebDataset shard {shard}: sample key {key!r} would write outside the data folder")
    data = members[ext]
    width, height = _image_size(data, f"WebDataset shard {shard}: sample key {key!r} ({key}.{ext})")
    file_name = f"images/train/{relative}.{ext}"
    if image_dir is not None:
        with atomic_path(image_dir / file_name) as tmp:
            tmp.write_bytes(data)
    return {"id": image_id, "file_name": file_name, "width": width, "height": height}


def _image_size(data: bytes, where: str) -> tuple[int, int]:
    """(width, height) from the image header; a DataFileError naming ``where`` when it is no image."""

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DataFileError(f"{where}: the image bytes are not a readable image: {exc}") from None


def _caption(shard: Path, key: str, members: dict[str, bytes]) -> str:
    where = f"WebDataset shard {shard}: sample key {key!r} ({key}.{TEXT_EXTENSION})"
    try:
        return text(members[TEXT_EXTENSION].decode("utf-8"), where)
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{where}: the caption is not UTF-8 text: {exc}") from None


def _check_sizes(sizes_file: Path, counts: dict[Path, int]) -> None:
    """The samples read from the shards in ``sizes_file``'s folder equal the sum of their entries."""

    sizes = read_json(sizes_file, what=f"WebDataset {SIZES_FILE}")
    if not isinstance(sizes, dict):
        raise DataFileError(f"{sizes_file} is a {type(sizes).__name__}, expected {{<shard file name>: samples}}")
    shards = [p for p in counts if p.parent == sizes_file.parent]
    expected: dict[str, int] = {}
    for shard in shards:
        try:
            expected[shard.name] = int(sizes[shard.name])
        except (KeyError, TypeError, ValueError):
            raise DataFileError(
                f"{sizes_file} has no sample count for shard {shard.name} (got {sizes.get(shard.name)!r})"
            ) from None
    read, listed = sum(counts[p] for p in shards), sum(expected.values())
    if read != listed:
        differing = [
            f"{p.name}: {counts[p]} read, {expected[p.name]} listed" for p in shards if counts[p] != expected[p.name]
        ]
        raise DataFileError(
            f"{sizes_file}: the {len(shards)} shard(s) of its folder hold {read} samples, but {SIZES_FILE} lists "
            f"{listed} ({'; '.join(differing[:5])}{' …' if len(differing) > 5 else ''})"
        )
