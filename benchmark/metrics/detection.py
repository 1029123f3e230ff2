"""Text-conditioned detection metrics: COCO AP via pycocotools, plus referring-expression scores.

Protocol: each (image, referring expression) pair is one COCOeval "image" with one category
("referred"); its ground truth is every object the expression refers to — none, one or
several. A method returns scored boxes per pair (at most ``max_detections``, after NMS).
COCOeval (bbox, IoU .50:.95, maxDets 1/10/100, COCO's area ranges) gives the 12 standard
stats. Pairs with no target contribute only false positives, so confident boxes on them
lower precision; they are also scored separately by N-acc.

Beside COCO AP:

* ``mIoU`` — over pairs with ≥ 1 target, the IoU of the top-scored box with its
  best-matching target (0 when the method returns no box);
* ``Acc@0.5`` — RefCOCO precision@1: over single-target pairs, the fraction whose top-scored
  box overlaps the target by ≥ 0.5. ``acc_iou`` picks the overlap: ``iou`` (plain IoU, as
  mmdetection's ``mmdet/evaluation/metrics/refexp_metric.py`` and the RefCOCO literature) or
  ``giou`` (generalized IoU, Rezatofighi et al., CVPR 2019, as MDETR's ``RefExpEvaluator`` in
  ``datasets/refexp.py``). GIoU = IoU − (C − U)/C ≤ IoU (C: the smallest enclosing box, U: the
  union), so the GIoU form is never higher; the evaluation records which form it used;
* ``N-acc`` — gRefCOCO's no-target accuracy: over no-target pairs, the fraction where no box
  scores ≥ ``score_threshold`` (N-acc = TP / (TP + FN));
* ``T-acc`` — gRefCOCO's target accuracy: over pairs with ≥ 1 target, the fraction where some
  box scores ≥ ``score_threshold``, i.e. the method does not call a targeted expression
  no-target (T-acc = TN / (TN + FP)). Both follow GREC's box evaluation (He et al. 2023,
  henghuiding/gRefCOCO ``mdetr/datasets/refexp.py``: a pair "predicts a target" when a box
  scores ≥ its ``thresh_score``, 0.7 there, ``score_threshold`` here) and the GRES paper's
  definitions (Liu et al., CVPR 2023). ReLA's mask evaluator
  (``gres_model/evaluation/refer_evaluation.py``) adds 1 to both denominators and its
  ``T_acc`` line computes TP / (TP + FP + 1) instead; FuseBench does neither;
* ``no_target_balanced_acc`` — (N-acc + T-acc) / 2, the balanced accuracy of the no-target
  decision (Brodersen et al., ICPR 2010): the two accuracies read together, so a method that
  never predicts a box (N-acc 1, T-acc 0) scores 0.5, as one that always does; undefined
  without both kinds of pair.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.ops import generalized_box_iou

from benchmark.boxes import convert, iou_matrix

COCO_STATS = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR@1",
    "AR@10",
    "AR@100",
    "AR_small",
    "AR_medium",
    "AR_large",
)
CATEGORY = {"id": 1, "name": "referred", "supercategory": "referred"}
ACC_IOU_FORMS = ("iou", "giou")
"""The overlaps ``Acc@0.5`` may use (``evaluate.grounding.acc_iou``)."""
ACC_THRESHOLD = 0.5
"""``Acc@0.5``: the top box is right when its overlap with the target is at least this."""
PAIR_METRICS = ("mIoU", "Acc@0.5", "N-acc", "T-acc", "no_target_balanced_acc")
"""The referring-expression metrics reported after the 12 COCO stats, in this order."""


def overlap_matrix(a_xywh: np.ndarray, b_xywh: np.ndarray, form: str = "iou") -> np.ndarray:
    """IoU (``form="iou"``) or generalized IoU (``"giou"``, torchvision's) of every box in ``a`` with every
    box in ``b`` (xywh, same units)."""
    if form == "iou":
        return iou_matrix(a_xywh, b_xywh)
    if form != "giou":
        raise ValueError(f"unknown overlap {form!r}; allowed: {', '.join(ACC_IOU_FORMS)}")

    a = convert(torch.as_tensor(np.asarray(a_xywh, dtype=np.float64).reshape(-1, 4)), "xywh", "xyxy")
    b = convert(torch.as_tensor(np.asarray(b_xywh, dtype=np.float64).reshape(-1, 4)), "xywh", "xyxy")
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return generalized_box_iou(a, b).numpy()


def coco_ground_truth(targets: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """COCO instances dict: pair k is image k+1 (width, height from ``sizes``)."""
    images, annotations = [], []
    for k, (boxes, (width, height)) in enumerate(zip(targets, sizes)):
        images.append({"id": k + 1, "width": int(width), "height": int(height)})
        for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": 1,
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": [CATEGORY]}


def coco_detections(predictions: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[dict[str, Any]]:
    """COCO results list from per-pair (boxes xywh pixels, scores)."""
    detections = []
    for k, (boxes, scores) in enumerate(predictions):
        for box, score in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(scores).reshape(-1)):
            detections.append(
                {"image_id": k + 1, "category_id": 1, "bbox": [float(v) for v in box], "score": float(score)}
            )
    return detections


def coco_evaluation(gt: dict[str, Any], detections: list[dict[str, Any]]) -> tuple[np.ndarray, list[Any]]:
    """(12 stats, per-pair match records of area 'all' at maxDets 100) from pycocotools.

    The records are COCOeval's own ``evalImgs`` entries — detection scores, matches and ignore
    flags per IoU threshold — so AP can be re-accumulated on resampled pairs (bootstrap).

    Without any detection (``loadRes`` cannot take an empty list) COCOeval runs on an empty result
    set, so every stat is what pycocotools gives it: 0 where the area range has ground truth, −1
    (undefined) where it has none — never a 0 for a range without ground truth.
    """

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if detections:
            coco_dt = coco_gt.loadRes(detections)
        else:
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    pairs = len(gt["images"])
    return np.asarray(evaluator.stats, dtype=np.float64), list(evaluator.evalImgs[:pairs])  # area 'all' comes first


def grounding_metrics(
    targets: Sequence[np.ndarray],
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    sizes: Sequence[tuple[int, int]],
    score_threshold: float = 0.5,
    acc_iou: str = "iou",
) -> dict[str, float | None]:
    """All detection metrics; ``None`` marks a value that is undefined on this test set."""
    return evaluate_pairs(targets, predictions, sizes, score_threshold, acc_iou)[0]


def evaluate_pairs(
    targets: Sequence[np.ndarray],
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    sizes: Sequence[tuple[int, int]],
    score_threshold: float = 0.5,
    acc_iou: str = "iou",
) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
    """(metrics, per-pair records for the bootstrap: see :mod:`benchmark.metrics.bootstrap`)."""
    if not (len(targets) == len(predictions) == len(sizes)):
        raise ValueError("targets, predictions and sizes must have one entry per (image, expression) pair")
    if acc_iou not in ACC_IOU_FORMS:
        raise ValueError(f"acc_iou must be one of {', '.join(ACC_IOU_FORMS)}, got {acc_iou!r}")
    stats, records = coco_evaluation(coco_ground_truth(targets, sizes), coco_detections(predictions))
    metrics: dict[str, float | None] = {
        name: (None if value < 0 else float(value)) for name, value in zip(COCO_STATS, stats)
    }
    top_iou = np.full(len(targets), np.nan)
    acc_hit = np.zeros(len(targets), dtype=bool)
    detected = np.zeros(len(targets), dtype=bool)
    n_targets = np.array([np.asarray(b).reshape(-1, 4).shape[0] for b in targets])
    for k, (boxes, (pred_boxes, scores)) in enumerate(zip(targets, predictions)):
        boxes, pred_boxes, scores = (
            np.asarray(boxes).reshape(-1, 4),
            np.asarray(pred_boxes).reshape(-1, 4),
            np.asarray(scores).reshape(-1),
        )
        detected[k] = bool((scores >= score_threshold).any())
        if len(boxes) == 0:
            continue
        if len(pred_boxes) == 0:
            top_iou[k] = 0.0
            continue
        top = pred_boxes[int(np.argmax(scores))][None]  # argmax: the first of tied scores
        top_iou[k] = float(iou_matrix(top, boxes).max())
        overlap = top_iou[k] if acc_iou == "iou" else float(overlap_matrix(top, boxes, acc_iou).max())
        acc_hit[k] = overlap >= ACC_THRESHOLD
    with_target, single, none = n_targets > 0, n_targets == 1, n_targets == 0
    metrics["mIoU"] = float(top_iou[with_target].mean()) if with_target.any() else None
    metrics["Acc@0.5"] = float(acc_hit[single].mean()) if single.any() else None
    metrics["N-acc"] = float((~detected[none]).mean()) if none.any() else None
    metrics["T-acc"] = float(detected[with_target].mean()) if with_target.any() else None
    metrics["no_target_balanced_acc"] = (
        (metrics["N-acc"] + metrics["T-acc"]) / 2 if none.any() and with_target.any() else None  # type: ignore[operator]
    )
    items = {
        "top_iou": top_iou,
        "acc_hit": acc_hit,
        "n_targets": n_targets,
        "detected": detected,
        **_flatten_records(records, len(targets)),
    }
    return metrics, items


def _flatten_records(records: list[Any], pairs: int) -> dict[str, np.ndarray]:
    """COCOeval's per-pair records as flat arrays with per-pair offsets (storable in .npz)."""
    scores, matches, dt_ignore, gt_ignore, dt_pair, gt_pair = [], [], [], [], [], []
    thresholds = 10
    for k in range(pairs):
        record = records[k] if k < len(records) else None
        if record is None:
            continue
        d = len(record["dtScores"])
        scores.append(np.asarray(record["dtScores"], dtype=np.float64))
        matches.append(np.asarray(record["dtMatches"]).reshape(thresholds, d) > 0)
        dt_ignore.append(np.asarray(record["dtIgnore"]).reshape(thresholds, d).astype(bool))
        gt_ignore.append(np.asarray(record["gtIgnore"]).astype(bool))
        dt_pair.append(np.full(d, k))
        gt_pair.append(np.full(len(record["gtIgnore"]), k))
    cat = lambda parts, empty: np.concatenate(parts, axis=-1) if parts else empty  # noqa: E731
    return {
        "dt_scores": cat(scores, np.zeros(0)),
        "dt_matches": cat(matches, np.zeros((thresholds, 0), bool)),
        "dt_ignore": cat(dt_ignore, np.zeros((thresholds, 0), bool)),
        "dt_pair": cat(dt_pair, np.zeros(0, int)),
        "gt_ignore": cat(gt_ignore, np.zeros(0, bool)),
        "gt_pair": cat(gt_pair, np.zeros(0, int)),
    }
