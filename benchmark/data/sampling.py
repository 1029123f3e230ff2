"""Stateless batch sampling: the batch of step ``s`` is a pure function of (seed, s).

Each epoch is a seeded permutation of the images, cut into ``n // batch_size`` consecutive
batches (the remainder is dropped, so a batch never holds an image twice — a contrastive loss
would count the duplicate as a negative). A caption per image is drawn with a per-step seed.
Because nothing is carried from step to step, resuming at step ``s`` needs no sampler state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from benchmark.data.concepts import concept_targets
from benchmark.data.dataset import SceneSplit
from benchmark.data.images import Images, prefetch, random_resized_crop
from benchmark.data.tokenizer import encode
from benchmark.seeding import torch_generator


def trim_padding(text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the padding columns every sequence has (right padding): attention never sees them
    anyway, and the text is often half padding, so every text-side cost is roughly halved."""
    length = int(text["attention_mask"].sum(dim=1).max())
    return {k: v[:, :length] for k, v in text.items()}


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Image indices of the batch at ``step`` (no repeats within a batch)."""
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} training images; lower the batch size")
    per_epoch = n // batch_size
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch_generator(seed, "epoch", epoch))
    return order[position * batch_size : (position + 1) * batch_size]


@dataclass
class ImageTextData:
    """A split resident on the device: images, tokenised captions and who owns each caption."""

    images: Images  # N×3×H×W uint8, resident or streamed
    input_ids: torch.Tensor  # T×L
    attention_mask: torch.Tensor  # T×L
    caption_start: torch.Tensor  # N: first caption row of each image
    caption_count: torch.Tensor  # N: captions per image
    concepts: torch.Tensor  # N×C multi-hot concept targets (late fusion's image labels)
    augment: dict[str, Any] = field(default_factory=dict)  # {"random_resized_crop": {scale, ratio}} or {}

    @classmethod
    def from_split(
        cls, split: SceneSplit, tokenizer: Any, device: torch.device, concepts: tuple[str, ...] = ()
    ) -> ImageTextData:
        texts, _ = split.caption_pairs()
        tokens = encode(tokenizer, texts)
        counts = torch.tensor([len(c) for c in split.captions], dtype=torch.long)
        starts = torch.cumsum(counts, 0) - counts
        return cls(
            images=split.images.to(device),
            input_ids=tokens["input_ids"].to(device),
            attention_mask=tokens["attention_mask"].to(device),
            caption_start=starts.to(device),
            caption_count=counts.to(device),
            concepts=concept_targets(split, concepts).to(device),
            augment=dict(split.augment),
        )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, step: int, batch_size: int, seed: int) -> dict[str, Any]:
        """Images of this step's batch, each with one of its captions drawn at random."""
        index = batch_indices(len(self), batch_size, step, seed).to(self.images.device)
        prefetch(self.images, lambda: batch_indices(len(self), batch_size, step + 1, seed))
        draw = torch.rand(len(index), generator=torch_generator(seed, "caption", step)).to(self.images.device)
        rows = self.caption_start[index] + (draw * self.caption_count[index]).long()
        images = self.images[index]
        crop = self.augment.get("random_resized_crop")
        if crop:
            generator = torch_generator(seed, "augment", step)
            images = random_resized_crop(images.cpu(), tuple(crop["scale"]), tuple(crop["ratio"]), generator)
            images = images.to(self.images.device)
        return {
            "image": images,
            "text": trim_padding({"input_ids": self.input_ids[rows], "attention_mask": self.attention_mask[rows]}),
            "image_index": index,
            "concepts": self.concepts[index],
        }
