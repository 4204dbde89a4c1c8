"""Per-object matches: consistent with pycocotools' evalImgs, and right on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mleval.evaluation import coco_evaluate

from ._reference import mixed_case, reference_eval

TAGS = [f"{t}" for t in range(50, 100, 5)]


def check_against_eval_imgs(result, reference) -> None:
    """Every (image, class) record of area 'all' at the largest max_dets, detection by detection."""
    dets = result.matches().detections.to_pydict()
    gts = result.matches().ground_truths.to_pydict()
    gt_row = {gid: i for i, gid in enumerate(gts["gt_id"])}
    n_img, n_area = len(reference.params.imgIds), len(reference.params.areaRng)
    evaluated = set()
    for k in range(len(reference.params.catIds)):
        for record in reference.evalImgs[k * n_area * n_img : k * n_area * n_img + n_img]:  # area 'all'
            if record is None:
                continue
            for j, dt_id in enumerate(record["dtIds"]):
                i = dt_id - 1  # loadRes numbers results from 1, in input order
                evaluated.add(i)
                for t, tag in enumerate(TAGS):
                    assert (dets[f"gt_id_{tag}"][i] or 0) == int(record["dtMatches"][t, j])
                    ignored = bool(record["dtIgnore"][t, j])
                    assert (dets[f"tp_{tag}"][i] is None) == ignored
                    if not ignored:
                        assert dets[f"tp_{tag}"][i] == bool(record["dtMatches"][t, j])
            for j, gt_id in enumerate(record["gtIds"]):
                g = gt_row[gt_id]
                assert gts["ignored"][g] == bool(record["gtIgnore"][j])
                for t, tag in enumerate(TAGS):
                    det = gts[f"det_index_{tag}"][g]
                    assert (0 if det is None else det + 1) == int(record["gtMatches"][t, j])
    assert evaluated == {i for i, e in enumerate(dets["evaluated"]) if e}


@pytest.mark.parametrize("seed", range(3))
def test_bbox_matches_agree_with_pycocotools_eval_imgs(seed):
    gt, dt = mixed_case(seed)
    check_against_eval_imgs(coco_evaluate(gt, dt), reference_eval(gt, dt))


def test_matches_respect_a_small_max_dets():
    gt, dt = mixed_case(12, score_decimals=2)
    check_against_eval_imgs(coco_evaluate(gt, dt, max_dets=(1, 3, 7)), reference_eval(gt, dt, max_dets=(1, 3, 7)))


def test_matches_with_duplicate_ground_truths_agree_with_pycocotools():
    gt, dt = mixed_case(13, crowd_fraction=0.0)
    gt["annotations"] += [dict(a, id=a["id"] + 100_000) for a in gt["annotations"][::2]]
    check_against_eval_imgs(coco_evaluate(gt, dt), reference_eval(gt, dt))


def test_segm_matches_agree_with_pycocotools_eval_imgs():
    gt, dt = mixed_case(1, masks=True, num_images=15, dets_per_image=12, crowd_fraction=0.15)
    check_against_eval_imgs(coco_evaluate(gt, dt, iou_type="segm"), reference_eval(gt, dt, iou_type="segm"))


def tiny_case():
    """Image 1: cat 1 gt A [0,0,10,10] (id 7), crowd C [100,100,50,50] (id 8); cat 2 gt B [50,0,10,10] (id 9).
    Image 2: no ground truth. Category 3 has no ground truth."""
    gt = {
        "images": [{"id": 1, "width": 200, "height": 200}, {"id": 2, "width": 200, "height": 200}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "cow"}],
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 8, "image_id": 1, "category_id": 1, "bbox": [100, 100, 50, 50], "area": 2500, "iscrowd": 1},
            {"id": 9, "image_id": 1, "category_id": 2, "bbox": [50, 0, 10, 10], "area": 100, "iscrowd": 0},
        ],
    }
    dt = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 8], "score": 0.9},  # 0: IoU 0.8 with A
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.8},  # 1: IoU 1 with A, A taken
        {"image_id": 1, "category_id": 1, "bbox": [110, 110, 10, 10], "score": 0.7},  # 2: inside the crowd
        {"image_id": 1, "category_id": 2, "bbox": [55, 0, 10, 10], "score": 0.6},  # 3: IoU 50/150 with B
        {"image_id": 2, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.5},  # 4: nothing to match
    ]
    return gt, dt


def test_tiny_case_matches_by_hand():
    gt, dt = tiny_case()
    result = coco_evaluate(gt, dt)
    dets = result.matches().detections.to_pydict()
    gts = result.matches().ground_truths.to_pydict()
    assert dets["det_index"] == [0, 1, 2, 3, 4]
    assert dets["gt_id_50"] == [7, None, 8, None, None]
    assert dets["tp_50"] == [True, False, None, False, False]  # crowd match: not counted
    assert dets["iou_50"][0] == pytest.approx(0.8)
    assert dets["iou_50"][2] == pytest.approx(1.0)  # crowd IoU = intersection / detection area
    assert dets["gt_id_85"] == [None, 7, 8, None, None]  # at 0.85 the first misses, the second takes A
    assert dets["tp_85"] == [False, True, None, False, False]
    assert dets["best_gt_id"] == [7, 7, 8, 9, None]
    assert dets["best_iou"][:2] == pytest.approx([0.8, 1.0])
    assert dets["best_iou"][3] == pytest.approx(50 / 150)
    assert dets["best_iou"][4] is None
    assert gts["gt_id"] == [7, 8, 9]
    assert gts["ignored"] == [False, True, False]
    assert gts["matched_50"] == [True, None, False]
    assert gts["det_index_50"] == [0, 2, None]
    assert gts["det_index_85"] == [1, 2, None]


def test_tiny_case_per_class_table_by_hand():
    gt, dt = tiny_case()
    table = coco_evaluate(gt, dt).per_class().to_pydict()
    assert table["category_id"] == [1, 2, 3]
    assert table["name"] == ["cat", "dog", "cow"]
    # cat: at IoU 0.50..0.80 the first detection finds A (precision 1); at 0.85..0.95 the second does,
    # after one false positive: precision 1/2 from recall 0 to 1 -> AP = (7 * 1 + 3 * 0.5) / 10.
    assert table["ap"][0] == pytest.approx(0.85)
    assert table["ap50"][0] == pytest.approx(1.0) and table["ap75"][0] == pytest.approx(1.0)
    assert table["ar"][0] == pytest.approx(1.0)
    assert table["ap"][1] == 0.0 and table["ar"][1] == 0.0  # dog: the one detection has IoU 1/3
    assert math.isnan(table["ap"][2])  # cow: no ground truth
    assert table["num_gt"] == [1, 1, 0]  # the crowd region does not count
    assert table["num_detections"] == [3, 1, 1]


def test_tiny_case_precision_recall_f1_by_hand():
    gt, dt = tiny_case()
    table = coco_evaluate(gt, dt).precision_recall_f1(iou_threshold=0.5, confidence_threshold=0.55).to_pydict()
    assert table["name"] == ["all", "cat", "dog", "cow"]
    # kept (score >= 0.55): 0 TP, 1 FP, 3 FP (detection 2 matched the crowd: not counted).
    overall = {k: v[0] for k, v in table.items()}
    assert (overall["tp"], overall["fp"], overall["fn"]) == (1, 2, 1)
    assert overall["precision"] == pytest.approx(1 / 3)
    assert overall["recall"] == pytest.approx(1 / 2)
    assert overall["f1"] == pytest.approx(2 / 5)
    # Best pooled threshold is 0.9 (only detection 0): P 1, R 1/2, F1 2/3.
    assert overall["best_confidence"] == 0.9
    assert (overall["best_precision"], overall["best_recall"]) == (1.0, 0.5)
    assert overall["best_f1"] == pytest.approx(2 / 3)
    assert table["best_f1"][1] == 1.0 and table["best_confidence"][1] == 0.9
    assert table["best_f1"][2] == 0.0  # dog never right
    assert table["best_confidence"][3] == 0.5 and table["num_gt"][3] == 0


def test_tiny_case_mean_iou_and_confusion_matrix():
    gt, dt = tiny_case()
    result = coco_evaluate(gt, dt)
    assert result.mean_iou(iou_threshold=0.5) == pytest.approx(0.8)  # the crowd match is not a TP
    assert result.mean_iou(iou_threshold=0.85) == pytest.approx(1.0)
    matrix = result.confusion_matrix(iou_threshold=0.45, confidence_threshold=0.25).matrix
    expected = np.array(
        [
            [1, 0, 0, 2],  # cat predictions: one on A, the duplicate and the crowd one on background
            [0, 0, 0, 1],  # dog prediction: IoU 1/3 < 0.45
            [0, 0, 0, 1],  # cow prediction on an image without ground truth
            [0, 1, 0, 0],  # dog B missed; the crowd region is left out
        ]
    )
    np.testing.assert_array_equal(matrix, expected)


def test_detections_past_max_dets_have_no_verdict():
    gt, dt = tiny_case()
    dt.append({"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.1})  # 4th cat on image 1
    dets = coco_evaluate(gt, dt, max_dets=(1, 2, 3)).matches().detections.to_pydict()
    assert dets["evaluated"] == [True, True, True, True, True, False]
    assert dets["gt_id_50"][5] is None and dets["tp_50"][5] is None and dets["best_iou"][5] is None
    dets = coco_evaluate(gt, dt).matches().detections.to_pydict()
    assert dets["evaluated"][5] is True and dets["tp_50"][5] is False and dets["best_iou"][5] == 1.0


def test_summary_names_and_pandas_view():
    gt, dt = tiny_case()
    result = coco_evaluate(gt, dt, max_dets=(1, 5, 50))
    summary = result.summary()
    assert list(summary)[:3] == ["AP", "AP50", "AP75"] and list(summary)[6:9] == ["AR1", "AR5", "AR50"]
    assert summary["AP"] == -1.0  # pycocotools' AP reads the maxDets == 100 column only
    frame = coco_evaluate(gt, dt).to_pandas()
    assert list(frame["category_id"]) == [1, 2, 3] and frame.loc[0, "ap"] == pytest.approx(0.85)
    assert "AP=0.4250" in repr(coco_evaluate(gt, dt))
