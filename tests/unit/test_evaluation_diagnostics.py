"""Error breakdown and per-object rows on a hand-made case where every answer is known."""

from __future__ import annotations

import pytest

from mleval.core.errors import ValidationError
from mleval.evaluation.coco import coco_evaluate
from mleval.evaluation.diagnostics import calibration, error_objects, slice_metrics, tide_errors


def _case():
    """Six images, one 'cat' each (annotation ann-N, object 0); the detections make one of each error."""
    images = [{"id": i, "width": 100, "height": 100} for i in range(1, 7)]
    gt = [{"id": i, "image_id": i, "category_id": 1, "bbox": [10, 10, 40, 40], "iscrowd": 0,
           "source_image_id": f"img-{i}", "annotation_id": f"ann-{i}", "object_index": 0} for i in range(1, 7)]
    def det(image, category, bbox, score, index=0):
        return {"image_id": image, "category_id": category, "bbox": bbox, "score": score,
                "source_image_id": f"img-{image}", "object_index": index}
    dt = [det(1, 1, [10, 10, 40, 40], 0.95),       # right
          det(2, 2, [10, 10, 40, 40], 0.90),       # class error: a dog on the cat
          det(3, 1, [25, 25, 40, 40], 0.85),       # localisation error (IoU 0.29)
          det(4, 1, [10, 10, 40, 40], 0.80),       # right
          det(4, 1, [11, 11, 40, 40], 0.70, 1),    # duplicate of the one above
          det(5, 1, [70, 70, 20, 20], 0.75),       # background
          det(5, 1, [10, 10, 40, 40], 0.60, 1)]    # right; image 6's cat is missed
    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    return coco_evaluate({"images": images, "annotations": gt, "categories": categories}, dt)


def test_each_hand_made_error_lands_in_its_tide_category():
    errors = tide_errors(_case())
    assert errors["counts"] == {"cls": 1, "loc": 1, "both": 0, "dupe": 1, "bkg": 1, "miss": 1}
    assert set(errors) >= {"cls", "loc", "both", "dupe", "bkg", "miss"}
    assert errors["both"] == 0.0 and all(errors[k] > 0 for k in ("cls", "loc", "dupe", "bkg", "miss"))
    assert errors["ap"] == pytest.approx(_case().summary()["AP50"])


def test_per_object_rows_name_the_annotation_and_the_detection():
    evaluation = _case()
    def rows(kind):
        return error_objects(evaluation, kind).to_pylist()
    [missed] = rows("fn")[-1:]  # image 6's cat is the one no detection touches
    assert {r["annotation_id"] for r in rows("fn")} == {"ann-2", "ann-3", "ann-6"}
    assert missed["score"] is None and missed["box"] == [10, 10, 50, 50]
    [confused] = rows("cls")
    assert (confused["image_id"], confused["class_name"], confused["confused_class"]) == ("img-2", "dog", "cat")
    assert confused["annotation_id"] == "ann-2" and confused["best_iou"] == pytest.approx(1.0)
    [loose] = rows("loc")
    assert loose["annotation_id"] == "ann-3" and 0.1 <= loose["best_iou"] < 0.5
    [twice] = rows("dupe")
    assert (twice["image_id"], twice["detection_index"], twice["annotation_id"]) == ("img-4", 1, "ann-4")
    [stray] = rows("bkg")
    assert stray["image_id"] == "img-5" and stray["detection_index"] == 0 and stray["box"] == [70, 70, 90, 90]
    assert [r["annotation_id"] for r in rows("tp")] == ["ann-1", "ann-4", "ann-5"]
    assert len(rows("fp")) == 4
    assert [r["score"] for r in error_objects(evaluation, "fp", min_score=0.8).to_pylist()] == [0.90, 0.85]
    assert error_objects(evaluation, "fp", class_name="dog").num_rows == 1
    with pytest.raises(ValidationError, match="evaluation.object_kind"):
        error_objects(evaluation, "wrong")


def test_calibration_and_slices_come_from_the_same_evaluation():
    evaluation = _case()
    found = calibration(evaluation)
    assert 0 <= found["ece"] <= found["mce"] <= 1 and sum(b["count"] for b in found["bins"]) == 7
    first, second = slice_metrics(evaluation, {"first three": [1, 2, 3], "last three": [4, 5, 6]})
    assert (first["num_images"], second["num_images"]) == (3, 3)
    assert first["mAP50_95"] < second["mAP50_95"]
