"""Promptable evaluation of SAM 2: each ground-truth box is the prompt, its mask the answer key,
scored by mask IoU overall and per class."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from mleval.core.errors import ValidationError
from mleval.core.detections import Detections
from mleval.evaluation.run_store import EvaluationRun, store_run, timing_summary

if TYPE_CHECKING:
    from mleval.core.records import DatasetRecord, ModelRecord
    from mleval.context import WorkspaceContext


def evaluate_promptable(ws: WorkspaceContext, record: ModelRecord, ds: DatasetRecord, split: str, key: str,
                        images: list[dict], truth: dict[str, Detections], batch_size: int, *,
                        stored: dict | None = None) -> EvaluationRun:
    """Every non-crowd ground-truth object with a mask: its box is the prompt, its mask the answer key.
    ``stored``: what the run row records beside the results (``imgsz``, ``snapshot_id``)."""
    from pycocotools import mask as mask_utils

    from mleval.core.masks import compress_rle, polygons_to_rle
    from mleval.images.decode import decode_rgb

    sizes = {i["id"]: (i["height"], i["width"]) for i in images}
    by_image: dict[str, Detections] = {}
    skipped = 0
    for image_id, objects in truth.items():
        h, w = sizes[image_id]
        boxes = np.clip(objects.xyxy, 0, [w, h, w, h])
        usable = np.array([objects.segment(k) is not None for k in range(len(objects))], bool) & ~objects.iscrowd \
            & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        skipped += int((~usable).sum())
        if usable.any():
            by_image[image_id] = replace(objects, xyxy=boxes).filter(usable)
    if not by_image:
        raise ValidationError("evaluation.ground_truth", f"no ground-truth masks on the {split} images of dataset "
                              f"{ds.name!r}; SAM 2 is scored against masks (polygons or RLE) of annotated objects.")
    predictor = ws.models.load(record).predictor
    ious, labels, predictions = [], [], []
    image_ids = list(by_image)
    for start in range(0, len(image_ids), batch_size):
        batch = image_ids[start:start + batch_size]
        rgbs = [decode_rgb(ws.images.read_bytes(i)) for i in batch]
        answers = predictor.predict(rgbs, boxes=[by_image[i].xyxy for i in batch],
                                    labels=[list(by_image[i].class_names) for i in batch])
        for image_id, answer in zip(batch, answers):
            h, w = sizes[image_id]
            objects = by_image[image_id]
            for k, dt_rle in enumerate(answer.detections.masks_rle):
                segment = objects.segment(k)
                gt_rle = compress_rle(segment["rle"]) if "rle" in segment else \
                    polygons_to_rle(segment["polygons"], height=h, width=w)
                pair = [{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in (dt_rle, gt_rle)]
                ious.append(float(mask_utils.iou([pair[0]], [pair[1]], [0])[0, 0]))
                labels.append(objects.class_names[k])
            predictions.append(answer)
    ious_arr, labels_arr = np.asarray(ious), np.asarray(labels)

    def scores(keep: np.ndarray) -> dict:
        v = ious_arr[keep]
        return {"mean_iou": float(v.mean()), "recall50": float((v >= 0.5).mean()),
                "recall75": float((v >= 0.75).mean()), "num_gt": int(keep.sum())}

    summary = {**scores(np.ones(len(ious), bool)), **timing_summary(predictions), "num_images": len(by_image),
               "skipped_ground_truths": skipped}
    per_class = [{"class_name": n, **scores(labels_arr == n)} for n in dict.fromkeys(labels)]
    config = {"model": record.name, "dataset": ds.name, "split": split, "iou_type": "segm",
              "prompts": "ground-truth boxes", "batch_size": batch_size}
    results = {"per_class": per_class}
    return store_run(ws, record, ds, split, "segm", key, config, summary, results, None, None, **(stored or {}))
