"""The 12 COCO summary numbers from accumulated precision/recall, exactly as pycocotools' ``summarize``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

AREA_LABELS = ("all", "small", "medium", "large")
AREA_RANGES = ((0.0, 1e5**2), (0.0, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 1e5**2))


def iou_thresholds() -> np.ndarray:
    """(10,) IoU thresholds 0.50:0.05:0.95, built as pycocotools builds them (bitwise equal)."""
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def recall_thresholds() -> np.ndarray:
    """(101,) recall thresholds 0:0.01:1, as pycocotools builds them."""
    return np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


def stat_names(max_dets: Sequence[int]) -> tuple[str, ...]:
    """Names of the 12 summary numbers, in pycocotools' order, for ``max_dets`` (3 values)."""
    m0, m1, m2 = max_dets
    return (
        "AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
        f"AR{m0}", f"AR{m1}", f"AR{m2}", "AR_small", "AR_medium", "AR_large",
    )  # fmt: skip


def coco_summary(precision: np.ndarray, recall: np.ndarray, *, max_dets: Sequence[int]) -> np.ndarray:
    """(12,) summary from ``precision`` (T, R, K, A, M) and ``recall`` (T, K, A, M); -1 where nothing counts.

    Like pycocotools, stats[0] (AP) always reads the ``maxDets == 100`` column, so it is -1 when
    100 is not among ``max_dets``; the other AP figures use ``max_dets[2]``.
    """
    thresholds = iou_thresholds()
    max_dets = list(max_dets)

    def summarize(ap: bool, iou: float | None = None, area: str = "all", max_det: int = 100) -> float:
        a = [i for i, label in enumerate(AREA_LABELS) if label == area]
        m = [i for i, d in enumerate(max_dets) if d == max_det]
        s = precision if ap else recall
        if iou is not None:
            s = s[np.where(iou == thresholds)[0]]
        s = s[:, :, :, a, m] if ap else s[:, :, a, m]
        kept = s[s > -1]
        return -1.0 if len(kept) == 0 else float(np.mean(kept))

    m2 = max_dets[2]
    return np.array(
        [
            summarize(True),
            summarize(True, iou=0.5, max_det=m2),
            summarize(True, iou=0.75, max_det=m2),
            summarize(True, area="small", max_det=m2),
            summarize(True, area="medium", max_det=m2),
            summarize(True, area="large", max_det=m2),
            summarize(False, max_det=max_dets[0]),
            summarize(False, max_det=max_dets[1]),
            summarize(False, max_det=m2),
            summarize(False, area="small", max_det=m2),
            summarize(False, area="medium", max_det=m2),
            summarize(False, area="large", max_det=m2),
        ]
    )
