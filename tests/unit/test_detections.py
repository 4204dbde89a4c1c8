"""The one detections type: checked lengths, and the same objects read back from every form it is written in."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mleval.core.detections import Detections, ImagePrediction
from mleval.core.errors import ValidationError
from mleval.core.masks import mask_to_rle
from mleval.prediction import prediction_rows


def _two() -> Detections:
    mask = np.zeros((8, 8), bool)
    mask[1:4, 2:6] = True
    return Detections([[2, 1, 6, 4], [0.5, 0.25, 7.75, 8]], ("circle", "square"), [0.9, 0.3],
                      (mask_to_rle(mask), mask_to_rle(~mask)))


def test_an_endpoint_body_and_a_stored_prediction_row_give_back_the_same_detections():
    found = _two()
    body = json.loads(json.dumps(found.to_dict()))  # as an HTTP client receives it
    again = Detections.from_dict(body)
    assert again.class_names == found.class_names and again.masks_rle == found.masks_rle
    np.testing.assert_allclose(again.xyxy, found.xyxy)
    np.testing.assert_allclose(again.scores, found.scores)
    row = prediction_rows(["img"], [ImagePrediction(found)]).to_pylist()[0]  # masks kept as JSON text
    stored = Detections.from_dict(row)
    assert stored.masks_rle == found.masks_rle and stored.class_names == found.class_names
    np.testing.assert_array_equal(stored.xyxy, found.xyxy)


def test_a_failed_image_row_is_no_detections_and_mismatched_lengths_are_refused():
    assert len(Detections.from_dict({"image_id": "x", "boxes_xyxy": None, "class_names": None, "scores": None,
                                     "masks_rle": None, "error": "unreadable"})) == 0
    with pytest.raises(ValidationError, match="detections.lengths"):
        Detections.from_dict({"boxes_xyxy": [[0, 0, 1, 1]], "class_names": ["a", "b"], "scores": [0.5]})
    kept = _two().filter(_two().scores > 0.5)
    assert kept.class_names == ("circle",) and len(kept.masks_rle) == 1


def test_a_stored_annotation_gives_objects_that_name_it_and_survive_filter_and_concat():
    row = {"annotation_id": "ann-1", "class_labels": ["cat", "dog", "cat"],
           "bounding_boxes": [[0, 0, 4, 4], [1, 1, 5, 6], [2, 2, 3, 3]],
           "segments": json.dumps([{"polygons": [[0, 0, 4, 0, 4, 4]]}, None, {"rle": {"size": [8, 8], "counts": "0"}}]),
           "confidence_scores": None, "metadata": json.dumps({"iscrowd": [0, 0, 1]})}
    truth = Detections.from_annotation(row)
    assert truth.annotation_ids == ("ann-1",) * 3 and truth.object_indices.tolist() == [0, 1, 2]
    assert np.isnan(truth.scores).all() and truth.iscrowd.tolist() == [False, False, True]
    assert truth.segment(0) == {"polygons": [[0, 0, 4, 0, 4, 4]]} and truth.segment(1) is None
    assert truth.segment(2) == {"rle": {"size": [8, 8], "counts": "0"}}
    dogs_and_crowds = truth.filter(np.array([False, True, True]))
    assert dogs_and_crowds.object_indices.tolist() == [1, 2] and dogs_and_crowds.segment(0) is None
    second = Detections.from_annotation({**row, "annotation_id": "ann-2", "segments": None, "metadata": None})
    both = Detections.concat([truth, second])
    assert len(both) == 6 and both.annotation_ids[3:] == ("ann-2",) * 3
    assert both.object_indices.tolist() == [0, 1, 2, 0, 1, 2] and both.segment(5) is None
    assert both.with_class_ids(["dog", "cat"]).class_ids.tolist() == [1, 0, 1, 1, 0, 1]
    with pytest.raises(ValidationError, match="detections.class_name"):
        both.with_class_ids(["dog"])


def test_a_file_format_object_list_and_detections_convert_both_ways_keeping_the_format_attributes():
    from mleval.formats.records import LabelledObject, detections_of, objects_of

    objects = [LabelledObject("car", (1, 2, 30, 40), polygons=[[1, 2, 30, 2, 30, 40]], score=0.75),
               LabelledObject("person", (5, 5, 9, 9), iscrowd=True, attributes={"pose": "Left"})]
    found = detections_of(objects)
    assert found.class_names == ("car", "person") and found.iscrowd.tolist() == [False, True]
    assert found.scores[0] == 0.75 and np.isnan(found.scores[1]) and found.masks_rle is None
    back = objects_of(found, [None, {"pose": "Left"}])
    assert back == objects
