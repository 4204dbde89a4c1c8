"""Evaluating a detector: a model scored on a dataset split, the run kept under a key.

``evaluate`` reads the split's ground truth (annotations matching ``GROUND_TRUTH_SQL``) and the
model's predictions (stored by batch inference, or made now by the caller's ``infer``), scores
them with ``coco_evaluate`` and hands the outcome to the run store (``run_store.py``: the
``evaluation_runs`` row and its ``performance_metrics`` rows).

SAM 2 models are evaluated promptably (``promptable.py``): each ground-truth box is a prompt and
the answer's mask is scored by its IoU with that object's ground-truth mask.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from mleval.catalog.repositories import AnnotationRepository, ImageRepository, PredictionRepository
from mleval.core.enums import Framework
from mleval.core.detections import Detections
from mleval.core.errors import MlevalError, ValidationError
from mleval.core.progress import Progress, ProgressOption, check_progress
from mleval.evaluation.run_store import (
    CONFIDENCE_THRESHOLD,
    CONFUSION_IOU_THRESHOLD,
    IOU_THRESHOLD,
    EvaluationRun,
    EvaluationRunCollection,
    format_value,
    delete_run,
    free_key,
    list_metrics,
    list_runs,
    load_run,
    store_run,
    timing_summary,
)

if TYPE_CHECKING:
    from mleval.context import WorkspaceContext
    from mleval.core.records import DatasetRecord, ModelRecord
    from mleval.evaluation.coco import CocoEvaluation
    from mleval.jobs.handle import JobHandle

def evaluate(
    ws: WorkspaceContext,
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
    infer: Callable[..., JobHandle] | None = None,
) -> EvaluationRun:
    """Score ``model`` (record or name) on the ``split`` images of ``dataset`` and store the run.

    ``imgsz`` None is the model's own input size (the one it was trained at); the size used is
    the run's ``imgsz``. Predictions come from the model's latest completed batch inference
    holding a row for every image of the split, run at a confidence <= ``conf`` and the same
    ``imgsz`` (detections under ``conf`` are dropped); without one, ``infer`` (the caller's batch
    inference, e.g. ``ws.infer``; it returns a job handle) runs now and is waited for. The dataset's classes must all be classes of the model, unless
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
    key = free_key(ws, key, f"{record.name}-{ds.name}-{split}")
    images = split_images(ws, ds, split)
    truth = ground_truth_by_image(ws, ds, split)
    class_map = check_classes(record, list(dict.fromkeys(n for d in truth.values() for n in d.class_names)),
                              ds.name, class_map)
    snapshot = ws.datasets.snapshot(ds, note=f"taken for evaluation run {key}", progress=False)
    with Progress(progress, total=len(images), desc=f"evaluate {record.name} on {ds.name}/{split}",
                  unit="img") as bar:
        if record.framework == Framework.SAM2:
            from mleval.evaluation.promptable import evaluate_promptable

            run = evaluate_promptable(ws, record, ds, split, key, images, truth, batch_size,
                                      stored=dict(imgsz=imgsz, snapshot_id=snapshot.id))
            bar.update_to(len(images))
            return run
        bar.note(f"predictions at imgsz {imgsz}")
        job_id, rows = _predictions(ws, record, [i["id"] for i in images], conf=conf, imgsz=imgsz,
                                    batch_size=batch_size, timeout_s=timeout_s, infer=infer,
                                    progress=lambda done, total: bar.update_to(round(done * len(images) / 100)))
        bar.update_to(len(images))
        failed = {r["image_id"] for r in rows if r["error"]}
        images = [i for i in images if i["id"] not in failed]
        gt, class_names, index = _coco_ground_truth(images, truth, iou_type, ds, split)
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
        summary["skipped_ground_truths"] = sum(len(d) for i, d in truth.items() if i in index) - len(gt["annotations"])
        run = store_run(ws, record, ds, split, iou_type, key, config, summary, results, job_id, evaluation,
                     imgsz=imgsz, snapshot_id=snapshot.id)
        bar.note(f"mAP50={format_value(run.summary.get('mAP50'))} mAP50-95={format_value(run.summary.get('mAP50_95'))}")
    return run


# -- inputs ----------------------------------------------------------------------------------

def split_images(ws: WorkspaceContext, ds: DatasetRecord, split: str) -> list[dict]:
    images = ImageRepository(ws.catalog).of_dataset(ds.id, split)
    if not images:
        raise ValidationError("evaluation.images", f"dataset {ds.name!r} has no {split} images (train "
                              f"{ds.train_count}, validation {ds.validation_count}, test {ds.test_count}); "
                              "pick another split or assign images with ws.images.assign(images, split).")
    return images


def ground_truth_by_image(ws: WorkspaceContext, ds: DatasetRecord, split: str) -> dict[str, Detections]:
    """Ground-truth objects of the split's images by image id, oldest annotation first, each naming
    its annotation and its place there."""
    table = AnnotationRepository(ws.catalog).objects_of_dataset(ds.id, split=split)
    by_image: dict[str, list[Detections]] = {}
    for row in table.to_pylist():
        by_image.setdefault(row["image_id"], []).append(Detections.from_annotation(row))
    truth = {image_id: Detections.concat(parts) for image_id, parts in by_image.items()}
    if not any(len(d) for d in truth.values()):
        raise ValidationError("evaluation.ground_truth", f"the {split} images of dataset {ds.name!r} have no ground "
                              "truth: annotate them (user annotations count at once, model annotations once accepted).")
    return truth


