"""A published fusion matcher, zero-shot: BLIP's retrieval checkpoint, ITC shortlist re-ranked by its ITM head.

Evaluates a released checkpoint of BLIP (Li et al., "BLIP: Bootstrapping Language-Image
Pre-training for Unified Vision-Language Understanding and Generation", ICML 2022), fine-tuned
for retrieval (e.g. ``Salesforce/blip-itm-base-coco``), loaded as ``transformers``'
``BlipForImageTextRetrieval`` from ``method_overrides.published_matcher.pretrained``. It has the
two heads of ALBEF's protocol, which FuseBench's retrieval evaluation implements:

* ITC — ``embed_image`` / ``embed_text``: ``vision_proj`` of the image [CLS] token and
  ``text_proj`` of the text encoder's [CLS] token (no cross-attention), L2-normalised; exactly
  the similarity ``model(..., use_itm_head=False)`` returns. Used to shortlist candidates.
* ITM — ``prepare_images`` keeps the ViT's output tokens, ``prepare_texts`` the tokens;
  ``score_prepared`` runs the text encoder with cross-attention to the image tokens and returns
  the ITM head's "match" logit (class 1), as ``model(..., use_itm_head=True).itm_score[:, 1]``
  and as ALBEF scores a shortlisted pair. By default (``itm_plus_itc``) the pair's ITC cosine is
  added, as BLIP's own ``train_retrieval.py`` evaluation ranks (``score + topk_sim``); set it to
  False for ALBEF's ITM-only ranking.

Inputs are the checkpoint's own (:mod:`benchmark.models.published`): images through its image
processor (bicubic resize to a square, CLIP mean/std), text through its BERT tokenizer padded to
35 tokens and truncated there, as BLIP's retrieval evaluation tokenises captions
(``padding='max_length', truncation=True, max_length=35`` in salesforce/BLIP ``train_retrieval.py``).

Departures: BLIP's own evaluation replaces the first token by ``[ENC]`` before the ITM pass;
``transformers``' port (whose output this method equals) keeps ``[CLS]``. Preprocessing is the
checkpoint's ``transformers`` processor (torchvision resizing in transformers v5), not the
original PIL pipeline. The vision transformer runs twice per image (once for the ITC embedding,
once for the ITM tokens), since the evaluator asks for them separately. Grounding is not
applicable: the model has no box head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.models.published import PublishedMethod


class PublishedMatcher(PublishedMethod):
    family = "two stream (co-attention) (published, zero-shot)"
    paper = (
        "Li et al., BLIP: Bootstrapping Language-Image Pre-training for Unified Vision-Language "
        "Understanding and Generation, ICML 2022"
    )
    tasks = ("retrieval",)
    # zero-shot (PublishedMethod's training_stages = ()); "pretrained" is a BlipForImageTextRetrieval checkpoint,
    # text_padding / max_length None = BLIP's retrieval policy ("max_length", 35: text_policies below)
    defaults = {
        **PublishedMethod.defaults,
        "itm_plus_itc": True,  # pair score = ITM match logit + ITC similarity (BLIP's evaluation); False: ALBEF's
    }
    architectures = {"blip": "BlipForImageTextRetrieval"}
    text_policies = {"blip": ("max_length", 35)}

    @classmethod
    def not_applicable_reason(cls, task: str) -> str | None:
        if task == "grounding":
            return f"{cls.name or cls.__name__} is a zero-shot BLIP image–text matcher with no box head"
        return super().not_applicable_reason(task)

    # -- ITC -------------------------------------------------------------------------------------------------------
    def vision_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """B×N×D output tokens of BLIP's ViT ([CLS] first)."""
        return self.model.vision_model(pixel_values=self.pixel_values(images)).last_hidden_state

    def itc_image(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.vision_proj(tokens[:, 0]), dim=-1)

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        self.require(image=images)
        return self.itc_image(self.vision_tokens(images))

    def embed_text(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        self.require(text=text)
        hidden = self.model.text_encoder(**self.text_inputs(text)).last_hidden_state
        return F.normalize(self.model.text_proj(hidden[:, 0]), dim=-1)

    # -- ITM -------------------------------------------------------------------------------------------------------
    def prepare_images(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.require(image=images)
        tokens = self.vision_tokens(images)
        prepared = {"tokens": tokens}
        if self.hparams["itm_plus_itc"]:
            prepared["itc"] = self.itc_image(tokens)
        return prepared

    def prepare_texts(self, text: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.require(text=text)
        prepared = {"input_ids": text["input_ids"], "attention_mask": text["attention_mask"]}
        if self.hparams["itm_plus_itc"]:
            prepared["itc"] = self.embed_text(text)
        return prepared

    def score_prepared(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor]) -> torch.Tensor:
        """ITM "match" logit of each aligned (image, text) pair, plus their ITC similarity with ``itm_plus_itc``."""
        tokens = images["tokens"]
        fused = self.model.text_encoder(
            **self.text_inputs(texts),
            encoder_hidden_states=tokens,
            encoder_attention_mask=torch.ones(tokens.shape[:-1], dtype=torch.long, device=tokens.device),
        ).last_hidden_state
        score = self.model.itm_head(fused[:, 0])[:, 1]
        if self.hparams["itm_plus_itc"]:
            score = score + (images["itc"] * texts["itc"]).sum(-1)
        return score
