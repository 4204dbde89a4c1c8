"""Precision, recall and F1 of scored detections, at a chosen confidence or at the F1-optimal one.

Inputs are already matched: one score and one true/false-positive flag per counted detection,
and the number of ground truths that can be found. Detections COCO ignores (matched to a crowd
region) must be left out before calling. A 0/0 ratio is reported as 0.0, as ultralytics and
scikit-learn (``zero_division=0``) do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mleval.core.errors import ValidationError


@dataclass(frozen=True)
class PrecisionRecallF1:
    """Counts and ratios at one confidence threshold (detections with ``score >= confidence_threshold`` kept).

    ``confidence_threshold`` is None when no detection exists to set it from.
    """

    confidence_threshold: float | None
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int


def prf_at_confidence(
    scores: ArrayLike, is_tp: ArrayLike, num_gt: int, *, confidence_threshold: float
) -> PrecisionRecallF1:
    """P/R/F1 keeping detections with ``score >= confidence_threshold``.

    ``scores`` (N,) confidences, ``is_tp`` (N,) bool, ``num_gt`` ground truths that count.
    """
    s, tp = _check(scores, is_tp, num_gt)
    if not np.isfinite(confidence_threshold):
        raise ValidationError(
            "prf.confidence_threshold", f"confidence_threshold must be a finite number, got {confidence_threshold!r}."
        )
    kept = s >= confidence_threshold
    n_tp = int(np.count_nonzero(tp & kept))
    return _ratios(float(confidence_threshold), n_tp, int(np.count_nonzero(kept)), num_gt)


def prf_at_best_f1(scores: ArrayLike, is_tp: ArrayLike, num_gt: int) -> PrecisionRecallF1:
    """P/R/F1 at the confidence threshold that maximizes F1.

    Candidates are the distinct scores; among equal F1 the highest threshold wins (fewest detections).
    ``scores`` (N,), ``is_tp`` (N,) bool, ``num_gt`` ground truths that count.
    """
    s, tp = _check(scores, is_tp, num_gt)
    if s.size == 0:
        return _ratios(None, 0, 0, num_gt)
    order = np.argsort(-s, kind="stable")
    s, tp = s[order], tp[order]
    cum_tp = np.cumsum(tp)
    # A threshold keeps a whole group of tied scores: evaluate at the last index of each group.
    last_of_group = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    n_pred = last_of_group + 1
    f1 = 2.0 * cum_tp[last_of_group] / (n_pred + num_gt)
    best = int(np.argmax(f1))  # first maximum = highest threshold
    i = last_of_group[best]
    return _ratios(float(s[i]), int(cum_tp[i]), int(i + 1), num_gt)


def _check(scores: ArrayLike, is_tp: ArrayLike, num_gt: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    tp = np.asarray(is_tp, dtype=bool).reshape(-1)
    if s.shape != tp.shape:
        raise ValidationError(
            "prf.shape", f"scores and is_tp need one entry per detection, got {s.size} scores and {tp.size} flags."
        )
    if not np.all(np.isfinite(s)):
        raise ValidationError("prf.scores", "scores contain NaN or infinity; drop or fix those detections first.")
    if num_gt < 0 or num_gt < int(np.count_nonzero(tp)):
        raise ValidationError(
            "prf.num_gt",
            f"num_gt={num_gt} is smaller than the {int(np.count_nonzero(tp))} true positives; "
            "count every ground truth that can be matched.",
        )
    return s, tp


def _ratios(threshold: float | None, tp: int, n_pred: int, num_gt: int) -> PrecisionRecallF1:
    fp = n_pred - tp
    fn = num_gt - tp
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / num_gt if num_gt else 0.0
    f1 = 2.0 * tp / (n_pred + num_gt) if (n_pred + num_gt) else 0.0
    return PrecisionRecallF1(threshold, precision, recall, f1, tp, fp, fn)
