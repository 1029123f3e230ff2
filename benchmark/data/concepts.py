"""Concepts: the label space that decision-level (late) fusion predicts in each modality.

A concept is an object category ("category:circle"), an attribute value ("color:red") or an
attribute–category pair ("color+category:red circle"), taken from the instance annotations of
the training split. For real COCO data only categories exist, so only category concepts are
formed. ``targets`` gives, per image, which concepts some object in it has (multi-hot).
"""

from __future__ import annotations

import torch

from benchmark.data.dataset import SceneSplit

ATTRIBUTES = ("color",)


def object_concepts(obj: dict[str, str]) -> list[str]:
    concepts = [f"category:{obj['category']}"]
    for attribute in ATTRIBUTES:
        if obj.get(attribute):
            concepts.append(f"{attribute}:{obj[attribute]}")
            concepts.append(f"{attribute}+category:{obj[attribute]} {obj['category']}")
    return concepts


def concept_vocabulary(split: SceneSplit) -> tuple[str, ...]:
    """Every concept seen in ``split`` (use the training split), sorted."""
    return tuple(sorted({c for objects in split.objects for obj in objects for c in object_concepts(obj)}))


def concept_targets(split: SceneSplit, vocabulary: tuple[str, ...]) -> torch.Tensor:
    """N×C multi-hot float tensor; concepts outside the vocabulary are ignored."""
    index = {c: k for k, c in enumerate(vocabulary)}
    targets = torch.zeros(len(split), len(vocabulary))
    for row, objects in enumerate(split.objects):
        for obj in objects:
            for concept in object_concepts(obj):
                if concept in index:
                    targets[row, index[concept]] = 1.0
    return targets
