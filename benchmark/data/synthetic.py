"""Build the synthetic scenes dataset: images, COCO-style JSON and a manifest, atomically.

The build goes into a temporary sibling folder that is renamed into place only when complete,
so an interrupted build never leaves a folder that looks finished.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmark.config import config_hash
from benchmark.data.coco import MANIFEST, SPLITS, captions_path, image_path, instances_path, refs_path, sha256_file
from benchmark.data.grammar import sample_captions, sample_referring_expressions
from benchmark.data.scenes import render_scene, sample_scene, scene_rng
from benchmark.io import write_json

SPLIT_ID_OFFSET = {"train": 1_000_000, "val": 2_000_000, "test": 3_000_000}
"""Image ids are unique across splits and stable when split sizes change."""


def _build_split(root: Path, split: str, spec: dict[str, Any], categories: dict[str, int]) -> dict[str, Any]:
    images, instances, captions, refs = [], [], [], []
    vocab = {"size": sorted(spec["sizes"]), "color": list(spec["colors"]), "shape": list(spec["shapes"])}
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    count = spec["splits"][split]
    for index in tqdm(range(count), desc=f"scenes/{split}", unit="scene", mininterval=2.0, leave=False):
        rng = scene_rng(spec["seed"], split, index)
        scene = sample_scene(rng, spec)
        image_id = SPLIT_ID_OFFSET[split] + index
        file_name = f"{image_id}.png"
        render_scene(scene).save(image_path(root, split, file_name), format="PNG", optimize=False, compress_level=6)
        size = spec["image_size"]
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        ann_ids = []
        for k, obj in enumerate(scene.objects):
            ann_id = image_id * 16 + k
            ann_ids.append(ann_id)
            x, y, w, h = obj.box
            instances.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": categories[obj.shape],
                    "bbox": [x, y, w, h],
                    "area": round(w * h, 4),
                    "iscrowd": 0,
                    "color": obj.color,
                    "size": obj.size,
                }
            )
        for k, caption in enumerate(sample_captions(rng, scene, spec["captions_per_image"])):
            captions.append({"id": image_id * 16 + k, "image_id": image_id, "caption": caption})
        expressions = sample_referring_expressions(
            rng, scene, spec["referring_per_image"], spec["referring_mix"], vocab
        )
        for k, expr in enumerate(expressions):
            refs.append(
                {
                    "ref_id": image_id * 16 + k,
                    "image_id": image_id,
                    "sentence": expr.sentence,
                    "ann_ids": [ann_ids[t] for t in expr.targets],
                    "kind": expr.kind,
                }
            )
    category_list = [{"id": cid, "name": name, "supercategory": "shape"} for name, cid in categories.items()]
    info = {"description": f"FuseBench synthetic scenes ({split})", "version": "1"}
    write_json(
        instances_path(root, split),
        {
            "info": info,
            "licenses": [],
            "images": images,
            "annotations": instances,
            "categories": category_list,
        },
    )
    write_json(captions_path(root, split), {"info": info, "licenses": [], "images": images, "annotations": captions})
    write_json(refs_path(root, split), {"info": info, "refs": refs})
    return {
        "images": len(images),
        "objects": len(instances),
        "captions": len(captions),
        "refs": len(refs),
        "ref_kinds": dict(sorted(Counter(r["kind"] for r in refs).items())),
    }


def build_synthetic_dataset(spec: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Generate every split of ``spec`` into ``out_dir`` (replaced as a whole); return the manifest."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building.", dir=out_dir.parent))
    try:
        categories = {shape: i + 1 for i, shape in enumerate(spec["shapes"])}
        splits = {split: _build_split(tmp, split, spec, categories) for split in SPLITS}
        files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {
            "format": "fusebench-scenes/1",
            "spec": spec,
            "spec_hash": config_hash(spec),
            "categories": categories,
            "splits": splits,
            "files": files,
        }
        write_json(tmp / MANIFEST, manifest)
        if out_dir.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, trash / "old")
            os.replace(tmp, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest
