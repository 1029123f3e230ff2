"""Text-only reference: the shared BERT encoder predicting boxes from the expression alone.

A unimodal reference in the sense of MultiBench (Liang et al., NeurIPS 2021 Datasets and
Benchmarks), like the "blind" baselines of VQA: the same text encoder the fusion methods use,
pretrained with masked language modelling (Devlin et al., NAACL 2019), never given the image.
For grounding it predicts, from the expression's [CLS] vector, a score and a box for every
patch position — the language prior ("left of" → the left half, "small" → small boxes, "the
purple crosses" → probably nothing). Image–text retrieval is not applicable.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmark.models import BuildContext, FusionMethod
from benchmark.models.heads import cell_box_prior
from benchmark.models.towers import TextTower


class TextOnly(FusionMethod):
    family = "unimodal reference"
    paper = "Liang et al., MultiBench: Multiscale Benchmarks for Multimodal Representation Learning, NeurIPS 2021"
    modalities = ("text",)
    tasks = ("grounding",)
    defaults: dict[str, Any] = {"objectives": {"mlm": 1.0}, "mlm_probability": 0.15}

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        self.text = TextTower(ctx, self.hparams["mlm_probability"])
        patches = ctx.grid * ctx.grid
        width = self.text.width
        self.prior_head = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, patches * 5))
        self.register_buffer("box_bias", cell_box_prior(ctx.grid), persistent=False)

    def pretrain_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"mlm": self.text.mlm(batch["text"])}

    def ground(self, images: torch.Tensor | None, text: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The image is ignored by design: per-patch scores and boxes from the text alone."""
        self.require(text=text)
        out = self.prior_head(self.text.tokens(text)[:, 0]).float().reshape(-1, self.box_bias.shape[0], 5)
        return torch.sigmoid(out[..., :4] + self.box_bias), out[..., 4]
