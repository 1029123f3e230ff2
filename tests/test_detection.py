"""Grounding metrics against pycocotools on hand-built cases; box formats; the dense-head targets."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from benchmark.evaluation.grounding import decode
from benchmark.metrics.boxes import convert, denormalize, iou_matrix, normalize
from benchmark.metrics.detection import COCO_STATS, coco_detections, coco_ground_truth, grounding_metrics
from benchmark.objectives.detection import assign_to_cells, grounding_loss

SIZE = (48, 48)


def _direct_cocoeval(targets, predictions):
    """A plain pycocotools run, written independently of the wrapper."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": [{"id": i + 1, "width": 48, "height": 48} for i in range(len(targets))],
            "annotations": [
                {
                    "id": 1000 * (i + 1) + j,
                    "image_id": i + 1,
                    "category_id": 1,
                    "bbox": list(map(float, b)),
                    "area": float(b[2] * b[3]),
                    "iscrowd": 0,
                }
                for i, boxes in enumerate(targets)
                for j, b in enumerate(boxes)
            ],
            "categories": [{"id": 1, "name": "referred"}],
        }
        gt.createIndex()
        dt = gt.loadRes(
            [
                {"image_id": i + 1, "category_id": 1, "bbox": list(map(float, b)), "score": float(s)}
                for i, (boxes, scores) in enumerate(predictions)
                for b, s in zip(boxes, scores)
            ]
        )
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return ev.stats


def _case():
    targets = [np.array([[4, 4, 10, 10]]), np.array([[20, 20, 8, 8], [30, 5, 12, 12]]), np.zeros((0, 4))]
    predictions = [
        (np.array([[5, 4, 10, 10], [30, 30, 5, 5]]), np.array([0.9, 0.3])),  # good box, a false positive
        (np.array([[20, 21, 8, 8]]), np.array([0.8])),  # one of two targets
        (np.array([[10, 10, 6, 6]]), np.array([0.7])),  # a box on a no-target pair
    ]
    return targets, predictions


def test_wrapper_equals_a_direct_pycocotools_run() -> None:
    targets, predictions = _case()
    metrics = grounding_metrics(targets, predictions, [SIZE] * 3)
    direct = _direct_cocoeval(targets, predictions)
    for name, value in zip(COCO_STATS, direct):
        assert metrics[name] == (None if value < 0 else pytest.approx(value)), name


def test_perfect_predictions_score_one() -> None:
    targets = [np.array([[4, 4, 10, 10]]), np.array([[20, 20, 8, 8], [30, 5, 12, 12]])]
    predictions = [(t, np.ones(len(t))) for t in targets]
    metrics = grounding_metrics(targets, predictions, [SIZE] * 2)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AR@100"] == pytest.approx(1.0)
    assert metrics["mIoU"] == pytest.approx(1.0) and metrics["Acc@0.5"] == pytest.approx(1.0)
    assert metrics["N-acc"] is None  # no no-target pair in this set


def test_shifted_box_lands_on_the_right_side_of_each_threshold() -> None:
    # a 10×10 box shifted by 2 px: intersection 8×10 = 80, union 120 → IoU 2/3
    target = np.array([[10, 10, 10, 10]])
    shifted = np.array([[12, 10, 10, 10]])
    assert iou_matrix(target, shifted)[0, 0] == pytest.approx(2 / 3)
    metrics = grounding_metrics([target], [(shifted, np.array([1.0]))], [SIZE])
    assert metrics["AP50"] == pytest.approx(1.0)  # 0.667 ≥ 0.5
    assert metrics["AP75"] == pytest.approx(0.0)  # 0.667 < 0.75
    # AP averages IoU thresholds .50, .55, ..., .95: hits at .50–.65 → 4 of 10
    assert metrics["AP"] == pytest.approx(0.4)
    assert metrics["mIoU"] == pytest.approx(2 / 3) and metrics["Acc@0.5"] == 1.0


