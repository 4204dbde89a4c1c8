"""Evaluation runs: a model scored on a dataset split, kept in the catalog under a key.

``evaluate`` reads the split's ground truth (annotations matching ``GROUND_TRUTH_SQL``) and the
model's predictions (stored by batch inference, or inferred now), scores them with
``coco_evaluate`` and stores the outcome twice: one ``evaluation_runs`` row (key, config,
summary, and in ``metadata`` the per-class table, confusion matrix and PR curve) and one
``performance_metrics`` row per number. The run row is written last and is the commit point:
Parquet metric files are append-only, so rows of a run that was deleted (or never committed)
stay on disk and every read here keeps only rows whose run still exists.

SAM 2 models are evaluated promptably: each ground-truth box is a prompt and the answer's mask
is scored by its IoU with that object's ground-truth mask.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa

from mleval.catalog.catalog import new_id, utc_now
from mleval.catalog.parquet_tables import PERFORMANCE_METRICS_SCHEMA
from mleval.catalog.rules import GROUND_TRUTH_SQL
from mleval.core.enums import Framework
from mleval.core.errors import MlevalError, NotFoundError, ValidationError
from mleval.core.progress import Progress, ProgressOption, check_progress

if TYPE_CHECKING:
    import pandas as pd

    from mleval.core.records import DatasetRecord, ModelRecord
    from mleval.evaluation.coco import CocoEvaluation
    from mleval.workspace import Workspace

CONFIDENCE_THRESHOLD = 0.25  # P/R/F1 and the confusion matrix, as ultralytics reports them
IOU_THRESHOLD = 0.5
CONFUSION_IOU_THRESHOLD = 0.45
_LIVE_METRICS = "evaluation_run_id IN (SELECT CAST(id AS VARCHAR) FROM evaluation_runs)"


@dataclass(frozen=True, eq=False)
class EvaluationRun:
    """One stored evaluation. ``summary``: headline numbers (NaN stored as None); ``metrics``: its
    ``performance_metrics`` rows; ``per_class``: one row per ground-truth class; ``confusion_matrix``:
    rows = predicted, columns = true, last = background (None for SAM 2); ``pr_curve``: precision
    at 101 recall points, IoU 0.5, overall and per class; ``evaluation``: the CocoEvaluation when
    computed in this process (None once reloaded)."""

    lineage_kind = "evaluation_run"  # what ws.lineage traces it as
    id: str
    key: str
    model: str
    model_id: str
    dataset: str | None
    dataset_id: str | None
    split: str | None
    iou_type: str
    config: dict
    summary: dict
    timestamp: datetime
    inference_job_id: str | None
    metrics: pa.Table = field(repr=False)
    per_class: pa.Table = field(repr=False)
    confusion_matrix: pa.Table | None = field(repr=False)
    pr_curve: dict | None = field(repr=False)
    evaluation: CocoEvaluation | None = field(default=None, repr=False)
    imgsz: int | None = None  # the input size the model ran at
    dataset_snapshot_id: str | None = None  # the dataset content it was scored on (ws.datasets.snapshot)

    def to_pandas(self) -> pd.DataFrame:
        """:attr:`per_class` as a DataFrame (``metrics.to_pandas()`` for the stored rows)."""
        return self.per_class.to_pandas()

    def __repr__(self) -> str:
        head = _headline(self.summary)
        return f"EvaluationRun({self.key!r}, {self.model} on {self.dataset}/{self.split}, {head})"

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(f"<tr><td>{escape(k)}</td><td>{_fmt(v)}</td></tr>"
                       for k, v in self.summary.items() if not isinstance(v, dict))
        return (f"<b>{escape(self.key)}</b>: {escape(self.model)} on {escape(str(self.dataset))} / "
                f"{escape(str(self.split))} ({self.iou_type}, imgsz {self.imgsz}, "
                f"{self.timestamp:%Y-%m-%d %H:%M} UTC, snapshot {escape(str(self.dataset_snapshot_id))})"
                f"<table>{rows}</table>{_html_table(self.per_class)}")


class _Object(NamedTuple):
    image_id: str
    label: str
    box_xyxy: tuple[float, float, float, float]
    segment: dict | None  # {"polygons": [...]} or {"rle": {...}}
    iscrowd: bool


def evaluate(
    ws: Workspace,
    model: Any,
    dataset: Any,
    *,
    split: str = "test",
    iou_type: str = "bbox",
    conf: float = 0.001,
    imgsz: int | None = None,
    key: str | None = None,
    batch_size: int = 8,
    timeout_s: float | None = None,
    class_map: dict[str, str | None] | None = None,
    progress: ProgressOption = True,
) -> EvaluationRun:
    """Score ``model`` (record or name) on the ``split`` images of ``dataset`` and store the run.

    ``imgsz`` None is the model's own input size (the one it was trained at); the size used is
    the run's ``imgsz``. Predictions come from the model's latest completed batch inference
    holding a row for every image of the split, run at a confidence <= ``conf`` and the same
    ``imgsz`` (detections under ``conf`` are dropped); without one, ``ws.infer`` runs now (Ray)
    and is waited for. The dataset's classes must all be classes of the model, unless
    ``class_map`` (model class -> dataset class, None to drop) says how they correspond;
    detections of other classes are dropped and counted in the summary. Images whose inference
    failed are left out and counted. The dataset is snapshotted (``run.dataset_snapshot_id``).
    ``key`` defaults to ``"<model>-<dataset>-<split>-<n>"``. SAM 2 models are scored with
    ground-truth boxes as prompts and mask IoU (``iou_type`` is then "segm"). ``progress``:
    a bar over the images (False for none, or a callable ``progress(done, total)``).
    """
    from mleval.images.collection import check_split
    from mleval.models.settings import check_classes, imgsz_for

    check_progress(progress)
    record, ds = ws.models.get(model), ws.datasets.get(dataset)
    check_split(split)
    if iou_type not in ("bbox", "segm"):
        raise ValidationError("evaluation.iou_type", f"iou_type must be 'bbox' or 'segm', got {iou_type!r}.")
    imgsz = imgsz_for(record, imgsz)
    key = _free_key(ws, key, f"{record.name}-{ds.name}-{split}")
    images = _split_images(ws, ds, split)
    objects = _ground_truth(ws, ds, split)
    class_map = check_classes(record, list(dict.fromkeys(o.label for o in objects)), ds.name, class_map)
    snapshot = ws.datasets.snapshot(ds, note=f"taken for evaluation run {key}", progress=False)
    with Progress(progress, total=len(images), desc=f"evaluate {record.name} on {ds.name}/{split}",
                  unit="img") as bar:
        if record.framework == Framework.SAM2:
            from mleval.evaluation.promptable import evaluate_promptable

            run = evaluate_promptable(ws, record, ds, split, key, images, objects, batch_size,
                                      stored=dict(imgsz=imgsz, snapshot_id=snapshot.id))
            bar.update_to(len(images))
            return run
        bar.note(f"predictions at imgsz {imgsz}")
        job_id, rows = _predictions(ws, record, [i["id"] for i in images], conf=conf, imgsz=imgsz,
                                    batch_size=batch_size, timeout_s=timeout_s,
                                    progress=lambda done, total: bar.update_to(round(done * len(images) / 100)))
        bar.update_to(len(images))
        failed = {r["image_id"] for r in rows if r["error"]}
        images = [i for i in images if i["id"] not in failed]
        gt, class_names, index = _coco_ground_truth(images, objects, iou_type, ds, split)
        dt, dropped = _coco_detections(rows, index, class_names, iou_type, conf, class_map)

        from mleval.evaluation.coco import coco_evaluate

        bar.note("scoring")
        evaluation = coco_evaluate(gt, dt, iou_type=iou_type)
        config = {"model": record.name, "dataset": ds.name, "split": split, "iou_type": iou_type, "conf": conf,
                  "imgsz": imgsz, "batch_size": batch_size, "max_dets": list(evaluation.max_dets),
                  "confidence_threshold": CONFIDENCE_THRESHOLD, "iou_threshold": IOU_THRESHOLD,
                  "confusion_iou_threshold": CONFUSION_IOU_THRESHOLD, "class_names": class_names,
                  "class_map": class_map}
        summary, results = _detection_results(evaluation, rows, dropped, failed, len(dt))
        # segm: ground truths without a mask are left out
        summary["skipped_ground_truths"] = sum(o.image_id in index for o in objects) - len(gt["annotations"])
        run = _store(ws, record, ds, split, iou_type, key, config, summary, results, job_id, evaluation,
                     imgsz=imgsz, snapshot_id=snapshot.id)
        bar.note(f"mAP50={_fmt(run.summary.get('mAP50'))} mAP50-95={_fmt(run.summary.get('mAP50_95'))}")
    return run


def list_runs(ws: Workspace, model: Any = None, dataset: Any = None) -> pa.Table:
    """The stored runs, newest first: key, model, dataset, split, iou_type, timestamp and headline numbers."""
    where, params = [], []
    if model is not None:
        where.append("r.model_id = ?")
        params.append(ws.models.get(model).id)
    if dataset is not None:
        where.append("r.dataset_id = ?")
        params.append(ws.datasets.get(dataset).id)
    numbers = ", ".join(f"CAST(r.summary->>'{k}' AS DOUBLE) AS {k}" for k in
                        ("mAP50_95", "mAP50", "precision", "recall", "F1", "mean_iou", "ms_per_image"))
    return ws.catalog.query(
        f"SELECT r.key, m.name AS model, d.name AS dataset, r.split, r.iou_type, r.imgsz, r.evaluation_timestamp, "
        f"{numbers}, r.dataset_snapshot_id, "
        "CAST(r.inference_job_id AS VARCHAR) AS inference_job_id, CAST(r.id AS VARCHAR) AS id "
        "FROM evaluation_runs r JOIN models m ON m.id = r.model_id LEFT JOIN datasets d ON d.id = r.dataset_id"
        + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY r.evaluation_timestamp DESC, r.key",
        params)


def load_run(ws: Workspace, key: str) -> EvaluationRun:
    """A stored run by key, its summary, per-class results and metric rows read back from the catalog."""
    rows = ws.catalog.query_rows(_RUN_SQL + " WHERE r.key = ?", [key])
    if not rows:
        known = list_runs(ws).column("key").to_pylist()
        raise NotFoundError(f"no evaluation run with key {key!r}; stored runs: {known[:10] or 'none'} "
                            "(list_runs(ws) lists them all).")
    return _run_from_row(ws, rows[0])


def delete_run(ws: Workspace, key: str) -> None:
    """Delete a run. Its metric rows stay in the append-only Parquet files but no read here returns them."""
    ws.catalog.delete("evaluation_runs", [load_run(ws, key).id])


def list_metrics(ws: Workspace, *, model: Any = None, dataset: Any = None, metric_type: str | None = None) -> pa.Table:
    """``performance_metrics`` rows of existing runs (and rows stored without a run), oldest first."""
    where, params = [f"(evaluation_run_id IS NULL OR {_LIVE_METRICS})"], []
    for column, value in (("model_id", model and ws.models.get(model).id),
                          ("dataset_id", dataset and ws.datasets.get(dataset).id), ("metric_type", metric_type)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    return ws.catalog.query("SELECT * FROM performance_metrics WHERE " + " AND ".join(where)
                            + " ORDER BY evaluation_timestamp, metric_type, class_name NULLS FIRST", params)


class EvaluationRunCollection:
    """``ws.evaluations``: ``list``, ``load``, ``delete`` and ``metrics`` over the stored runs."""

    def __init__(self, workspace: Workspace):
        self._ws = workspace

    def list(self, model: Any = None, dataset: Any = None) -> pa.Table:
        return list_runs(self._ws, model, dataset)

    def load(self, key: str) -> EvaluationRun:
        return load_run(self._ws, key)

    def delete(self, key: str) -> None:
        delete_run(self._ws, key)

    def metrics(self, **filters: Any) -> pa.Table:
        return list_metrics(self._ws, **filters)


# -- inputs ----------------------------------------------------------------------------------

def _free_key(ws: Workspace, key: str | None, prefix: str) -> str:
    taken = set(ws.catalog.query("SELECT key FROM evaluation_runs").column("key").to_pylist())
    if key is not None:
        if not str(key).strip():
            raise ValidationError("evaluation_run.key_not_empty", "key must not be empty.")
        if key in taken:
            raise ValidationError("evaluation_run.key_unique", f"an evaluation run with key {key!r} exists; "
                                  "pick another key or delete_run(ws, key) first.")
        return key
    n = 1 + sum(1 for k in taken if k.startswith(prefix + "-"))
    while f"{prefix}-{n}" in taken:
        n += 1
    return f"{prefix}-{n}"


def _split_images(ws: Workspace, ds: DatasetRecord, split: str) -> list[dict]:
    images = ws.catalog.query_rows(
        "SELECT CAST(i.id AS VARCHAR) AS id, i.width, i.height FROM images i "
        "JOIN dataset_images l ON l.image_id = i.id AND l.dataset_id = ? WHERE i.dataset_split = ? "
        "ORDER BY i.upload_timestamp, i.filename, i.id", [ds.id, split])
    if not images:
        raise ValidationError("evaluation.images", f"dataset {ds.name!r} has no {split} images (train "
                              f"{ds.train_count}, validation {ds.validation_count}, test {ds.test_count}); "
                              "pick another split or assign images with ws.images.assign(images, split).")
    return images


def _ground_truth(ws: Workspace, ds: DatasetRecord, split: str) -> list[_Object]:
    """Ground-truth objects of the split's images, oldest annotation first."""
    from mleval.core.masks import polygons_bbox_xyxy, rle_bbox_xyxy

    table = ws.catalog.query(
        "SELECT CAST(a.image_id AS VARCHAR) AS image_id, a.class_labels, a.bounding_boxes, a.segments, a.metadata "
        "FROM annotations a JOIN dataset_images l ON l.image_id = a.image_id AND l.dataset_id = ? "
        f"JOIN images i ON i.id = a.image_id WHERE i.dataset_split = ? AND {GROUND_TRUTH_SQL} "
        "ORDER BY a.created_at, a.id", [ds.id, split])
    objects = []
    for image_id, labels, boxes, segments, metadata in zip(*(table.column(c).to_pylist() for c in table.column_names)):
        segments = json.loads(segments) if segments else [None] * len(labels)
        crowd = (json.loads(metadata) if metadata else {}).get("iscrowd") or [0] * len(labels)
        for k, label in enumerate(labels):
            segment = segments[k]
            if boxes:
                box = tuple(boxes[k])
            else:
                box = rle_bbox_xyxy(segment["rle"]) if "rle" in segment else polygons_bbox_xyxy(segment["polygons"])
            objects.append(_Object(image_id, label, box, segment, bool(crowd[k])))
    if not objects:
        raise ValidationError("evaluation.ground_truth", f"the {split} images of dataset {ds.name!r} have no ground "
                              "truth: annotate them (user annotations count at once, model annotations once accepted).")
    return objects


