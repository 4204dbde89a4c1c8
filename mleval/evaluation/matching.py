"""Per-object COCO matches: which ground truth each detection matched at each IoU threshold.

Same result as the ``dtMatches``/``gtMatches``/``dtIgnore`` of pycocotools' ``evaluateImg`` for
area "all" and the largest ``max_dets``, computed for all images and thresholds at once.

pycocotools walks detections of one (image, class) cell in score order and gives each the
eligible ground truth with the highest IoU >= threshold, preferring non-ignored ground truths
and, among equal IoUs, the later one. That preference is fixed per (detection, ground truth)
pair; only eligibility (a non-crowd ground truth is taken once) changes as matching proceeds. So
pairs are sorted once by preference, and step r handles the r-th detection of every cell
together, picking its first eligible pair: at most ``max_det`` vectorized steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mleval.evaluation._inputs import CocoInputs
from mleval.evaluation.iou import paired_box_iou_xywh
from mleval.evaluation.summary import AREA_RANGES, iou_thresholds


@dataclass(frozen=True)
class CocoMatchArrays:
    """Match results; detection arrays follow the input results order, ground-truth arrays the annotation order."""

    iou_thresholds: np.ndarray  # (T,)
    dt_evaluated: np.ndarray  # (N,) bool: among the top max_det of its image and class
    dt_gt_index: np.ndarray  # (T, N) int64: index of the matched annotation, -1 when unmatched
    dt_ignored: np.ndarray  # (T, N) bool: matched an ignored (crowd) ground truth: neither TP nor FP
    dt_iou: np.ndarray  # (T, N) float64: IoU with the matched ground truth, NaN when unmatched
    dt_best_iou: np.ndarray  # (N,) float64: highest IoU with any same-class ground truth, NaN if none
    dt_best_gt_index: np.ndarray  # (N,) int64, -1 if none
    gt_ignored: np.ndarray  # (G,) bool: crowd (or area outside the "all" range)
    gt_dt_index: np.ndarray  # (T, G) int64: index of the (last) matching detection, -1 when none


def match_coco(inputs: CocoInputs, *, max_det: int) -> CocoMatchArrays:
    """Greedy COCO matching of ``inputs`` (area "all", ``max_det`` detections per image and class)."""
    anns = inputs.gt["annotations"]
    thresholds = iou_thresholds()
    n_t, n_dt, n_gt = len(thresholds), len(inputs.dt), len(anns)

    gt_img = np.fromiter((a["image_id"] for a in anns), np.int64, n_gt)
    gt_cat = np.fromiter((a["category_id"] for a in anns), np.int64, n_gt)
    gt_crowd = np.fromiter((bool(a["iscrowd"]) for a in anns), bool, n_gt)
    gt_area = np.fromiter((a["area"] for a in anns), np.float64, n_gt)
    lo, hi = AREA_RANGES[0]
    gt_ignored = gt_crowd | (gt_area < lo) | (gt_area > hi)  # pycocotools: ignore := iscrowd, plus area range

    n_cat = len(inputs.category_ids)
    gt_cell = np.searchsorted(inputs.image_ids, gt_img) * n_cat + np.searchsorted(inputs.category_ids, gt_cat)
    dt_cell = (
        np.searchsorted(inputs.image_ids, inputs.dt_image_id) * n_cat
        + np.searchsorted(inputs.category_ids, inputs.dt_category_id)
    )

    # Detections by cell, then score (descending), then input order: pycocotools' stable sort.
    dt_order = np.lexsort((np.arange(n_dt), -inputs.dt_score, dt_cell))
    sorted_cells = dt_cell[dt_order]
    group_start = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]]) if n_dt else np.zeros(0, int)
    group_sizes = np.diff(np.r_[group_start, n_dt])
    rank = np.empty(n_dt, dtype=np.int64)
    rank[dt_order] = np.arange(n_dt) - np.repeat(group_start, group_sizes)
    evaluated = rank < max_det

    # Pairs (evaluated detection, ground truth of the same cell), cell by cell, detection-major.
    gt_order = np.argsort(gt_cell, kind="stable")
    gt_cells_sorted = gt_cell[gt_order]
    dets = dt_order[evaluated[dt_order]]
    first = np.searchsorted(gt_cells_sorted, dt_cell[dets], side="left")
    count = np.searchsorted(gt_cells_sorted, dt_cell[dets], side="right") - first
    pair_det = np.repeat(dets, count)
    offsets = np.arange(len(pair_det)) - np.repeat(np.cumsum(count) - count, count)
    pair_gt = gt_order[np.repeat(first, count) + offsets]
    pair_iou = _pair_ious(inputs, anns, pair_det, pair_gt, gt_crowd, dt_cell[pair_det])

    dt_best_iou = np.full(n_dt, np.nan)
    dt_best_gt = np.full(n_dt, -1, dtype=np.int64)
    dt_gt = np.full((n_t, n_dt), -1, dtype=np.int64)
    dt_iou = np.full((n_t, n_dt), np.nan)
    gt_dt = np.full((n_t, n_gt), -1, dtype=np.int64)
    if len(pair_det):
        # Preference within a detection: not ignored, then highest IoU, then later annotation.
        order = np.lexsort((-pair_gt, -pair_iou, gt_ignored[pair_gt], pair_det, rank[pair_det]))
        pair_det, pair_gt, pair_iou = pair_det[order], pair_gt[order], pair_iou[order]
        best = np.lexsort((-pair_gt, -pair_iou, pair_det))
        lead = best[np.r_[True, pair_det[best][1:] != pair_det[best][:-1]]]
        dt_best_iou[pair_det[lead]] = pair_iou[lead]
        dt_best_gt[pair_det[lead]] = pair_gt[lead]
        _greedy(thresholds, rank[pair_det], pair_det, pair_gt, pair_iou, gt_crowd, dt_gt, dt_iou, gt_dt)

    matched = dt_gt >= 0
    dt_ignored = matched & gt_ignored[np.where(matched, dt_gt, 0)]
    return CocoMatchArrays(
        thresholds, evaluated, dt_gt, dt_ignored, dt_iou, dt_best_iou, dt_best_gt, gt_ignored, gt_dt
    )


def _greedy(thresholds, pair_rank, pair_det, pair_gt, pair_iou, gt_crowd, dt_gt, dt_iou, gt_dt) -> None:
    """Fill dt_gt, dt_iou, gt_dt (T, ...) in place; pairs sorted by rank, detection, preference."""
    limit = np.minimum(thresholds, 1 - 1e-10)[:, None]  # pycocotools: iou = min([t, 1 - 1e-10])
    bounds = np.flatnonzero(np.r_[True, pair_rank[1:] != pair_rank[:-1], True])
    none = np.iinfo(np.int64).max
    for start, stop in zip(bounds[:-1], bounds[1:]):
        det, gt, iou = pair_det[start:stop], pair_gt[start:stop], pair_iou[start:stop]
        eligible = (iou[None, :] >= limit) & (gt_crowd[gt][None, :] | (gt_dt[:, gt] < 0))
        position = np.where(eligible, np.arange(stop - start)[None, :], none)
        segments = np.flatnonzero(np.r_[True, det[1:] != det[:-1]])
        chosen = np.minimum.reduceat(position, segments, axis=1)  # (T, detections in this step)
        t_idx, s_idx = np.nonzero(chosen != none)
        pick = chosen[t_idx, s_idx]
        dt_gt[t_idx, det[pick]] = gt[pick]
        dt_iou[t_idx, det[pick]] = iou[pick]
        gt_dt[t_idx, gt[pick]] = det[pick]


def _pair_ious(inputs: CocoInputs, anns, pair_det, pair_gt, gt_crowd, pair_cell) -> np.ndarray:
    if len(pair_det) == 0:
        return np.zeros(0)
    if inputs.iou_type == "bbox":
        gt_boxes = np.asarray([a["bbox"] for a in anns], dtype=np.float64)
        return paired_box_iou_xywh(inputs.dt_bbox_xywh[pair_det], gt_boxes[pair_gt], gt_crowd[pair_gt])
    return _mask_pair_ious(inputs, anns, pair_det, pair_gt, gt_crowd, pair_cell)


def _mask_pair_ious(inputs: CocoInputs, anns, pair_det, pair_gt, gt_crowd, pair_cell) -> np.ndarray:
    """Mask IoU with pycocotools, one call per (image, class) cell: pairs are cell-major, detection-major."""
    from pycocotools import mask as mask_utils

    from mleval.evaluation._inputs import _to_rle

    sizes = {int(im["id"]): (im.get("height"), im.get("width")) for im in inputs.gt["images"]}
    gt_rle: dict[int, dict] = {}
    out = np.empty(len(pair_det))
    cell_starts = np.flatnonzero(np.r_[True, pair_cell[1:] != pair_cell[:-1]])
    for start, stop in zip(cell_starts, np.r_[cell_starts[1:], len(pair_det)]):
        dets = pair_det[start:stop]
        dets = dets[np.r_[True, dets[1:] != dets[:-1]]]
        gts = pair_gt[start : start + (stop - start) // len(dets)]
        for g in gts:
            if g not in gt_rle:
                gt_rle[g] = _to_rle(anns[g], sizes)
        ious = mask_utils.iou(
            [inputs.dt[d]["segmentation"] for d in dets],
            [gt_rle[g] for g in gts],
            [int(gt_crowd[g]) for g in gts],
        )
        out[start:stop] = np.asarray(ious, dtype=np.float64).reshape(-1)
    return out
