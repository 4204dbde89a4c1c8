"""coco_evaluate against pycocotools, the reference: stats, precision and recall within 1e-9."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from mleval.evaluation import coco_evaluate

from ._reference import mixed_case, reference_eval, to_rle, uncompressed_rle

TOL = 1e-9


def assert_same_as_reference(result, reference) -> None:
    assert result.precision.shape == reference.eval["precision"].shape
    assert result.recall.shape == reference.eval["recall"].shape
    assert np.abs(result.stats - reference.stats).max() <= TOL
    assert np.abs(result.precision - reference.eval["precision"]).max() <= TOL
    assert np.abs(result.recall - reference.eval["recall"]).max() <= TOL


@pytest.mark.parametrize("seed", range(5))
def test_bbox_matches_pycocotools_on_mixed_cases(seed):
    gt, dt = mixed_case(seed)
    assert_same_as_reference(coco_evaluate(gt, dt), reference_eval(gt, dt))


@pytest.mark.parametrize("max_dets", [(1, 10, 100), (1, 5, 20), (2, 3, 7)])
def test_max_dets_limits_match_pycocotools(max_dets):
    # 25 detections per image: the limits below 25 cut detections off.
    gt, dt = mixed_case(11, score_decimals=2)
    result = coco_evaluate(gt, dt, max_dets=max_dets)
    assert_same_as_reference(result, reference_eval(gt, dt, max_dets=max_dets))
    if 100 not in max_dets:
        assert result.stats[0] == -1  # pycocotools' AP reads maxDets == 100 only


def test_many_tied_scores_match_pycocotools():
    gt, dt = mixed_case(3, score_decimals=0, dets_per_image=12)  # scores 0.0 or 1.0 only
    assert_same_as_reference(coco_evaluate(gt, dt), reference_eval(gt, dt))


def test_duplicate_ground_truth_boxes_match_pycocotools():
    gt, dt = mixed_case(4, crowd_fraction=0.0)
    copies = [dict(a, id=a["id"] + 100_000) for a in gt["annotations"][::3]]
    gt["annotations"] = gt["annotations"] + copies  # equal IoUs: pycocotools takes the later one
    assert_same_as_reference(coco_evaluate(gt, dt), reference_eval(gt, dt))


@pytest.mark.parametrize("seed", range(3))
def test_segm_polygons_and_rle_match_pycocotools(seed):
    gt, dt = mixed_case(seed, masks=True, num_images=25, dets_per_image=15, crowd_fraction=0.15)
    h, w = gt["images"][0]["height"], gt["images"][0]["width"]
    for i, ann in enumerate(gt["annotations"]):
        if ann["iscrowd"] and i % 2:
            ann["segmentation"] = uncompressed_rle(ann["segmentation"])  # crowd in uncompressed form
        elif not ann["iscrowd"] and i % 3 == 0:
            ann["segmentation"] = to_rle(ann["segmentation"], h, w)  # compressed RLE ground truth
    segm_dt = [{k: v for k, v in d.items() if k != "bbox"} for d in dt]  # masks only
    assert_same_as_reference(
        coco_evaluate(gt, segm_dt, iou_type="segm"), reference_eval(gt, segm_dt, iou_type="segm")
    )
    # Results with boxes too: pycocotools then takes a detection's area from its box.
    assert_same_as_reference(coco_evaluate(gt, dt, iou_type="segm"), reference_eval(gt, dt, iou_type="segm"))


def test_polygon_detections_are_converted_like_pycocotools_converts_ground_truth():
    gt, dt = mixed_case(5, masks=True, num_images=10, dets_per_image=8)
    h, w = gt["images"][0]["height"], gt["images"][0]["width"]
    polygons = []
    for d in dt:
        x, y, bw, bh = d["bbox"]
        polygons.append({**d, "segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]})
    as_rle = [{**d, "segmentation": to_rle(d["segmentation"], h, w)} for d in polygons]
    ours = coco_evaluate(gt, polygons, iou_type="segm")
    assert_same_as_reference(ours, reference_eval(gt, as_rle, iou_type="segm"))


def test_paths_give_the_same_result_as_objects(tmp_path):
    gt, dt = mixed_case(6)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    from_paths = coco_evaluate(tmp_path / "gt.json", str(tmp_path / "dt.json"))
    np.testing.assert_array_equal(from_paths.precision, coco_evaluate(gt, dt).precision)


def test_no_detections_gives_zero_where_ground_truth_exists():
    # pycocotools cannot load an empty results list; the expected arrays follow its accumulate.
    gt, _ = mixed_case(7)
    result = coco_evaluate(gt, [])
    with_gt = np.isin(result.category_ids, [a["category_id"] for a in gt["annotations"] if not a["iscrowd"]])
    all_area = result.precision[:, :, :, 0, :]
    assert np.all(all_area[:, :, with_gt] == 0) and np.all(all_area[:, :, ~with_gt] == -1)
    assert np.all(result.recall[:, with_gt, 0, :] == 0)
    assert result.stats[0] == 0.0 and result.stats[8] == 0.0
    matches = result.matches()
    assert matches.detections.num_rows == 0
    ground_truths = matches.ground_truths.to_pydict()
    assert ground_truths["matched_50"] == [None if crowd else False for crowd in ground_truths["ignored"]]
    overall = result.precision_recall_f1().to_pydict()
    assert overall["recall"][0] == 0.0 and overall["best_confidence"][0] is None
    assert np.isnan(result.mean_iou())


def test_inputs_are_not_modified():
    gt, dt = mixed_case(8, masks=True, num_images=8, dets_per_image=5)
    for ann in gt["annotations"]:
        del ann["area"], ann["iscrowd"]  # defaults get filled in, on copies
    gt_before, dt_before = copy.deepcopy(gt), copy.deepcopy(dt)
    for iou_type in ("bbox", "segm"):
        result = coco_evaluate(gt, dt, iou_type=iou_type)
        result.matches()
    assert gt == gt_before and dt == dt_before


def test_missing_area_and_iscrowd_default_to_box_area_and_zero():
    gt, dt = mixed_case(9, crowd_fraction=0.0)
    bare = copy.deepcopy(gt)
    for ann in bare["annotations"]:
        del ann["area"], ann["iscrowd"]
    np.testing.assert_array_equal(coco_evaluate(bare, dt).precision, coco_evaluate(gt, dt).precision)
