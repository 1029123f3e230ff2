"""Late (decision-level) fusion: each modality predicts concepts on its own; a fixed rule combines them.

Follows the early-vs-late fusion distinction of Snoek et al., "Early versus Late Fusion in
Semantic Video Analysis", ACM Multimedia 2005 (and Baltrušaitis et al.'s survey, TPAMI 2019):
the image model and the text model never see each other's features. Both predict the same
label on their own: which concepts — categories, attributes and attribute–category pairs
from the instance annotations — the scene contains. The image model (ViT) gives p_c from the
pixels, the text model (BERT) gives q_c from the caption. The decision rule is the
log-likelihood of the text's prediction under the image's,

    s(image, text) = Σ_c [ q_c · log p_c + (1 − q_c) · log(1 − p_c) ],

which has no learned cross-modal parameters — that is what makes this late fusion. Because s
is a dot product of a per-image vector and a per-text vector, retrieval is as fast as a dual
encoder's.

Pretraining is unimodal: SimMIM on the image model and (text-only) MLM on the text model.
Retrieval fine-tuning trains each model's concept head on the scene's annotated concepts
(BCE, the text model from the caption alone) and, with ``rule_weight``, both through the
decision rule with a contrastive ranking loss (a scalar temperature is its only parameter).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import MethodError
from benchmark.models import BuildContext, FusionMethod
from benchmark.models.towers import ImageTower, TextTower
from benchmark.objectives import ImageTextContrastive


class LateFusion(FusionMethod):
    family = "decision level"
    paper = "Snoek et al., Early versus Late Fusion in Semantic Video Analysis, ACM Multimedia 2005"
    defaults: dict[str, Any] = {
        "objectives": {"mim": 1.0, "mlm": 1.0},
        "concept_weight": 1.0,
        "rule_weight": 1.0,
        "temperature_init": 1.0,
        "max_logit_scale": 100.0,
    }

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        if not ctx.concepts:
            raise MethodError("late_fusion needs a concept vocabulary (BuildContext.concepts) from the training annotations")
        self.image = ImageTower(ctx)
        self.text = TextTower(ctx)
        self.image_concepts = nn.Linear(self.image.width, len(ctx.concepts))
        self.text_concepts = nn.Linear(self.text.width, len(ctx.concepts))
        self.itc = ImageTextContrastive(self.hparams["temperature_init"], self.hparams["max_logit_scale"])

    def image_concept_logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_concepts(self.image.tokens(images)[:, 0]).float()

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        """[log p_c − log(1 − p_c)]_c and Σ_c log(1 − p_c): the image side of the decision rule."""
        logits = self.image_concept_logits(images)
        return torch.cat([logits, F.logsigmoid(-logits).sum(dim=1, keepdim=True)], dim=1)

    def text_concept_logits(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.text_concepts(self.text.tokens(text)[:, 0]).float()

    def embed_text(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        """[q_c]_c and 1: the text side of the decision rule."""
        q = torch.sigmoid(self.text_concept_logits(text))
        return torch.cat([q, torch.ones_like(q[:, :1])], dim=1)

    def pretrain_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        losses = {}
        if "mim" in self.objective_weights:
            losses["mim"] = self.image.mim(batch["image"])
        if "mlm" in self.objective_weights:
            losses["mlm"] = self.text.mlm(batch["text"])
        return losses

    def task_losses(self, task: str, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if task == "retrieval":
            image_logits = self.image_concept_logits(batch["image"])
            text_logits = self.text_concept_logits(batch["text"])
            image_side = torch.cat([image_logits, F.logsigmoid(-image_logits).sum(dim=1, keepdim=True)], dim=1)
            text_side = torch.cat([torch.sigmoid(text_logits), torch.ones_like(text_logits[:, :1])], dim=1)
            weight = self.hparams["concept_weight"]
            return {
                "image_concepts": weight * F.binary_cross_entropy_with_logits(image_logits, batch["concepts"]),
                "text_concepts": weight * F.binary_cross_entropy_with_logits(text_logits, batch["concepts"]),
                "rule": self.hparams["rule_weight"] * self.itc(image_side, text_side),
            }
        return super().task_losses(task, batch)
