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

Grounding uses the same separation. The image model detects every object on its own — per
patch an objectness score, a box and a distribution over each attribute group (category,
colour, size), supervised by the instance annotations. The text model reads the expression
alone and predicts, per group, which value it asks for or "any". The decision rule is

    score(patch) = objectness · Π_groups [ q(any) + Σ_v q(v) · p_patch(v) ],

trained only through the text model (the image side is fixed by its own supervision). The
rule cannot express relations ("left of the blue square"): that is the price of fusing only
decisions, and the benchmark shows it.

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

from benchmark.data.grounding import ATTRIBUTE_GROUPS
from benchmark.errors import MethodError
from benchmark.models import BuildContext, FusionMethod
from benchmark.models.heads import DenseBoxHead
from benchmark.models.towers import ImageTower, TextTower
from benchmark.objectives import ImageTextContrastive
from benchmark.objectives.detection import assign_to_cells, box_losses


class LateFusion(FusionMethod):
    family = "decision level"
    tasks = ("retrieval", "grounding")
    paper = "Snoek et al., Early versus Late Fusion in Semantic Video Analysis, ACM Multimedia 2005"
    defaults: dict[str, Any] = {
        "objectives": {"mim": 1.0, "mlm": 1.0},
        "concept_weight": 1.0,
        "rule_weight": 1.0,
        "temperature_init": 1.0,
        "max_logit_scale": 100.0,
    }

    @classmethod
    def data_reason(cls, ctx: BuildContext) -> str | None:
        if ctx.concepts:
            return None
        return (
            "the dataset has no instance annotations, and late fusion predicts annotated concepts "
            "(categories, attributes) in each modality"
        )

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        if not ctx.concepts:
            raise MethodError(
                "late_fusion needs a concept vocabulary (BuildContext.concepts) from the training annotations"
            )
        self.image = ImageTower(ctx)
        self.text = TextTower(ctx)
        self.image_concepts = nn.Linear(self.image.width, len(ctx.concepts))
        self.text_concepts = nn.Linear(self.text.width, len(ctx.concepts))
        self.itc = ImageTextContrastive(self.hparams["temperature_init"], self.hparams["max_logit_scale"])
        self.groups = list(ctx.attributes)
        self.detector = DenseBoxHead(self.image.width, ctx.grid)
        self.attribute_heads = nn.ModuleDict(
            {g: nn.Linear(self.image.width, len(v)) for g, v in ctx.attributes.items()}
        )
        self.query_heads = nn.ModuleDict({g: nn.Linear(self.text.width, len(v) + 1) for g, v in ctx.attributes.items()})

    # -- grounding ----------------------------------------------------------------------------
    def detect(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Image model alone: per-patch boxes, objectness logits, attribute logits per group."""
        patches = self.image.tokens(images)[:, 1:]
        boxes, objectness = self.detector(patches)
        return boxes, objectness, {g: head(patches).float() for g, head in self.attribute_heads.items()}

    def query(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Text model alone: per group, probabilities of each value and (last) of "any"."""
        cls = self.text.tokens(text)[:, 0]
        return {g: head(cls).float().softmax(-1) for g, head in self.query_heads.items()}

    def decide(
        self, objectness: torch.Tensor, attributes: dict[str, torch.Tensor], query: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """The decision rule, returned as log-odds of the per-patch probability."""
        log_score = F.logsigmoid(objectness.float())
        for group in self.groups:
            p, q = attributes[group].softmax(-1), query[group]
            agreement = q[:, None, -1] + (p * q[:, None, :-1]).sum(-1)
            log_score = log_score + torch.log(agreement.clamp_min(1e-6))
        log_score = log_score.clamp(max=-1e-6)
        return log_score - torch.log(-torch.expm1(log_score))

    def ground(
        self, images: torch.Tensor | None, text: dict[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Without the text every group's query is "any": the decision falls back to objectness."""
        self.require(image=images)
        boxes, objectness, attributes = self.detect(images)
        if text is None:
            query = {
                g: F.one_hot(torch.tensor(len(v)), len(v) + 1).float().to(boxes.device).expand(len(boxes), -1)
                for g, v in self.ctx.attributes.items()
            }
        else:
            query = self.query(text)
        return boxes, self.decide(objectness, attributes, query)

    def grounding_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        grid = self.ctx.grid
        boxes, objectness, attributes = self.detect(batch["image"])
        # image model, its own supervision: every object, its box and its attributes
        has_object, object_boxes, which = assign_to_cells(batch["objects"], batch["object_valid"], grid)
        losses = {"objectness": F.binary_cross_entropy_with_logits(objectness, has_object.float())}
        losses.update(box_losses(boxes, object_boxes, has_object))
        labels = batch["object_labels"].gather(
            1, which.clamp(min=0)[..., None].expand(-1, -1, batch["object_labels"].shape[-1])
        )
        attribute_loss = objectness.new_zeros(())
        for group in self.groups:
            target = labels[..., ATTRIBUTE_GROUPS.index(group)][has_object]
            known = target >= 0
            if known.any():
                attribute_loss = attribute_loss + F.cross_entropy(attributes[group][has_object][known], target[known])
        losses["attributes"] = attribute_loss
        # text model, through the fixed rule on the image model's (detached) decisions
        referred, _, _ = assign_to_cells(batch["targets"], batch["target_valid"], grid)
        rule = self.decide(
            objectness.detach(), {g: a.detach() for g, a in attributes.items()}, self.query(batch["text"])
        )
        losses["cls"] = F.binary_cross_entropy_with_logits(rule, referred.float())
        return losses

    # -- retrieval ----------------------------------------------------------------------------
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
