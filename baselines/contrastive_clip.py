"""Contrastive dual encoder (CLIP).

Follows Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021: a ViT image tower and a Transformer text tower, each followed by a
linear projection into a shared space; no fusion layers. Trained with symmetric InfoNCE and a
learnable temperature; image–text scores are cosine similarities.

Departures from the paper: towers are tiny and trained from scratch on FuseBench's data; the
text tower is a bidirectional BERT encoder pooled at [CLS] (CLIP uses a causal Transformer
pooled at [EOS]); retrieval fine-tuning continues the same objective at a lower learning rate.

Grounding follows OWL-ViT (Minderer et al., "Simple Open-Vocabulary Object Detection with
Vision Transformers", ECCV 2022): every patch token is projected to a class embedding and
scored by its cosine similarity to the text embedding (with a per-patch learned shift and
scale), and an MLP on the same token predicts its box — still no fusion layers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.models import BuildContext, FusionMethod
from benchmark.models.heads import DenseBoxHead
from benchmark.models.towers import ImageTower, TextTower
from benchmark.objectives import ImageTextContrastive


class ContrastiveCLIP(FusionMethod):
    family = "dual encoder"
    tasks = ("retrieval", "grounding")
    paper = "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021"
    defaults: dict[str, Any] = {
        "objectives": {"itc": 1.0},
        "temperature_init": 0.07,
        "max_logit_scale": 100.0,
    }

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        embed_dim = ctx.model["embed_dim"]
        self.image = ImageTower(ctx)
        self.text = TextTower(ctx)
        self.image_proj = nn.Linear(self.image.width, embed_dim, bias=False)
        self.text_proj = nn.Linear(self.text.width, embed_dim, bias=False)
        self.itc = ImageTextContrastive(self.hparams["temperature_init"], self.hparams["max_logit_scale"])
        self.patch_proj = nn.Linear(self.image.width, embed_dim, bias=False)  # OWL-ViT class embeddings
        self.logit_shift = nn.Linear(self.image.width, 1)
        self.logit_scale = nn.Linear(self.image.width, 1)
        self.box_head = DenseBoxHead(self.image.width, ctx.grid, with_score=False)

    def ground(
        self, images: torch.Tensor | None, text: dict[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.require(image=images, text=text)  # patches are scored against the text query
        patches = self.image.tokens(images)[:, 1:]
        similarity = (F.normalize(self.patch_proj(patches), dim=-1) * self.embed_text(text)[:, None]).sum(-1)
        scale = F.elu(self.logit_scale(patches).squeeze(-1)) + 1.0
        logits = (similarity + self.logit_shift(patches).squeeze(-1)) * scale
        return self.box_head.boxes(patches), logits.float()

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(self.image.tokens(images)[:, 0]), dim=-1)

    def embed_text(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(self.text_proj(self.text.tokens(text)[:, 0]), dim=-1)

    def contrastive(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.itc(self.embed_image(batch["image"]), self.embed_text(batch["text"]))

    def pretrain_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"itc": self.contrastive(batch)}

    def task_losses(self, task: str, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if task == "retrieval":
            return {"itc": self.contrastive(batch)}
        return super().task_losses(task, batch)
