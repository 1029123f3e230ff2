"""Compositional split of the synthetic scenes (CLEVR-CoGenT style): attribute combinations held out.

``datasets.<name>.held_out_combinations`` lists partial assignments of the object attributes
``size`` / ``color`` / ``shape``, e.g. ``[{color: red, shape: triangle}]``; empty (the default)
turns the split off and leaves every generated file byte-identical to a build without the key.
All the rules live here:

* an **object matches** a combination when it has every value the combination fixes (a red
  triangle of either size matches ``{color: red, shape: triangle}``); it is *held out* when it
  matches one of the combinations;
* **train and val** never show a held-out object: a drawn object that matches is redrawn from
  the scene's own random stream (attributes only; see :func:`benchmark.data.scenes.sample_scene`).
  Nor does their text name one: a referring expression whose attribute filter fixes every value
  of a combination (a no-target "the red triangles" drawn from free attribute values) is redrawn
  too. Captions and the other expressions are built from the scene's own objects, so they cannot
  name a combination once no object matches one;
* **test** is sampled exactly as without the knob, then every item is tagged ``held_out`` or
  ``seen``:

  - an **image** is held-out when it contains a held-out object;
  - a **caption** when one of the objects it was generated from is held-out (list and counted
    captions mention every object of the scene, relation captions their two objects, partial
    captions the one or two they name — also when the phrase leaves the shape out, "a red
    object"); see :func:`benchmark.data.grammar.sample_caption_mentions`;
  - a **referring expression** when one of its target objects, or the anchor of its spatial
    relation ("the squares left of *the red triangle*"), is held-out. No-target expressions
    refer to no object and are seen.

The test tags go to ``annotations/compositional_test.json`` (listed in the manifest's
``compositional`` block with the combinations and the counts) and load with the split
(:func:`benchmark.data.dataset.load_split`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ATTRIBUTES = ("size", "color", "shape")
SUBSETS = ("seen", "held_out")
"""The tag of every test image, caption and referring expression, in report order."""
KEY = "held_out_combinations"
"""The dataset block's key; empty or absent = no compositional split."""
TAGGED_SPLITS = ("test",)
"""Splits whose items are tagged (train and val hold no held-out object)."""

Combination = Mapping[str, str]


def tags_path(root: Path, split: str) -> Path:
    """The sidecar with the seen / held-out tags of ``split``."""
    return root / "annotations" / f"compositional_{split}.json"


def combinations_of(spec: Mapping[str, Any]) -> tuple[dict[str, str], ...]:
    """The held-out combinations of a dataset spec (none when the key is absent or empty)."""
    return tuple(dict(c) for c in spec.get(KEY) or ())


def matches(attributes: Mapping[str, str | None], combination: Combination) -> bool:
    """Whether ``attributes`` fix every value ``combination`` fixes (``None`` = not fixed)."""
    return all(attributes.get(name) == value for name, value in combination.items())


def attributes_of(item: Any) -> dict[str, str | None]:
    """``size`` / ``color`` / ``shape`` of a scene object or an attribute filter (None where unset)."""
    return {name: getattr(item, name) for name in ATTRIBUTES}


def held_out(item: Any, combinations: Sequence[Combination]) -> bool:
    """Whether a scene object matches, or an attribute filter names, one of ``combinations``."""
    attributes = attributes_of(item)
    return any(matches(attributes, c) for c in combinations)


def tag(is_held_out: bool) -> str:
    return SUBSETS[1] if is_held_out else SUBSETS[0]


def tag_mentions(mentioned: Iterable[int], object_held_out: Sequence[bool]) -> str:
    """The tag of a text mentioning the objects at these indices of its scene."""
    return tag(any(object_held_out[i] for i in mentioned))


def check_combinations(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems with ``held_out_combinations`` as ``(key, message)``: unknown values, duplicates, all held out."""
    vocab = {"size": sorted(spec["sizes"]), "color": list(spec["colors"]), "shape": list(spec["shapes"])}
    problems = []
    combinations = combinations_of(spec)
    for k, combination in enumerate(combinations):
        for name, value in combination.items():
            if value not in vocab[name]:
                problems.append(
                    (
                        f"{KEY}.{k}.{name}",
                        f"{value!r} is not a configured {name}; configured: {', '.join(vocab[name])}",
                    )
                )
        if combination in combinations[:k]:
            problems.append((f"{KEY}.{k}", f"repeats an earlier combination {combination}"))
    if problems:
        return problems
    allowed = [
        (size, color, shape)
        for size in vocab["size"]
        for color in vocab["color"]
        for shape in vocab["shape"]
        if not any(matches({"size": size, "color": color, "shape": shape}, c) for c in combinations)
    ]
    if not allowed:
        problems.append((KEY, "holds out every (size, color, shape) combination: train scenes would have no object"))
    return problems


def count_tags(tags: Iterable[str]) -> dict[str, int]:
    """``{seen: n, held_out: m}``."""
    tags = list(tags)
    return {subset: tags.count(subset) for subset in SUBSETS}
