"""Unimodal towers with their self-supervised heads, shared by every baseline.

``ImageTower`` = timm ViT + SimMIM mask token and pixel decoder; ``TextTower`` = BERT + MLM
head. A baseline composes towers instead of re-implementing them, so encoders and objectives
are identical across methods and differences in the tables come from the fusion strategy.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmark.models.encoders import num_patches, patch_pixels, vit_tokens
from benchmark.models.heads import MLMHead, PixelDecoder
from benchmark.objectives.masking import mask_tokens, mim_loss, mlm_loss, random_patch_mask


class ImageTower(nn.Module):
    """ViT encoder: ``tokens(images)`` → [CLS] + patch tokens; ``mim(images)`` → SimMIM loss."""

    def __init__(self, ctx: Any, mask_ratio: float = 0.4) -> None:
        super().__init__()
        vision = ctx.model["vision"]
        self.vit = ctx.vision_encoder()
        self.width = vision["width"]
        self.patch_size = vision["patch_size"]
        self.num_patches = num_patches(vision, ctx.image_size)
        self.mask_ratio = mask_ratio
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.width))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.pixel_decoder = PixelDecoder(self.width, self.patch_size)

    def tokens(self, images: torch.Tensor, patch_mask: torch.Tensor | None = None) -> torch.Tensor:
        return vit_tokens(self.vit, images, patch_mask, self.mask_token if patch_mask is not None else None)

    def masked_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens of ``images`` with a random ``mask_ratio`` of patches masked, and that mask."""
        patch_mask = random_patch_mask(images.shape[0], self.num_patches, self.mask_ratio, images.device)
        return self.tokens(images, patch_mask), patch_mask

    def mim_from_tokens(
        self, images: torch.Tensor, patch_tokens: torch.Tensor, patch_mask: torch.Tensor
    ) -> torch.Tensor:
        """SimMIM loss given patch tokens (B×P×D) computed from masked input."""
        return mim_loss(self.pixel_decoder(patch_tokens), patch_pixels(images, self.patch_size), patch_mask)

    def mim(self, images: torch.Tensor) -> torch.Tensor:
        tokens, patch_mask = self.masked_tokens(images)
        return self.mim_from_tokens(images, tokens[:, 1:], patch_mask)


class TextTower(nn.Module):
    """BERT encoder: ``tokens(text)`` → token states; ``mlm(text)`` → text-only MLM loss."""

    def __init__(self, ctx: Any, mlm_probability: float = 0.15) -> None:
        super().__init__()
        self.bert = ctx.text_encoder()
        self.width = ctx.model["text"]["width"]
        self.special = ctx.special_tokens
        self.vocab_size = ctx.vocab_size
        self.mlm_probability = mlm_probability
        self.mlm_head = MLMHead(self.width, ctx.vocab_size)

    def tokens(self, text: dict[str, torch.Tensor], input_ids: torch.Tensor | None = None) -> torch.Tensor:
        ids = text["input_ids"] if input_ids is None else input_ids
        return self.bert(input_ids=ids, attention_mask=text["attention_mask"]).last_hidden_state

    def mask(self, text: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked ids, labels) for MLM; special tokens and padding are never targets."""
        return mask_tokens(
            text["input_ids"],
            text["attention_mask"],
            list(self.special.values()),
            self.special["mask"],
            self.vocab_size,
            self.mlm_probability,
        )

    def mlm(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        masked, labels = self.mask(text)
        return mlm_loss(self.mlm_head(self.tokens(text, masked)), labels)