def _predictions(ws: Workspace, record: ModelRecord, image_ids: list[str], *, conf: float, imgsz: int,
                 batch_size: int, timeout_s: float | None, progress: ProgressOption = False) -> tuple[str, list[dict]]:
    """(inference job id, one prediction row per image): stored ones when usable, else a new batch inference."""
    jobs = ws.catalog.query_rows(
        "SELECT p.inference_job_id AS id, any_value(j.metadata) AS metadata FROM predictions p "
        "JOIN inference_jobs j ON CAST(j.id AS VARCHAR) = p.inference_job_id "
        "WHERE j.model_id = ? AND j.status = 'completed' AND p.image_id IN (SELECT unnest(?::VARCHAR[])) "
        "GROUP BY p.inference_job_id HAVING count(DISTINCT p.image_id) = ? "
        "ORDER BY max(coalesce(j.end_time, j.created_at)) DESC", [record.id, image_ids, len(image_ids)])
    job_id = next((j["id"] for j in jobs if _usable(j["metadata"], conf, imgsz)), None)
    if job_id is None:
        job = ws.infer(record, images=image_ids, conf=conf, imgsz=imgsz, batch_size=batch_size)
        job_id = job.wait(timeout_s, progress=progress).id
    rows = ws.catalog.query_rows(
        "SELECT image_id, boxes_xyxy, class_names, scores, masks_rle, preprocess_ms, inference_ms, postprocess_ms, "
        "error FROM predictions WHERE inference_job_id = ? AND image_id IN (SELECT unnest(?::VARCHAR[])) "
        "QUALIFY row_number() OVER (PARTITION BY image_id) = 1", [job_id, image_ids])
    if len(rows) < len(image_ids):
        status = ws.catalog.get("inference_jobs", job_id)["status"]
        raise MlevalError(f"inference job {job_id} ended {status} with predictions for {len(rows)} of the "
                          f"{len(image_ids)} images; evaluate again to run it anew.")
    return job_id, rows


