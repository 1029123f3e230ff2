"""A published dual encoder, zero-shot: CLIP or SigLIP weights scoring image–text pairs by cosine similarity.

Evaluates a released checkpoint as its papers do for zero-shot retrieval: CLIP (Radford et al.,
"Learning Transferable Visual Models From Natural Language Supervision", ICML 2021) or SigLIP
(Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV 2023), loaded with
``transformers`` (``CLIPModel`` / ``SiglipModel``, chosen by the checkpoint's ``model_type``) from
``method_overrides.published_dual_encoder.pretrained``. Image and text embeddings are the model's
own ``get_image_features`` / ``get_text_features``, L2-normalised; the score is their dot product.
CLIP ranks by that cosine times a positive temperature, SigLIP by a sigmoid of a scaled, shifted
cosine — both monotone in the cosine, so the rankings (and every recall) are the same.

Inputs are the checkpoint's own (:mod:`benchmark.models.published`): images through its image
processor (CLIP: bicubic resize of the short side, centre crop, CLIP mean/std; SigLIP: resize to a
square, mean/std 0.5); text through its tokenizer. Text policy: CLIP pads to the longest text in
the batch and truncates at its 77-token context (its tokenizer's ``model_max_length``; the causal
text tower pools at the first end-of-text token, so padding never changes an embedding); SigLIP pads
every text to its tokenizer's ``model_max_length`` (64) and passes no attention mask — "make sure to
set padding='max_length' as that's how the model was trained" (``transformers``' SigLIP docs) — since
its text tower attends to the padding and pools the last position.

Departures: none in the model. Texts longer than the context are truncated (CLIP's original
``clip.tokenize`` raises instead). Preprocessing is the checkpoint's ``transformers`` processor
(torchvision resizing in transformers v5), which can differ from the PIL resizing of the original
repositories by a few grey levels. Grounding is not applicable: neither model has a detection
head — OWL-ViT (``published_detector``) is CLIP turned into a zero-shot detector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.models.published import PublishedMethod, pooled


class PublishedDualEncoder(PublishedMethod):
    family = "dual encoder (published, zero-shot)"
    paper = (
        "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021; "
        "Zhai et al., Sigmoid Loss for Language Image Pre-Training, ICCV 2023"
    )
    tasks = ("retrieval",)
    # zero-shot (PublishedMethod's training_stages = ()); its defaults are PublishedMethod's: "pretrained" is a
    # CLIP or SigLIP checkpoint (local directory or hub name), max_length None = the tokenizer's (CLIP 77, SigLIP 64)
    architectures = {"clip": "CLIPModel", "siglip": "SiglipModel"}
    text_policies = {"clip": ("longest", None), "siglip": ("max_length", None)}

    @classmethod
    def not_applicable_reason(cls, task: str) -> str | None:
        if task == "grounding":
            return (
                f"{cls.name or cls.__name__} is a zero-shot CLIP/SigLIP dual encoder with no detection head "
                "(it embeds whole images); published_detector (OWL-ViT) is the zero-shot detector"
            )
        return super().not_applicable_reason(task)

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        self.require(image=images)
        return F.normalize(pooled(self.model.get_image_features(pixel_values=self.pixel_values(images))), dim=-1)

    def embed_text(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        self.require(text=text)
        return F.normalize(pooled(self.model.get_text_features(**self.text_inputs(text))), dim=-1)
