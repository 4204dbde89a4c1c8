"""Reading and checking COCO ground truth and results before any engine sees them.

Engines fail late and vaguely (or silently drop data) on bad input; here every rule names the
record and the value that broke it. The caller's dicts are never modified: records that need a
default (``iscrowd``, ``area``) or a conversion (polygon results -> RLE) are copied.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any, Union

import numpy as np

from mleval.core.errors import ValidationError

CocoSource = Union[Mapping[str, Any], str, "os.PathLike[str]"]
ResultsSource = Union[Sequence[Mapping[str, Any]], str, "os.PathLike[str]"]

IOU_TYPES = ("bbox", "segm")


@dataclass(frozen=True)
class CocoInputs:
    """Checked inputs. ``gt``/``dt`` are ready for an engine; arrays are aligned with ``dt``."""

    iou_type: str
    gt: dict[str, Any]
    dt: list[dict[str, Any]]
    image_ids: np.ndarray  # (I,) sorted
    category_ids: np.ndarray  # (K,) sorted
    category_names: dict[int, str]
    dt_image_id: np.ndarray  # (N,) int64
    dt_category_id: np.ndarray  # (N,) int64
    dt_score: np.ndarray  # (N,) float64
    dt_bbox_xywh: np.ndarray | None  # (N, 4) float64; None for segm results without boxes


def load_inputs(gt: CocoSource, dt: ResultsSource, *, iou_type: str) -> CocoInputs:
    """Read (from a path if given) and check ground truth and results for ``iou_type``."""
    if iou_type not in IOU_TYPES:
        raise ValidationError(
            "coco.iou_type", f"iou_type {iou_type!r} is not supported; use one of {', '.join(IOU_TYPES)}."
        )
    gt_dict = _read_json(gt, "ground truth") if isinstance(gt, (str, os.PathLike)) else gt
    dt_list = _read_json(dt, "results") if isinstance(dt, (str, os.PathLike)) else dt
    gt_checked, image_ids, category_ids, names, sizes = _check_gt(gt_dict, iou_type)
    dt_checked, arrays = _check_dt(dt_list, iou_type, image_ids, category_ids, sizes)
    return CocoInputs(iou_type, gt_checked, dt_checked, np.unique(image_ids), np.unique(category_ids), names, *arrays)


def _read_json(path: str | os.PathLike[str], what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise ValidationError("coco.path", f"cannot read {what} file {os.fspath(path)!r}: {exc}.") from exc
    except json.JSONDecodeError as exc:
        raise ValidationError("coco.json", f"{what} file {os.fspath(path)!r} is not valid JSON: {exc}.") from exc


def _column(records: Sequence[Mapping[str, Any]], key: str, dtype: Any, what: str) -> np.ndarray:
    """One numeric field of every record as an array, or an error naming the first bad record."""
    try:
        return np.fromiter(map(itemgetter(key), records), dtype=dtype, count=len(records))
    except (KeyError, TypeError, ValueError, OverflowError):
        pass
    for i, r in enumerate(records):
        value = r.get(key) if isinstance(r, Mapping) else None
        try:
            if value is None or isinstance(value, (str, bytes)):
                raise TypeError
            np.asarray(value, dtype=dtype).item()
        except (TypeError, ValueError, OverflowError):
            found = "missing" if not isinstance(r, Mapping) or key not in r else repr(value)
            raise ValidationError(
                f"coco.{what}_{key}",
                f"{what} {i} needs a numeric {key!r}, found {found}; fix or drop that {what}.",
            ) from None
    raise ValidationError(f"coco.{what}_{key}", f"every {what} needs a numeric {key!r}.")


def _field(records: Sequence[Mapping[str, Any]], key: str, what: str, needed_for: str) -> list[Any]:
    """``[r[key] for r in records]``, or an error naming the first record without it."""
    try:
        return list(map(itemgetter(key), records))
    except (KeyError, TypeError):
        i = next(i for i, r in enumerate(records) if not isinstance(r, Mapping) or key not in r)
        raise ValidationError(
            f"coco.{what}_{key}", f"{what} {i} has no {key!r}, needed for {needed_for}; add it or drop that {what}."
        ) from None


def _unique(ids: np.ndarray, what: str) -> None:
    values, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        dup = values[counts > 1]
        raise ValidationError(
            f"coco.{what}_id_unique",
            f"{what} ids must be unique; id {int(dup[0])} appears {int(counts[counts > 1][0])} times "
            f"({len(dup)} duplicated ids in all); renumber them.",
        )


def _unknown(values: np.ndarray, allowed: np.ndarray, what: str, field: str, fix: str) -> None:
    bad = ~np.isin(values, allowed)
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise ValidationError(
            f"coco.{what}_{field}_known",
            f"{what} {first} has {field} {int(values[first])}, which is not in the ground truth "
            f"({int(bad.sum())} {what}s affected); {fix}",
        )


def _records(value: Any, key: str) -> list[Any]:
    records = value.get(key) if isinstance(value, Mapping) else None
    if not isinstance(records, (list, tuple)):
        raise ValidationError(
            "coco.gt_format",
            f"ground truth needs a list under {key!r}; pass a COCO dataset dict or the path of its JSON file.",
        )
    if not all(isinstance(r, Mapping) for r in records):
        raise ValidationError("coco.gt_format", f"every entry of ground truth {key!r} must be a dict.")
    return list(records)


def _check_gt(gt: Any, iou_type: str):
    images = _records(gt, "images")
    categories = _records(gt, "categories")
    anns = _records(gt, "annotations")
    if not images or not categories or not anns:
        empty = [k for k, v in (("images", images), ("categories", categories), ("annotations", anns)) if not v]
        raise ValidationError(
            "coco.gt_empty",
            f"ground truth has no {' and no '.join(empty)}; there is nothing to evaluate against.",
        )
    image_ids = _column(images, "id", np.int64, "image")
    category_ids = _column(categories, "id", np.int64, "category")
    ann_ids = _column(anns, "id", np.int64, "annotation")
    _unique(image_ids, "image")
    _unique(category_ids, "category")
    _unique(ann_ids, "annotation")
    ann_images = _column(anns, "image_id", np.int64, "annotation")
    _unknown(ann_images, image_ids, "annotation", "image_id", "add the image to 'images' or drop the annotation.")
    ann_cats = _column(anns, "category_id", np.int64, "annotation")
    _unknown(ann_cats, category_ids, "annotation", "category_id", "add the category or drop the annotation.")
    sizes = {int(im["id"]): (im.get("height"), im.get("width")) for im in images}
    if iou_type == "bbox":
        _check_boxes(_field(anns, "bbox", "annotation", "iou_type='bbox'"), "annotation")
    else:
        _field(anns, "segmentation", "annotation", "iou_type='segm'")
        for i, a in enumerate(anns):
            _needs_size(a, sizes, f"annotation {i}")

    filled = []
    for a in anns:
        if "iscrowd" in a and "area" in a:
            filled.append(a)
            continue
        a = dict(a)
        a.setdefault("iscrowd", 0)
        if "area" not in a:  # pycocotools reads 'area' for the area ranges and fails without it
            a["area"] = _box_area(a["bbox"]) if iou_type == "bbox" else _mask_area(a, sizes)
        filled.append(a)
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in categories}
    checked = {"images": images, "annotations": filled, "categories": categories}
    return checked, image_ids, category_ids, names, sizes


def _check_boxes(boxes: list[Any], what: str) -> np.ndarray:
    n = len(boxes)
    try:
        if n and set(map(len, boxes)) != {4}:
            raise ValueError
        arr = np.fromiter(chain.from_iterable(boxes), dtype=np.float64, count=4 * n).reshape(n, 4)
    except (TypeError, ValueError):
        for i, b in enumerate(boxes):
            try:
                ok = len(b) == 4 and np.asarray(b, dtype=np.float64).shape == (4,)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValidationError(
                    f"coco.{what}_bbox", f"{what} {i} has bbox {b!r}; a COCO box is [x, y, width, height]."
                ) from None
        raise
    bad = ~np.isfinite(arr).all(axis=1) | (arr[:, 2] < 0) | (arr[:, 3] < 0)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError(
            f"coco.{what}_bbox",
            f"{what} {i} has bbox {arr[i].tolist()}; width and height must be finite and >= 0 "
            f"([x, y, width, height], not [x1, y1, x2, y2]) ({int(bad.sum())} {what}s affected).",
        )
    return arr


def _needs_size(record: Mapping[str, Any], sizes: dict, what: str) -> None:
    segm = record["segmentation"]
    compressed = isinstance(segm, Mapping) and not isinstance(segm.get("counts"), list)
    h, w = sizes.get(int(record["image_id"]), (None, None))
    if not compressed and (h is None or w is None):
        raise ValidationError(
            "coco.image_size",
            f"{what} has a polygon or uncompressed RLE on image {record['image_id']}, whose 'height'/'width' "
            "are missing; add them to the image record.",
        )


def _box_area(bbox: Sequence[float]) -> float:
    return float(bbox[2]) * float(bbox[3])


def _to_rle(record: Mapping[str, Any], sizes: dict) -> dict[str, Any]:
    """pycocotools' annToRLE: polygons and uncompressed RLE -> compressed RLE with str counts."""
    from pycocotools import mask as mask_utils

    segm = record["segmentation"]
    if isinstance(segm, Mapping) and not isinstance(segm.get("counts"), list):
        rle = dict(segm)
    else:
        h, w = sizes[int(record["image_id"])]
        rle = mask_utils.frPyObjects(segm, h, w)
        rle = mask_utils.merge(rle) if isinstance(segm, list) else rle
    if isinstance(rle["counts"], bytes):
        rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _mask_area(record: Mapping[str, Any], sizes: dict) -> float:
    from pycocotools import mask as mask_utils

    rle = _to_rle(record, sizes)
    return float(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode("ascii")}))


