"""Bad input fails early with a ValidationError that names the rule, the value and the fix."""

from __future__ import annotations

import contextlib
import copy
import subprocess
import sys

import pytest

from mleval.core.errors import MlevalError, ValidationError
from mleval.evaluation import coco_evaluate

from .test_evaluation_matches import tiny_case


@contextlib.contextmanager
def fails(rule: str, *words: str):
    """Expect a ValidationError for ``rule`` whose message contains every one of ``words``."""
    with pytest.raises(ValidationError) as info:
        yield info
    assert info.value.rule == rule
    for word in words:
        assert word in str(info.value)


def test_detection_on_an_unknown_image_names_it():
    gt, dt = tiny_case()
    dt[3]["image_id"] = 999
    with fails("coco.detection_image_id_known", "detection 3", "999", "same split"):
        coco_evaluate(gt, dt)


def test_detection_with_an_unknown_category_names_it():
    gt, dt = tiny_case()
    dt[1]["category_id"] = 0
    with fails("coco.detection_category_id_known", "detection 1", "category_id 0", "YOLO index"):
        coco_evaluate(gt, dt)


def test_unsupported_iou_type():
    gt, dt = tiny_case()
    with fails("coco.iou_type", "'keypoints'", "bbox, segm"):
        coco_evaluate(gt, dt, iou_type="keypoints")


@pytest.mark.parametrize("key", ["annotations", "images", "categories"])
def test_empty_ground_truth(key):
    gt, dt = tiny_case()
    gt[key] = []
    with fails("coco.gt_empty", key):
        coco_evaluate(gt, dt)


def test_ground_truth_that_is_not_a_coco_dict():
    with fails("coco.gt_format", "'images'"):
        coco_evaluate({"annotations": []}, [])


@pytest.mark.parametrize("max_dets", [(1, 10), (10, 1, 100), (0, 1, 2), (1, 10, 100, 1000), (1, 2.5, 3), "abc"])
def test_bad_max_dets(max_dets):
    gt, dt = tiny_case()
    with fails("coco.max_dets", "3 increasing positive integers"):
        coco_evaluate(gt, dt, max_dets=max_dets)


def test_detection_without_bbox():
    gt, dt = tiny_case()
    del dt[2]["bbox"]
    with fails("coco.detection_bbox", "detection 2", "'bbox'"):
        coco_evaluate(gt, dt)


def test_box_in_corner_format_is_caught():
    gt, dt = tiny_case()
    dt[0]["bbox"] = [10, 10, 5, -3]
    with fails("coco.detection_bbox", "detection 0", "[x, y, width, height]"):
        coco_evaluate(gt, dt)


def test_box_with_three_numbers():
    gt, dt = tiny_case()
    dt[4]["bbox"] = [1, 2, 3]
    with fails("coco.detection_bbox", "detection 4"):
        coco_evaluate(gt, dt)


def test_score_that_is_not_a_number():
    gt, dt = tiny_case()
    dt[2]["score"] = "high"
    with fails("coco.detection_score", "detection 2", "'high'"):
        coco_evaluate(gt, dt)
    dt[2]["score"] = float("nan")
    with fails("coco.detection_score", "detection 2"):
        coco_evaluate(gt, dt)


def test_duplicate_annotation_ids():
    gt, dt = tiny_case()
    gt["annotations"][2]["id"] = 7
    with fails("coco.annotation_id_unique", "id 7"):
        coco_evaluate(gt, dt)


def test_annotation_on_unknown_image():
    gt, dt = tiny_case()
    gt["annotations"][0]["image_id"] = 5
    with fails("coco.annotation_image_id_known", "annotation 0", "image_id 5"):
        coco_evaluate(gt, dt)


def test_segm_needs_segmentations_and_image_sizes():
    gt, dt = tiny_case()
    with fails("coco.annotation_segmentation", "annotation 0", "iou_type='segm'"):
        coco_evaluate(gt, dt, iou_type="segm")
    for ann in gt["annotations"]:
        x, y, w, h = ann["bbox"]
        ann["segmentation"] = [[x, y, x + w, y, x + w, y + h]]
    with fails("coco.detection_segmentation", "detection 0"):
        coco_evaluate(gt, dt, iou_type="segm")
    no_size = copy.deepcopy(gt)
    del no_size["images"][0]["height"]
    with fails("coco.image_size", "height"):
        coco_evaluate(no_size, [], iou_type="segm")


def test_results_that_are_not_a_list():
    gt, _ = tiny_case()
    with fails("coco.results_format", "list of dicts"):
        coco_evaluate(gt, {"image_id": 1})


def test_missing_files(tmp_path):
    gt, dt = tiny_case()
    with fails("coco.path", "nope.json"):
        coco_evaluate(tmp_path / "nope.json", dt)
    (tmp_path / "bad.json").write_text("{not json")
    with fails("coco.json", "bad.json"):
        coco_evaluate(gt, tmp_path / "bad.json")


def test_iou_threshold_must_be_a_coco_threshold():
    gt, dt = tiny_case()
    result = coco_evaluate(gt, dt)
    with fails("coco.iou_threshold", "0.3", "0.50, 0.55"):
        result.precision_recall_f1(iou_threshold=0.3)
    with fails("coco.iou_threshold"):
        result.mean_iou(iou_threshold=0.52)


def test_errors_belong_to_the_mleval_family():
    assert issubclass(ValidationError, MlevalError)


def test_import_is_light():
    code = (
        "import sys, mleval.evaluation; "
        "heavy = [m for m in ('ray', 'torch', 'ipywidgets', 'hotcoco', 'pyarrow') if m in sys.modules]; "
        "print(heavy); sys.exit(bool(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
