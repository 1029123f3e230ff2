"""A small English grammar over scenes: captions and referring expressions.

Captions describe a scene (all of it, a counted list, a spatial relation, or a part of it).
Referring expressions denote a *set* of objects: an attribute filter ("the red circles"),
optionally restricted by a spatial relation to a uniquely described anchor ("the squares left
of the blue triangle"). The ground truth of an expression is computed by evaluating it on the
scene, so it is correct by construction; it may hold zero, one or several objects.

Relations compare box centres with a margin (5% of the image side) so that near-ties, which a
human could read either way, never count.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.data.compositional import held_out as is_held_out
from benchmark.data.scenes import Scene, SceneGenerationError, SceneObject

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")
RELATIONS = ("left of", "right of", "above", "below")
RELATION_MARGIN = 0.05
REFERRING_KINDS = ("single", "multi", "none")
CAPTION_TEMPLATES = ("list", "count_list", "relation", "the_relation", "partial")
CAPTION_WEIGHTS = (0.35, 0.2, 0.15, 0.15, 0.15)
MAX_TRIES = 200


def plural(noun: str) -> str:
    """English plural of the nouns this grammar uses."""
    return noun + "es" if noun.endswith(("s", "x", "sh", "ch")) else noun + "s"


def with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def join_and(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


@dataclass(frozen=True)
class AttributeFilter:
    """Attribute values an object must have; ``None`` means "any"."""

    size: str | None = None
    color: str | None = None
    shape: str | None = None

    def matches(self, obj: SceneObject) -> bool:
        return (
            (self.size is None or obj.size == self.size)
            and (self.color is None or obj.color == self.color)
            and (self.shape is None or obj.shape == self.shape)
        )

    def phrase(self, plural_form: bool) -> str:
        noun = self.shape or "object"
        words = [w for w in (self.size, self.color) if w] + [plural(noun) if plural_form else noun]
        return " ".join(words)

    @staticmethod
    def of(obj: SceneObject, keep: tuple[str, ...]) -> AttributeFilter:
        return AttributeFilter(**{name: getattr(obj, name) for name in keep})


def relation_holds(relation: str, obj: SceneObject, anchor: SceneObject, image_size: int) -> bool:
    """Whether ``obj`` is <relation> ``anchor``, by box centres with a margin."""
    margin = RELATION_MARGIN * image_size
    (ox, oy), (ax, ay) = obj.center, anchor.center
    return {
        "left of": ox < ax - margin,
        "right of": ox > ax + margin,
        "above": oy < ay - margin,
        "below": oy > ay + margin,
    }[relation]


@dataclass(frozen=True)
class ReferringExpression:
    """A sentence and the indices of the scene objects it denotes.

    ``attributes``: the filter of its head phrase; ``anchor``: the object its relation is
    relative to, if any (the objects it mentions are its targets and its anchor)."""

    sentence: str
    targets: tuple[int, ...]
    attributes: AttributeFilter | None = None
    anchor: int | None = None

    @property
    def kind(self) -> str:
        return "none" if not self.targets else "single" if len(self.targets) == 1 else "multi"


ATTRIBUTES = ("size", "color", "shape")
ATTRIBUTE_SUBSETS = [s for r in (1, 2, 3) for s in itertools.combinations(ATTRIBUTES, r)]


def _unique_description(rng: np.random.Generator, scene: Scene, index: int) -> AttributeFilter | None:
    """A shortest attribute filter that picks out object ``index`` alone, if one exists."""
    obj = scene.objects[index]
    for size in (1, 2, 3):
        subsets = [s for s in ATTRIBUTE_SUBSETS if len(s) == size]
        for pick in rng.permutation(len(subsets)):
            flt = AttributeFilter.of(obj, subsets[pick])
            if sum(flt.matches(o) for o in scene.objects) == 1:
                return flt
    return None


def _random_filter(rng: np.random.Generator, scene: Scene, vocab: dict[str, list[str]]) -> AttributeFilter:
    """Attributes of a scene object (usually) or free attribute values (to reach empty sets)."""
    keep = ATTRIBUTE_SUBSETS[int(rng.integers(len(ATTRIBUTE_SUBSETS)))]
    if rng.random() < 0.75:
        obj = scene.objects[int(rng.integers(len(scene.objects)))]
        return AttributeFilter.of(obj, keep)
    return AttributeFilter(**{name: str(rng.choice(vocab[name])) for name in keep})


def sample_expression(rng: np.random.Generator, scene: Scene, vocab: dict[str, list[str]]) -> ReferringExpression:
    """One referring expression, its targets evaluated on the scene."""
    flt = _random_filter(rng, scene, vocab)
    candidates = [i for i, o in enumerate(scene.objects) if flt.matches(o)]
    relation_text, anchor = "", None
    if len(scene.objects) > 1 and rng.random() < 0.35:
        anchor_index = int(rng.integers(len(scene.objects)))
        anchor_filter = _unique_description(rng, scene, anchor_index)
        if anchor_filter is not None:
            relation = str(rng.choice(RELATIONS))
            anchor = scene.objects[anchor_index]
            candidates = [
                i
                for i in candidates
                if i != anchor_index and relation_holds(relation, scene.objects[i], anchor, scene.image_size)
            ]
            relation_text, anchor = f" {relation} the {anchor_filter.phrase(False)}", anchor_index
    plural_form = len(candidates) > 1 or (not candidates and rng.random() < 0.5)
    return ReferringExpression(f"the {flt.phrase(plural_form)}{relation_text}", tuple(candidates), flt, anchor)


def sample_referring_expressions(
    rng: np.random.Generator,
    scene: Scene,
    count: int,
    mix: dict[str, float],
    vocab: dict[str, list[str]],
    held_out: Sequence[Mapping[str, str]] = (),
) -> list[ReferringExpression]:
    """``count`` distinct expressions whose kinds follow ``mix`` as closely as the scene allows.

    An expression whose head phrase names one of the ``held_out`` combinations
    (:mod:`benchmark.data.compositional`) is drawn again; none are by default."""
    kinds = list(REFERRING_KINDS)
    probabilities = np.array([mix[k] for k in kinds], dtype=float)
    chosen: list[ReferringExpression] = []
    seen: set[str] = set()
    for _ in range(count):
        wanted = kinds[int(rng.choice(len(kinds), p=probabilities / probabilities.sum()))]
        fallback = None
        for _try in range(MAX_TRIES):
            expr = sample_expression(rng, scene, vocab)
            if expr.sentence in seen or (expr.attributes is not None and is_held_out(expr.attributes, held_out)):
                continue
            fallback = fallback or expr
            if expr.kind == wanted:
                break
        else:
            expr = fallback  # type: ignore[assignment]
        if expr is None:
            break
        seen.add(expr.sentence)
        chosen.append(expr)
    return chosen


def _group_phrases(rng: np.random.Generator, objects: list[SceneObject], with_size: bool) -> list[str]:
    """'two red circles', 'a small blue square': identical descriptions are counted."""
    keep = ("size", "color", "shape") if with_size else ("color", "shape")
    groups: dict[AttributeFilter, int] = {}
    for obj in objects:
        key = AttributeFilter.of(obj, keep)
        groups[key] = groups.get(key, 0) + 1
    order = rng.permutation(len(groups))
    items = list(groups.items())
    phrases = []
    for i in order:
        flt, n = items[i]
        phrases.append(with_article(flt.phrase(False)) if n == 1 else f"{NUMBER_WORDS[n]} {flt.phrase(True)}")
    return phrases


def _relation_pairs(scene: Scene) -> list[tuple[int, str, int]]:
    return [
        (i, rel, j)
        for i, j in itertools.permutations(range(len(scene.objects)), 2)
        for rel in RELATIONS
        if relation_holds(rel, scene.objects[i], scene.objects[j], scene.image_size)
    ]


def _object_phrase(rng: np.random.Generator, obj: SceneObject) -> str:
    keep = ("size", "color", "shape") if rng.random() < 0.5 else ("color", "shape")
    return AttributeFilter.of(obj, keep).phrase(False)


def sample_caption(rng: np.random.Generator, scene: Scene) -> str:
    """One caption from a randomly chosen template."""
    return sample_caption_mentions(rng, scene)[0]


def sample_caption_mentions(rng: np.random.Generator, scene: Scene) -> tuple[str, tuple[int, ...]]:
    """One caption from a randomly chosen template, with the indices of the objects it mentions."""
    objects = list(scene.objects)
    everything = tuple(range(len(objects)))
    template = CAPTION_TEMPLATES[int(rng.choice(len(CAPTION_TEMPLATES), p=CAPTION_WEIGHTS))]
    pairs = _relation_pairs(scene)
    if template in ("relation", "the_relation") and not pairs:
        template = "list"
    if template == "list":
        return join_and(_group_phrases(rng, objects, with_size=rng.random() < 0.5)), everything
    if template == "count_list":
        listing = join_and(_group_phrases(rng, objects, with_size=rng.random() < 0.5))
        return f"{NUMBER_WORDS[len(objects)]} objects: {listing}", everything
    if template in ("relation", "the_relation"):
        i, rel, j = pairs[int(rng.integers(len(pairs)))]
        a, b = _object_phrase(rng, objects[i]), _object_phrase(rng, objects[j])
        if template == "relation":
            return f"{with_article(a)} {rel} {with_article(b)}", (i, j)
        return f"the {a} is {rel} the {b}", (i, j)
    # partial: one or two objects; sometimes the shape is left out ("a red object")
    picked = rng.permutation(len(objects))[: int(rng.integers(1, min(2, len(objects)) + 1))]
    phrases = []
    for k in picked:
        obj = objects[int(k)]
        keep = ("color",) if rng.random() < 0.2 else ("color", "shape")
        phrases.append(with_article(AttributeFilter.of(obj, keep).phrase(False)))
    return "a scene with " + join_and(phrases), tuple(int(k) for k in picked)


def sample_captions(rng: np.random.Generator, scene: Scene, count: int) -> list[str]:
    """``count`` distinct captions (fewer only if the grammar runs out for this scene)."""
    return [caption for caption, _ in sample_captions_mentions(rng, scene, count)]


def sample_captions_mentions(rng: np.random.Generator, scene: Scene, count: int) -> list[tuple[str, tuple[int, ...]]]:
    """``count`` distinct captions, each with the indices of the objects it was generated from."""
    captions: list[tuple[str, tuple[int, ...]]] = []
    texts: set[str] = set()
    for _ in range(MAX_TRIES):
        if len(captions) == count:
            break
        caption, mentioned = sample_caption_mentions(rng, scene)
        if caption not in texts:
            captions.append((caption, mentioned))
            texts.add(caption)
    if len(captions) < count:
        raise SceneGenerationError(
            f"grammar produced only {len(captions)} distinct captions for a scene; lower captions_per_image"
        )
    return captions
