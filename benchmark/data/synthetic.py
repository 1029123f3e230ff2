"""Build the synthetic scenes dataset: images, COCO-style JSON and a manifest, atomically.

The build goes into a temporary sibling folder that is renamed into place only when complete,
so an interrupted build never leaves a folder that looks finished. With ``held_out_combinations``
the train and val scenes exclude those attribute combinations and the test items are tagged
seen / held-out (:mod:`benchmark.data.compositional`); without it nothing changes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmark.data.compositional import KEY as COMPOSITIONAL_KEY
from benchmark.data.compositional import (
    SUBSETS,
    TAGGED_SPLITS,
    combinations_of,
    count_tags,
    held_out,
    tag,
    tag_mentions,
    tags_path,
)
from benchmark.data.grammar import ReferringExpression, sample_captions_mentions, sample_referring_expressions
from benchmark.data.scenes import Scene, render_scene, sample_scene, scene_rng
from benchmark.data.standard_form import MANIFEST, SPLITS, captions_path, image_path, instances_path, refs_path
from benchmark.hashing import config_hash
from benchmark.io import sha256_file, write_json

IN_TRAIN_KEY = "held_out_in_train"
"""The compositional split's control: train and val drawn without excluding the held-out combinations."""

SPLIT_ID_OFFSET = {"train": 1_000_000, "val": 2_000_000, "test": 3_000_000}
"""Image ids are unique across splits and stable when split sizes change."""


def _build_split(
    root: Path, split: str, spec: dict[str, Any], categories: dict[str, int]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(counts, seen / held-out tags or None) of one split, its files written under ``root``."""
    images, instances, captions, refs = [], [], [], []
    vocab = {"size": sorted(spec["sizes"]), "color": list(spec["colors"]), "shape": list(spec["shapes"])}
    combinations = combinations_of(spec)
    tagging = bool(combinations) and split in TAGGED_SPLITS
    # test is sampled as without the split, then tagged; the control (held_out_in_train) samples train and val so too
    excluded = () if tagging or spec.get(IN_TRAIN_KEY) else combinations
    tags: dict[str, Any] = {"combinations": list(combinations), "images": [], "refs": []}
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    count = spec["splits"][split]
    for index in tqdm(range(count), desc=f"scenes/{split}", unit="scene", mininterval=2.0, leave=False):
        rng = scene_rng(spec["seed"], split, index)
        scene = sample_scene(rng, spec, excluded)
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
        caption_mentions = sample_captions_mentions(rng, scene, spec["captions_per_image"])
        for k, (caption, _) in enumerate(caption_mentions):
            captions.append({"id": image_id * 16 + k, "image_id": image_id, "caption": caption})
        expressions = sample_referring_expressions(
            rng, scene, spec["referring_per_image"], spec["referring_mix"], vocab, excluded
        )
        if tagging:
            image_tags, ref_tags = _scene_tags(image_id, scene, caption_mentions, expressions, combinations)
            tags["images"].append(image_tags)
            tags["refs"] += ref_tags
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
    counts = {
        "images": len(images),
        "objects": len(instances),
        "captions": len(captions),
        "refs": len(refs),
        "ref_kinds": dict(sorted(Counter(r["kind"] for r in refs).items())),
    }
    if not tagging:
        return counts, None
    write_json(tags_path(root, split), tags)
    return counts, tags


def _scene_tags(
    image_id: int,
    scene: Scene,
    caption_mentions: list[tuple[str, tuple[int, ...]]],
    expressions: list[ReferringExpression],
    combinations: Sequence[Mapping[str, str]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Seen / held-out tags of one scene's image and captions, and of its expressions (targets and anchor)."""
    object_held_out = [held_out(obj, combinations) for obj in scene.objects]
    image = {
        "id": image_id,
        "subset": tag(any(object_held_out)),
        "captions": [tag_mentions(mentioned, object_held_out) for _, mentioned in caption_mentions],
    }
    refs = [
        {
            "ref_id": image_id * 16 + k,
            # held out when it refers to (targets, anchor) or names (its head phrase, e.g. a no-target
            # "the red triangles") a held-out combination: the rule train and val expressions are drawn by
            "subset": tag(
                tag_mentions((*e.targets, *(() if e.anchor is None else (e.anchor,))), object_held_out) == SUBSETS[1]
                or (e.attributes is not None and held_out(e.attributes, combinations))
            ),
        }
        for k, e in enumerate(expressions)
    ]
    return image, refs


def _compositional_record(root: Path, tags: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The manifest's ``compositional`` block: combinations, the tag files and the seen / held-out counts."""
    record: dict[str, Any] = {"combinations": [], "tags": {}, "counts": {}}
    for split, split_tags in tags.items():
        record["combinations"] = split_tags["combinations"]
        record["tags"][split] = str(tags_path(root, split).relative_to(root))
        record["counts"][split] = {
            "images": count_tags(i["subset"] for i in split_tags["images"]),
            "captions": count_tags(t for i in split_tags["images"] for t in i["captions"]),
            "refs": count_tags(r["subset"] for r in split_tags["refs"]),
        }
    return record


def build_synthetic_dataset(spec: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Generate every split of ``spec`` into ``out_dir`` (replaced as a whole); return the manifest."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building.", dir=out_dir.parent))
    try:
        if COMPOSITIONAL_KEY in spec and not spec[COMPOSITIONAL_KEY]:  # empty: the same dataset as no key
            spec = {k: v for k, v in spec.items() if k != COMPOSITIONAL_KEY}
        if IN_TRAIN_KEY in spec and not spec[IN_TRAIN_KEY]:  # false: the same dataset as no key
            spec = {k: v for k, v in spec.items() if k != IN_TRAIN_KEY}
        categories = {shape: i + 1 for i, shape in enumerate(spec["shapes"])}
        built = {split: _build_split(tmp, split, spec, categories) for split in SPLITS}
        splits = {split: counts for split, (counts, _) in built.items()}
        tags = {split: split_tags for split, (_, split_tags) in built.items() if split_tags is not None}
        files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {
            "format": "fusebench-scenes/1",
            "spec": spec,
            "spec_hash": config_hash(spec),
            "categories": categories,
            "splits": splits,
            "files": files,
        }
        if tags:
            manifest["compositional"] = _compositional_record(tmp, tags)
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
