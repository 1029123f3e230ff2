"""Image-only reference: the shared ViT with the text withheld.

A unimodal reference in the sense of MultiBench (Liang et al., "MultiBench: Multiscale
Benchmarks for Multimodal Representation Learning", NeurIPS 2021 Datasets and Benchmarks):
the same image encoder the fusion methods use, pretrained with SimMIM (Xie et al., CVPR
2022), never given the text. It shows what the image alone achieves on tasks that can be
attempted without text; image–text retrieval is reported as not applicable.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmark.models import BuildContext, FusionMethod
from benchmark.models.towers import ImageTower


class ImageOnly(FusionMethod):
    family = "unimodal reference"
    paper = "Liang et al., MultiBench: Multiscale Benchmarks for Multimodal Representation Learning, NeurIPS 2021"
    modalities = ("image",)
    tasks = ()
    defaults: dict[str, Any] = {"objectives": {"mim": 1.0}, "mask_ratio": 0.4}

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        self.image = ImageTower(ctx, self.hparams["mask_ratio"])

    def pretrain_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"mim": self.image.mim(batch["image"])}
