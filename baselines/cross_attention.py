"""Two-stream fusion with co-attention layers (ALBEF objectives, ViLBERT/LXMERT layers).

Follows Li et al., "Align before Fuse: Vision and Language Representation Learning with
Momentum Distillation" (ALBEF), NeurIPS 2021: separate image (ViT) and text (BERT) encoders
are first aligned with an image–text contrastive loss on their [CLS] projections, then fused
by cross-modal layers; pretraining is ITC + ITM with hard negatives mined from the ITC
similarities + MLM conditioned on the image. The fusion layers are co-attention blocks in
which each stream attends to the other (ViLBERT, Lu et al. 2019; LXMERT, Tan & Bansal 2019);
the fused text [CLS] feeds the matching head. Retrieval follows ALBEF: the fusion head scores
every pair for small test sets, the ITC shortlist is re-ranked on large ones; as in BLIP's
evaluation, the rank score is the ITM logit plus the pair's ITC logit.

Departures: no momentum distillation; ALBEF's fusion is one-directional (text attends to
image), ours lets the image stream attend to the text as well, so text-conditioned image
tokens are available for grounding (a dense per-patch box head on them, as for every fusion
encoder in FuseBench, instead of MDETR's set-prediction decoder); half of the ITM negatives are hard (drawn by ITC
similarity) and half uniform — with only hard negatives, trained from scratch, ITM never
leaves its prior (see ``benchmark.objectives.matching``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.models import BuildContext, FusionMethod
from benchmark.models.fusion import CoAttentionEncoder
from benchmark.models.heads import DenseBoxHead, MatchHead
from benchmark.models.towers import ImageTower, TextTower
from benchmark.objectives import ImageTextContrastive, itm_loss, mlm_loss


class CrossAttention(FusionMethod):
    family = "two stream (co-attention)"
    tasks = ("retrieval", "grounding")
    paper = (
        "Li et al., Align before Fuse: Vision and Language Representation Learning with Momentum Distillation, "
        "NeurIPS 2021"
    )
    defaults: dict[str, Any] = {
        "objectives": {"itc": 1.0, "itm": 1.0, "mlm": 1.0},
        "fusion_depth": 1,
        "temperature_init": 0.07,
        "max_logit_scale": 100.0,
        "mlm_probability": 0.15,
        "hard_negative_fraction": 0.5,
    }

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        text_cfg = ctx.model["text"]
        self.image = ImageTower(ctx)
        self.text = TextTower(ctx, self.hparams["mlm_probability"])
        width = text_cfg["width"]
        self.image_to_fusion = nn.Identity() if self.image.width == width else nn.Linear(self.image.width, width)
        self.fusion = CoAttentionEncoder(width, self.hparams["fusion_depth"], text_cfg["heads"], text_cfg["mlp_ratio"])
        self.image_proj = nn.Linear(self.image.width, ctx.model["embed_dim"], bias=False)
        self.text_proj = nn.Linear(width, ctx.model["embed_dim"], bias=False)
        self.itc = ImageTextContrastive(self.hparams["temperature_init"], self.hparams["max_logit_scale"])
        self.match_head = MatchHead(width)
        self.box_head = DenseBoxHead(width, ctx.grid)

    # -- unimodal encodings (cached by the retrieval evaluator) -----------------------------
    def prepare_images(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = self.image.tokens(images)
        return {"tokens": tokens, "embedding": F.normalize(self.image_proj(tokens[:, 0]), dim=-1)}

    def prepare_texts(
        self, text: dict[str, torch.Tensor], input_ids: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        tokens = self.text.tokens(text, input_ids)
        return {
            "tokens": tokens,
            "mask": text["attention_mask"],
            "embedding": F.normalize(self.text_proj(tokens[:, 0]), dim=-1),
        }

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.prepare_images(images)["embedding"]

    def embed_text(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.prepare_texts(text)["embedding"]

    # -- fusion -------------------------------------------------------------------------------
    def fuse(
        self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor], image_output: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fused text tokens and fused image tokens of aligned pairs (None without ``image_output``: ITM and MLM
        read only the text stream, so the fusion skips the image stream's last block)."""
        return self.fusion(texts["tokens"], texts["mask"], self.image_to_fusion(images["tokens"]), image_output)

    def match_logits(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor]) -> torch.Tensor:
        """ITM logit of aligned pairs (the fusion head alone)."""
        fused_text, _ = self.fuse(images, texts, image_output=False)
        return self.match_head(fused_text[:, 0])

    def score_prepared(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor]) -> torch.Tensor:
        """Retrieval score as in BLIP's evaluation: ITM logit + ITC logit of the pair."""
        scale = self.itc.logit_scale.exp().clamp(max=self.itc.max_logit_scale)
        itc = scale * (images["embedding"] * texts["embedding"]).sum(-1)
        return self.match_logits(images, texts) + itc

    def ground(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense boxes from the text-conditioned image tokens of the fusion encoder (MDETR-like input)."""
        self.require(image=images, text=text)  # co-attention needs both streams
        _, fused_image = self.fuse(self.prepare_images(images), self.prepare_texts(text))
        return self.box_head(fused_image[:, 1:])

    def _losses(self, batch: dict[str, Any], objectives: set[str]) -> dict[str, torch.Tensor]:
        images = self.prepare_images(batch["image"])
        texts = self.prepare_texts(batch["text"])
        losses: dict[str, torch.Tensor] = {}
        similarity = self.itc.logits(images["embedding"], texts["embedding"])
        if "itc" in objectives:
            losses["itc"] = self.itc(images["embedding"], texts["embedding"])
        if "itm" in objectives:

            def logits(image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
                return self.match_logits(
                    {k: v[image_index] for k, v in images.items()}, {k: v[text_index] for k, v in texts.items()}
                )

            losses["itm"] = itm_loss(
                logits,
                batch["image"].shape[0],
                similarity,
                batch["image"].device,
                self.hparams["hard_negative_fraction"],
            )
        if "mlm" in objectives:
            masked, labels = self.text.mask(batch["text"])
            fused_text, _ = self.fuse(images, self.prepare_texts(batch["text"], masked), image_output=False)
            losses["mlm"] = mlm_loss(self.text.mlm_head(fused_text), labels)
        return losses

    def pretrain_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self._losses(batch, set(self.objective_weights))

    def task_losses(self, task: str, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if task == "retrieval":
            return self._losses(batch, {"itc", "itm"})
        return super().task_losses(task, batch)
