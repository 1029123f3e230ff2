"""FuseBench grounding (text-conditioned detection) metrics as a Hugging Face ``evaluate`` module.

The numbers come from :func:`benchmark.metrics.detection.grounding_metrics`, the function
FuseBench's own evaluation calls (COCOeval through pycocotools, plus mIoU, Acc@0.5, N-acc and T-acc),
so a training loop that uses this module reports exactly the value FuseBench would. This file
only adapts evaluate's per-example input model to that function's arguments and checks them.

Load it by path (works offline):

    import evaluate
    from benchmark.hf_metrics import module_path

    grounding = evaluate.load(module_path("grounding"))
    grounding.compute(predictions=detections, references=targets, score_threshold=0.5, acc_iou="iou")
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import evaluate
import numpy as np

from benchmark.metrics.detection import ACC_IOU_FORMS, grounding_metrics

#: FuseBench's default, workflows/config/default.yaml → evaluate.grounding.score_threshold.
DEFAULT_SCORE_THRESHOLD = 0.5
#: FuseBench's default, workflows/config/default.yaml → evaluate.grounding.acc_iou.
DEFAULT_ACC_IOU = "iou"

_DESCRIPTION = """\
Text-conditioned detection (referring-expression grounding) metrics, FuseBench's protocol, computed by
FuseBench's own code (benchmark.metrics.detection.grounding_metrics).

Each example is one (image, referring expression) pair. Its reference is every object the expression refers
to: none, one or several boxes. Its prediction is the method's scored boxes for that pair. Each pair is one
COCOeval image with a single category, and COCOeval (bbox, IoU .50:.95, maxDets 1/10/100, COCO area ranges)
gives the 12 standard stats: AP, AP50, AP75, AP_small, AP_medium, AP_large, AR@1, AR@10, AR@100, AR_small,
AR_medium, AR_large. Pairs with no target contribute only false positives. Beside them:

* mIoU: over pairs with at least one target, IoU of the top-scored box with its best-matching target
  (0 when the pair has no predicted box);