def _usable(metadata: str | None, conf: float, imgsz: int) -> bool:
    settings = (json.loads(metadata) if metadata else {}).get("settings") or {}
    return settings.get("conf", 0.0) <= conf + 1e-12 and settings.get("imgsz", imgsz) == imgsz


def _coco_ground_truth(images: list[dict], objects: list[_Object], iou_type: str, ds: DatasetRecord,
                       split: str) -> tuple[dict, list[str], dict[str, int]]:
    """A COCO dataset dict (image ids 1..N in split order; category ids 1..K in first-appearance order),
    its class names and the COCO image id of each image id."""
    index = {image["id"]: n for n, image in enumerate(images, start=1)}
    kept = [o for o in objects if o.image_id in index and (iou_type == "bbox" or o.segment is not None)]
    if not kept:
        what = "ground-truth masks" if iou_type == "segm" else "ground truth on images that were predicted"
        raise ValidationError("evaluation.ground_truth", f"the {split} images of dataset {ds.name!r} have no {what}; "
                              "annotate them, or use iou_type='bbox' for boxes only.")
    class_names = list(dict.fromkeys(o.label for o in kept))
    category = {name: c for c, name in enumerate(class_names, start=1)}
    annotations = []
    for n, o in enumerate(kept, start=1):
        x1, y1, x2, y2 = o.box_xyxy
        ann = {"id": n, "image_id": index[o.image_id], "category_id": category[o.label],
               "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": int(o.iscrowd)}
        if iou_type == "segm":
            ann["segmentation"] = o.segment["rle"] if "rle" in o.segment else o.segment["polygons"]
        annotations.append(ann)
    coco_images = [{"id": index[i["id"]], "width": i["width"], "height": i["height"]} for i in images]
    categories = [{"id": c, "name": name} for name, c in category.items()]
    return {"images": coco_images, "annotations": annotations, "categories": categories}, class_names, index


