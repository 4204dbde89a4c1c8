"""COCO detection / instance-segmentation evaluation with per-class tables and per-object matches.

``coco_evaluate`` checks the inputs, runs the accumulation engine (hotcoco, see ``_engine``) and
returns a :class:`CocoEvaluation`: pycocotools' numbers (``stats``, ``precision``, ``recall``),
plus tables a user can drill through, from a metric down to the boxes, by the original ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from mleval.core.errors import ValidationError
from mleval.evaluation import _engine
from mleval.evaluation._inputs import CocoInputs, CocoSource, ResultsSource, load_inputs
from mleval.evaluation.confusion import ConfusionMatrix
from mleval.evaluation.iou import xywh_to_xyxy
from mleval.evaluation.matching import CocoMatchArrays, match_coco
from mleval.evaluation.prf import PrecisionRecallF1, prf_at_best_f1, prf_at_confidence
from mleval.evaluation.summary import AREA_LABELS, coco_summary, iou_thresholds, recall_thresholds, stat_names

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


class Matches(NamedTuple):
    """Per-object match tables (pyarrow); ``XX`` in a column name is an IoU threshold x 100 (50, 55, ..., 95).

    ``detections``: one row per input detection, in input order. ``det_index`` is its position in
    the results list (pycocotools' ``loadRes`` id is ``det_index + 1``); ``evaluated`` is False past
    the top ``max_dets[-1]`` of its image and class; ``best_iou``/``best_gt_id`` name the
    same-class ground truth it overlaps most (crowd regions included); ``gt_id_XX`` the ground
    truth it matched (null: none), ``iou_XX`` that IoU, ``tp_XX`` True = true positive,
    False = false positive, null = not counted (matched a crowd region, or not evaluated).

    ``ground_truths``: one row per annotation, in input order, by its ``gt_id``; ``ignored`` for
    crowd regions; ``det_index_XX`` the detection that matched it, ``matched_XX`` True/False, null
    when ignored.
    Input annotations and detections that carry ``source_image_id``, ``annotation_id`` or
    ``object_index`` (where the object came from: mleval gives a ground truth's workspace image,
    annotation and place in it, and a detection's image and place in its prediction) keep them as
    columns of the same names.
    """

    detections: pa.Table
    ground_truths: pa.Table


class CocoEvaluation:
    """Result of :func:`coco_evaluate`. Array layouts are pycocotools' ``COCOeval.eval``.

    - ``stats``: (12,) summary, in pycocotools' order (names in ``stat_names``), -1 where undefined.
    - ``precision``: (T, R, K, A, M) = (IoU thresholds, recall thresholds, categories, area ranges, max_dets).
    - ``recall``: (T, K, A, M). ``scores``: like ``precision``, the score at each precision point.
    """

    def __init__(self, inputs: CocoInputs, max_dets: tuple[int, ...], precision, recall, scores, engine: Any = None):
        self._inputs = inputs
        self.engine = engine  # the hotcoco COCOeval that computed it (diagnostics.py asks it for more)
        self.iou_type: str = inputs.iou_type
        self.max_dets: tuple[int, ...] = max_dets
        self.iou_thresholds: np.ndarray = iou_thresholds()
        self.recall_thresholds: np.ndarray = recall_thresholds()
        self.area_labels: tuple[str, ...] = AREA_LABELS
        self.category_ids: np.ndarray = inputs.category_ids
        self.category_names: dict[int, str] = inputs.category_names
        self.image_ids: np.ndarray = inputs.image_ids
        self.precision: np.ndarray = np.asarray(precision, dtype=np.float64)
        self.recall: np.ndarray = np.asarray(recall, dtype=np.float64)
        self.scores: np.ndarray = np.asarray(scores, dtype=np.float64)
        self.stats: np.ndarray = coco_summary(self.precision, self.recall, max_dets=max_dets)
        self.stat_names: tuple[str, ...] = stat_names(max_dets)

    def __repr__(self) -> str:
        ap, ap50 = self.stats[0], self.stats[1]
        return (
            f"CocoEvaluation(iou_type={self.iou_type!r}, images={len(self.image_ids)}, "
            f"categories={len(self.category_ids)}, detections={len(self._inputs.dt)}, AP={ap:.4f}, AP50={ap50:.4f})"
        )

    def summary(self) -> dict[str, float]:
        """The 12 summary numbers by name, e.g. ``{"AP": 0.41, "AP50": 0.62, ...}``."""
        return {name: float(v) for name, v in zip(self.stat_names, self.stats)}

    def per_class(self) -> pa.Table:
        """One row per category: ``category_id, name, ap, ap50, ap75, ar, num_gt, num_detections``.

        Area "all", ``max_dets[-1]`` detections; AP/AR are NaN for a class without (non-crowd) ground truth.
        ``num_gt`` counts non-crowd ground truths.
        """
        import pyarrow as pa

        def mean_valid(values: np.ndarray) -> np.ndarray:  # (..., K) -> (K,), -1 marks "no data"
            flat = values.reshape(-1, values.shape[-1])
            valid = flat > -1
            with np.errstate(invalid="ignore"):
                return np.where(valid.any(0), (flat * valid).sum(0) / valid.sum(0), np.nan)

        p = self.precision[:, :, :, 0, -1]
        t75 = int(np.flatnonzero(self.iou_thresholds == 0.75)[0])
        cats = self.category_ids
        anns = self._inputs.gt["annotations"]
        gt_cat = np.fromiter((a["category_id"] for a in anns if not a["iscrowd"]), np.int64)
        return pa.table(
            {
                "category_id": pa.array(cats, pa.int64()),
                "name": pa.array([self.category_names[int(c)] for c in cats], pa.string()),
                "ap": mean_valid(p),
                "ap50": mean_valid(p[0]),
                "ap75": mean_valid(p[t75]),
                "ar": mean_valid(self.recall[:, :, 0, -1]),
                "num_gt": pa.array(_count(gt_cat, cats), pa.int64()),
                "num_detections": pa.array(_count(self._inputs.dt_category_id, cats), pa.int64()),
            }
        )

    def to_arrow(self) -> pa.Table:
        """Same as :meth:`per_class`."""
        return self.per_class()

    def to_pandas(self) -> pd.DataFrame:
        """:meth:`per_class` as a pandas DataFrame (needs pandas)."""
        return self.per_class().to_pandas()

    @property
    def inputs(self) -> CocoInputs:
        """The checked ground truth and detections it was computed from."""
        return self._inputs

    @cached_property
    def _matches(self) -> CocoMatchArrays:
        return match_coco(self._inputs, max_det=self.max_dets[-1])

    def matches(self) -> Matches:
        """Per-object matches at every IoU threshold, as two pyarrow tables (see :class:`Matches`)."""
        return self._match_tables

    @cached_property
    def _match_tables(self) -> Matches:
        import pyarrow as pa

        m, inputs = self._matches, self._inputs
        anns = inputs.gt["annotations"]
        gt_ids = np.fromiter((a["id"] for a in anns), np.int64, len(anns))

        def ids(index: np.ndarray, lookup: np.ndarray | None) -> pa.Array:
            values = index if lookup is None else lookup[np.maximum(index, 0)]
            return pa.array(values, pa.int64(), mask=index < 0)

        dets: dict[str, Any] = {
            "det_index": pa.array(np.arange(len(inputs.dt)), pa.int64()),
            "image_id": pa.array(inputs.dt_image_id, pa.int64()),
            "category_id": pa.array(inputs.dt_category_id, pa.int64()),
            "score": pa.array(inputs.dt_score, pa.float64()),
            "evaluated": pa.array(m.dt_evaluated, pa.bool_()),
            "best_iou": pa.array(m.dt_best_iou, pa.float64(), mask=np.isnan(m.dt_best_iou)),
            "best_gt_id": ids(m.dt_best_gt_index, gt_ids),
        }
        gts: dict[str, Any] = {
            "gt_id": pa.array(gt_ids, pa.int64()),
            "image_id": pa.array([a["image_id"] for a in anns], pa.int64()),
            "category_id": pa.array([a["category_id"] for a in anns], pa.int64()),
            "area": pa.array([a["area"] for a in anns], pa.float64()),
            "iscrowd": pa.array([bool(a["iscrowd"]) for a in anns], pa.bool_()),
            "ignored": pa.array(m.gt_ignored, pa.bool_()),
        }
        for name, arrow_type in _source_fields():  # where the caller's objects came from, when it said
            if any(name in a for a in anns):
                gts[name] = pa.array([a.get(name) for a in anns], arrow_type())
            if any(name in d for d in inputs.dt):
                dets[name] = pa.array([d.get(name) for d in inputs.dt], arrow_type())
        for t, threshold in enumerate(m.iou_thresholds):
            tag = _tag(threshold)
            matched = m.dt_gt_index[t] >= 0
            dets[f"gt_id_{tag}"] = ids(m.dt_gt_index[t], gt_ids)
            dets[f"iou_{tag}"] = pa.array(m.dt_iou[t], pa.float64(), mask=~matched)
            dets[f"tp_{tag}"] = pa.array(matched, pa.bool_(), mask=m.dt_ignored[t] | ~m.dt_evaluated)
            gts[f"det_index_{tag}"] = ids(m.gt_dt_index[t], None)
            gts[f"matched_{tag}"] = pa.array(m.gt_dt_index[t] >= 0, pa.bool_(), mask=m.gt_ignored)
        return Matches(pa.table(dets), pa.table(gts))

    def precision_recall_f1(self, *, iou_threshold: float = 0.5, confidence_threshold: float = 0.25) -> pa.Table:
        """P/R/F1 at ``confidence_threshold`` and at the F1-optimal confidence, overall and per class.

        Matching is COCO's at ``iou_threshold`` (one of 0.50, 0.55, ..., 0.95) over the top
        ``max_dets[-1]`` detections per image and class; detections matched to crowd regions and
        crowd ground truths are not counted. First row ``name == "all"`` (``category_id`` null):
        counts pooled over classes, its best F1 is one confidence for all classes. Per-class rows
        have their own best confidence. Columns: ``category_id, name, num_gt``, then
        ``confidence, precision, recall, f1, tp, fp, fn`` at the given threshold and the same with
        prefix ``best_`` at the F1-optimal one (0/0 = 0.0; ``best_confidence`` null without detections).
        """
        import pyarrow as pa

        t = self._threshold_index(iou_threshold)
        m, inputs = self._matches, self._inputs
        counted = m.dt_evaluated & ~m.dt_ignored[t]
        is_tp = m.dt_gt_index[t] >= 0
        anns = inputs.gt["annotations"]
        gt_cat = np.fromiter((a["category_id"] for a in anns), np.int64, len(anns))[~m.gt_ignored]

        rows: list[tuple[Any, str, int, PrecisionRecallF1, PrecisionRecallF1]] = []
        groups = [(None, "all", counted)] + [
            (int(c), self.category_names[int(c)], counted & (inputs.dt_category_id == c)) for c in self.category_ids
        ]
        for cat, name, keep in groups:
            n_gt = len(gt_cat) if cat is None else int(np.count_nonzero(gt_cat == cat))
            s, tp = inputs.dt_score[keep], is_tp[keep]
            at = prf_at_confidence(s, tp, n_gt, confidence_threshold=confidence_threshold)
            rows.append((cat, name, n_gt, at, prf_at_best_f1(s, tp, n_gt)))
        fields = ("confidence_threshold", "precision", "recall", "f1", "tp", "fp", "fn")
        columns: dict[str, Any] = {
            "category_id": pa.array([r[0] for r in rows], pa.int64()),
            "name": pa.array([r[1] for r in rows], pa.string()),
            "num_gt": pa.array([r[2] for r in rows], pa.int64()),
        }
        for prefix, which in (("", 3), ("best_", 4)):
            for f in fields:
                column = "confidence" if f == "confidence_threshold" else f
                columns[prefix + column] = [getattr(r[which], f) for r in rows]
        return pa.table(columns)

    def mean_iou(self, *, iou_threshold: float = 0.5) -> float:
        """Mean IoU of the true-positive pairs at ``iou_threshold`` (localization quality). NaN without any."""
        t = self._threshold_index(iou_threshold)
        m = self._matches
        tp = (m.dt_gt_index[t] >= 0) & ~m.dt_ignored[t]
        return float(m.dt_iou[t][tp].mean()) if tp.any() else float("nan")

    def confusion_matrix(self, *, iou_threshold: float = 0.45, confidence_threshold: float = 0.25) -> ConfusionMatrix:
        """Ultralytics-style box confusion matrix (rows = predicted, columns = true; see ``confusion``).

        Class index i is ``category_ids[i]``; crowd ground truths are left out.
        """
        inputs = self._inputs
        if inputs.dt_bbox_xywh is None:
            raise ValidationError(
                "coco.confusion_boxes", "the confusion matrix compares boxes; give every detection a 'bbox'."
            )
        anns = [a for a in inputs.gt["annotations"] if not a["iscrowd"]]
        if any("bbox" not in a for a in anns):
            raise ValidationError(
                "coco.confusion_boxes", "the confusion matrix compares boxes; give every annotation a 'bbox'."
            )
        cm = ConfusionMatrix(
            len(self.category_ids), iou_threshold=iou_threshold, confidence_threshold=confidence_threshold
        )
        gt_img = np.fromiter((a["image_id"] for a in anns), np.int64, len(anns))
        gt_cls = np.searchsorted(self.category_ids, np.fromiter((a["category_id"] for a in anns), np.int64, len(anns)))
        gt_xyxy = xywh_to_xyxy(np.asarray([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4))
        dt_cls = np.searchsorted(self.category_ids, inputs.dt_category_id)
        dt_xyxy = xywh_to_xyxy(inputs.dt_bbox_xywh)
        dt_groups, gt_groups = _groups(inputs.dt_image_id), _groups(gt_img)
        empty = np.zeros(0, dtype=np.int64)
        for image_id in self.image_ids:
            d, g = dt_groups.get(int(image_id), empty), gt_groups.get(int(image_id), empty)
            if len(d) or len(g):
                cm.process(dt_xyxy[d], dt_cls[d], inputs.dt_score[d], gt_xyxy[g], gt_cls[g])
        return cm

    def _threshold_index(self, iou_threshold: float) -> int:
        hit = np.flatnonzero(np.isclose(self.iou_thresholds, iou_threshold, rtol=0, atol=1e-9))
        if hit.size == 0:
            allowed = ", ".join(f"{t:.2f}" for t in self.iou_thresholds)
            raise ValidationError(
                "coco.iou_threshold", f"iou_threshold {iou_threshold!r} is not a COCO threshold; use one of {allowed}."
            )
        return int(hit[0])


def coco_evaluate(
    gt: CocoSource,
    dt: ResultsSource,
    *,
    iou_type: str = "bbox",
    max_dets: Sequence[int] = (1, 10, 100),
) -> CocoEvaluation:
    """Evaluate COCO results ``dt`` against ground truth ``gt`` with COCO's protocol.

    ``gt``: a COCO dataset dict (``images``, ``annotations``, ``categories``) or the path of its
    JSON; ``dt``: a list of result dicts (``image_id``, ``category_id``, ``score``, and ``bbox``
    [x, y, w, h] in pixels, or ``segmentation`` as RLE or polygons for ``iou_type="segm"``) or
    the path of that JSON list. ``max_dets``: 3 increasing per-image detection limits.
    Annotations without ``iscrowd``/``area`` get 0 / the box or mask area. Nothing is modified.
    """
    limits = _check_max_dets(max_dets)
    inputs = load_inputs(gt, dt, iou_type=iou_type)
    precision, recall, scores, engine = _engine.accumulate(inputs, max_dets=limits)
    return CocoEvaluation(inputs, limits, precision, recall, scores, engine)


def _check_max_dets(max_dets: Sequence[int]) -> tuple[int, ...]:
    try:
        limits = tuple(int(m) for m in max_dets)
        ok = len(limits) == 3 and all(m > 0 for m in limits) and all(a < b for a, b in zip(limits, limits[1:]))
        ok = ok and all(int(m) == m for m in max_dets)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValidationError(
            "coco.max_dets",
            f"max_dets must be 3 increasing positive integers like (1, 10, 100), got {max_dets!r}.",
        )
    return limits


def _source_fields():
    import pyarrow as pa

    return (("source_image_id", pa.string), ("annotation_id", pa.string), ("object_index", pa.int64))


def _tag(threshold: float) -> str:
    return f"{round(float(threshold) * 100):02d}"


def _count(values: np.ndarray, categories: np.ndarray) -> np.ndarray:
    uniq, counts = np.unique(values, return_counts=True)
    out = np.zeros(len(categories), dtype=np.int64)
    idx = np.searchsorted(categories, uniq)
    out[idx] = counts  # every value is a known category: checked on input
    return out


def _groups(image_ids: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(image_ids, kind="stable")
    uniq, starts = np.unique(image_ids[order], return_index=True)
    return {int(u): part for u, part in zip(uniq, np.split(order, starts[1:]))}
