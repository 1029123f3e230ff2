"""Text-conditioned detection (grounding): boxes for a referring expression, scored with COCOeval.

Protocol (details in :mod:`benchmark.evaluation.grounding` and :mod:`benchmark.metrics.detection`):
each (image, referring expression) pair is one COCOeval image whose ground truth is every object
the expression refers to (zero, one or several). Methods predict dense per-patch boxes and
scores; class-agnostic NMS keeps at most ``max_detections``. Metrics: the 12 COCO stats, mIoU of
the top box, Acc@0.5 (RefCOCO precision@1 on single-target pairs: top-1 IoU ≥ 0.5, or GIoU ≥ 0.5
as MDETR computes it, by ``acc_iou``; every result's protocol record says which), and gRefCOCO's
N-acc on no-target pairs and T-acc on targeted ones (a box scoring ≥ ``score_threshold`` counts
as predicting a target), with their mean, the balanced accuracy of that no-target decision. On
a compositional test split AP, AP50, Acc@0.5 and mIoU are also
reported on the seen and on the held-out expressions (``AP@held_out``: COCOeval on those pairs
alone, :mod:`benchmark.metrics.compositional`).

Reference rows: ``ref_whole_image`` (one image-sized box) and ``ref_all_objects`` (the true box
of every object in the image, an oracle detector that ignores the text). Bootstrap unit: an
image with all its expressions (they share the image's objects and are correlated; records
written before ``pair_image`` existed fall back to one unit per pair). Missing modality: the
image or the expression is withheld for a seeded fraction severity/5 of the pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from benchmark.metrics.bootstrap import GroundingItems
from benchmark.tasks.base import Task

FRACTION = {"type": "number", "minimum": 0, "maximum": 1}
REFERENCE_DETECTORS = {"ref_whole_image": "whole_image", "ref_all_objects": "all_objects"}
"""Reference row name → the text-blind detector of :func:`benchmark.evaluation.grounding.reference_predictions`."""


class Grounding(Task):
    title = "text-conditioned detection"
    requires = ("images", "instances", "refs")
    table_metrics = ("AP", "AP50", "AP75", "AR@100", "mIoU", "Acc@0.5", "N-acc", "T-acc", "no_target_balanced_acc")
    headline_metrics = ("AP", "AP50", "Acc@0.5")
    subset_metrics = (*headline_metrics, "mIoU")
    abbreviation = "Det"
    references: ClassVar[dict[str, str]] = {
        "ref_whole_image": "predicts one box covering the image",
        "ref_all_objects": "predicts the true box of every object in the image (an oracle detector that ignores "
        "the text)",
    }
    reference_settings = ("score_threshold", "acc_iou")
    bootstrap_unit = "an image with all its referring expressions"
    prediction_metric = "T-acc"  # 0: no box ever scores above the threshold (never eligible for best)
    training_unit = "expressions"  # a fine-tuning batch draws (image, expression) pairs
    efficiency = ("flops_ground_pair", "MFLOPs / pair (grounding)")
    subset_note = "scores the subset's expressions (COCOeval on those pairs alone)"
    settings_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["max_detections", "nms_iou", "score_threshold", "acc_iou"],
        "properties": {
            "max_detections": {"type": "integer", "minimum": 1, "description": "boxes kept per (image, expression)"},
            "nms_iou": {**FRACTION, "description": "class-agnostic NMS IoU threshold"},
            "score_threshold": {**FRACTION, "description": "a box at or above it counts as a detection (N-acc, T-acc)"},
            "acc_iou": {
                "enum": ["iou", "giou"],
                "description": "Acc@0.5's overlap: top-1 IoU ≥ 0.5 (RefCOCO precision@1, mmdetection) or GIoU ≥ 0.5 "
                "(MDETR's RefExpEvaluator)",
            },
        },
    }

    def metric_names(self, settings: dict[str, Any]) -> list[str]:

        from benchmark.metrics.detection import COCO_STATS, PAIR_METRICS

        return [*COCO_STATS, *PAIR_METRICS]

    def protocol_counts(self, protocol: dict[str, Any]) -> str | None:
        """(Image, expression) pairs, and their images when the record counts them."""
        if "pairs" not in protocol:
            return None
        images = f"{protocol['images']:,} test images, " if "images" in protocol else ""
        return f"{images}{protocol['pairs']:,} (image, expression) pairs"

    def training_data(self, split: Any, tokenizer: Any, device: Any, ctx: Any) -> Any:

        from benchmark.data.grounding import GroundingData

        return GroundingData.from_split(split, tokenizer, device, ctx.attributes)

    def evaluate(
        self,
        model: Any,
        split: Any,
        tokenizer: Any,
        device: Any,
        batch_size: int,
        settings: dict[str, Any],
        **missing: Any,
    ) -> tuple[dict[str, float | None], dict[str, Any], dict[str, Any]]:

        from benchmark.evaluation.grounding import evaluate_grounding

        return evaluate_grounding(
            model, split, tokenizer, device, batch_size, settings, subset_metrics=self.subset_metrics, **missing
        )

    def items(self, arrays: dict[str, Any]) -> Any:

        return GroundingItems(**arrays)

    def reference_rows(
        self, data_dir: Path, settings: dict[str, Any]
    ) -> tuple[dict[str, dict[str, float | None]], dict[str, Any]]:

        from benchmark.data.dataset import load_split
        from benchmark.evaluation.grounding import ground_truth, in_original_frame, reference_predictions
        from benchmark.metrics.detection import grounding_metrics

        test = load_split(data_dir, "test")
        threshold, acc_iou = settings["score_threshold"], settings["acc_iou"]
        rows = {}
        for name, kind in REFERENCE_DETECTORS.items():
            targets, predictions, sizes = in_original_frame(
                test, ground_truth(test)[0], reference_predictions(test, kind)
            )
            rows[name] = grounding_metrics(targets, predictions, sizes, threshold, acc_iou)
        protocol = {
            "ref_whole_image": "one box covering the image, score 1",
            "ref_all_objects": "the true box of every object in the image, score 1 (text ignored)",
            "acc_iou": acc_iou,
        }
        return rows, protocol

    def chance_level(self, metric: str, items: Any | None) -> float | None:
        """AP, AP50 and AP75 of a method that does not work are ≈ 0 (boxes placed or ranked at random almost never
        match the referred object, and precision is averaged over recall), taken as 0; the other metrics' chance
        depends on the images (N-acc, T-acc: on the detector's threshold), so unknown."""
        return 0.0 if metric in ("AP", "AP50", "AP75") else None

    def missing_modality(self, subset: Any, corruption: str, severity: int) -> dict[str, Any] | str:

        from benchmark.corruptions.families import missing_mask

        absent = missing_mask([r["ref_id"] for r in subset.refs], corruption, severity)
        return {"image_missing" if corruption == "missing_image" else "text_missing": absent}

    def forward_example(self, model: Any, example: dict[str, Any]) -> Any:
        return model.ground(example["image"], example["text"])
