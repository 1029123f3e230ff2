"""Referring-expression batches for grounding, resident on the device, sampled statelessly.

Each item is one (image, expression) pair with the boxes of every object the expression
refers to (normalised cxcywh, padded to ``max_targets`` with a validity mask), and — for
decision-level fusion — every object of the image with its attribute labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from benchmark.boxes import convert, normalize
from benchmark.data.dataset import SceneSplit
from benchmark.data.images import Images, prefetch
from benchmark.data.sampling import batch_indices, trim_padding
from benchmark.data.tokenizer import encode

ATTRIBUTE_GROUPS = ("category", "color", "size")


def attribute_vocabulary(split: SceneSplit) -> dict[str, list[str]]:
    """Values of each attribute group seen in ``split`` (use the training split), sorted."""
    values: dict[str, set[str]] = {group: set() for group in ATTRIBUTE_GROUPS}
    for objects in split.objects:
        for obj in objects:
            for group in ATTRIBUTE_GROUPS:
                if obj.get(group):
                    values[group].add(obj[group])
    return {group: sorted(v) for group, v in values.items() if v}


def _padded_boxes(boxes: list[torch.Tensor], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max([1, *(len(b) for b in boxes)])
    out = torch.zeros(len(boxes), width, 4)
    valid = torch.zeros(len(boxes), width, dtype=torch.bool)
    for row, b in enumerate(boxes):
        out[row, : len(b)] = b
        valid[row, : len(b)] = True
    return out, valid


@dataclass
class GroundingData:
    """All (image, expression) pairs of a split."""

    images: Images  # N×3×H×W uint8 (the split's images), resident or streamed
    image_index: torch.Tensor  # R: image of each expression
    input_ids: torch.Tensor  # R×L
    attention_mask: torch.Tensor  # R×L
    targets: torch.Tensor  # R×T×4 normalised cxcywh (padded)
    target_valid: torch.Tensor  # R×T
    objects: torch.Tensor  # N×O×4 every object of each image, normalised cxcywh (padded)
    object_valid: torch.Tensor  # N×O
    object_labels: torch.Tensor  # N×O×G attribute value index per group (-1 = unknown)
    kinds: list[str]  # R: single / multi / none

    @classmethod
    def from_split(
        cls, split: SceneSplit, tokenizer: Any, device: torch.device, attributes: dict[str, list[str]] | None = None
    ) -> GroundingData:
        if not split.refs:
            raise ValueError(f"split {split.name!r} has no referring expressions to ground")
        size = split.image_size

        def norm(xywh: Any) -> torch.Tensor:
            return convert(
                normalize(torch.as_tensor(xywh, dtype=torch.float32).reshape(-1, 4), size, size), "xywh", "cxcywh"
            )

        tokens = encode(tokenizer, [r["sentence"] for r in split.refs])
        targets, target_valid = _padded_boxes([norm(r["boxes"]) for r in split.refs], size)
        objects, object_valid = _padded_boxes([norm(b) for b in split.boxes], size)
        attributes = attributes or {}
        labels = torch.full((len(split), objects.shape[1], len(ATTRIBUTE_GROUPS)), -1, dtype=torch.long)
        for i, objs in enumerate(split.objects):
            for j, obj in enumerate(objs):
                for g, group in enumerate(ATTRIBUTE_GROUPS):
                    if obj.get(group) in attributes.get(group, []):
                        labels[i, j, g] = attributes[group].index(obj[group])
        return cls(
            images=split.images.to(device),
            image_index=torch.tensor([r["image_index"] for r in split.refs], device=device),
            input_ids=tokens["input_ids"].to(device),
            attention_mask=tokens["attention_mask"].to(device),
            targets=targets.to(device),
            target_valid=target_valid.to(device),
            objects=objects.to(device),
            object_valid=object_valid.to(device),
            object_labels=labels.to(device),
            kinds=[r["kind"] for r in split.refs],
        )

    def __len__(self) -> int:
        return int(self.image_index.shape[0])

    def select(self, rows: torch.Tensor) -> dict[str, Any]:
        """The batch of expressions ``rows`` (and their images)."""
        images = self.image_index[rows]
        return {
            "image": self.images[images],
            "text": trim_padding({"input_ids": self.input_ids[rows], "attention_mask": self.attention_mask[rows]}),
            "targets": self.targets[rows],
            "target_valid": self.target_valid[rows],
            "objects": self.objects[images],
            "object_valid": self.object_valid[images],
            "object_labels": self.object_labels[images],
        }

    def batch(self, step: int, batch_size: int, seed: int) -> dict[str, Any]:
        """Stateless sampling over expressions (see :func:`benchmark.data.sampling.batch_indices`)."""

        def upcoming() -> torch.Tensor:  # the images of the next step's expressions
            return self.image_index[batch_indices(len(self), batch_size, step + 1, seed).to(self.image_index.device)]

        prefetch(self.images, upcoming)
        return self.select(batch_indices(len(self), batch_size, step, seed).to(self.images.device))
