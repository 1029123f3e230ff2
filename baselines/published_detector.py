"""A published open-vocabulary detector, zero-shot: OWL-ViT or OWLv2 finding what a referring expression names.

Evaluates a released checkpoint of OWL-ViT (Minderer et al., "Simple Open-Vocabulary Object
Detection with Vision Transformers", ECCV 2022) or OWLv2 (Minderer et al., "Scaling
Open-Vocabulary Object Detection", NeurIPS 2023), loaded with ``transformers``
(``OwlViTForObjectDetection`` / ``Owlv2ForObjectDetection``, chosen by the checkpoint's
``model_type``) from ``method_overrides.published_detector.pretrained``. The referring expression
is the one text query of its image. Every ViT output token predicts a box (``pred_boxes``,
normalised cxcywh) and a logit for the query (``logits``); ``ground`` returns both as they are.
FuseBench's decoding (:mod:`benchmark.evaluation.grounding`) then does what the model's own
``post_process_object_detection`` does — score = sigmoid(logit), boxes cxcywh → corner pixels —
followed by FuseBench's class-agnostic NMS and top-k (``evaluate.grounding``), which OWL-ViT's
post-processing leaves to the user.

Inputs are the checkpoint's own (:mod:`benchmark.models.published`): images through its image
processor (OWL-ViT: resize to a square, CLIP mean/std; OWLv2: pad to a square, bottom and right,
then resize), the query through its CLIP tokenizer padded to the text context (16 tokens), the
policy of its processor (``padding="max_length"``). OWLv2 boxes are relative to the padded square:
for a non-square image they are rescaled here to the image's own frame (FuseBench's scenes are
square, where nothing changes), as ``post_process_object_detection`` does by scaling both axes by
the longer side.

Departures: queries longer than the text context are truncated (OWL-ViT's processor does not
truncate, and the model fails on them). Preprocessing is the checkpoint's ``transformers``
processor (torchvision resizing in transformers v5), which can differ from the original JAX
pipeline by a few grey levels. Retrieval is not applicable: the model scores boxes, not images.
"""

from __future__ import annotations

import torch

from benchmark.models.published import PublishedMethod


class PublishedDetector(PublishedMethod):
    family = "open-vocabulary detector (published, zero-shot)"
    paper = (
        "Minderer et al., Simple Open-Vocabulary Object Detection with Vision Transformers, ECCV 2022; "
        "Minderer et al., Scaling Open-Vocabulary Object Detection, NeurIPS 2023"
    )
    tasks = ("grounding",)
    # zero-shot (PublishedMethod's training_stages = ()); its defaults are PublishedMethod's: "pretrained" is an
    # OWL-ViT or OWLv2 checkpoint (local directory or hub name), max_length None = the tokenizer's (16)
    architectures = {"owlvit": "OwlViTForObjectDetection", "owlv2": "Owlv2ForObjectDetection"}
    text_policies = {"owlvit": ("max_length", None), "owlv2": ("max_length", None)}

    @classmethod
    def not_applicable_reason(cls, task: str) -> str | None:
        if task == "retrieval":
            return (
                f"{cls.name or cls.__name__} is a zero-shot OWL-ViT/OWLv2 detector: it scores boxes for a query, "
                "not whole images; published_dual_encoder (CLIP/SigLIP) is the zero-shot retrieval model"
            )
        return super().not_applicable_reason(task)

    def ground(
        self, images: torch.Tensor | None, text: dict[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.require(image=images, text=text)  # boxes are scored against the expression
        assert images is not None and text is not None
        output = self.model(pixel_values=self.pixel_values(images), **self.text_inputs(text))
        boxes = self.in_image_frame(output.pred_boxes, images.shape[-2], images.shape[-1])
        return boxes, output.logits[..., 0]  # B×P×4, B×P: one query per image

    def in_image_frame(self, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Normalised cxcywh boxes relative to the image rather than to OWLv2's padded square.

        OWLv2's processor pads an H×W image to max(H, W) on the bottom and right; a box at normalised
        x in the square is at x·max(H, W)/W in the image (same for y with H). No change when H = W or
        when the processor does not pad (OWL-ViT resizes the image itself to a square).
        """
        if not getattr(self.processor.image_processor, "do_pad", False) or height == width:
            return boxes
        side = max(height, width)
        scale = boxes.new_tensor([side / width, side / height, side / width, side / height])
        return boxes * scale
