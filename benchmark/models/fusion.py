"""Fusion layers: co-attention between two token streams, and single-stream concatenation.

``CoAttentionBlock`` follows LXMERT's cross-modality layer (Tan & Bansal 2019; ViLBERT's
co-attention, Lu et al. 2019): each stream first attends to the other stream, then to itself,
then applies its MLP — pre-norm residual sublayers, padding masked out of every attention.
The order matters: cross-attention before self-attention lets the text [CLS] gather, within
the same layer, the image evidence each word token found.
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import nn


def key_padding(mask: torch.Tensor | None) -> torch.Tensor | None:
    """attention_mask (1 = token) → nn.MultiheadAttention key_padding_mask (True = ignore)."""
    return None if mask is None else mask == 0


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None) -> torch.Tensor:
        query = self.norm(x)
        source = query if context is x else context
        out, _ = self.attn(query, source, source, key_padding_mask=key_padding(context_mask), need_weights=False)
        return x + out


class _MLP(nn.Module):
    def __init__(self, width: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class CoAttentionBlock(nn.Module):
    """One cross-modality layer: cross-attention to the other stream, self-attention, MLP — per stream."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.text_self, self.image_self = _Attention(width, heads), _Attention(width, heads)
        self.text_cross, self.image_cross = _Attention(width, heads), _Attention(width, heads)
        self.text_mlp, self.image_mlp = _MLP(width, mlp_ratio), _MLP(width, mlp_ratio)

    def forward(
        self, text: torch.Tensor, text_mask: torch.Tensor, image: torch.Tensor, image_output: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Both streams updated from both inputs; ``image_output=False`` leaves out the image stream (None),
        on which the text stream's outputs do not depend within the block."""
        fused_text = self.text_cross(text, image, None)
        fused_text = self.text_mlp(self.text_self(fused_text, fused_text, text_mask))
        if not image_output:
            return fused_text, None
        image = self.image_cross(image, text, text_mask)
        return fused_text, self.image_mlp(self.image_self(image, image, None))


class CoAttentionEncoder(nn.Module):
    """A stack of co-attention blocks with final norms; streams must share one width."""

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(CoAttentionBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.text_norm, self.image_norm = nn.LayerNorm(width), nn.LayerNorm(width)

    def forward(
        self, text: torch.Tensor, text_mask: torch.Tensor, image: torch.Tensor, image_output: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fused text and image tokens. ``image_output=False`` (a caller that reads only the fused text, as
        ITM and MLM do): the last block's image stream, on which no text output depends, is not computed,
        and the image output is None — the same fused text at a fraction of the cost."""
        for index, block in enumerate(self.blocks):
            text, fused = block(text, text_mask, image, image_output or index < len(self.blocks) - 1)
            image = fused if fused is not None else image
        return self.text_norm(text), self.image_norm(image) if image_output else None


class SingleStreamEncoder(nn.Module):
    """One transformer over a concatenated token sequence (ViLT/VisualBERT's single stream).

    timm ViT blocks with a key-padding mask; each modality's tokens carry a learned
    modality-type embedding, and a [CLS] token is prepended.
    """

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: float, modalities: int = 2) -> None:
        super().__init__()

        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.modality = nn.Parameter(torch.zeros(modalities, width))
        nn.init.trunc_normal_(self.cls, std=0.02)
        nn.init.trunc_normal_(self.modality, std=0.02)
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, qkv_bias=True) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(
        self, streams: list[tuple[torch.Tensor, torch.Tensor] | None]
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """``streams[m]`` = (tokens B×N×D, mask B×N with 1 = real) or None if modality m is absent.

        Returns the fused [CLS] and each stream's output tokens (None where absent).
        """
        present = [s for s in streams if s is not None]
        if not present:
            raise ValueError("single stream needs at least one modality")
        batch = present[0][0].shape[0]
        parts, keep = [self.cls.expand(batch, -1, -1)], [torch.ones(batch, 1, dtype=torch.bool, device=self.cls.device)]
        for index, stream in enumerate(streams):
            if stream is not None:
                parts.append(stream[0] + self.modality[index])
                keep.append(stream[1].bool())
        x = torch.cat(parts, dim=1)
        mask = torch.cat(keep, dim=1)[:, None, None, :]
        for block in self.blocks:
            x = block(x, attn_mask=mask)
        x = self.norm(x)
        outputs: list[torch.Tensor | None] = []
        offset = 1
        for stream in streams:
            if stream is None:
                outputs.append(None)
            else:
                outputs.append(x[:, offset : offset + stream[0].shape[1]])
                offset += stream[0].shape[1]
        return x[:, 0], outputs
