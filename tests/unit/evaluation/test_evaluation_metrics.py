"""P/R/F1, IoU, confusion matrix and latency summary on tiny cases whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mleval.core.errors import ValidationError
from mleval.evaluation import (
    ConfusionMatrix,
    box_iou_xywh,
    box_iou_xyxy,
    mean_iou_xyxy,
    paired_box_iou_xyxy,
    prf_at_best_f1,
    prf_at_confidence,
    summarize_latency,
    xywh_to_xyxy,
    xyxy_to_xywh,
)

# --- IoU -------------------------------------------------------------------------------------


def test_box_iou_xyxy_by_hand():
    a = [[0, 0, 10, 10], [0, 0, 10, 10]]
    b = [[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5]]
    iou = box_iou_xyxy(a, b)
    assert iou.shape == (2, 4)
    # overlap 5x5 = 25, union 100 + 100 - 25 = 175; identical; disjoint; half (50 / 100).
    np.testing.assert_allclose(iou[0], [25 / 175, 1.0, 0.0, 0.5])
    np.testing.assert_array_equal(iou[0], iou[1])


def test_box_iou_xyxy_touching_and_empty():
    assert box_iou_xyxy([[0, 0, 10, 10]], [[10, 0, 20, 10]])[0, 0] == 0.0  # shared edge
    assert box_iou_xyxy([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 0.0  # empty union
    assert box_iou_xyxy(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert box_iou_xyxy([[0, 0, 1, 1]], []).shape == (1, 0)


def test_box_iou_xywh_with_crowd_uses_detection_area():
    dt = [[0, 0, 10, 10]]
    gt = [[5, 5, 10, 10], [5, 5, 10, 10]]
    iou = box_iou_xywh(dt, gt, gt_iscrowd=[False, True])
    np.testing.assert_allclose(iou, [[25 / 175, 25 / 100]])


def test_box_iou_xywh_is_bit_identical_to_pycocotools():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    dt = np.c_[rng.uniform(0, 100, (50, 2)), rng.uniform(1, 60, (50, 2))]
    gt = np.c_[rng.uniform(0, 100, (30, 2)), rng.uniform(1, 60, (30, 2))]
    crowd = rng.random(30) < 0.3
    expected = mask_utils.iou(dt.tolist(), gt.tolist(), crowd.astype(np.uint8).tolist())
    np.testing.assert_array_equal(box_iou_xywh(dt, gt, gt_iscrowd=crowd), expected)


def test_paired_and_mean_iou_xyxy():
    pred = [[0, 0, 10, 10], [0, 0, 10, 10]]
    gt = [[5, 5, 15, 15], [0, 0, 10, 10]]
    np.testing.assert_allclose(paired_box_iou_xyxy(pred, gt), [1 / 7, 1.0])
    assert mean_iou_xyxy(pred, gt) == pytest.approx((1 / 7 + 1) / 2)
    assert math.isnan(mean_iou_xyxy(np.zeros((0, 4)), np.zeros((0, 4))))


def test_box_format_conversions_round_trip():
    xywh = np.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(xywh_to_xyxy(xywh), [[1, 2, 4, 6]])
    np.testing.assert_array_equal(xyxy_to_xywh(xywh_to_xyxy(xywh)), xywh)


def test_iou_shape_errors_name_the_shape():
    with pytest.raises(ValidationError, match=r"\(2, 3\)"):
        box_iou_xyxy(np.zeros((2, 3)), np.zeros((1, 4)))
    with pytest.raises(ValidationError, match="same shape"):
        paired_box_iou_xyxy(np.zeros((2, 4)), np.zeros((3, 4)))


# --- precision / recall / F1 ------------------------------------------------------------------

SCORES = [0.9, 0.8, 0.7, 0.3]
IS_TP = [True, False, True, True]


def test_prf_at_confidence_by_hand():
    r = prf_at_confidence(SCORES, IS_TP, 5, confidence_threshold=0.5)
    # kept 0.9, 0.8, 0.7: TP 2, FP 1, FN 5 - 2 = 3.
    assert (r.tp, r.fp, r.fn) == (2, 1, 3)
    assert r.precision == pytest.approx(2 / 3)
    assert r.recall == pytest.approx(2 / 5)
    assert r.f1 == pytest.approx(0.5)  # 2PR / (P + R) = (8/15) / (16/15)
    assert r.confidence_threshold == 0.5


def test_prf_threshold_is_inclusive():
    assert prf_at_confidence(SCORES, IS_TP, 5, confidence_threshold=0.7).tp == 2


def test_prf_at_best_f1_by_hand():
    # F1 keeping the top 1, 2, 3, 4: 2/6, 2/7, 4/8, 6/9 -> best at 0.3.
    r = prf_at_best_f1(SCORES, IS_TP, 5)
    assert r.confidence_threshold == 0.3
    assert (r.tp, r.fp, r.fn) == (3, 1, 2)
    assert r.precision == pytest.approx(3 / 4)
    assert r.recall == pytest.approx(3 / 5)
    assert r.f1 == pytest.approx(2 / 3)


def test_prf_best_f1_keeps_tied_scores_together():
    # One threshold 0.9 keeps both detections: P 1/2, R 1, F1 2/3 (never F1 1 from half a tie).
    r = prf_at_best_f1([0.9, 0.9], [True, False], 1)
    assert (r.confidence_threshold, r.tp, r.fp) == (0.9, 1, 1)
    assert r.f1 == pytest.approx(2 / 3)


def test_prf_best_f1_prefers_the_highest_threshold_among_equals():
    # top 1: F1 2/(1+3) = 0.5; top 2 (one TP, one FP): 2/(2+3) = 0.4; top 3: 4/(3+3) = 0.667; top 4: 4/7.
    r = prf_at_best_f1([0.9, 0.8, 0.7, 0.6], [True, False, True, False], 3)
    assert r.confidence_threshold == 0.7
    r = prf_at_best_f1([0.9, 0.8], [False, False], 2)  # every threshold gives F1 0
    assert r.confidence_threshold == 0.9 and r.f1 == 0.0


def test_prf_without_detections():
    r = prf_at_confidence([], [], 4, confidence_threshold=0.25)
    assert (r.precision, r.recall, r.f1, r.tp, r.fp, r.fn) == (0.0, 0.0, 0.0, 0, 0, 4)
    best = prf_at_best_f1([], [], 4)
    assert best.confidence_threshold is None and best.fn == 4 and best.f1 == 0.0


def test_prf_without_ground_truth():
    r = prf_at_confidence([0.5, 0.4], [False, False], 0, confidence_threshold=0.1)
    assert (r.precision, r.recall, r.f1, r.fp, r.fn) == (0.0, 0.0, 0.0, 2, 0)
    assert prf_at_best_f1([], [], 0).f1 == 0.0


def test_prf_input_errors():
    with pytest.raises(ValidationError, match="3 scores and 2 flags"):
        prf_at_confidence([0.1, 0.2, 0.3], [True, False], 2, confidence_threshold=0.5)
    with pytest.raises(ValidationError, match="num_gt=1"):
        prf_at_best_f1([0.1, 0.2], [True, True], 1)
    with pytest.raises(ValidationError, match="NaN"):
        prf_at_best_f1([float("nan")], [True], 1)


# --- confusion matrix -------------------------------------------------------------------------


def test_confusion_matrix_by_hand():
    # Classes 0, 1, 2; background index 3. Rows = predicted, columns = true.
    gt_xyxy = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]
    gt_cls = [0, 1, 2]
    pred_xyxy = [
        [0, 0, 10, 10],  # class 0 on gt 0 (0.9): true positive
        [20, 0, 30, 10],  # class 2 on gt 1 (0.8): confusion, predicted 2 / true 1
        [60, 0, 70, 10],  # class 1 on nothing (0.7): false positive
        [0, 0, 10, 9],  # class 0 on gt 0 again (0.6): gt taken -> false positive
        [40, 0, 50, 10],  # class 2 on gt 2 but score 0.2 <= 0.25: dropped -> gt 2 missed
    ]
    cm = ConfusionMatrix(3, iou_threshold=0.45, confidence_threshold=0.25)
    cm.process(pred_xyxy, [0, 2, 1, 0, 2], [0.9, 0.8, 0.7, 0.6, 0.2], gt_xyxy, gt_cls)
    expected = np.array(
        [
            [1, 0, 0, 1],
            [0, 0, 0, 1],
            [0, 1, 0, 0],
            [0, 0, 1, 0],
        ]
    )
    np.testing.assert_array_equal(cm.matrix, expected)


def test_confusion_matrix_thresholds_are_strict():
    cm = ConfusionMatrix(1, iou_threshold=0.5, confidence_threshold=0.25)
    # IoU exactly 0.5 (50 / 100) does not match; score exactly 0.25 is dropped.
    cm.process([[0, 0, 10, 5], [0, 0, 10, 10]], [0, 0], [0.9, 0.25], [[0, 0, 10, 10]], [0])
    np.testing.assert_array_equal(cm.matrix, [[0, 1], [1, 0]])


def test_confusion_matrix_images_without_predictions_or_ground_truth():
    cm = ConfusionMatrix(2)
    cm.process(np.zeros((0, 4)), [], [], [[0, 0, 5, 5], [1, 1, 6, 6]], [0, 1])  # both missed
    cm.process([[0, 0, 5, 5]], [1], [0.9], np.zeros((0, 4)), [])  # a false positive
    cm.process(np.zeros((0, 4)), [], [], np.zeros((0, 4)), [])  # nothing at all
    np.testing.assert_array_equal(cm.matrix, [[0, 0, 0], [0, 0, 1], [1, 1, 0]])
    table = cm.to_arrow(["cat", "dog"]).to_pydict()
    assert table["predicted"] == ["cat", "dog", "background"]
    assert table["background"] == [0, 1, 0] and table["cat"] == [0, 0, 1]
    cm.reset()
    assert cm.matrix.sum() == 0


def test_confusion_matrix_rejects_bad_class_indices():
    cm = ConfusionMatrix(2)
    with pytest.raises(ValidationError, match="0..1"):
        cm.process([[0, 0, 1, 1]], [2], [0.9], np.zeros((0, 4)), [])
    with pytest.raises(ValidationError, match="needs 1 entries"):
        cm.process([[0, 0, 1, 1]], [0, 1], [0.9], np.zeros((0, 4)), [])


def test_confusion_matrix_agrees_with_ultralytics():
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("ultralytics.utils.metrics")
    rng = np.random.default_rng(0)
    names = {i: f"c{i}" for i in range(4)}
    theirs = metrics.ConfusionMatrix(names=names)
    ours = ConfusionMatrix(4, iou_threshold=0.45, confidence_threshold=0.25)
    for _ in range(30):
        gt = xywh_to_xyxy(np.c_[rng.uniform(0, 80, (6, 2)), rng.uniform(5, 40, (6, 2))])
        gt_cls = rng.integers(0, 4, 6)
        jitter = rng.normal(0, 3, (8, 4))
        pred = np.r_[gt, gt[:2]] + jitter
        pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
        pred_cls = np.where(rng.random(8) < 0.7, np.r_[gt_cls, gt_cls[:2]], rng.integers(0, 4, 8))
        score = np.round(rng.random(8), 3)
        ours.process(pred, pred_cls, score, gt, gt_cls)
        theirs.process_batch(
            {"bboxes": torch.tensor(pred), "cls": torch.tensor(pred_cls), "conf": torch.tensor(score)},
            {"bboxes": torch.tensor(gt), "cls": torch.tensor(gt_cls)},
            conf=0.25,
            iou_thres=0.45,
        )
    np.testing.assert_array_equal(ours.matrix, theirs.matrix.astype(np.int64))


# --- latency ----------------------------------------------------------------------------------


def test_latency_summary_by_hand():
    s = summarize_latency(preprocess_ms=[1, 3], inference_ms=[10, 20], postprocess_ms=[2, 4])
    assert (s.num_images, s.preprocess_ms, s.inference_ms, s.postprocess_ms) == (2, 2.0, 15.0, 3.0)
    assert s.total_ms == 20.0 and s.images_per_s == 50.0


def test_latency_summary_edge_cases():
    empty = summarize_latency(preprocess_ms=[], inference_ms=[], postprocess_ms=[])
    assert empty.num_images == 0 and math.isnan(empty.images_per_s)
    with pytest.raises(ValidationError, match="one time per image"):
        summarize_latency(preprocess_ms=[1], inference_ms=[1, 2], postprocess_ms=[1])
    with pytest.raises(ValidationError, match="inference_ms"):
        summarize_latency(preprocess_ms=[1], inference_ms=[-1], postprocess_ms=[1])
