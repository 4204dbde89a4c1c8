"""Evaluation layer: COCO metrics with per-object matches, P/R/F1, IoU, confusion matrix, timing.

Imports neither ray, torch nor ipywidgets; engines and pyarrow load inside the calls that use them.
"""

from mleval.evaluation.coco import CocoEvaluation, Matches, coco_evaluate
from mleval.evaluation.confusion import ConfusionMatrix
from mleval.evaluation.iou import (
    box_iou_xywh,
    box_iou_xyxy,
    mean_iou_xyxy,
    paired_box_iou_xyxy,
    xywh_to_xyxy,
    xyxy_to_xywh,
)
from mleval.evaluation.prf import PrecisionRecallF1, prf_at_best_f1, prf_at_confidence
from mleval.evaluation.timing import LatencySummary, summarize_latency

__all__ = [
    "CocoEvaluation",
    "ConfusionMatrix",
    "LatencySummary",
    "Matches",
    "PrecisionRecallF1",
    "box_iou_xywh",
    "box_iou_xyxy",
    "coco_evaluate",
    "mean_iou_xyxy",
    "paired_box_iou_xyxy",
    "prf_at_best_f1",
    "prf_at_confidence",
    "summarize_latency",
    "xywh_to_xyxy",
    "xyxy_to_xywh",
]
