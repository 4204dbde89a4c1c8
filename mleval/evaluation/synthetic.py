"""Synthetic COCO ground truth and detector results, for tests, benchmarks and demos without data.

Detections are a mix of jittered copies of ground truths (mostly the right class, higher scores)
and random boxes (lower scores), so AP lands in a realistic middle range. Ids are deliberately
not positions (image ids start at 100 and step by 3) to catch code that confuses the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def make_coco_case(
    *,
    num_images: int = 100,
    num_classes: int = 5,
    gt_per_image: float = 7.4,
    dets_per_image: int = 20,
    crowd_fraction: float = 0.02,
    copy_fraction: float = 0.5,
    images_without_gt: float = 0.0,
    images_without_dets: float = 0.0,
    score_decimals: int | None = None,
    masks: bool = False,
    image_size_wh: tuple[int, int] = (640, 480),
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return ``(gt, dt)``: a COCO dataset dict and a COCO results list.

    ``num_images * gt_per_image`` boxes spread over the images that have ground truth;
    ``dets_per_image`` detections on each image that has detections; ``copy_fraction`` of them
    jitter a ground truth of their image. ``score_decimals`` rounds scores to force ties.
    ``masks`` adds polygon segmentations (RLE for crowd regions) and RLE detection masks.
    """
    rng = np.random.default_rng(seed)
    width, height = image_size_wh
    image_ids = 100 + 3 * np.arange(num_images)
    images = [{"id": int(i), "width": width, "height": height, "file_name": f"{i}.jpg"} for i in image_ids]
    categories = [{"id": c, "name": f"class_{c}"} for c in range(1, num_classes + 1)]

    with_gt = image_ids[rng.random(num_images) >= images_without_gt]
    n_gt = int(round(num_images * gt_per_image)) if len(with_gt) else 0
    gt_img = np.sort(rng.choice(with_gt, n_gt)) if n_gt else np.zeros(0, np.int64)
    gt_box = _random_boxes(rng, n_gt, width, height)
    gt_cls = rng.integers(1, num_classes + 1, n_gt)
    crowd = rng.random(n_gt) < crowd_fraction
    gt_ids = 1 + 2 * rng.permutation(n_gt)
    annotations = []
    # Input order matters to COCO (ties, duplicate boxes): do not hand it out grouped by image.
    # Records are built in their final order so that memory order matches list order, as after json.load.
    for j in rng.permutation(n_gt):
        x, y, w, h = gt_box[j].tolist()
        ann = {
            "id": int(gt_ids[j]), "image_id": int(gt_img[j]), "category_id": int(gt_cls[j]),
            "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(crowd[j]),
        }  # fmt: skip
        if masks:
            polygon = _polygon(gt_box[j])
            ann["segmentation"] = _rle([polygon], height, width) if crowd[j] else [polygon]
            ann["area"] = float(_mask_area(ann["segmentation"], height, width))
        annotations.append(ann)

    with_dets = image_ids[rng.random(num_images) >= images_without_dets]
    n_dt = len(with_dets) * dets_per_image
    dt_img = np.repeat(with_dets, dets_per_image)
    dt_box = _random_boxes(rng, n_dt, width, height)
    dt_cls = rng.integers(1, num_classes + 1, n_dt)
    score = rng.random(n_dt) * 0.8

    # Jittered copies: each picks a random ground truth of its own image, if it has any.
    first = np.searchsorted(gt_img, dt_img, side="left")
    count = np.searchsorted(gt_img, dt_img, side="right") - first
    copy = (rng.random(n_dt) < copy_fraction) & (count > 0)
    src = first[copy] + (rng.random(copy.sum()) * count[copy]).astype(np.int64)
    jitter = rng.normal(0.0, 0.08, (len(src), 4)) * gt_box[src][:, [2, 3, 2, 3]]
    dt_box[copy] = gt_box[src] + jitter
    dt_box[:, 2:] = np.abs(dt_box[:, 2:]) + 1.0
    dt_cls[copy] = np.where(rng.random(len(src)) < 0.9, gt_cls[src], dt_cls[copy])
    score[copy] = 0.3 + 0.7 * rng.random(len(src))
    if score_decimals is not None:
        score = np.round(score, score_decimals)

    results = []
    for k in rng.permutation(n_dt):
        det = {
            "image_id": int(dt_img[k]), "category_id": int(dt_cls[k]),
            "bbox": dt_box[k].tolist(), "score": float(score[k]),
        }  # fmt: skip
        if masks:
            det["segmentation"] = _rle([_polygon(dt_box[k])], height, width)
        results.append(det)
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _random_boxes(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    """(n, 4) xywh boxes inside the image, sizes log-uniform from 4 px to most of the image (all area ranges)."""
    w = np.exp(rng.uniform(np.log(4), np.log(width * 0.7), n))
    h = np.exp(rng.uniform(np.log(4), np.log(height * 0.7), n))
    x = rng.random(n) * (width - w)
    y = rng.random(n) * (height - h)
    return np.stack([x, y, w, h], axis=1)


def _polygon(box_xywh: np.ndarray) -> list[float]:
    """A hexagon inscribed in the box, so masks and boxes overlap differently."""
    x, y, w, h = box_xywh.tolist()
    xs = [x + 0.25 * w, x + 0.75 * w, x + w, x + 0.75 * w, x + 0.25 * w, x]
    ys = [y, y, y + 0.5 * h, y + h, y + h, y + 0.5 * h]
    return [v for point in zip(xs, ys) for v in point]


def _rle(polygons: list[list[float]], height: int, width: int) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _mask_area(segmentation: Any, height: int, width: int) -> float:
    from pycocotools import mask as mask_utils

    rle = segmentation if isinstance(segmentation, dict) else _rle(segmentation, height, width)
    return float(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode("ascii")}))
