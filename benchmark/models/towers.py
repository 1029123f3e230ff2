"""Unimodal towers with their self-supervised heads, shared by every baseline.

``ImageTower`` = timm ViT + SimMIM mask token and pixel decoder; ``TextTower`` = BERT (or a
pretrained encoder) + MLM head. A baseline composes towers instead of re-implementing them, so
encoders and objectives are identical across methods and differences in the tables come from the
fusion strategy. A tower's initial weights are drawn from a seed of its own (the job's initialisation seed
and the tower's architecture, :func:`benchmark.seeding.module_init`), so methods sharing a tower
architecture start from the same tower at seed k; the method's own heads draw after, from its own stream.

Sizes (``width``, ``patch_size``, ``num_patches``) are read from the encoder actually built, so
they hold for a pretrained tower (:mod:`benchmark.models.pretrained`) as for a random one. An
image tower brings the data's images to its encoder's input once per forward pass
(:meth:`ImageTower.pixels`: resized on the device when the sizes differ, then normalised with the
encoder's own mean and std), and SimMIM's targets are those same pixels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.models.encoders import (
    IMAGE_MEAN,
    IMAGE_STD,
    normalize_images,
    patchify,
    unit_range,
    vit_tokens_from_pixels,
)
from benchmark.models.heads import MLMHead, PixelDecoder
from benchmark.models.pretrained import apply_training_options
from benchmark.objectives.masking import mask_tokens, mim_loss, mlm_loss, random_patch_mask
from benchmark.seeding import module_init


def image_tower_architecture(ctx: Any) -> dict[str, Any]:
    """What decides an :class:`ImageTower`'s parameters (its initialisation seed's parts): the vision config
    and the image size (``mask_ratio`` draws masks, not weights)."""
    return {"vision": ctx.model["vision"], "image_size": ctx.image_size}


def text_tower_architecture(ctx: Any) -> dict[str, Any]:
    """What decides a :class:`TextTower`'s parameters (its initialisation seed's parts): the text config,
    vocabulary, length and special tokens (``mlm_probability`` draws masks, not weights)."""
    return {
        "text": ctx.model["text"],
        "vocab_size": ctx.vocab_size,
        "max_length": ctx.max_length,
        "special_tokens": ctx.special_tokens,
    }


class ImageTower(nn.Module):
    """ViT encoder: ``tokens(images)`` → [CLS] + patch tokens; ``mim(images)`` → SimMIM loss."""

    def __init__(self, ctx: Any, mask_ratio: float = 0.4) -> None:
        super().__init__()
        vision = ctx.model["vision"]
        # the same initial weights in every method at seed k: seeded by the architecture, not the method
        with module_init(getattr(ctx, "init_seed", None), "image tower", image_tower_architecture(ctx)):
            self.vit = ctx.vision_encoder()
            self.width = int(self.vit.embed_dim)
            self.patch_size = int(self.vit.patch_embed.patch_size[0])
            self.mask_token = nn.Parameter(torch.zeros(1, 1, self.width))
            nn.init.trunc_normal_(self.mask_token, std=0.02)
            self.pixel_decoder = PixelDecoder(self.width, self.patch_size)
        self.image_size = int(self.vit.patch_embed.img_size[0])
        self.num_patches = int(self.vit.patch_embed.num_patches)
        # a random tower keeps the scalar 0.5 / 0.5; a pretrained one has per-channel statistics
        self.mean = vision.get("mean", IMAGE_MEAN)
        self.std = vision.get("std", IMAGE_STD)
        self.interpolation = vision.get("interpolation", "bicubic")
        self.mask_ratio = mask_ratio
        apply_training_options(self, "vit", vision)

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """The encoder's input: images (uint8 or float in [0, 1], B×3×H×W) resized to its resolution
        when they differ (on their device, antialiased) and normalised with its mean and std.

        A resized image is clamped to [0, 1] before normalising: bicubic interpolation overshoots at
        edges, while the pipeline the weights were trained with (timm's PIL resize) yields uint8 pixels.
        Images already at the resolution are normalised unchanged."""
        if tuple(images.shape[-2:]) == (self.image_size, self.image_size):
            return normalize_images(images, self.mean, self.std)
        mode = self.interpolation if self.interpolation in ("bilinear", "bicubic") else "bicubic"
        resized = F.interpolate(
            unit_range(images), size=(self.image_size, self.image_size), mode=mode, antialias=True, align_corners=False
        )
        return normalize_images(resized.clamp(0.0, 1.0), self.mean, self.std)

    def tokens(self, images: torch.Tensor, patch_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.tokens_from_pixels(self.pixels(images), patch_mask)

    def tokens_from_pixels(self, pixels: torch.Tensor, patch_mask: torch.Tensor | None = None) -> torch.Tensor:
        """[CLS] + patch tokens of pixels already prepared by :meth:`pixels`."""
        mask_token = self.mask_token if patch_mask is not None else None
        return vit_tokens_from_pixels(self.vit, pixels, patch_mask, mask_token)

    def masked_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens of ``images`` with a random ``mask_ratio`` of patches masked, and that mask."""
        patch_mask = random_patch_mask(images.shape[0], self.num_patches, self.mask_ratio, images.device)
        return self.tokens(images, patch_mask), patch_mask

    def mim_from_tokens(
        self, images: torch.Tensor, patch_tokens: torch.Tensor, patch_mask: torch.Tensor
    ) -> torch.Tensor:
        """SimMIM loss given patch tokens (B×P×D) computed from masked input (targets: :meth:`pixels`)."""
        return self.mim_from_pixels(self.pixels(images), patch_tokens, patch_mask)

    def mim_from_pixels(
        self, pixels: torch.Tensor, patch_tokens: torch.Tensor, patch_mask: torch.Tensor
    ) -> torch.Tensor:
        return mim_loss(self.pixel_decoder(patch_tokens), patchify(pixels, self.patch_size), patch_mask)

    def mim(self, images: torch.Tensor) -> torch.Tensor:
        """SimMIM loss; the images are resized and normalised once, for the encoder and the targets."""
        pixels = self.pixels(images)
        patch_mask = random_patch_mask(images.shape[0], self.num_patches, self.mask_ratio, images.device)
        tokens = self.tokens_from_pixels(pixels, patch_mask)
        return self.mim_from_pixels(pixels, tokens[:, 1:], patch_mask)


class TextTower(nn.Module):
    """BERT encoder: ``tokens(text)`` → token states; ``mlm(text)`` → text-only MLM loss."""

    def __init__(self, ctx: Any, mlm_probability: float = 0.15) -> None:
        super().__init__()
        # the same initial weights in every method at seed k: seeded by the architecture, not the method
        with module_init(getattr(ctx, "init_seed", None), "text tower", text_tower_architecture(ctx)):
            self.bert = ctx.text_encoder()
            self.width = int(self.bert.config.hidden_size)
            self.mlm_head = MLMHead(self.width, ctx.vocab_size)
        self.special = ctx.special_tokens
        self.vocab_size = ctx.vocab_size
        self.mlm_probability = mlm_probability
        apply_training_options(self, "bert", ctx.model["text"])

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
