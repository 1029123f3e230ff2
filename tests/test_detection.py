"""Grounding metrics against pycocotools on hand-built cases; box formats; the dense-head targets."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from benchmark.boxes import convert, denormalize, iou_matrix, normalize
from benchmark.evaluation.grounding import decode
from benchmark.metrics.bootstrap import GroundingItems
from benchmark.metrics.detection import (
    ACC_IOU_FORMS,
    COCO_STATS,
    coco_detections,
    coco_ground_truth,
    evaluate_pairs,
    grounding_metrics,
    overlap_matrix,
)
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


def test_t_acc_counts_targeted_pairs_that_get_a_confident_box() -> None:
    targets, predictions = _case()
    # targeted pairs: pair 1 (top score 0.9) and pair 2 (0.8); the no-target pair 3 does not count
    assert grounding_metrics(targets, predictions, [SIZE] * 3, score_threshold=0.5)["T-acc"] == 1.0
    strict = grounding_metrics(targets, predictions, [SIZE] * 3, score_threshold=0.85)
    assert strict["T-acc"] == 0.5 and strict["N-acc"] == 1.0  # pair 2's 0.8 is now "no target"
    no_targets = grounding_metrics([np.zeros((0, 4))], [(np.zeros((0, 4)), np.zeros(0))], [SIZE])
    assert no_targets["T-acc"] is None and no_targets["N-acc"] == 1.0


def test_no_target_balanced_accuracy_reads_n_acc_and_t_acc_together() -> None:
    """(N-acc + T-acc)/2: threshold 0.5 → (0 + 1)/2, 0.85 → (1 + ½)/2; a detector that never fires (threshold
    above every score) gets N-acc 1 and T-acc 0, so ½, as one that always fires; undefined without a kind of pair."""
    targets, predictions = _case()
    assert grounding_metrics(targets, predictions, [SIZE] * 3, score_threshold=0.5)["no_target_balanced_acc"] == 0.5
    strict = grounding_metrics(targets, predictions, [SIZE] * 3, score_threshold=0.85)
    assert strict["no_target_balanced_acc"] == pytest.approx(0.75)
    silent = grounding_metrics(targets, predictions, [SIZE] * 3, score_threshold=0.99)
    assert (silent["N-acc"], silent["T-acc"], silent["no_target_balanced_acc"]) == (1.0, 0.0, 0.5)
    no_targets = grounding_metrics([np.zeros((0, 4))], [(np.zeros((0, 4)), np.zeros(0))], [SIZE])
    assert no_targets["no_target_balanced_acc"] is None


def test_giou_form_of_acc_differs_from_iou_by_hand() -> None:
    """MDETR's Acc@0.5 uses GIoU = IoU − (C − U)/C, never above IoU: here IoU ≥ 0.5 > GIoU."""
    target = np.array([[0.0, 0.0, 10.0, 10.0]])
    top = np.array([[1.5, 2.0, 10.0, 10.0]])
    # intersection 8.5 × 8 = 68, union 100 + 100 − 68 = 132, enclosing box 11.5 × 12 = 138
    iou, giou = 68 / 132, 68 / 132 - (138 - 132) / 138
    assert iou == pytest.approx(0.5152, abs=1e-4) and giou == pytest.approx(0.4717, abs=1e-4)
    assert overlap_matrix(top, target, "iou")[0, 0] == pytest.approx(iou)
    assert overlap_matrix(top, target, "giou")[0, 0] == pytest.approx(giou)
    weak = np.array([[30.0, 30.0, 4.0, 4.0]])  # a lower-scored box elsewhere: only the top box counts
    prediction = [(np.vstack([top, weak]), np.array([0.9, 0.2]))]
    by_iou = grounding_metrics([target], prediction, [SIZE], acc_iou="iou")
    by_giou = grounding_metrics([target], prediction, [SIZE], acc_iou="giou")
    assert by_iou["Acc@0.5"] == 1.0 and by_giou["Acc@0.5"] == 0.0
    assert by_iou["mIoU"] == by_giou["mIoU"] == pytest.approx(iou)  # mIoU is IoU in both forms
    assert {k: v for k, v in by_iou.items() if k != "Acc@0.5"} == {k: v for k, v in by_giou.items() if k != "Acc@0.5"}
    # a shift along one axis leaves no gap in the enclosing box: the two forms agree
    shifted = np.array([[2.0, 0.0, 10.0, 10.0]])
    assert overlap_matrix(shifted, target, "giou")[0, 0] == pytest.approx(overlap_matrix(shifted, target)[0, 0])


def test_acc_iou_forms_are_the_task_setting() -> None:
    from benchmark.tasks.grounding import Grounding

    assert Grounding.settings_schema["properties"]["acc_iou"]["enum"] == list(ACC_IOU_FORMS)
    assert "acc_iou" in Grounding.settings_schema["required"]
    names = Grounding().metric_names({})
    assert names[-5:] == ["mIoU", "Acc@0.5", "N-acc", "T-acc", "no_target_balanced_acc"]
    assert Grounding.table_metrics[-3:] == ("N-acc", "T-acc", "no_target_balanced_acc")
    with pytest.raises(ValueError, match="acc_iou must be one of iou, giou"):
        grounding_metrics(*_case(), [SIZE] * 3, acc_iou="diou")
    with pytest.raises(ValueError, match="unknown overlap"):
        overlap_matrix(np.ones((1, 4)), np.ones((1, 4)), "diou")


@pytest.mark.parametrize("acc_iou", ACC_IOU_FORMS)
def test_bootstrap_items_reproduce_acc_n_acc_and_t_acc(acc_iou: str) -> None:
    """Resampled pairs (weights w) give what the metrics give on the pairs repeated w times, in either form."""
    rng = np.random.default_rng(15)  # a draw where the two forms of Acc@0.5 differ (checked last)
    targets, predictions = [], []
    for k in range(40):
        boxes = np.column_stack([rng.uniform(0, 30, (k % 3, 2)), rng.uniform(5, 15, (k % 3, 2))])
        guess = np.vstack([boxes + rng.normal(0, 2.5, boxes.shape), rng.uniform(1, 30, (1, 4))])
        targets.append(boxes)
        predictions.append((guess, rng.uniform(0, 1, len(guess))))
    sizes = [SIZE] * len(targets)
    names = ("mIoU", "Acc@0.5", "N-acc", "T-acc")
    metrics, records = evaluate_pairs(targets, predictions, sizes, 0.5, acc_iou)
    items = GroundingItems(**records)
    identity = items.metrics(np.ones(len(targets)))
    assert all(identity[n] == pytest.approx(metrics[n], abs=1e-12) for n in names), (identity, metrics)
    weights = rng.integers(0, 3, len(targets))
    drawn = np.repeat(np.arange(len(targets)), weights)
    physical, _ = evaluate_pairs(
        [targets[p] for p in drawn], [predictions[p] for p in drawn], [SIZE] * len(drawn), 0.5, acc_iou
    )
    fast = items.metrics(weights)
    assert all(fast[n] == pytest.approx(physical[n], abs=1e-12) for n in names), (fast, physical)
    other = "giou" if acc_iou == "iou" else "iou"
    assert grounding_metrics(targets, predictions, sizes, 0.5, other)["Acc@0.5"] != metrics["Acc@0.5"]


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