def _predictions(ws: WorkspaceContext, record: ModelRecord, image_ids: list[str], *, conf: float, imgsz: int,
                 batch_size: int, timeout_s: float | None, infer: Callable[..., JobHandle] | None,
                 progress: ProgressOption = False) -> tuple[str, list[dict]]:
    """(inference job id, one prediction row per image): stored ones when usable, else ``infer``'s new ones."""
    predictions = PredictionRepository(ws.catalog)
    jobs = predictions.completed_jobs_covering(record.id, image_ids)
    job_id = next((j["id"] for j in jobs if _usable(j["metadata"], conf, imgsz)), None)
    if job_id is None:
        if infer is None:
            raise MlevalError(f"{record.name} has no stored predictions for these {len(image_ids)} images at imgsz "
                              f"{imgsz} and conf <= {conf}: run ws.infer(...) on them first, or use ws.evaluate, "
                              "which runs it.")
        job = infer(record, images=image_ids, conf=conf, imgsz=imgsz, batch_size=batch_size)
        job_id = job.wait(timeout_s, progress=progress).id
    rows = predictions.rows_of(job_id, image_ids)
    if len(rows) < len(image_ids):
        status = ws.catalog.get("inference_jobs", job_id)["status"]
        raise MlevalError(f"inference job {job_id} ended {status} with predictions for {len(rows)} of the "
                          f"{len(image_ids)} images; evaluate again to run it anew.")
    return job_id, rows


def _usable(metadata: str | None, conf: float, imgsz: int) -> bool:
    settings = (json.loads(metadata) if metadata else {}).get("settings") or {}
    return settings.get("conf", 0.0) <= conf + 1e-12 and settings.get("imgsz", imgsz) == imgsz


def _coco_ground_truth(images: list[dict], truth: dict[str, Detections], iou_type: str, ds: DatasetRecord,
                       split: str) -> tuple[dict, list[str], dict[str, int]]:
    """A COCO dataset dict (image ids 1..N in split order; category ids 1..K in first-appearance order),
    its class names and the COCO image id of each image id."""
    index = {image["id"]: n for n, image in enumerate(images, start=1)}
    kept = [(image_id, d, k) for image_id, d in truth.items() if image_id in index for k in range(len(d))
            if iou_type == "bbox" or d.segment(k) is not None]
    if not kept:
        what = "ground-truth masks" if iou_type == "segm" else "ground truth on images that were predicted"
        raise ValidationError("evaluation.ground_truth", f"the {split} images of dataset {ds.name!r} have no {what}; "
                              "annotate them, or use iou_type='bbox' for boxes only.")
    class_names = list(dict.fromkeys(d.class_names[k] for _, d, k in kept))
    category = {name: c for c, name in enumerate(class_names, start=1)}
    annotations = []
    for n, (image_id, d, k) in enumerate(kept, start=1):
        x1, y1, x2, y2 = d.xyxy[k].tolist()
        ann = {"id": n, "image_id": index[image_id], "category_id": category[d.class_names[k]],
               "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": int(d.iscrowd[k]), "source_image_id": image_id,
               "annotation_id": d.annotation_ids[k], "object_index": int(d.object_indices[k])}
        if iou_type == "segm":
            segment = d.segment(k)
            ann["segmentation"] = segment["rle"] if "rle" in segment else segment["polygons"]
        annotations.append(ann)
    coco_images = [{"id": index[i["id"]], "width": i["width"], "height": i["height"], "source_image_id": i["id"]}
                   for i in images]
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
        found = Detections.from_dict(row)
        if iou_type == "segm" and found.masks_rle is None and len(found):
            raise ValidationError("evaluation.masks", "this model's predictions hold no masks; evaluate it with "
                                  "iou_type='bbox' (or use a segmentation model such as yolo11n-seg).")
        for j, (box, name, score) in enumerate(zip(found.xyxy.tolist(), found.class_names, found.scores.tolist())):
            if score < conf:
                continue
            name = class_map.get(name, name)
            if name not in category:
                dropped[name] += 1
                continue
            x1, y1, x2, y2 = box
            det = {"image_id": index[row["image_id"]], "category_id": category[name],
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score,
                   "source_image_id": row["image_id"], "object_index": j}
            if iou_type == "segm":
                det["segmentation"] = found.masks_rle[j]
            dt.append(det)
    return dt, dropped


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
        **timing_summary([r for r in rows if not r["error"]]),
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
    from mleval.evaluation.diagnostics import calibration, tide_errors

    results = {
        "per_class": classes,
        "confusion_matrix": {"labels": [*names, "background"], "matrix": cm.matrix.tolist()},
        "pr_curve": {"iou_threshold": IOU_THRESHOLD, "recall": evaluation.recall_thresholds.round(4).tolist(),
                     "precision": {n: np.round(p, 4).tolist() for n, p in precision.items()}},
        "errors": tide_errors(evaluation, pos_thr=IOU_THRESHOLD),
        "calibration": calibration(evaluation, iou_threshold=IOU_THRESHOLD),
    }
    return summary, results


__all__ = ["CONFIDENCE_THRESHOLD", "CONFUSION_IOU_THRESHOLD", "IOU_THRESHOLD", "EvaluationRun",
           "EvaluationRunCollection", "delete_run", "ground_truth_by_image", "split_images", "evaluate", "list_metrics", "list_runs",
           "load_run"]
