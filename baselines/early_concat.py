"""Early fusion by concatenation: one transformer over image tokens and words (VisualBERT/ViLT).

Follows the single-stream design of VisualBERT (Li et al., "VisualBERT: A Simple and
Performant Baseline for Vision and Language", 2019) and ViLT (Kim et al., ICML 2021): visual
tokens and word embeddings, each with a modality-type embedding, are concatenated after a
[CLS] token and processed by one transformer in which every token attends to every other
token of both modalities from the first layer on. The [CLS] output feeds an image–text
matching head, whose logit is also the retrieval score; text outputs feed an MLM head (MLM
conditioned on the image). Pretraining: ITM + MLM. Without separate embeddings, retrieval
must score every pair (exhaustive protocol); the image tower runs once per image
(``prepare_images``), the joint stream once per pair. Grounding: a dense per-patch box head on the
image-token outputs, which have attended to the expression in every layer.

Visual tokens come from the shared ViT image tower, as VisualBERT's come from a visual
backbone (a detector there); the joint stream has as many layers as the text tower, so the
method spends the same number of transformer layers as the two-tower methods. Word
embeddings are BERT's (word + position, layer-normalised), not a text encoder. With a pretrained
text tower (``model.text.init``) they are that model's embedding layer, as VisualBERT starts from
BERT's; the joint stream itself stays randomly initialised (it is not a BERT module).

Departures: ViLT feeds linear patch embeddings straight into the joint stream, starting from
an ImageNet-trained ViT; trained from scratch at FuseBench's scale that variant never leaves
the "ignore the image" optimum (its image-conditioned MLM is no better with the right image
than with a wrong one), so visual tokens pass through the image tower first. ITM uses
ALBEF's pairing — per image a positive and a negative caption, per caption a negative image,
negatives uniform since there is no ITC to mine them with — instead of ViLT's swap of the
image with probability 0.5: with the swap, the joint stream's ITM stayed at chance for
1,500 steps; with paired negatives it learns within a few hundred. Retrieval fine-tuning
uses the same ITM loss (ViLT ranks 1 positive against 15 random negatives).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmark.models import BuildContext, FusionMethod
from benchmark.models.encoders import bert_config
from benchmark.models.fusion import SingleStreamEncoder
from benchmark.models.heads import DenseBoxHead, MatchHead, MLMHead
from benchmark.models.pretrained import apply_training_options, is_pretrained
from benchmark.models.towers import ImageTower
from benchmark.objectives import itm_loss, mask_tokens, mlm_loss

IMAGE, TEXT = 0, 1


class EarlyConcat(FusionMethod):
    family = "single stream"
    tasks = ("retrieval", "grounding")
    paper = (
        "Li et al., VisualBERT: A Simple and Performant Baseline for Vision and Language, 2019; "
        "Kim et al., ViLT, ICML 2021"
    )
    defaults: dict[str, Any] = {
        "objectives": {"itm": 1.0, "mlm": 1.0},
        "mlm_probability": 0.15,
    }

    def __init__(self, ctx: BuildContext, **overrides: Any) -> None:
        super().__init__(ctx, **overrides)
        from transformers.models.bert.modeling_bert import BertEmbeddings

        text = ctx.model["text"]
        self.width = text["width"]
        self.image = ImageTower(ctx)
        self.image_to_stream = (
            nn.Identity() if self.image.width == self.width else nn.Linear(self.image.width, self.width)
        )
        if is_pretrained(text):  # VisualBERT: word embeddings from the pretrained text model
            self.word_embeddings = ctx.text_encoder().embeddings
            apply_training_options(self, "word_embeddings", text)  # model.text.freeze / lr_multiplier
        else:
            self.word_embeddings = BertEmbeddings(
                bert_config(text, ctx.vocab_size, ctx.max_length, ctx.special_tokens["pad"])
            )
        self.stream = SingleStreamEncoder(self.width, text["depth"], text["heads"], text["mlp_ratio"])
        self.match_head = MatchHead(self.width)
        self.mlm_head = MLMHead(self.width, ctx.vocab_size)
        self.box_head = DenseBoxHead(self.width, ctx.grid)

    # -- the image side, once per image --------------------------------------------------------
    def prepare_images(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The image tower's patch tokens in the joint stream's width (B×P×D), ``{"tokens": ...}``.

        All the joint stream reads of an image: computed once per image, so that pair scoring
        (retrieval scores every pair) and ITM (three pairs per image) run only the joint stream."""
        return {"tokens": self.image_to_stream(self.image.tokens(images)[:, 1:])}

    def joint(
        self,
        image_tokens: torch.Tensor | None,
        text: dict[str, torch.Tensor] | None,
        input_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Fused [CLS], image-token and text-token outputs of the joint stream over prepared image tokens
        (:meth:`prepare_images`) and the words of ``text`` (``input_ids`` replaces its ids, e.g. masked);
        either modality may be absent (None)."""
        streams: list[tuple[torch.Tensor, torch.Tensor] | None] = [None, None]
        if image_tokens is not None:
            mask = torch.ones(image_tokens.shape[:2], dtype=torch.bool, device=image_tokens.device)
            streams[IMAGE] = (image_tokens, mask)
        if text is not None:
            ids = text["input_ids"] if input_ids is None else input_ids
            streams[TEXT] = (self.word_embeddings(input_ids=ids), text["attention_mask"])
        cls, (image_out, text_out) = self.stream(streams)
        return cls, image_out, text_out

    def encode(
        self, images: torch.Tensor | None, text: dict[str, torch.Tensor] | None, input_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """:meth:`joint` from pixels: the image tower, then the joint stream, per (image, text) row."""
        tokens = None if images is None else self.prepare_images(images)["tokens"]
        return self.joint(tokens, text, input_ids)

    def ground(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense boxes from the image-token outputs of the joint stream (they have seen the text).

        Without the text the stream runs on the image tokens alone; without the image there is
        nothing to put boxes on."""
        self.require(image=images)
        _, image_out, _ = self.encode(images, text)
        return self.box_head(image_out)

    # -- pair scoring (retrieval) -------------------------------------------------------------
    def score_prepared(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor]) -> torch.Tensor:
        cls, _, _ = self.joint(images["tokens"], texts)
        return self.match_head(cls)

    # -- training: the image tower runs once per batch, ITM and MLM index its tokens -------------
    def _itm(self, batch: dict[str, Any], image_tokens: torch.Tensor) -> torch.Tensor:
        text = batch["text"]

        def logits(image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
            pairs = {k: v[text_index] for k, v in text.items()}
            return self.score_prepared({"tokens": image_tokens[image_index]}, pairs)

        return itm_loss(logits, image_tokens.shape[0], similarity=None, device=image_tokens.device)

    def _mlm(self, batch: dict[str, Any], image_tokens: torch.Tensor) -> torch.Tensor:
        text = batch["text"]
        masked, labels = mask_tokens(
            text["input_ids"],
            text["attention_mask"],
            list(self.ctx.special_tokens.values()),
            self.ctx.special_tokens["mask"],
            self.ctx.vocab_size,
            self.hparams["mlm_probability"],
        )
        _, _, text_out = self.joint(image_tokens, text, input_ids=masked)
        return mlm_loss(self.mlm_head(text_out), labels)

    def pretrain_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        # one tower pass per image for ITM's three pairs per image and MLM (no dropout: the same computation)
        image_tokens = self.prepare_images(batch["image"])["tokens"]
        losses = {}
        if "itm" in self.objective_weights:
            losses["itm"] = self._itm(batch, image_tokens)
        if "mlm" in self.objective_weights:
            losses["mlm"] = self._mlm(batch, image_tokens)
        return losses

    def task_losses(self, task: str, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if task == "retrieval":
            return {"itm": self._itm(batch, self.prepare_images(batch["image"])["tokens"])}
        return super().task_losses(task, batch)
