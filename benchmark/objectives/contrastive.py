"""Image–text contrastive learning (ITC): symmetric InfoNCE with a learnable temperature.

As in CLIP (Radford et al. 2021): cosine similarities of L2-normalised embeddings, scaled by
``exp(logit_scale)`` (initialised to 1/0.07 and clamped at 100), cross-entropy over the batch
in both directions (image→text and text→image), averaged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy for a square logit matrix whose diagonal holds the positives."""
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"info_nce needs a square logit matrix, got shape {tuple(logits.shape)}")
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


class ImageTextContrastive(nn.Module):
    """Holds the learnable temperature; call with normalised image and text embeddings."""

    def __init__(self, temperature_init: float = 0.07, max_logit_scale: float = 100.0) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature_init)))
        self.max_logit_scale = max_logit_scale

    def logits(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Image×text logit matrix."""
        scale = self.logit_scale.exp().clamp(max=self.max_logit_scale)
        return scale * image_emb @ text_emb.t()

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        return info_nce(self.logits(image_emb.float(), text_emb.float()))
