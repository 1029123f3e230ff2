"""``kind: hf_retrieval`` — an image–caption dataset in 🤗 ``datasets`` form, from local files only.

Reads a folder written by ``DatasetDict.save_to_disk`` (``source: disk``, opened with
``datasets.load_from_disk``) or local parquet / JSON files (``source: parquet|json``, opened
with ``datasets.load_dataset("parquet"|"json", data_files={split: [files]}, streaming=True)``,
so nothing is copied into the 🤗 cache). Never a Hub loading script, never the network: it works
under ``HF_HUB_OFFLINE=1`` (loading scripts such as nlphuji/flickr30k's no longer run in
``datasets`` ≥ 4.0 anyway).

The defaults fit the bitmind/MS-COCO parquet release of COCO's Karpathy split (one row per
caption; ``image`` a ``datasets.Image``, ``cocoid``, ``sentences`` = {tokens, raw, imgid,
sentid}; splits train (train + restval), validation, test — its dataset card), which
:func:`tests.fixtures.official_formats.write_hf_retrieval` reproduces:

* ``splits`` — FuseBench's train/val/test → the dataset's split names (default train,
  validation, test);
* ``columns.image`` — a ``datasets.Image`` column (bytes, or a path to a local file) or a string
  column of paths relative to ``root``;
* ``columns.caption`` — a string (one row per caption; rows with the same image id are one image,
  captions in row order) or a list of strings (one row per image); a dotted name reaches into a
  struct (``sentences.raw``, also through a list of structs);
* ``columns.image_id`` — an integer, or a string whose trailing number is taken
  (``"coco_328757"`` → 328757, ``"1000092795"`` → 1000092795); ids must be unique across splits.

Images: the standard form references image *files*. Path columns are read in place
(``image_root`` = ``root``). ``datasets.Image`` values are written once, with their original
bytes (so lossless, whatever the format), to the run's data folder as
``images/<split>/<image_id>.<ext>`` (``ext`` from the content: png, jpg, ...); ``image_root`` is
then that folder. Those files exist only in a prepared data folder, so the leakage guard
(``exclude_images``, which compares resolved file paths) can never match them to another
dataset's files.

There are no official split sizes for a 🤗 copy; ``subset`` still cuts splits. Captions keep
their text with surrounding white space stripped (as ``kind: karpathy``); the retrieval protocol
is the one in :mod:`benchmark.datasets.karpathy`.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image, UnidentifiedImageError

from benchmark.datasets.official import SPLITS, Converted, OfficialAdapter, adapter_schema
from benchmark.datasets.records import SplitCollector, image_number, text
from benchmark.errors import DataFileError
from benchmark.io import atomic_path

SOURCES = ("disk", "parquet", "json")
BATCH_ROWS = 512
IMAGE_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}

_NAME = {"type": "string", "minLength": 1}
_FILES = {"anyOf": [_NAME, {"type": "array", "minItems": 1, "items": _NAME}]}


def _closed(properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
        "description": description,
    }


class HfRetrieval(OfficialAdapter):
    description = "image-caption retrieval data as a local 🤗 datasets folder (save_to_disk) or parquet/JSON files"
    provides = ("images", "captions")
    tasks = ("retrieval",)
    config_schema: ClassVar[dict[str, Any]] = {
        **adapter_schema(
            "hf_retrieval",
            ["path"],
            {
                "source": {"enum": list(SOURCES), "description": "disk: save_to_disk folder; parquet or json: files"},
                "path": {
                    "type": ["string", "object"],
                    "minLength": 1,
                    "minProperties": 1,
                    "additionalProperties": _FILES,
                    "description": "disk: the folder; parquet/json: dataset split name → file, glob or list "
                    "(under root)",
                },
                "splits": _closed(
                    {s: _NAME for s in SPLITS},
                    "FuseBench split → the dataset's split name (default train/validation/test)",
                ),
                "columns": _closed(
                    {k: _NAME for k in ("image", "caption", "image_id")},
                    "column names; a dotted caption name reaches into a struct, e.g. sentences.raw",
                ),
            },
        ),
        "allOf": [
            {
                "if": {"properties": {"source": {"const": "disk"}}},
                "then": {"properties": {"path": {"type": "string"}}},
                "else": {"properties": {"path": {"type": "object"}}},
            }
        ],
    }
    defaults: ClassVar[dict[str, Any]] = {
        "source": "disk",
        "splits": {"train": "train", "val": "validation", "test": "test"},
        "columns": {"image": "image", "caption": "sentences.raw", "image_id": "cocoid"},
        "transform": "center_crop",
    }

    # --- files -------------------------------------------------------------------------------
    def split_files(self, spec: dict[str, Any]) -> dict[str, list[Path]]:
        """Per FuseBench split, the files read (a pattern that matches nothing stays as itself)."""
        root, path = self.root(spec), spec["path"]
        if spec["source"] == "disk":
            return {s: _saved_split_files(root / path, spec["splits"][s]) for s in SPLITS}
        files = {}
        for split in SPLITS:
            patterns = path.get(spec["splits"][split], [])
            patterns = [patterns] if isinstance(patterns, str) else patterns
            files[split] = [
                Path(match) for p in patterns for match in (sorted(glob.glob(str(root / p))) or [str(root / p)])
            ]
        return files

    def required_files(self, spec: dict[str, Any]) -> list[Path]:
        return list(dict.fromkeys(p for files in self.split_files(spec).values() for p in files))

    def check(self, spec: dict[str, Any]) -> list[tuple[str, str]]:
        settings = self.settings(spec)
        if settings["source"] != "disk" and isinstance(settings["path"], dict):
            lacking = [f"{n!r} (splits.{s})" for s, n in settings["splits"].items() if n not in settings["path"]]
            if lacking:
                return [
                    ("path", f"names no files for split(s) {', '.join(lacking)}; it has {sorted(settings['path'])}")
                ]
        return super().check(spec)

    def layout(self, spec: dict[str, Any]) -> str:
        names = ", ".join(f"{n} (our {s})" for s, n in spec["splits"].items())
        columns = spec["columns"]
        if spec["source"] == "disk":
            where = f"  {spec['path']}/dataset_dict.json and {spec['path']}/<split>/ (DatasetDict.save_to_disk)"
        else:
            where = "\n".join(f"  {name}: {files}" for name, files in spec["path"].items())
        return (
            f"{where}\n  splits: {names}\n  columns: image {columns['image']!r} (datasets.Image or a path under "
            f"root), caption {columns['caption']!r} (string or list of strings), image_id {columns['image_id']!r}"
        )

    # --- reading -----------------------------------------------------------------------------
    def read(self, spec: dict[str, Any], build_dir: Path | None = None) -> Converted:
        """Embedded images are written under ``build_dir`` (see the module docstring)."""
        root, columns = self.root(spec), spec["columns"]
        collected, images = SplitCollector(), _Images(root, build_dir)
        sources: list[Path] = []
        for split in SPLITS:
            with _quiet():
                dataset, files, where = self._open(spec, split)
            sources += files
            for row in _rows(dataset, columns, where):
                image_id = _image_id(row["image_id"], f"{where}: column {columns['image_id']!r}")
                captions = _captions(row["caption"], f"{where}: image id {image_id}, column {columns['caption']!r}")
                known = collected.origin.get(image_id)
                if known is not None:  # a further caption row of a known image (another split: an error below)
                    file_name = collected.files[known[0]][image_id]
                else:
                    file_name = images.file_name(split, image_id, row["image"], f"{where}: image id {image_id}")
                collected.add(split, image_id, file_name, captions, f"{where}: image id {image_id}", where, merge=True)
        splits, image_root = collected.converted(), images.root()
        return Converted(
            splits=splits,
            image_root=image_root,
            sources=sources,
            split_sources={s: files[-1] for s, files in self.split_files(spec).items() if files},
            notes={
                "hf_dataset": {
                    "source": spec["source"],
                    "splits": spec["splits"],
                    "columns": columns,
                    "images": images.describe(),
                }
            },
        )

    def _open(self, spec: dict[str, Any], split: str) -> tuple[Any, list[Path], str]:
        """The dataset split mapped to ``split``, the files it is read from, and a name for messages."""
        import datasets

        name, files = spec["splits"][split], self.split_files(spec)[split]
        if spec["source"] == "disk":
            folder = self.root(spec) / spec["path"]
            try:
                loaded = datasets.load_from_disk(str(folder))
            except Exception as exc:  # datasets raises several types for a damaged folder
                raise DataFileError(f"🤗 dataset folder {folder} cannot be loaded: {exc}") from None
            if not isinstance(loaded, datasets.DatasetDict):
                raise DataFileError(f"🤗 dataset folder {folder} holds one Dataset, not a DatasetDict with splits")
            if name not in loaded:
                raise DataFileError(
                    f"🤗 dataset folder {folder} has no split {name!r} (splits.{split}); it has {sorted(loaded)}"
                )
            return loaded[name], files, f"{folder} split {name!r}"
        where = f"{spec['source']} split {name!r} ({', '.join(str(f) for f in files)})"
        try:
            loaded = datasets.load_dataset(spec["source"], data_files={name: [str(f) for f in files]}, streaming=True)
        except Exception as exc:  # missing or unreadable file, bad JSON, ...
            raise DataFileError(f"{where} cannot be loaded: {exc}") from None
        return loaded[name], files, where


def _saved_split_files(folder: Path, name: str) -> list[Path]:
    """What ``DatasetDict.save_to_disk`` wrote for split ``name``: the dict file, its state and its shards."""
    state = folder / name / "state.json"
    files = [folder / "dataset_dict.json", state]
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError, AttributeError):  # load_from_disk says why
        files += [folder / name / shard["filename"] for shard in json.loads(state.read_text())["_data_files"]]
    return files


class _Images:
    """Where each image of the dataset is: a path column read in place, or embedded bytes written out."""

    def __init__(self, root: Path, image_dir: Path | None) -> None:
        self.data_root, self.image_dir = root, image_dir
        self.kind: str | None = None  # "path" or "bytes", the same for every image
        self.written = 0

    def file_name(self, split: str, image_id: int, value: Any, where: str) -> str:
        if isinstance(value, str):
            return self._kind("path", value, where)
        if not isinstance(value, dict) or not (value.get("bytes") or value.get("path")):
            raise DataFileError(f"{where}: image is {type(value).__name__}, expected datasets.Image or a path")
        data = value.get("bytes") or self._local_bytes(value["path"], where)
        file_name = f"images/{split}/{image_id}.{_extension(data, where)}"
        if self.image_dir is not None:
            with atomic_path(self.image_dir / file_name) as tmp:
                tmp.write_bytes(data)
            self.written += 1
        return self._kind("bytes", file_name, where)

    def _kind(self, kind: str, file_name: str, where: str) -> str:
        if self.kind is None:
            self.kind = kind
        elif self.kind != kind:
            raise DataFileError(f"{where}: images are partly paths and partly datasets.Image values; use one kind")
        return file_name

    def _local_bytes(self, path: str, where: str) -> bytes:
        file = Path(path) if Path(path).is_absolute() else self.data_root / path
        try:
            return file.read_bytes()
        except OSError as exc:
            raise DataFileError(f"{where}: image file {file} cannot be read: {exc}") from None

    def root(self) -> Path:
        if self.kind == "bytes":  # without a data folder (a bare read), a folder that holds no such files
            return self.image_dir if self.image_dir is not None else self.data_root / "<embedded images>"
        return self.data_root

    def describe(self) -> str:
        if self.kind == "bytes":
            return f"embedded bytes written to images/<split>/<image_id>.<ext> ({self.written} files)"
        return "paths relative to root, read in place"


def _rows(dataset: Any, columns: dict[str, str], where: str) -> Iterator[dict[str, Any]]:
    """Each row's ``image``, ``caption`` and ``image_id`` values (embedded images left undecoded)."""
    import datasets

    tops = {key: name.split(".")[0] for key, name in columns.items()}
    features = dataset.features
    if features is not None:
        missing = sorted({t for t in tops.values() if t not in features})
        if missing:
            raise DataFileError(f"{where} has no column(s) {missing}; it has {sorted(features)}")
        if isinstance(features[tops["image"]], datasets.Image):
            dataset = dataset.cast_column(tops["image"], datasets.Image(decode=False))
    dataset = dataset.select_columns(sorted(set(tops.values())))
    with _quiet():
        for batch in dataset.iter(batch_size=BATCH_ROWS):
            size = len(next(iter(batch.values())))
            for k in range(size):
                yield {key: _reach(batch, name, k, where) for key, name in columns.items()}


