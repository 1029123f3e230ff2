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
