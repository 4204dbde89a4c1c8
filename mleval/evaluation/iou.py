"""Box IoU helpers. The box format is in every name: ``xyxy`` = (x1, y1, x2, y2), ``xywh`` = COCO (x, y, w, h).

All functions take and return float64 numpy arrays, in pixels. A pair whose union is empty has IoU 0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mleval.core.errors import ValidationError


def _boxes(value: ArrayLike, name: str) -> np.ndarray:
    boxes = np.asarray(value, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValidationError(
            "boxes.shape", f"{name} must have shape (N, 4), got {boxes.shape}; pass one row of 4 numbers per box."
        )
    return boxes


def xywh_to_xyxy(boxes_xywh: ArrayLike) -> np.ndarray:
    """(N, 4) COCO ``[x, y, w, h]`` -> (N, 4) ``[x1, y1, x2, y2]``."""
    b = _boxes(boxes_xywh, "boxes_xywh").copy()
    b[:, 2:] += b[:, :2]
    return b


def xyxy_to_xywh(boxes_xyxy: ArrayLike) -> np.ndarray:
    """(N, 4) ``[x1, y1, x2, y2]`` -> (N, 4) COCO ``[x, y, w, h]``."""
    b = _boxes(boxes_xyxy, "boxes_xyxy").copy()
    b[:, 2:] -= b[:, :2]
    return b


def box_iou_xyxy(boxes_a_xyxy: ArrayLike, boxes_b_xyxy: ArrayLike) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4) -> (N, M)."""
    a = _boxes(boxes_a_xyxy, "boxes_a_xyxy")[:, None, :]
    b = _boxes(boxes_b_xyxy, "boxes_b_xyxy")[None, :, :]
    return _iou_xyxy(a, b)


def paired_box_iou_xyxy(boxes_a_xyxy: ArrayLike, boxes_b_xyxy: ArrayLike) -> np.ndarray:
    """IoU of row i of ``a`` (N, 4) with row i of ``b`` (N, 4) -> (N,)."""
    a = _boxes(boxes_a_xyxy, "boxes_a_xyxy")
    b = _boxes(boxes_b_xyxy, "boxes_b_xyxy")
    if a.shape != b.shape:
        raise ValidationError(
            "boxes.paired_shape", f"paired boxes need the same shape, got {a.shape} and {b.shape}; pair them first."
        )
    return _iou_xyxy(a, b)


def mean_iou_xyxy(pred_xyxy: ArrayLike, gt_xyxy: ArrayLike) -> float:
    """Mean IoU of matched pairs: row i of ``pred`` (N, 4) matched to row i of ``gt`` (N, 4). NaN when N == 0."""
    ious = paired_box_iou_xyxy(pred_xyxy, gt_xyxy)
    return float(ious.mean()) if ious.size else float("nan")


def box_iou_xywh(dt_xywh: ArrayLike, gt_xywh: ArrayLike, *, gt_iscrowd: ArrayLike | None = None) -> np.ndarray:
    """COCO IoU of detections (N, 4) with ground truths (M, 4), both ``xywh`` -> (N, M).

    Same arithmetic as ``pycocotools.mask.iou`` on boxes, bit for bit: for a crowd ground
    truth (``gt_iscrowd`` (M,) true) the union is the detection's own area.
    """
    dt = _boxes(dt_xywh, "dt_xywh")
    gt = _boxes(gt_xywh, "gt_xywh")
    crowd = np.zeros(len(gt), dtype=bool) if gt_iscrowd is None else np.asarray(gt_iscrowd, dtype=bool)
    if crowd.shape != (len(gt),):
        raise ValidationError(
            "boxes.crowd_shape", f"gt_iscrowd must have shape ({len(gt)},), got {crowd.shape}; give one flag per box."
        )
    return paired_box_iou_xywh(dt[:, None, :], gt[None, :, :], crowd[None, :])


def paired_box_iou_xywh(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Broadcasting core of :func:`box_iou_xywh`: ``dt``, ``gt`` (..., 4) float64, ``crowd`` (...) bool."""
    # Operation order copies pycocotools' bbIou (maskApi.c) so thresholds compare identically.
    w = np.minimum(dt[..., 2] + dt[..., 0], gt[..., 2] + gt[..., 0]) - np.maximum(dt[..., 0], gt[..., 0])
    h = np.minimum(dt[..., 3] + dt[..., 1], gt[..., 3] + gt[..., 1]) - np.maximum(dt[..., 1], gt[..., 1])
    overlap = (w > 0) & (h > 0)
    inter = w * h
    dt_area = dt[..., 2] * dt[..., 3]
    union = np.where(crowd, dt_area, dt_area + gt[..., 2] * gt[..., 3] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlap, inter / union, 0.0)


def _iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0, None)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)
