"""Detection confusion matrix with a background row and column, with ultralytics' semantics.

Layout: ``matrix[predicted, true]``, shape (K + 1, K + 1) for K classes; index K is background.

- ``matrix[p, g]``: a prediction of class p matched a ground truth of class g (p == g: true positive;
  p != g: a class confusion, which is both a false positive and a false negative).
- ``matrix[p, K]``: a prediction of class p matched no ground truth (false positive).
- ``matrix[K, g]``: a ground truth of class g no prediction matched (false negative).

Matching per image, as ``ultralytics.utils.metrics.ConfusionMatrix.process_batch`` (8.4): drop
predictions with ``score <= confidence_threshold``; then, in descending score order, each
prediction claims the unclaimed ground truth of any class with the highest IoU, if that IoU is
``> iou_threshold``. Matching ignores the class so that confusions between classes are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from mleval.core.errors import ValidationError
from mleval.evaluation.iou import box_iou_xyxy

if TYPE_CHECKING:
    import pyarrow as pa


class ConfusionMatrix:
    """Accumulates a (K + 1, K + 1) confusion matrix over images; see the module docstring for the layout."""

    def __init__(self, num_classes: int, *, iou_threshold: float = 0.45, confidence_threshold: float = 0.25):
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValidationError("confusion.num_classes", f"num_classes must be an integer >= 1, got {num_classes!r}.")
        if not 0.0 <= iou_threshold <= 1.0:
            raise ValidationError(
                "confusion.iou_threshold", f"iou_threshold must be within [0, 1], got {iou_threshold!r}."
            )
        self.num_classes = int(num_classes)
        self.iou_threshold = float(iou_threshold)
        self.confidence_threshold = float(confidence_threshold)
        self._matrix = np.zeros((self.num_classes + 1, self.num_classes + 1), dtype=np.int64)

    @property
    def matrix(self) -> np.ndarray:
        """(K + 1, K + 1) int64 counts, rows = predicted class, columns = true class, last = background."""
        return self._matrix.copy()

    def reset(self) -> None:
        """Set every count back to zero."""
        self._matrix[:] = 0

    def process(
        self,
        pred_xyxy: ArrayLike,
        pred_class: ArrayLike,
        pred_score: ArrayLike,
        gt_xyxy: ArrayLike,
        gt_class: ArrayLike,
    ) -> None:
        """Add one image: predictions (N, 4) xyxy, (N,) class indices, (N,) scores; ground truths (M, 4), (M,)."""
        p_box = np.asarray(pred_xyxy, dtype=np.float64).reshape(-1, 4)
        p_cls = self._classes(pred_class, len(p_box), "pred_class")
        p_score = np.asarray(pred_score, dtype=np.float64).reshape(-1)
        if p_score.shape != (len(p_box),):
            raise ValidationError(
                "confusion.shape", f"pred_score needs {len(p_box)} entries (one per box), got {p_score.size}."
            )
        g_box = np.asarray(gt_xyxy, dtype=np.float64).reshape(-1, 4)
        g_cls = self._classes(gt_class, len(g_box), "gt_class")
        kept = p_score > self.confidence_threshold
        p_box, p_cls, p_score = p_box[kept], p_cls[kept], p_score[kept]
        background = self.num_classes

        gt_match = np.full(len(g_box), -1, dtype=np.int64)
        if len(p_box) and len(g_box):
            iou = box_iou_xyxy(g_box, p_box)  # (M, N)
            candidates = np.flatnonzero((iou > self.iou_threshold).any(axis=0))
            for det in candidates[np.argsort(-p_score[candidates], kind="stable")]:
                gt = int(iou[:, det].argmax())
                if iou[gt, det] > self.iou_threshold:
                    gt_match[gt] = det
                    iou[gt] = 0.0
        matched = gt_match >= 0
        np.add.at(self._matrix, (p_cls[gt_match[matched]], g_cls[matched]), 1)
        np.add.at(self._matrix, (background, g_cls[~matched]), 1)
        unmatched_pred = np.ones(len(p_box), dtype=bool)
        unmatched_pred[gt_match[matched]] = False
        np.add.at(self._matrix, (p_cls[unmatched_pred], background), 1)

    def to_arrow(self, names: Sequence[str] | None = None) -> pa.Table:
        """The matrix as a table: column ``predicted`` (row label) then one count column per true class + background."""
        import pyarrow as pa

        labels = self._labels(names)
        columns = {"predicted": pa.array(labels)}
        for j, label in enumerate(labels):
            columns[label] = pa.array(self._matrix[:, j])
        return pa.table(columns)

    def to_pandas(self, names: Sequence[str] | None = None):
        """The matrix as a pandas DataFrame indexed by predicted label, columns = true label."""
        return self.to_arrow(names).to_pandas().set_index("predicted")

    def _labels(self, names: Sequence[str] | None) -> list[str]:
        if names is None:
            return [str(i) for i in range(self.num_classes)] + ["background"]
        if len(names) != self.num_classes:
            raise ValidationError(
                "confusion.names", f"names needs {self.num_classes} entries (one per class), got {len(names)}."
            )
        return [str(n) for n in names] + ["background"]

    def _classes(self, value: ArrayLike, n: int, name: str) -> np.ndarray:
        cls = np.asarray(value).reshape(-1)
        if cls.shape != (n,):
            raise ValidationError("confusion.shape", f"{name} needs {n} entries (one per box), got {cls.size}.")
        as_int = cls.astype(np.int64)
        if n and (np.any(as_int != cls) or as_int.min() < 0 or as_int.max() >= self.num_classes):
            raise ValidationError(
                "confusion.class_index",
                f"{name} must hold class indices 0..{self.num_classes - 1}, got values {np.unique(cls)[:10].tolist()}; "
                "map category ids to indices first.",
            )
        return as_int
