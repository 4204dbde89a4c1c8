"""From a score to what went wrong: TIDE error breakdown, calibration, slices and per-object rows.

The breakdown, calibration and slices are hotcoco's (``COCOeval.tide_errors``, ``calibration``,
``slice_by``), asked of the evaluator that computed the run. The per-object rows come from the
run's own matches (``CocoEvaluation.matches``), which keep each object's workspace image,
annotation and place, so a row opens in the annotator.

Kinds of rows (IoU ``pos_thr`` 0.5 and ``bg_thr`` 0.1, TIDE's thresholds):

- ``tp``: a detection matched to a ground truth of its class;
- ``fp``: any detection that matched none; of those:
  ``cls`` overlaps (IoU >= pos_thr) a ground truth of another class (``confused_class``),
  ``dupe`` overlaps a ground truth of its class that another detection already took,
  ``loc`` overlaps one of its class only loosely (bg_thr <= IoU < pos_thr),
  ``bkg`` overlaps nothing (IoU < bg_thr with every ground truth);
- ``fn``: a ground truth no detection matched (crowd regions aside).

Same-class IoUs are the run's own (mask IoU for a "segm" run); the overlap with another class's
object, which the matches do not keep, is measured on boxes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mleval.core.errors import MlevalError, ValidationError

if TYPE_CHECKING:
    import pyarrow as pa

    from mleval.evaluation.coco import CocoEvaluation

TIDE_ERRORS = ("cls", "loc", "both", "dupe", "bkg", "miss")
OBJECT_KINDS = ("tp", "fp", "fn", "cls", "loc", "dupe", "bkg")
POS_THR, BG_THR = 0.5, 0.1


def _engine(evaluation: CocoEvaluation) -> Any:
    if evaluation.engine is None:
        raise MlevalError("this evaluation was built without its engine; evaluate again with coco_evaluate.")
    return evaluation.engine


def tide_errors(evaluation: CocoEvaluation, *, pos_thr: float = POS_THR, bg_thr: float = BG_THR) -> dict:
    """TIDE's breakdown at IoU ``pos_thr``: for each error type the AP@pos_thr gained by fixing
    every error of that type (``cls``, ``loc``, ``both``, ``dupe``, ``bkg``, ``miss``), ``fp`` and
    ``fn`` (all false positives / negatives fixed), ``counts`` per type and ``ap`` (the AP it starts from)."""
    found = _engine(evaluation).tide_errors(pos_thr=pos_thr, bg_thr=bg_thr)
    gained = {k.lower(): float(v) for k, v in found["delta_ap"].items()}
    return {**{k: gained[k] for k in TIDE_ERRORS}, "fp": gained["fp"], "fn": gained["fn"],
            "counts": {k.lower(): int(v) for k, v in found["counts"].items()}, "ap": float(found["ap_base"]),
            "pos_thr": pos_thr, "bg_thr": bg_thr}


def calibration(evaluation: CocoEvaluation, *, n_bins: int = 10, iou_threshold: float = POS_THR) -> dict:
    """How far scores are from precision: ``ece`` (expected calibration error), ``mce`` (the worst
    bin), ``bins`` (lower/upper score, mean score, fraction correct, count) and ``per_class`` ECE."""
    found = _engine(evaluation).calibration(n_bins=n_bins, iou_threshold=iou_threshold)
    bins = [{"score_from": b["bin_lower"], "score_to": b["bin_upper"], "mean_score": b["avg_confidence"],
             "precision": b["avg_accuracy"], "count": int(b["count"])} for b in found["bins"]]
    return {"ece": float(found["ece"]), "mce": float(found["mce"]), "bins": bins,
            "per_class": {str(k): float(v) for k, v in found["per_category"].items()},
            "iou_threshold": iou_threshold, "num_detections": int(found["num_detections"])}


def slice_metrics(evaluation: CocoEvaluation, slices: dict[str, list[int]]) -> list[dict]:
    """COCO metrics of each slice (name -> COCO image ids of this evaluation): one dict per slice
    with ``slice``, ``num_images``, ``mAP50_95``, ``mAP50``, ``mAP75``, ``AR100`` and ``delta_mAP50_95``
    (the slice minus the whole)."""
    found = _engine(evaluation).slice_by({name: [int(i) for i in ids] for name, ids in slices.items()})
    rows = []
    for name in slices:
        m = found[name]
        rows.append({"slice": name, "num_images": int(m["num_images"]), "mAP50_95": _defined(m["AP"]),
                     "mAP50": _defined(m["AP50"]), "mAP75": _defined(m["AP75"]), "AR100": _defined(m["AR100"]),
                     "delta_mAP50_95": float(m["delta"].get("AP", 0.0)) if m["num_images"] else None})
    return rows


def _defined(value: float) -> float | None:
    return None if value < 0 else float(value)


def error_objects(evaluation: CocoEvaluation, kind: str, *, class_name: str | None = None,
                  min_score: float | None = None, pos_thr: float = POS_THR, bg_thr: float = BG_THR) -> pa.Table:
    """One row per object of ``kind`` (see the module docstring), highest score first:
    ``kind``, ``image_id``, ``class_name``, ``box`` ([x1, y1, x2, y2] original pixels: the
    detection's, or for ``fn`` the ground truth's), ``score`` (null for ``fn``), ``detection_index``
    (the detection's place in the model's prediction for that image), ``annotation_id`` and
    ``object_index`` (the ground truth it matched, came closest to, or is), ``best_iou`` and
    ``confused_class`` (for ``cls``: the class of the ground truth it landed on)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind not in OBJECT_KINDS:
        raise ValidationError("evaluation.object_kind", f"kind must be one of {', '.join(OBJECT_KINDS)}; got {kind!r}.")
    tag = f"{round(pos_thr * 100):02d}"
    matches = evaluation.matches()
    names = evaluation.category_names
    gts = matches.ground_truths
    gt_row = {g: k for k, g in enumerate(gts.column("gt_id").to_pylist())}
    gt_boxes = _xyxy(np.asarray([a["bbox"] for a in evaluation.inputs.gt["annotations"]], np.float64))
    gt_column = {c: gts.column(c).to_pylist() if c in gts.column_names else [None] * gts.num_rows
                 for c in ("annotation_id", "object_index", "source_image_id")}
    if kind == "fn":
        missed = np.flatnonzero(pc.fill_null(pc.invert(gts.column(f"matched_{tag}")), False).to_numpy(False))
        rows = {"kind": [kind] * len(missed), "image_id": [gt_column["source_image_id"][k] for k in missed],
                "class_name": [names[c] for c in gts.column("category_id").to_numpy()[missed]],
                "box": gt_boxes[missed].tolist(), "score": [None] * len(missed), "detection_index": [None] * len(missed),
                "annotation_id": [gt_column["annotation_id"][k] for k in missed],
                "object_index": [gt_column["object_index"][k] for k in missed],
                "best_iou": [None] * len(missed), "confused_class": [None] * len(missed)}
        return _filtered(pa.table(rows, schema=_SCHEMA()), class_name, min_score)

    dets = matches.detections
    tp_column = dets.column(f"tp_{tag}")  # null where not counted (a crowd match, past max_dets)
    counted = pc.is_valid(tp_column).to_numpy(zero_copy_only=False)
    tp = pc.fill_null(tp_column, False).to_numpy(zero_copy_only=False)
    det_boxes = _xyxy(evaluation.inputs.dt_bbox_xywh) if evaluation.inputs.dt_bbox_xywh is not None \
        else np.full((dets.num_rows, 4), np.nan)
    best_iou = pc.fill_null(dets.column("best_iou"), 0.0).to_numpy(zero_copy_only=False)
    best_gt = dets.column("best_gt_id").to_pylist()
    matched_gt = dets.column(f"gt_id_{tag}").to_pylist()
    iou_matched = pc.fill_null(dets.column(f"iou_{tag}"), 0.0).to_numpy(zero_copy_only=False)
    if kind in ("cls", "loc", "bkg"):  # the kinds that ask what else a detection lies on
        other_iou, other_gt = _other_class_overlap(evaluation, det_boxes, gt_boxes)
    else:
        other_iou, other_gt = np.zeros(dets.num_rows), [None] * dets.num_rows
    is_fp = counted & ~tp
    wanted = {
        "tp": counted & tp,
        "fp": is_fp,
        "cls": is_fp & (best_iou < pos_thr) & (other_iou >= pos_thr),
        "dupe": is_fp & (best_iou >= pos_thr),
        "loc": is_fp & (best_iou >= bg_thr) & (best_iou < pos_thr) & (other_iou < pos_thr),
        "bkg": is_fp & (best_iou < bg_thr) & (other_iou < bg_thr),
    }[kind]
    picked = np.flatnonzero(wanted)
    gt_of = [matched_gt[k] if kind == "tp" else other_gt[k] if kind == "cls" else best_gt[k] for k in picked]
    gt_k = [None if g is None else gt_row[int(g)] for g in gt_of]
    det_index = dets.column("object_index").to_pylist() if "object_index" in dets.column_names else [None] * dets.num_rows
    det_image = dets.column("source_image_id").to_pylist() if "source_image_id" in dets.column_names else \
        [str(i) for i in dets.column("image_id").to_pylist()]
    categories = dets.column("category_id").to_numpy()
    gt_categories = gts.column("category_id").to_numpy()
    overlap = iou_matched if kind == "tp" else other_iou if kind == "cls" else best_iou
    rows = {"kind": [kind] * len(picked), "image_id": [det_image[k] for k in picked],
            "class_name": [names[c] for c in categories[picked]], "box": det_boxes[picked].tolist(),
            "score": dets.column("score").to_numpy()[picked].tolist(),
            "detection_index": [det_index[k] for k in picked],
            "annotation_id": [None if g is None else gt_column["annotation_id"][g] for g in gt_k],
            "object_index": [None if g is None else gt_column["object_index"][g] for g in gt_k],
            "best_iou": [float(overlap[k]) if g is not None else None for k, g in zip(picked, gt_k)],
            "confused_class": [names[gt_categories[g]] if kind == "cls" and g is not None else None for g in gt_k]}
    return _filtered(pa.table(rows, schema=_SCHEMA()), class_name, min_score).sort_by([("score", "descending")])


