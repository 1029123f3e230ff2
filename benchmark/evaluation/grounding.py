"""Text-conditioned detection (grounding): predictions per (image, expression) pair, scored.

The method's dense predictions are turned into a COCO result list: score = sigmoid(logit),
boxes converted to pixels, class-agnostic NMS at ``nms_iou``, at most ``max_detections`` kept
per pair (highest scores first). Metrics are in :mod:`benchmark.metrics.detection`; the protocol
record states the overlap ``Acc@0.5`` used (``acc_iou``: ``iou`` or MDETR's ``giou``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchvision.ops import nms

from benchmark.boxes import convert, denormalize
from benchmark.data.compositional import count_tags
from benchmark.data.dataset import SceneSplit
from benchmark.data.grounding import GroundingData
from benchmark.device import autocast
from benchmark.metrics.compositional import grounding_subset_metrics
from benchmark.metrics.detection import evaluate_pairs
from benchmark.models.method import FusionMethod


def decode(
    boxes: torch.Tensor, logits: torch.Tensor, size: int, nms_iou: float, max_detections: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per pair: (boxes xywh pixels, scores), after NMS, best first."""
    results = []
    scores = torch.sigmoid(logits.float())
    xyxy = denormalize(convert(boxes.float(), "cxcywh", "xyxy"), size, size).clamp(0, size)
    for pair in range(len(scores)):
        keep = nms(xyxy[pair], scores[pair], nms_iou)[:max_detections]  # nms returns keep sorted by score
        kept = convert(xyxy[pair][keep], "xyxy", "xywh")
        results.append((kept.cpu().double().numpy(), scores[pair][keep].cpu().double().numpy()))
    return results


@torch.no_grad()
def predict(
    model: FusionMethod,
    data: GroundingData,
    size: int,
    batch_size: int,
    device: torch.device,
    settings: dict[str, Any],
    image_missing: torch.Tensor | None = None,
    text_missing: torch.Tensor | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decoded predictions per pair. ``*_missing`` (bool per pair) withhold a modality: the
    method receives None for it (and may raise MissingModalityError)."""
    model.eval()
    count = len(data)
    image_missing = torch.zeros(count, dtype=torch.bool) if image_missing is None else image_missing.cpu()
    text_missing = torch.zeros(count, dtype=torch.bool) if text_missing is None else text_missing.cpu()
    predictions: list[tuple[np.ndarray, np.ndarray] | None] = [None] * count
    for start in range(0, count, batch_size):
        rows = torch.arange(start, min(count, start + batch_size))
        for no_image in (False, True):
            for no_text in (False, True):
                group = rows[(image_missing[rows] == no_image) & (text_missing[rows] == no_text)]
                if not len(group):
                    continue
                batch = data.select(group.to(device))
                with autocast(device):
                    boxes, logits = model.ground(
                        None if no_image else batch["image"], None if no_text else batch["text"]
                    )
                for row, result in zip(
                    group.tolist(), decode(boxes, logits, size, settings["nms_iou"], settings["max_detections"])
                ):
                    predictions[row] = result
    return predictions  # type: ignore[return-value]


def ground_truth(split: SceneSplit) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Target boxes (xywh pixels of the model frame) and the model frame's size, per (image, expression) pair."""
    size = (split.image_size, split.image_size)
    return [np.asarray(ref["boxes"], dtype=np.float64).reshape(-1, 4) for ref in split.refs], [size] * len(split.refs)


def in_original_frame(
    split: SceneSplit,
    targets: list[np.ndarray],
    predictions: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray]], list[tuple[int, int]]]:
    """Targets, predictions and sizes scaled back to each image file's own pixels.

    COCOeval's size buckets (AP_small/medium/large: areas below 32², 96²) are defined in the
    original image's pixels; a real image resized to the model frame would land objects in the
    wrong bucket. IoU and GIoU do not change under a per-axis scaling, so every other number is
    the same in either frame. The synthetic scenes are already in their own frame.
    """
    size = split.image_size
    out_targets, out_predictions, sizes = [], [], []
    for ref, boxes, (predicted, scores) in zip(split.refs, targets, predictions):
        width, height = split.original_sizes[ref["image_index"]] if split.original_sizes else (size, size)
        factor = np.array([width / size, height / size, width / size, height / size])
        same = (width, height) == (size, size)
        out_targets.append(boxes if same else boxes * factor)
        out_predictions.append((predicted if same else np.asarray(predicted) * factor, scores))
        sizes.append((width, height))
    return out_targets, out_predictions, sizes


def evaluate_grounding(
    model: FusionMethod,
    split: SceneSplit,
    tokenizer: Any,
    device: torch.device,
    batch_size: int,
    settings: dict[str, Any],
    image_missing: torch.Tensor | None = None,
    text_missing: torch.Tensor | None = None,
    subset_metrics: Sequence[str] = (),
) -> tuple[dict[str, float | None], dict[str, Any], dict[str, np.ndarray]]:
    """Metrics, protocol record and per-pair records (for the bootstrap, which resamples images: each
    pair's ``pair_image`` is its image's index in the split, :class:`benchmark.metrics.bootstrap.GroundingItems`).

    On a split tagged seen / held-out, ``subset_metrics`` are also reported on each subset of
    the pairs (:mod:`benchmark.metrics.compositional`: COCOeval on the subset's pairs alone) and the per-pair
    records carry each pair's tag (``pair_subset``, for
    :meth:`~benchmark.metrics.bootstrap.GroundingItems.restricted_to`)."""
    data = GroundingData.from_split(split, tokenizer, device, model.ctx.attributes)
    predictions = predict(model, data, split.image_size, batch_size, device, settings, image_missing, text_missing)
    targets, predictions, sizes = in_original_frame(split, ground_truth(split)[0], predictions)
    metrics, items = evaluate_pairs(targets, predictions, sizes, settings["score_threshold"], settings["acc_iou"])
    items["pair_image"] = np.array([ref["image_index"] for ref in split.refs], dtype=np.int64)  # bootstrap unit
    if split.tagged and subset_metrics:
        subsets = [ref["subset"] for ref in split.refs]
        metrics.update(
            grounding_subset_metrics(
                targets, predictions, sizes, subsets, subset_metrics, settings["score_threshold"], settings["acc_iou"]
            )
        )
        items["pair_subset"] = np.asarray(subsets, dtype=str)  # for the net gap's item bootstrap
    kinds = {k: data.kinds.count(k) for k in ("single", "multi", "none")}
    protocol = {
        "protocol": "dense boxes, NMS, COCOeval per (image, expression)",
        "images": len({ref["image_index"] for ref in split.refs}),
        "pairs": len(targets),
        "pair_kinds": kinds,
        **{k: settings[k] for k in ("nms_iou", "max_detections", "score_threshold", "acc_iou")},
    }
    if split.tagged and subset_metrics:
        protocol["subset_pairs"] = count_tags(ref["subset"] for ref in split.refs)
    return metrics, protocol, items


def reference_predictions(split: SceneSplit, kind: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Detectors that ignore the text: the whole image, or every object's true box (oracle)."""
    size = split.image_size
    predictions = []
    for ref in split.refs:
        if kind == "whole_image":
            predictions.append((np.array([[0.0, 0.0, size, size]]), np.array([1.0])))
        elif kind == "all_objects":
            boxes = np.asarray(split.boxes[ref["image_index"]], dtype=np.float64).reshape(-1, 4)
            predictions.append((boxes, np.ones(len(boxes))))
        else:
            raise ValueError(f"unknown reference detector {kind!r}")
    return predictions