def _check_dt(dt: Any, iou_type: str, image_ids: np.ndarray, category_ids: np.ndarray, sizes: dict):
    if isinstance(dt, Mapping) or not isinstance(dt, Sequence) or isinstance(dt, (str, bytes)):
        raise ValidationError(
            "coco.results_format",
            "results must be a list of dicts {image_id, category_id, bbox, score} (COCO results format) "
            f"or the path of such a JSON file, got {type(dt).__name__}.",
        )
    dt = list(dt)
    if not set(map(type, dt)) <= {dict}:
        bad = next((i for i, d in enumerate(dt) if not isinstance(d, Mapping)), None)
        if bad is not None:
            raise ValidationError(
                "coco.results_format", f"detection {bad} is a {type(dt[bad]).__name__}, not a dict."
            )
    img = _column(dt, "image_id", np.int64, "detection")
    _unknown(img, image_ids, "detection", "image_id", "evaluate against the ground truth of the same split, "
             "or drop detections on images it does not list.")
    cat = _column(dt, "category_id", np.int64, "detection")
    _unknown(cat, category_ids, "detection", "category_id", "map predicted classes to the ground truth's "
             "category ids (e.g. YOLO index 0 -> COCO id 1) before evaluating.")
    score = _column(dt, "score", np.float64, "detection")
    if not np.all(np.isfinite(score)):
        i = int(np.flatnonzero(~np.isfinite(score))[0])
        raise ValidationError("coco.detection_score", f"detection {i} has score {score[i]!r}; scores must be finite.")

    boxes: np.ndarray | None = None
    if iou_type == "bbox":
        boxes = _check_boxes(_field(dt, "bbox", "detection", "iou_type='bbox'"), "detection")
    else:
        _field(dt, "segmentation", "detection", "iou_type='segm'")
        converted = []
        for i, d in enumerate(dt):
            _needs_size(d, sizes, f"detection {i}")
            segm = d["segmentation"]
            if not isinstance(segm, Mapping) or isinstance(segm.get("counts"), (list, bytes)):
                d = {**d, "segmentation": _to_rle(d, sizes)}
            converted.append(d)
        dt = converted
        if dt and all("bbox" in d for d in dt):
            boxes = _check_boxes([d["bbox"] for d in dt], "detection")
    return dt, (img, cat, score, boxes)

