"""Small heads shared by the baselines: projection, matching, masked-token and pixel decoders."""

from __future__ import annotations

import torch
from torch import nn


class MLMHead(nn.Module):
    """BERT's masked-LM head: dense → GELU → LayerNorm → vocabulary logits."""

    def __init__(self, width: int, vocab_size: int) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width, eps=1e-12))
        self.decoder = nn.Linear(width, vocab_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden))


class MatchHead(nn.Module):
    """Image–text match logit from a fused [CLS] vector (ITM; also the retrieval score)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 1))

    def forward(self, fused_cls: torch.Tensor) -> torch.Tensor:
        return self.net(fused_cls).squeeze(-1)


class PixelDecoder(nn.Module):
    """Predicts the normalised pixels of a patch from its token (SimMIM's linear decoder)."""

    def __init__(self, width: int, patch_size: int, channels: int = 3) -> None:
        super().__init__()
        self.proj = nn.Linear(width, patch_size * patch_size * channels)

    def forward(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(patch_tokens)


def _inverse_sigmoid(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(1e-4, 1 - 1e-4)
    return torch.log(x / (1 - x))


def cell_box_prior(grid: int) -> torch.Tensor:
    """P×4 pre-sigmoid bias: each patch's default box is its own cell (normalised cxcywh)."""
    centers = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid
    cy, cx = torch.meshgrid(centers, centers, indexing="ij")
    side = torch.full_like(cx.flatten(), 1 / grid)
    return _inverse_sigmoid(torch.stack([cx.flatten(), cy.flatten(), side, side], dim=-1))


class DenseBoxHead(nn.Module):
    """Per-patch box (and optionally score) predictions, OWL-ViT style.

    Boxes are normalised cxcywh: ``sigmoid(mlp(token) + bias)`` where the bias places each
    patch's default box at its own cell with the side of one cell, so an untrained head
    already predicts sensible, distinct boxes.
    """

    def __init__(self, width: int, grid: int, with_score: bool = True) -> None:
        super().__init__()
        self.grid = grid
        self.box = nn.Sequential(
            nn.Linear(width, width), nn.GELU(), nn.Linear(width, width), nn.GELU(), nn.Linear(width, 4)
        )
        self.score = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 1)) if with_score else None
        self.register_buffer("box_bias", cell_box_prior(grid), persistent=False)

    def boxes(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.box(patch_tokens).float() + self.box_bias)

    def forward(self, patch_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(boxes B×P×4, score logits B×P)."""
        if self.score is None:
            raise RuntimeError("this DenseBoxHead predicts boxes only")
        return self.boxes(patch_tokens), self.score(patch_tokens).squeeze(-1).float()
