"""COCO results lists (predictions): ``[{image_id, category_id, bbox, score, segmentation}]``.

A results list has no images of its own: its ids refer to an instances file. Writing takes
the ids :func:`mleval.formats.coco.write_coco` gives (images ``1..M`` in dataset order,
categories ``1..N``); reading resolves them against the instances JSON they came with.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mleval.core import masks
from mleval.core.errors import ValidationError
from mleval.formats import _files
from mleval.formats._files import FormatError
from mleval.formats.coco import _load_json, _object, _read_categories, _read_instances
from mleval.formats.records import ItemError, LabelledDataset, WriteSummary

__all__ = ["read_coco_results", "write_coco_results"]


def write_coco_results(
    predictions: LabelledDataset, path: str | Path, *, reference: LabelledDataset | None = None
) -> WriteSummary:
    """Write a COCO results list (``image_id, category_id, bbox`` xywh, ``score``, ``segmentation`` RLE)
    that ``pycocotools.coco.COCO(gt).loadRes(path)`` accepts.

    Ids follow :func:`write_coco` of ``reference`` (default: ``predictions`` itself): images are
    matched by ``file_name``, labels by name. Objects without a score, or whose image or label
    is not in ``reference``, are skipped and listed in the summary.
    """
    ref = reference if reference is not None else predictions
    image_ids = {image.file_name: i + 1 for i, image in enumerate(ref.images)}
    category_ids = {name: i + 1 for i, name in enumerate(ref.categories)}
    results, summary = [], WriteSummary(path=Path(path), images=0, objects=0)
    for image in predictions.images:
        image_id = image_ids.get(image.file_name)
        if image_id is None:
            summary.issues.append(
                ItemError(image.file_name, "image is not in the reference dataset; its predictions were skipped")
            )
            continue
        summary.images += 1
        for k, obj in enumerate(image.objects):
            item = f"{image.file_name}: object {k} ({obj.label})"
            if obj.score is None or obj.label not in category_ids:
                reason = "has no score" if obj.score is None else "label is not in the reference categories"
                summary.issues.append(ItemError(item, f"{reason}; skipped"))
                continue
            x1, y1, x2, y2 = obj.bbox_xyxy
            entry: dict[str, Any] = {
                "image_id": image_id,
                "category_id": category_ids[obj.label],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": obj.score,
            }
            if obj.rle is not None:
                entry["segmentation"] = obj.rle
            elif obj.polygons:
                entry["segmentation"] = masks.polygons_to_rle(obj.polygons, height=image.height, width=image.width)
            results.append(entry)
    summary.objects = len(results)
    _files.atomic_write_text(path, json.dumps(results, separators=(",", ":")))
    return summary


def read_coco_results(path: str | Path, *, annotations: str | Path) -> LabelledDataset:
    """Read a COCO results list against the instances file it refers to.

    Returns the images of ``annotations`` (a COCO JSON file, images not checked) with the
    predictions as objects, each with its ``score``.
    """
    gt_node = _files.open_root(annotations)
    gt = _load_json(gt_node, str(annotations))
    if not isinstance(gt, dict) or not isinstance(gt.get("images"), list):
        raise FormatError("coco.instances_file", f"{annotations}: not a COCO instances file (no 'images' list).")
    dataset = LabelledDataset(categories=[])
    names = _read_categories(gt, str(annotations), dataset.categories, dataset.errors)
    gt = {**gt, "annotations": []}
    by_id = _read_instances(gt, str(annotations), names, gt_node.parent, gt_node.parent, None, False, False, dataset)
    results = _load_json(_files.open_root(path), str(path))
    if not isinstance(results, list):
        raise FormatError(
            "coco.results_file",
            f"{path}: a COCO results file is a JSON list of detections; got {type(results).__name__}.",
        )
    rel = Path(path).name
    for i, ann in enumerate(results):
        item = f"{rel}: [{i}]"
        image = by_id.get(ann.get("image_id")) if isinstance(ann, dict) else None
        if image is None or ann.get("category_id") not in names:
            errors_reason = (
                "is not an object"
                if not isinstance(ann, dict)
                else (
                    f"image_id {ann.get('image_id')!r} is not in {Path(annotations).name}"
                    if image is None
                    else f"category_id {ann.get('category_id')!r} is not in its categories"
                )
            )
            dataset.errors.append(ItemError(item, errors_reason))
            continue
        try:
            if not isinstance(ann.get("score"), (int, float)) or not math.isfinite(ann["score"]):
                raise ValidationError("coco.score", f"a result needs a finite 'score', got {ann.get('score')!r}")
            image.objects.append(_object(ann, names[ann["category_id"]], image))
        except (ValidationError, ValueError, TypeError) as exc:
            dataset.errors.append(ItemError(item, str(exc)))
    return dataset
