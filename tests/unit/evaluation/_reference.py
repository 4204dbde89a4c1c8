"""Helpers shared by the evaluation tests: pycocotools as the reference, and case builders."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mleval.evaluation.synthetic import make_coco_case


def reference_eval(
    gt: dict, dt: list[dict], *, iou_type: str = "bbox", max_dets: Sequence[int] = (1, 10, 100)
) -> COCOeval:
    """pycocotools evaluate + accumulate + summarize on deep copies (it writes into its inputs)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dt))
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.params.maxDets = list(max_dets)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def mixed_case(seed: int, **overrides: Any) -> tuple[dict, list[dict]]:
    """A case with every awkward feature: crowds, tied scores, images without ground truth or
    detections, a class only in the detections, a class only in the ground truth, a class in neither.
    """
    options = dict(
        num_images=40, num_classes=6, gt_per_image=5.0, dets_per_image=25, crowd_fraction=0.08,
        images_without_gt=0.15, images_without_dets=0.15, score_decimals=1, seed=seed,
    )  # fmt: skip
    options.update(overrides)
    gt, dt = make_coco_case(**options)
    gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] not in (2, 6)]  # 2: dt only
    dt = [d for d in dt if d["category_id"] not in (3, 6)]  # 3: gt only; 6: neither
    return gt, dt


def uncompressed_rle(rle: dict) -> dict:
    """Compressed RLE -> COCO's uncompressed form (run lengths, column-major), as crowd annotations use."""
    mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
    flat = mask.flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.r_[0, change, flat.size]
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:  # counts start with a run of zeros
        runs = [0] + runs
    return {"size": list(rle["size"]), "counts": runs}


def to_rle(segmentation: Any, height: int, width: int) -> dict:
    """Polygons / uncompressed RLE -> compressed RLE with str counts."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        return segmentation
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
