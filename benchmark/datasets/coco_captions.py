"""``kind: coco_captions`` — a dataset already laid out in FuseBench's standard form, read in place.

``root`` holds, per split ``train``/``val``/``test``: ``images/<split>/<file_name>``,
``annotations/instances_<split>.json`` (COCO instances: images, annotations with ``bbox`` xywh
pixels, categories), ``annotations/captions_<split>.json`` (COCO captions) and
``annotations/refs_<split>.json`` (``{"refs": [{ref_id, image_id, sentence, ann_ids, kind}]}``),
plus ``manifest.json`` listing the sha256 of every file (what ``kind: synthetic`` writes; a
converter from another format writes the same). Nothing is generated or copied: the run checks
the layout and every checksum, records them, and reads the files from ``root``. A relative
``root`` is resolved against the working directory Snakemake runs in (``--directory``); ``~``
is expanded. The manifest holds ``files`` (path → sha256) and ``splits`` (per split at least
``images``), as the synthetic builder writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from benchmark.data.standard_form import MANIFEST, SPLITS, captions_path, instances_path, read_manifest, refs_path
from benchmark.datasets.base import DatasetAdapter
from benchmark.errors import DataFileError
from benchmark.io import sha256_file


class CocoCaptions(DatasetAdapter):
    description = "a dataset in FuseBench's standard form (COCO-style JSON + images) read in place from 'root'"
    provides = ("images", "captions", "instances", "refs")
    generates = False
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind", "root"],
        "properties": {
            "kind": {"const": "coco_captions"},
            "root": {"type": "string", "minLength": 1, "description": "folder holding manifest.json"},
        },
    }

    def check(self, spec: dict[str, Any]) -> list[tuple[str, str]]:

        root = Path(spec["root"]).expanduser()
        if not (root / MANIFEST).is_file():
            return [("root", f"{root} holds no {MANIFEST}; expected the standard form described in {__file__}")]
        return []

    def inputs(self, spec: dict[str, Any]) -> list[Path]:

        root = Path(spec["root"]).expanduser()
        return [root / MANIFEST, *sorted((root / "annotations").glob("*.json"))]

    def data_dir(self, spec: dict[str, Any], build_dir: Path) -> Path:
        return Path(spec["root"]).expanduser()

    def prepare(self, spec: dict[str, Any], build_dir: Path) -> dict[str, Any]:

        root = Path(spec["root"]).expanduser()
        manifest = read_manifest(root)
        expected = [instances_path(root, s) for s in SPLITS] + [captions_path(root, s) for s in SPLITS]
        expected += [refs_path(root, s) for s in SPLITS]
        missing = [str(p) for p in expected if not p.is_file()]
        if missing:
            raise DataFileError(f"dataset {root} lacks {len(missing)} annotation file(s): {', '.join(missing)}")
        for relative, digest in manifest.get("files", {}).items():
            path = root / relative
            if not path.is_file():
                raise DataFileError(f"file listed in {root / 'manifest.json'} not found: {path}")
            if sha256_file(path) != digest:
                raise DataFileError(f"file {path} does not match its sha256 in {root / 'manifest.json'}")
        return {"splits": manifest["splits"], "root": str(root.resolve()), "files": manifest.get("files", {})}