* Acc@0.5: RefCOCO precision@1, over single-target pairs, the fraction whose top-scored box overlaps the target
  by >= 0.5: plain IoU (acc_iou="iou", as mmdetection's refexp_metric) or generalized IoU (acc_iou="giou", as
  MDETR's RefExpEvaluator; GIoU <= IoU, so never higher);
* N-acc: gRefCOCO no-target accuracy, over no-target pairs, the fraction with no box scoring >= score_threshold;
* T-acc: gRefCOCO target accuracy, over pairs with at least one target, the fraction with some box scoring
  >= score_threshold (GREC's box evaluation: the method does not call a targeted expression no-target);
* no_target_balanced_acc: (N-acc + T-acc) / 2, the balanced accuracy of the no-target decision (0.5 for a method
  that never, or always, predicts a box); None without both kinds of pair.

The top-scored box is the first of tied top scores. A value undefined on the given pairs (e.g. Acc@0.5 with no
single-target pair, AP_small with no small object, T-acc with no targeted pair) is None. Before scoring,
FuseBench's grounding evaluation applies class-agnostic NMS at IoU 0.5 and keeps at most 100 boxes per pair, best
first (evaluate.grounding.nms_iou and max_detections in workflows/config/default.yaml); this module scores exactly
the boxes it is given, so do the same for comparable numbers.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of dict): per (image, expression) pair, {"boxes": [[x, y, w, h], ...], "scores": [...]}:
        the predicted boxes in pixels, COCO xywh (top-left corner, width, height), and one confidence per box.
        Either list may be empty (no detection).
    references (list of dict): per pair, {"boxes": [[x, y, w, h], ...], "image_size": [width, height]}: the
        boxes of every referred object (empty list for a no-target expression), same format, and the image size
        in pixels, width first as in a COCO image record (the COCO ground truth FuseBench builds records it; bbox
        metrics do not depend on it).
    score_threshold (float, optional): the N-acc and T-acc threshold, default 0.5, FuseBench's default
        (workflows/config/default.yaml, evaluate.grounding.score_threshold). It affects N-acc and T-acc only.
    acc_iou (str, optional): Acc@0.5's overlap, "iou" (default, FuseBench's default: evaluate.grounding.acc_iou)
        or "giou" (MDETR's form). It affects Acc@0.5 only.

Returns:
    dict: AP, AP50, AP75, AP_small, AP_medium, AP_large, AR@1, AR@10, AR@100, AR_small, AR_medium, AR_large, mIoU,
    Acc@0.5, N-acc, T-acc, no_target_balanced_acc; each a float in [0, 1] or None when undefined on these pairs.

Example:
    >>> import evaluate
    >>> from benchmark.hf_metrics import module_path
    >>> grounding = evaluate.load(module_path("grounding"))
    >>> predictions = [{"boxes": [[5, 4, 10, 10]], "scores": [0.9]},            # one target, found
    ...                {"boxes": [[10, 10, 6, 6]], "scores": [0.3]}]            # no target, a weak box
    >>> references = [{"boxes": [[4, 4, 10, 10]], "image_size": [48, 48]},
    ...               {"boxes": [], "image_size": [48, 48]}]
    >>> results = grounding.compute(predictions=predictions, references=references)
    >>> results["Acc@0.5"], results["N-acc"], results["T-acc"]
    (1.0, 1.0, 1.0)
"""

_CITATION = """\
@software{fusebench2026,
  title   = {FuseBench: a reproducible benchmark of multimodal fusion strategies},
  author  = {{The FuseBench developers}},
  year    = {2026},
  version = {0.1.0}
}
@inproceedings{lin2014coco,
  title     = {Microsoft {COCO}: Common Objects in Context},
  author    = {Lin, Tsung-Yi and Maire, Michael and Belongie, Serge and others},
  booktitle = {ECCV},
  year      = {2014}
}
@inproceedings{liu2023grefcoco,
  title     = {{GRES}: Generalized Referring Expression Segmentation},
  author    = {Liu, Chang and Ding, Henghui and Jiang, Xudong},
  booktitle = {CVPR},
  year      = {2023}
}
"""

_BOXES = datasets.List(datasets.List(datasets.Value("float64")))


def _boxes(boxes: Sequence[Sequence[float]], where: str) -> np.ndarray:
    """An (n, 4) float array; a box of another length is named rather than reshaped into garbage."""
    for k, box in enumerate(boxes):
        if len(box) != 4:
            raise ValueError(f"{where} box {k} has {len(box)} numbers, expected 4: [x, y, width, height] in pixels")
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(array).all():
        raise ValueError(f"{where} boxes contain NaN or infinity")
    return array


def _prediction(prediction: Mapping[str, Any], pair: int) -> tuple[np.ndarray, np.ndarray]:
    """(boxes, scores) for one pair, as grounding_metrics takes them."""
    boxes = _boxes(prediction["boxes"], f"prediction {pair}")
    scores = np.asarray(prediction["scores"], dtype=np.float64).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f"prediction {pair} has {len(boxes)} boxes but {len(scores)} scores: give one score per box")
    if not np.isfinite(scores).all():
        raise ValueError(f"prediction {pair} scores contain NaN or infinity")
    return boxes, scores


def _image_size(reference: Mapping[str, Any], pair: int) -> tuple[int, int]:
    """(width, height) for one pair: COCO order, as coco_ground_truth reads it."""
    size = reference["image_size"]
    if size is None or len(size) != 2 or any(value <= 0 for value in size):
        raise ValueError(f"reference {pair} image_size is {size!r}, expected [width, height] in pixels, both positive")
    return int(size[0]), int(size[1])


# Subclass evaluate.Metric by attribute: evaluate.load instantiates the first Metric subclass in this file, and a
# `from evaluate import Metric` would make that the base class itself.
class FusebenchGrounding(evaluate.Metric):
    """COCO AP/AR, mIoU, Acc@0.5, N-acc and T-acc, computed by :func:`benchmark.metrics.detection.grounding_metrics`."""

    def _info(self) -> evaluate.MetricInfo:
        """Inputs are per (image, expression) pair, so that ``add_batch`` can take a batch of pairs at a time."""
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {"boxes": _BOXES, "scores": datasets.List(datasets.Value("float64"))},
                    "references": {"boxes": _BOXES, "image_size": datasets.List(datasets.Value("int64"))},
                }
            ),
            reference_urls=[
                "https://github.com/cocodataset/cocoapi",
                "https://github.com/henghuiding/gRefCOCO",
                "https://github.com/ashkamath/mdetr",
            ],
        )

    def _compute(
        self,
        predictions: Sequence[Mapping[str, Any]],
        references: Sequence[Mapping[str, Any]],
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        acc_iou: str = DEFAULT_ACC_IOU,
    ) -> dict[str, float | None]:
        """Convert the per-pair dicts to grounding_metrics' lists and call it unchanged."""
        if len(predictions) == 0:
            raise ValueError("no predictions: add at least one (image, expression) pair before compute")
        try:
            threshold = float(score_threshold)
        except (TypeError, ValueError):
            threshold = math.nan
        if not math.isfinite(threshold):
            raise ValueError(f"score_threshold must be a finite number, got {score_threshold!r}")
        if acc_iou not in ACC_IOU_FORMS:
            raise ValueError(f"acc_iou must be one of {', '.join(map(repr, ACC_IOU_FORMS))}, got {acc_iou!r}")
        detections = [_prediction(prediction, pair) for pair, prediction in enumerate(predictions)]
        targets = [_boxes(reference["boxes"], f"reference {pair}") for pair, reference in enumerate(references)]
        sizes = [_image_size(reference, pair) for pair, reference in enumerate(references)]
        return grounding_metrics(targets, detections, sizes, threshold, acc_iou)