def _reach(batch: dict[str, list[Any]], name: str, row: int, where: str) -> Any:
    """``batch[name][row]`` where ``name`` may be dotted: ``sentences.raw`` reaches into a struct or a list of them."""
    top, *rest = name.split(".")
    if top not in batch:
        raise DataFileError(f"{where} has no column {top!r}; it has {sorted(batch)}")
    value = batch[top][row]
    for part in rest:
        try:
            value = [v[part] for v in value] if isinstance(value, list) else value[part]
        except (KeyError, TypeError):
            raise DataFileError(f"{where}: column {name!r} — {part!r} is not a field of {top!r}") from None
    return value


def _image_id(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value:
        return image_number(value, where)
    raise DataFileError(f"{where}: image id {value!r} is neither an integer nor a string ending in a number")


def _captions(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [text(value, where)]
    if isinstance(value, list) and value:
        return [text(v, where) for v in value]
    raise DataFileError(f"{where}: caption is {value!r}, expected a string or a non-empty list of strings")


def _extension(data: bytes, where: str) -> str:

    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format or ""
    except (UnidentifiedImageError, OSError) as exc:
        raise DataFileError(f"{where}: embedded image bytes are not a readable image: {exc}") from None
    return IMAGE_EXTENSIONS.get(kind, kind.lower() or "img")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No 🤗 progress bars while rows are read (a job's log shows one line per stage instead)."""
    import datasets

    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()