def _coco_detections(rows: list[dict], index: dict[str, int], class_names: list[str], iou_type: str,
                     conf: float, class_map: dict[str, str | None] | None = None) -> tuple[list[dict], Counter]:
    """COCO results of the rows for images in ``index``, their class names mapped through ``class_map``
    (model class -> dataset class; None drops it); detections of unknown classes go to the Counter."""
    class_map = class_map or {}
    category = {name: c for c, name in enumerate(class_names, start=1)}
    dt, dropped = [], Counter()
    for row in rows:
        if row["image_id"] not in index:
            continue
        masks = json.loads(row["masks_rle"]) if row["masks_rle"] else None
        if iou_type == "segm" and masks is None and row["class_names"]:
            raise ValidationError("evaluation.masks", "this model's predictions hold no masks; evaluate it with "
                                  "iou_type='bbox' (or use a segmentation model such as yolo11n-seg).")
        for j, (box, name, score) in enumerate(zip(row["boxes_xyxy"], row["class_names"], row["scores"])):
            if score < conf:
                continue
            name = class_map.get(name, name)
            if name not in category:
                dropped[name] += 1
                continue
            x1, y1, x2, y2 = box
            det = {"image_id": index[row["image_id"]], "category_id": category[name],
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
            if iou_type == "segm":
                det["segmentation"] = masks[j]
            dt.append(det)
    return dt, dropped


# -- results ---------------------------------------------------------------------------------

def _timing(predictions: Sequence[Any]) -> dict[str, float | None]:
    """Mean stage times (ms per image) and images/s of prediction rows or ImagePredictions."""
    from mleval.evaluation.timing import summarize_latency

    stages = ("preprocess_ms", "inference_ms", "postprocess_ms")
    values = [[_get(p, s) for s in stages] for p in predictions]
    values = [v for v in values if None not in v]
    latency = summarize_latency(**{s: [v[k] for v in values] for k, s in enumerate(stages)})
    return {"preprocess_ms": latency.preprocess_ms, "inference_ms": latency.inference_ms,
            "postprocess_ms": latency.postprocess_ms, "ms_per_image": latency.total_ms,
            "images_per_second": latency.images_per_s}


def _get(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, dict) else getattr(item, name)


def _detection_results(evaluation: CocoEvaluation, rows: list[dict], dropped: Counter, failed: set[str],
                       num_detections: int) -> tuple[dict, dict]:
    prf = evaluation.precision_recall_f1(iou_threshold=IOU_THRESHOLD, confidence_threshold=CONFIDENCE_THRESHOLD)
    overall = prf.slice(0, 1).to_pylist()[0]
    stats = evaluation.summary()
    summary = {
        "mAP50_95": stats["AP"], "mAP50": stats["AP50"], "mAP75": stats["AP75"],
        "precision": overall["precision"], "recall": overall["recall"], "F1": overall["f1"],
        "best_F1": {"confidence": overall["best_confidence"], "precision": overall["best_precision"],
                    "recall": overall["best_recall"], "F1": overall["best_f1"]},
        "mean_iou": evaluation.mean_iou(iou_threshold=IOU_THRESHOLD),
        **_timing([r for r in rows if not r["error"]]),
        "num_images": len(evaluation.image_ids), "num_ground_truths": overall["num_gt"],
        "num_detections": num_detections, "dropped_detections": sum(dropped.values()),
        "dropped_classes": dict(dropped.most_common()), "failed_images": len(failed), "coco": stats,
    }
    per_class = evaluation.per_class()
    by_class = {r["name"]: r for r in prf.slice(1).to_pylist()}
    classes = [{"class_name": c["name"], "ap": c["ap"], "ap50": c["ap50"], "ap75": c["ap75"], "ar": c["ar"],
                "precision": by_class[c["name"]]["precision"], "recall": by_class[c["name"]]["recall"],
                "f1": by_class[c["name"]]["f1"], "num_gt": c["num_gt"], "num_detections": c["num_detections"]}
               for c in per_class.to_pylist()]
    names = [evaluation.category_names[int(c)] for c in evaluation.category_ids]
    cm = evaluation.confusion_matrix(iou_threshold=CONFUSION_IOU_THRESHOLD, confidence_threshold=CONFIDENCE_THRESHOLD)
    t = int(np.flatnonzero(np.isclose(evaluation.iou_thresholds, IOU_THRESHOLD))[0])
    curves = evaluation.precision[t, :, :, 0, -1]  # (R, K), -1 where a class has no ground truth
    valid = curves > -1
    with np.errstate(invalid="ignore"):
        mean_curve = np.where(valid.any(1), (curves * valid).sum(1) / valid.sum(1), np.nan)
    precision = {"all": mean_curve, **{n: np.where(valid[:, k], curves[:, k], np.nan) for k, n in enumerate(names)}}
    results = {
        "per_class": classes,
        "confusion_matrix": {"labels": [*names, "background"], "matrix": cm.matrix.tolist()},
        "pr_curve": {"iou_threshold": IOU_THRESHOLD, "recall": evaluation.recall_thresholds.round(4).tolist(),
                     "precision": {n: np.round(p, 4).tolist() for n, p in precision.items()}},
    }
    return summary, results


def _metric_rows(run_id: str, record: ModelRecord, ds: DatasetRecord, split: str, iou_type: str,
                 timestamp: datetime, summary: dict, per_class: list[dict]) -> pa.Table:
    rows: list[dict] = []

    def add(metric: str, value: Any, threshold: float | None = None, class_name: str | None = None, **meta):
        if _metric_value(value) is None:
            return  # undefined here (e.g. mean IoU without a true positive); the rules store numbers only
        rows.append({"id": new_id(), "model_id": record.id, "dataset_id": ds.id, "evaluation_run_id": run_id,
                     "metric_type": metric, "metric_value": _metric_value(value), "threshold": threshold,
                     "class_name": class_name, "evaluation_timestamp": timestamp,
                     "metadata": json.dumps({"iou_type": iou_type, "split": split, **meta})})

    if "mAP50" in summary:
        add("mAP50", summary["mAP50"], 0.5)
        add("mAP75", summary["mAP75"], 0.75)
        add("mAP50_95", summary["mAP50_95"])
        for metric, name in (("precision", "precision"), ("recall", "recall"), ("F1", "F1")):
            add(metric, summary[name], IOU_THRESHOLD, confidence_threshold=CONFIDENCE_THRESHOLD)
        add("IoU", summary["mean_iou"], IOU_THRESHOLD, what="mean IoU of true positives")
        for c in per_class:
            add("AP", c["ap50"], 0.5, c["class_name"])
    else:  # promptable: mask IoU of each ground-truth box prompt's answer
        add("IoU", summary["mean_iou"], what="mean mask IoU, ground-truth box prompts")
        for threshold in (0.5, 0.75):
            add("recall", summary[f"recall{round(threshold * 100)}"], threshold, what="share of objects above IoU")
        for c in per_class:
            add("IoU", c["mean_iou"], None, c["class_name"], what="mean mask IoU, ground-truth box prompts")
    if _number(summary["ms_per_image"]) is not None:
        add("execution_time", summary["ms_per_image"], unit="ms/image",
            **{k: _number(summary[k]) for k in ("preprocess_ms", "inference_ms", "postprocess_ms")})
        add("images_per_second", summary["images_per_second"], unit="images/s")
    return pa.Table.from_pylist(rows, schema=PERFORMANCE_METRICS_SCHEMA)


def _store(ws: Workspace, record: ModelRecord, ds: DatasetRecord, split: str, iou_type: str, key: str, config: dict,
           summary: dict, results: dict, job_id: str | None, evaluation: CocoEvaluation | None, *,
           imgsz: int | None = None, snapshot_id: str | None = None) -> EvaluationRun:
    run_id, now = new_id(), utc_now()
    summary = _clean(summary)
    metrics = _metric_rows(run_id, record, ds, split, iou_type, now, summary, _clean(results["per_class"]))
    ws.catalog.append_rows("performance_metrics", metrics)  # invisible until the run row below exists
    ws.catalog.insert("evaluation_runs", [{
        "id": run_id, "key": key, "model_id": record.id, "dataset_id": ds.id, "split": split, "iou_type": iou_type,
        "config": _clean(config), "summary": summary, "inference_job_id": job_id, "evaluation_timestamp": now,
        "metadata": _clean(results), "imgsz": imgsz, "dataset_snapshot_id": snapshot_id,
    }])
    rows = ws.catalog.query_rows(_RUN_SQL + " WHERE r.id = ?", [run_id])
    return _run_from_row(ws, rows[0], evaluation)


_RUN_SQL = ("SELECT CAST(r.id AS VARCHAR) AS id, r.key, m.name AS model, CAST(r.model_id AS VARCHAR) AS model_id, "
            "d.name AS dataset, CAST(r.dataset_id AS VARCHAR) AS dataset_id, r.split, r.iou_type, r.config, r.summary, "
            "r.evaluation_timestamp, CAST(r.inference_job_id AS VARCHAR) AS inference_job_id, r.metadata, "
            "r.imgsz, r.dataset_snapshot_id "
            "FROM evaluation_runs r JOIN models m ON m.id = r.model_id LEFT JOIN datasets d ON d.id = r.dataset_id")


def _run_from_row(ws: Workspace, row: dict, evaluation: CocoEvaluation | None = None) -> EvaluationRun:
    results = json.loads(row["metadata"]) if row["metadata"] else {}
    metrics = ws.catalog.query("SELECT * FROM performance_metrics WHERE evaluation_run_id = ? "
                               "ORDER BY metric_type, threshold NULLS FIRST, class_name NULLS FIRST", [row["id"]])
    cm = results.get("confusion_matrix")
    confusion = None if cm is None else pa.table(
        {"predicted": cm["labels"], **{label: [r[j] for r in cm["matrix"]] for j, label in enumerate(cm["labels"])}})
    return EvaluationRun(
        id=row["id"], key=row["key"], model=row["model"], model_id=row["model_id"], dataset=row["dataset"],
        dataset_id=row["dataset_id"], split=row["split"], iou_type=row["iou_type"], config=json.loads(row["config"]),
        summary=json.loads(row["summary"]) if row["summary"] else {}, timestamp=row["evaluation_timestamp"],
        inference_job_id=row["inference_job_id"], metrics=metrics,
        per_class=pa.Table.from_pylist(results.get("per_class") or []), confusion_matrix=confusion,
        pr_curve=results.get("pr_curve"), evaluation=evaluation, imgsz=row["imgsz"],
        dataset_snapshot_id=row["dataset_snapshot_id"],
    )


# -- SAM 2 -----------------------------------------------------------------------------------

# -- helpers ---------------------------------------------------------------------------------

def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _metric_value(value: Any) -> float | None:
    """A storable metric value: None for NaN, infinity and COCO's -1 ("undefined")."""
    number = _number(value)
    return None if number is None or number < 0 else number


def _clean(value: Any) -> Any:
    """JSON-ready: numpy scalars and arrays to Python values, NaN and infinity to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _number(value)
    return value


def _headline(summary: dict) -> str:
    names = ("mAP50_95", "mAP50", "F1") if "mAP50" in summary else ("mean_iou", "recall50")
    return ", ".join(f"{n}={_fmt(summary.get(n))}" for n in names)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _html_table(table: pa.Table, limit: int = 50) -> str:
    from html import escape

    if table.num_rows == 0:
        return ""
    head = "".join(f"<th>{escape(c)}</th>" for c in table.column_names)
    body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(v))}</td>" for v in row.values()) + "</tr>"
                   for row in table.slice(0, limit).to_pylist())
    more = f"<p>{table.num_rows - limit} more rows</p>" if table.num_rows > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"
