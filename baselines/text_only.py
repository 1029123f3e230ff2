"""Text-only reference: the shared BERT encoder with the image withheld.

A unimodal reference in the sense of MultiBench (Liang et al., NeurIPS 2021 Datasets and
Benchmarks): the same text encoder the fusion methods use, pretrained with masked language
modelling (Devlin et al., NAACL 2019), never given the image. It measures the language prior
on tasks that can be attempted from text alone; image–text retrieval is reported as not
applicable.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmark.models import BuildContext, FusionMethod
from benchmark.models.towers import TextTower


class TextOnly(FusionMethod):
    family = "unimodal reference"
    paper = "Liang et al., MultiBench: Multiscale Benchmarks for Multimodal Representation Learning, NeurIPS 2021"
    modalities = ("text",)
    tasks = ()
    defaults: dict[str, Any] = {"objectives": {"mlm": 1.0}, "mlm_probability": 0.15}

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        self.text = TextTower(ctx, self.hparams["mlm_probability"])

    def pretrain_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"mlm": self.text.mlm(batch["text"])}
