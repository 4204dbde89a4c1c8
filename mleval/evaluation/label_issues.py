"""Which labels are probably wrong: ground truth judged against a model's predictions.

The per-box scores are cleanlab's object-detection scores (``cleanlab.object_detection.rank``:
``compute_overlooked_box_scores``, ``compute_swap_box_scores``, ``compute_badloc_box_scores``;
each 0..1, low = likely an issue). A row's ``score`` is 1 minus cleanlab's, so higher is more
likely a mistake, and the table is sorted by it. Kinds:

- ``missing``: a confident prediction that no labelled box overlaps (cleanlab: overlooked);
  ``box`` is the prediction's, ``suggested_label`` its class;
- ``wrong_class``: a labelled box on which a confident prediction of another class sits
  (cleanlab: swap); ``suggested_label`` is that class;
- ``bad_box``: a labelled box whose best same-class prediction overlaps it only partly (IoU >= 0.1;
  cleanlab: badly located); ``suggested_box`` is that prediction's box;
- ``spurious``: a labelled box that no prediction of any class (at a score >= ``min_score``)
  overlaps; cleanlab has no such score: it is 1, or where only other-class predictions under
  ``confident`` touch it, 1 minus the best score of those overlapping it by IoU >= 0.1.

A labelled object gets at most one row: its most likely kind. Predictions should come from a
model that did not learn from the images it judges; the caller says which images those were.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

    from mleval.core.detections import Detections

KINDS = ("missing", "wrong_class", "bad_box", "spurious")
CONFIDENT = 0.5  # a prediction at or above it can call a label missing or of the wrong class
MIN_SCORE = 0.1  # predictions under it are not looked at
THRESHOLD = 0.2  # rows less likely than this are left out (a well-drawn box scores about 0.05-0.15)
SPURIOUS_IOU = 0.1


def label_issue_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        ("kind", pa.string()), ("image_id", pa.string()), ("annotation_id", pa.string()), ("object_index", pa.int64()),
        ("box", pa.list_(pa.float64(), 4)), ("current_label", pa.string()), ("suggested_label", pa.string()),
        ("suggested_box", pa.list_(pa.float64(), 4)), ("score", pa.float64()), ("model_saw_image", pa.bool_()),
    ])


def find_label_issues(truth: dict[str, Detections], predictions: dict[str, Detections], *,
                      confident: float = CONFIDENT, min_score: float = MIN_SCORE, threshold: float = THRESHOLD,
                      seen_images: Sequence[str] = ()) -> pa.Table:
    """The suspected label mistakes of the images in ``predictions`` (image id -> what the model
    found; class names already in the dataset's terms), against ``truth`` (image id -> ground
    truth with annotation ids), most likely first. ``seen_images``: images the model was trained
    on (their rows say ``model_saw_image``: a model that learnt a mistake will not flag it).
    Rows scoring under ``threshold`` are left out (0 keeps one row per labelled object)."""
    import pyarrow as pa
    from cleanlab.object_detection.rank import (
        compute_badloc_box_scores,
        compute_overlooked_box_scores,
        compute_swap_box_scores,
    )

    from mleval.core.detections import Detections
    from mleval.evaluation.iou import box_iou_xyxy

    image_ids = list(predictions)
    classes = sorted({n for i in image_ids for d in (truth.get(i), predictions[i]) if d is not None for n in d.class_names})
    index = {n: k for k, n in enumerate(classes)}
    truths, found, labels, per_class = [], [], [], []
    for image_id in image_ids:
        gt = truth.get(image_id) or Detections.empty()
        if gt.iscrowd is not None:
            gt = gt.filter(~gt.iscrowd)
        dt = predictions[image_id]
        dt = dt.filter(dt.scores >= min_score)
        dt = dt.filter(np.argsort([index[n] for n in dt.class_names], kind="stable"))  # cleanlab's order: by class
        dt_ids = np.asarray([index[n] for n in dt.class_names], np.int64)
        truths.append(gt)
        found.append(dt)
        labels.append({"bboxes": gt.xyxy, "labels": np.asarray([index[n] for n in gt.class_names], np.int64)})
        per_class.append([np.column_stack([dt.xyxy[dt_ids == k], dt.scores[dt_ids == k]]).reshape(-1, 5)
                          for k in range(len(classes))])
    overlooked = compute_overlooked_box_scores(labels=labels, predictions=per_class,
                                               high_probability_threshold=confident)
    swapped = compute_swap_box_scores(labels=labels, predictions=per_class, high_probability_threshold=confident)
    badloc = compute_badloc_box_scores(labels=labels, predictions=per_class, low_probability_threshold=min_score)

    seen = set(seen_images)
    rows = []
    for n, image_id in enumerate(image_ids):
        gt, dt_sorted = truths[n], found[n]
        saw = image_id in seen
        for j in np.flatnonzero(~np.isnan(overlooked[n])):
            rows.append(_row("missing", image_id, None, None, dt_sorted.xyxy[j], None, dt_sorted.class_names[j],
                             None, 1.0 - overlooked[n][j], saw))
        if not len(gt):
            continue
        iou = box_iou_xyxy(gt.xyxy, dt_sorted.xyxy) if len(dt_sorted) else np.zeros((len(gt), 0))
        same = np.asarray(gt.class_names)[:, None] == np.asarray(dt_sorted.class_names)[None, :]
        for k in range(len(gt)):
            candidates = []
            other = np.where(~same[k] & (dt_sorted.scores > confident), iou[k], -1.0)
            if other.size and other.max() > 0:
                candidates.append(("wrong_class", 1.0 - swapped[n][k], dt_sorted.class_names[int(other.argmax())], None))
            mine = np.where(same[k] & (dt_sorted.scores > min_score), iou[k], -1.0)
            if mine.size and mine.max() >= SPURIOUS_IOU:  # a same-class prediction on it, however loose
                candidates.append(("bad_box", 1.0 - badloc[n][k], None, dt_sorted.xyxy[int(mine.argmax())]))
            near = iou[k] >= SPURIOUS_IOU
            if not (iou[k] > 0).any():
                candidates.append(("spurious", 1.0, None, None))
            elif not candidates:
                candidates.append(("spurious", 1.0 - float(dt_sorted.scores[near].max(initial=0.0)), None, None))
            kind, score, label, box = max(candidates, key=lambda c: c[1])
            rows.append(_row(kind, image_id, gt.annotation_ids[k] if gt.annotation_ids else None,
                             None if gt.object_indices is None else int(gt.object_indices[k]), gt.xyxy[k],
                             gt.class_names[k], label, box, score, saw))
    table = pa.Table.from_pylist([r for r in rows if r["score"] >= threshold], schema=label_issue_schema())
    return table.sort_by([("score", "descending")])


def _row(kind, image_id, annotation_id, object_index, box, current, suggested, suggested_box, score, saw) -> dict:
    return {"kind": kind, "image_id": image_id, "annotation_id": annotation_id, "object_index": object_index,
            "box": [float(v) for v in box], "current_label": current,
            "suggested_label": suggested if suggested is not None else current,
            "suggested_box": None if suggested_box is None else [float(v) for v in suggested_box],
            "score": float(np.clip(score, 0.0, 1.0)), "model_saw_image": saw}
