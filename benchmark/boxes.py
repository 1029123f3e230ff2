"""Box formats: xyxy / xywh / cxcywh, in pixels or normalised to [0, 1] by the image size.

Conversions between layouts use ``torchvision.ops.box_convert``; this module adds the
pixel ↔ normalised scaling and numpy-friendly wrappers, so every caller speaks one vocabulary.
COCO JSON and COCOeval use **xywh in pixels**; models predict **cxcywh normalised**.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_convert, box_iou

FORMATS = ("xyxy", "xywh", "cxcywh")


def convert(boxes: torch.Tensor, source: str, target: str) -> torch.Tensor:
    """Change layout (``xyxy``, ``xywh``, ``cxcywh``); scale is untouched."""
    if source not in FORMATS or target not in FORMATS:
        raise ValueError(f"box formats must be among {FORMATS}, got {source!r} → {target!r}")
    return boxes if source == target else box_convert(boxes, source, target)


def normalize(boxes: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """Pixels → [0, 1] (any layout: x-like coordinates by width, y-like by height)."""
    return boxes / boxes.new_tensor([width, height, width, height])


def denormalize(boxes: torch.Tensor, width: float, height: float) -> torch.Tensor:
    """[0, 1] → pixels (any layout)."""
    return boxes * boxes.new_tensor([width, height, width, height])


def iou_matrix(a_xywh: np.ndarray, b_xywh: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` with every box in ``b`` (xywh, same units)."""
    a = convert(torch.as_tensor(np.asarray(a_xywh, dtype=np.float64).reshape(-1, 4)), "xywh", "xyxy")
    b = convert(torch.as_tensor(np.asarray(b_xywh, dtype=np.float64).reshape(-1, 4)), "xywh", "xyxy")
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return box_iou(a, b).numpy()
