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
