"""Image-only reference: the shared ViT and FuseBench's dense box head, with the text withheld.

A unimodal reference in the sense of MultiBench (Liang et al., "MultiBench: Multiscale
Benchmarks for Multimodal Representation Learning", NeurIPS 2021 Datasets and Benchmarks):
the same image encoder the fusion methods use, pretrained with SimMIM (Xie et al., CVPR
2022), and the same grounding head, fine-tuned on the same referring expressions — but it
never sees the expression. It can only learn which objects tend to be referred to at all, so
the gap to a fusion method is what the text adds. Image–text retrieval is not applicable.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmark.models import BuildContext, FusionMethod
from benchmark.models.heads import DenseBoxHead
from benchmark.models.towers import ImageTower


class ImageOnly(FusionMethod):
    family = "unimodal reference"
    paper = "Liang et al., MultiBench: Multiscale Benchmarks for Multimodal Representation Learning, NeurIPS 2021"
    modalities = ("image",)
    tasks = ("grounding",)
    defaults: dict[str, Any] = {"objectives": {"mim": 1.0}, "mask_ratio": 0.4}

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        self.image = ImageTower(ctx, self.hparams["mask_ratio"])
        self.box_head = DenseBoxHead(self.image.width, ctx.grid)

    def pretrain_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"mim": self.image.mim(batch["image"])}

    def ground(
        self, images: torch.Tensor, text: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The expression is ignored by design: boxes and scores from the image alone."""
        self.require(image=images)
        return self.box_head(self.image.tokens(images)[:, 1:])
