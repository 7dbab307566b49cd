"""Referring expression comprehension (REC): one predicted box against one ground-truth box.

R_acc = IoU(pred, gt) in [0, 1] (continuous, so a near miss still earns reward); the evaluation metric is
Acc@0.5 = [IoU > 0.5]. Boxes are (x1, y1, x2, y2) in pixels, areas (x2 - x1) * (y2 - y1) with no +1. A box with
x2 <= x1 or y2 <= y1, or a non-finite coordinate, is degenerate and has IoU 0 with everything (itself included).
"""
from __future__ import annotations

from typing import Any

import numpy as np

ACC_IOU_THRESHOLD = 0.5


def as_boxes(x: Any, name: str, *, single: bool = True, max_abs: float | None = None) -> np.ndarray:
    """x as float64 boxes [N, 4] (x1, y1, x2, y2), or a ValueError naming `name` and the value.

    single: a lone box of shape [4] is taken as [1, 4]. max_abs: every coordinate must be finite with |x| <= it.
    """
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be boxes [N, 4] (x1, y1, x2, y2), got {x!r}") from None
    if arr.size == 0:
        return np.zeros((0, 4), np.float64)
    if single and arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must be boxes of shape [N, 4] (x1, y1, x2, y2), got shape {arr.shape}")
    if max_abs is not None and not (np.abs(arr) <= max_abs).all():  # False for NaN too
        raise ValueError(f"{name} must be finite pixel coordinates with |x| <= {max_abs:g}, got {arr.tolist()}")
    return arr


def pairwise_iou(a: Any, b: Any) -> np.ndarray:
    """IoU[i, j] between boxes a[i] ([N, 4]) and b[j] ([M, 4]) -> [N, M] in [0, 1]; degenerate boxes -> 0.

    IoU = |a ∩ b| / (|a| + |b| - |a ∩ b|).
    """
    a, b = as_boxes(a, "a"), as_boxes(b, "b")
    with np.errstate(invalid="ignore", over="ignore"):
        ok_a = np.isfinite(a).all(1) & (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])
        ok_b = np.isfinite(b).all(1) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
        area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
        ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        union = area_a[:, None] + area_b[None, :] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    iou = np.where(ok_a[:, None] & ok_b[None, :] & np.isfinite(iou), iou, 0.0)
    return np.clip(iou, 0.0, 1.0)


def box_iou(pred: Any, gt: Any) -> float:
    """IoU of two single boxes (x1, y1, x2, y2), in [0, 1]; degenerate or non-finite boxes -> 0."""
    p, g = as_boxes(pred, "pred"), as_boxes(gt, "gt")
    if p.shape[0] != 1 or g.shape[0] != 1:
        raise ValueError(f"box_iou takes one box each, got pred shape {p.shape} and gt shape {g.shape}")
    return float(pairwise_iou(p, g)[0, 0])


def rec_reward(pred: Any | None, gt: Any) -> float:
    """R_acc for REC = IoU(pred, gt) in [0, 1]; no predicted box (None) -> 0."""
    if pred is None:
        return 0.0
    return box_iou(pred, gt)


def rec_accuracy(pred: Any | None, gt: Any, threshold: float = ACC_IOU_THRESHOLD) -> bool:
    """Acc@0.5, the REC evaluation metric: IoU(pred, gt) > threshold (strictly); no prediction -> False."""
    return rec_reward(pred, gt) > threshold
