"""Contrastive dual encoder (CLIP).

Follows Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021: a ViT image tower and a Transformer text tower, each followed by a
linear projection into a shared space; no fusion layers. Trained with symmetric InfoNCE and a
learnable temperature; image–text scores are cosine similarities.

Departures from the paper: towers are tiny and trained from scratch on FuseBench's data; the
text tower is a bidirectional BERT encoder pooled at [CLS] (CLIP uses a causal Transformer
pooled at [EOS]); retrieval fine-tuning continues the same objective at a lower learning rate.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.models import BuildContext, FusionMethod
from benchmark.models.encoders import normalize_images
from benchmark.objectives import ImageTextContrastive


class ContrastiveCLIP(FusionMethod):
    family = "dual encoder"
    paper = "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021"
    defaults: dict[str, Any] = {
        "objectives": {"itc": 1.0},
        "temperature_init": 0.07,
        "max_logit_scale": 100.0,
    }

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        embed_dim = ctx.model["embed_dim"]
        self.vision = ctx.vision_encoder()
        self.text = ctx.text_encoder()
        self.image_proj = nn.Linear(ctx.model["vision"]["width"], embed_dim, bias=False)
        self.text_proj = nn.Linear(ctx.model["text"]["width"], embed_dim, bias=False)
        self.itc = ImageTextContrastive(self.hparams["temperature_init"], self.hparams["max_logit_scale"])

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(self.vision(normalize_images(images))), dim=-1)

    def embed_text(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.text(input_ids=text["input_ids"], attention_mask=text["attention_mask"]).last_hidden_state
        return F.normalize(self.text_proj(hidden[:, 0]), dim=-1)

    def pretrain_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"itc": self.itc(self.embed_image(batch["image"]), self.embed_text(batch["text"]))}

    def task_losses(self, task: str, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if task == "retrieval":
            return {"itc": self.itc(self.embed_image(batch["image"]), self.embed_text(batch["text"]))}
        return super().task_losses(task, batch)
