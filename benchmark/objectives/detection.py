"""Dense box losses for grounding: each target is assigned to the patch holding its centre.

As in FCOS/OWL-ViT-style dense detectors, every image patch predicts a score ("this patch's
object is referred to") and a box. A target box is assigned to the patch whose cell contains
its centre; that patch is a positive with that box as regression target, every other patch a
negative. Losses: BCE on the scores (calibrated probabilities, so a score threshold means the
same for every method), and on positives L1 on normalised cxcywh + generalised IoU (DETR's
weights 5 and 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss

from benchmark.boxes import convert

L1_WEIGHT = 5.0
GIOU_WEIGHT = 2.0


def assign_to_cells(
    targets: torch.Tensor, valid: torch.Tensor, grid: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B×P positive mask, B×P×4 box targets, B×P index of the assigned target or -1).

    ``targets`` are B×T×4 normalised cxcywh. When two targets share a cell, the first one is
    kept (a one-box-per-patch head cannot predict both; at FuseBench's sizes this is rare).
    """
    batch, count = targets.shape[:2]
    col = (targets[..., 0] * grid).long().clamp(0, grid - 1)
    row = (targets[..., 1] * grid).long().clamp(0, grid - 1)
    cell = row * grid + col
    index = torch.full((batch, grid * grid), -1, dtype=torch.long, device=targets.device)
    boxes = torch.zeros(batch, grid * grid, 4, device=targets.device)
    for t in reversed(range(count)):  # reversed: the first target wins a shared cell
        rows = valid[:, t].nonzero(as_tuple=True)[0]
        index[rows, cell[rows, t]] = t
        boxes[rows, cell[rows, t]] = targets[rows, t]
    return index >= 0, boxes, index


def box_losses(pred: torch.Tensor, target: torch.Tensor, positive: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1 and GIoU over positive patches (zero when there is none)."""
    if not positive.any():
        zero = pred.sum() * 0.0
        return {"l1": zero, "giou": zero}
    p, t = pred[positive].float(), target[positive].float()
    giou = generalized_box_iou_loss(convert(p, "cxcywh", "xyxy"), convert(t, "cxcywh", "xyxy"), reduction="mean")
    return {"l1": L1_WEIGHT * F.l1_loss(p, t), "giou": GIOU_WEIGHT * giou}


def grounding_loss(
    logits: torch.Tensor, boxes: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, grid: int
) -> dict[str, torch.Tensor]:
    """Score BCE over all patches + box losses on the patches assigned to a target."""
    positive, box_targets, _ = assign_to_cells(targets, valid, grid)
    losses = {"cls": F.binary_cross_entropy_with_logits(logits.float(), positive.float())}
    losses.update(box_losses(boxes, box_targets, positive))
    return losses
