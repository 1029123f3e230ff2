"""Encoders built from config sizes with random initialisation (``init: random``, the default).

Vision: timm's ``VisionTransformer`` (ViT, Dosovitskiy et al. 2021). Text: transformers'
``BertModel`` (Devlin et al. 2019). Both are constructed from sizes in the config with random
initialisation, so a run needs no network and every method starts from the same architecture.
Dropout is off: runs are short, and deterministic forward passes make train and eval agree.
Pretrained towers (a timm / transformers source in ``init``) are built by
:mod:`benchmark.models.pretrained`; the token and pixel helpers here serve both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from transformers import BertConfig, BertModel

IMAGE_MEAN = 0.5
IMAGE_STD = 0.5


def unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 N×3×H×W → float in [0, 1]; float input is taken to be in [0, 1] already."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images


def normalize_images(
    images: torch.Tensor, mean: float | Sequence[float] = IMAGE_MEAN, std: float | Sequence[float] = IMAGE_STD
) -> torch.Tensor:
    """uint8 N×3×H×W (or float in [0, 1]) → float, ``(x - mean) / std`` per channel.

    The defaults (0.5, 0.5) centre and scale to about [-1, 1] (the random towers); a pretrained
    ViT passes its own per-channel statistics.
    """
    images = unit_range(images)
    if not isinstance(mean, (int, float)):
        mean = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    if not isinstance(std, (int, float)):
        std = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean) / std


def build_vision_encoder(vision: dict[str, Any], image_size: int) -> nn.Module:
    """A ViT with a [CLS] token; ``forward_features`` gives [CLS] + patch tokens."""

    return VisionTransformer(
        img_size=image_size,
        patch_size=vision["patch_size"],
        in_chans=3,
        num_classes=0,
        global_pool="token",
        embed_dim=vision["width"],
        depth=vision["depth"],
        num_heads=vision["heads"],
        mlp_ratio=vision["mlp_ratio"],
        class_token=True,
    )


def bert_config(text: dict[str, Any], vocab_size: int, max_length: int, pad_token_id: int) -> Any:

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=text["width"],
        num_hidden_layers=text["depth"],
        num_attention_heads=text["heads"],
        intermediate_size=int(text["width"] * text["mlp_ratio"]),
        max_position_embeddings=max_length,
        type_vocab_size=2,
        pad_token_id=pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def build_text_encoder(text: dict[str, Any], vocab_size: int, max_length: int, pad_token_id: int) -> nn.Module:
    """A BERT encoder without its pooler; use ``last_hidden_state[:, 0]`` as [CLS]."""

    return BertModel(bert_config(text, vocab_size, max_length, pad_token_id), add_pooling_layer=False)


def vit_tokens(
    vit: nn.Module,
    images: torch.Tensor,
    patch_mask: torch.Tensor | None = None,
    mask_token: torch.Tensor | None = None,
) -> torch.Tensor:
    """[CLS] + patch tokens of a timm ViT on raw images (normalised with mean = std = 0.5).

    See :func:`vit_tokens_from_pixels`; :class:`benchmark.models.towers.ImageTower` normalises
    (and resizes) with its own encoder's statistics instead.
    """
    return vit_tokens_from_pixels(vit, normalize_images(images), patch_mask, mask_token)


def vit_tokens_from_pixels(
    vit: nn.Module,
    pixels: torch.Tensor,
    patch_mask: torch.Tensor | None = None,
    mask_token: torch.Tensor | None = None,
) -> torch.Tensor:
    """[CLS] + patch tokens of a timm ViT on normalised pixels, optionally with masked patches (SimMIM).

    ``patch_mask`` (B×P, True = masked) replaces those patch embeddings by ``mask_token``
    before position embeddings are added, so the encoder never sees their pixels.
    """
    x = vit.patch_embed(pixels)
    if patch_mask is not None:
        if mask_token is None:
            raise ValueError("vit_tokens: a patch_mask needs a mask_token")
        x = torch.where(patch_mask.unsqueeze(-1), mask_token.to(x.dtype).expand_as(x), x)
    x = vit._pos_embed(x)
    x = vit.patch_drop(x)
    x = vit.norm_pre(x)
    for block in vit.blocks:
        x = block(x)
    return vit.norm(x)


def num_patches(vision: dict[str, Any], image_size: int) -> int:
    return (image_size // vision["patch_size"]) ** 2


def patch_pixels(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Normalised pixels (mean = std = 0.5) of each patch, B×P×(p·p·3), in the ViT's patch order."""
    return patchify(normalize_images(images), patch_size)


def patchify(pixels: torch.Tensor, patch_size: int) -> torch.Tensor:
    """B×C×H×W → B×P×(p·p·C): each patch's pixels, in the ViT's patch order (row-major)."""
    x = pixels
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch_size, patch_size, w // patch_size, patch_size)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch_size) * (w // patch_size), patch_size * patch_size * c)