def _SCHEMA() -> pa.Schema:  # noqa: N802 - a constant built on first use (pyarrow is imported lazily)
    import pyarrow as pa

    return pa.schema([("kind", pa.string()), ("image_id", pa.string()), ("class_name", pa.string()),
                      ("box", pa.list_(pa.float64(), 4)), ("score", pa.float64()), ("detection_index", pa.int64()),
                      ("annotation_id", pa.string()), ("object_index", pa.int64()), ("best_iou", pa.float64()),
                      ("confused_class", pa.string())])


def _filtered(table: pa.Table, class_name: str | None, min_score: float | None) -> pa.Table:
    import pyarrow.compute as pc

    if class_name is not None:
        table = table.filter(pc.equal(table.column("class_name"), class_name))
    if min_score is not None:
        table = table.filter(pc.fill_null(pc.greater_equal(table.column("score"), float(min_score)), False))
    return table


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    from mleval.evaluation.iou import xywh_to_xyxy

    return xywh_to_xyxy(np.asarray(xywh, np.float64).reshape(-1, 4))


def _other_class_overlap(evaluation: CocoEvaluation, det_boxes: np.ndarray,
                         gt_boxes: np.ndarray) -> tuple[np.ndarray, list[int | None]]:
    """For each detection, its highest IoU with a non-crowd ground truth of another class in its
    image, and that ground truth's id (None: no such ground truth)."""
    from mleval.evaluation.iou import box_iou_xyxy

    inputs = evaluation.inputs
    anns = inputs.gt["annotations"]
    gt_image = np.fromiter((a["image_id"] for a in anns), np.int64, len(anns))
    gt_category = np.fromiter((a["category_id"] for a in anns), np.int64, len(anns))
    gt_crowd = np.fromiter((bool(a.get("iscrowd", 0)) for a in anns), bool, len(anns))
    gt_ids = np.fromiter((a["id"] for a in anns), np.int64, len(anns))
    best = np.zeros(len(det_boxes))
    best_id: list[int | None] = [None] * len(det_boxes)
    truths_of = _by_image(gt_image, np.flatnonzero(~gt_crowd))
    for image_id, found in _by_image(inputs.dt_image_id, np.arange(len(det_boxes))).items():
        truths = truths_of.get(image_id)
        if truths is None:
            continue
        iou = box_iou_xyxy(det_boxes[found], gt_boxes[truths])
        iou[inputs.dt_category_id[found][:, None] == gt_category[truths][None, :]] = 0.0
        top = iou.argmax(axis=1)
        for j, k in enumerate(found):
            if iou[j, top[j]] > 0:
                best[k], best_id[k] = iou[j, top[j]], int(gt_ids[truths[top[j]]])
    return best, best_id


def _by_image(image_ids: np.ndarray, rows: np.ndarray) -> dict[int, np.ndarray]:
    """``rows`` grouped by their image id (one sort, not one scan per image)."""
    if not len(rows):
        return {}
    order = rows[np.argsort(image_ids[rows], kind="stable")]
    ids, starts = np.unique(image_ids[order], return_index=True)
    return {int(i): group for i, group in zip(ids, np.split(order, starts[1:]))}