def test_referring_scores_by_hand() -> None:
    targets, predictions = _case()
    metrics = grounding_metrics(targets, predictions, [SIZE] * 3, score_threshold=0.5)
    # pair 1: IoU([5,4,10,10], [4,4,10,10]) = 90/110; pair 2: IoU with [20,20,8,8] = 56/72
    assert metrics["mIoU"] == pytest.approx((90 / 110 + 56 / 72) / 2)
    assert metrics["Acc@0.5"] == 1.0  # only pair 1 is single-target, and it hits
    assert metrics["N-acc"] == 0.0  # the no-target pair has a box scoring 0.7
    assert grounding_metrics(targets, predictions, [SIZE] * 3, score_threshold=0.75)["N-acc"] == 1.0


def test_no_detections_at_all() -> None:
    metrics = grounding_metrics([np.array([[4, 4, 10, 10]])], [(np.zeros((0, 4)), np.zeros(0))], [SIZE])
    assert metrics["AP"] == 0.0 and metrics["mIoU"] == 0.0 and metrics["Acc@0.5"] == 0.0


def test_coco_json_round_trip() -> None:
    targets, predictions = _case()
    gt = coco_ground_truth(targets, [SIZE] * 3)
    assert [img["id"] for img in gt["images"]] == [1, 2, 3]
    assert sum(a["image_id"] == 2 for a in gt["annotations"]) == 2
    assert len(coco_detections(predictions)) == 4


def test_box_conversions_round_trip() -> None:
    torch.manual_seed(0)
    xywh = torch.rand(20, 4) * torch.tensor([30.0, 30.0, 15.0, 15.0]) + torch.tensor([0, 0, 1.0, 1.0])
    for fmt in ("xyxy", "cxcywh"):
        assert torch.allclose(convert(convert(xywh, "xywh", fmt), fmt, "xywh"), xywh, atol=1e-5)
    assert torch.allclose(denormalize(normalize(xywh, 48, 32), 48, 32), xywh, atol=1e-5)
    assert torch.allclose(
        convert(torch.tensor([[2.0, 3.0, 4.0, 5.0]]), "xywh", "xyxy"), torch.tensor([[2.0, 3.0, 6.0, 8.0]])
    )
    assert torch.allclose(
        convert(torch.tensor([[2.0, 3.0, 4.0, 5.0]]), "xywh", "cxcywh"), torch.tensor([[4.0, 5.5, 4.0, 5.0]])
    )
    assert torch.allclose(
        normalize(torch.tensor([[24.0, 16.0, 48.0, 32.0]]), 48, 32), torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    )
    with pytest.raises(ValueError, match="box formats"):
        convert(xywh, "xywh", "yolo")


def test_targets_go_to_the_cell_of_their_centre() -> None:
    targets = torch.tensor([[[0.10, 0.10, 0.1, 0.1], [0.90, 0.55, 0.2, 0.2]], [[0.5, 0.5, 0.3, 0.3], [0, 0, 0, 0]]])
    valid = torch.tensor([[True, True], [True, False]])
    positive, boxes, index = assign_to_cells(targets, valid, grid=4)
    assert positive[0].nonzero().flatten().tolist() == [0, 2 * 4 + 3]  # (row 0, col 0) and (row 2, col 3)
    assert positive[1].nonzero().flatten().tolist() == [2 * 4 + 2]
    assert torch.equal(boxes[0, 11], targets[0, 1]) and index[0, 11].item() == 1 and index[0, 1].item() == -1
    logits = torch.where(positive, 10.0, -10.0)
    losses = grounding_loss(logits, boxes, targets, valid, grid=4)
    assert (
        losses["cls"].item() < 1e-3
        and losses["l1"].item() == 0.0
        and losses["giou"].item() == pytest.approx(0.0, abs=1e-4)
    )


def test_decode_applies_nms_and_keeps_best_first() -> None:
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.51, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]]])
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    [(kept, scores)] = decode(boxes, logits, 48, nms_iou=0.5, max_detections=100)
    assert len(kept) == 2 and scores[0] > scores[1]  # the near-duplicate is suppressed
    assert np.allclose(kept[0], [19.2, 19.2, 9.6, 9.6])  # xywh pixels
    [(top1, _)] = decode(boxes, logits, 48, nms_iou=0.5, max_detections=1)
    assert len(top1) == 1
