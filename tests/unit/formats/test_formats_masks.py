"""mleval.core.masks: polygon / RLE / mask conversions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mleval.core import masks
from mleval.core.errors import ValidationError


def _blobs(seed: int, height: int = 40, width: int = 50) -> np.ndarray:
    """A few filled rectangles and disks: regions without holes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    m = np.zeros((height, width), bool)
    for _ in range(4):
        if rng.random() < 0.5:
            x0, y0 = rng.integers(0, width - 5), rng.integers(0, height - 5)
            m[y0 : y0 + rng.integers(1, 15), x0 : x0 + rng.integers(1, 15)] = True
        else:
            m |= (xx - rng.integers(0, width)) ** 2 + (yy - rng.integers(0, height)) ** 2 < rng.integers(2, 10) ** 2
    return m


def test_polygon_along_pixel_edges_rasterizes_to_those_pixels():
    rle = masks.polygons_to_rle([[2, 3, 6, 3, 6, 7, 2, 7]], height=10, width=12)
    expected = np.zeros((10, 12), np.uint8)
    expected[3:7, 2:6] = 1
    assert np.array_equal(masks.rle_to_mask(rle), expected)
    assert masks.rle_area(rle) == 16
    assert masks.rle_bbox_xyxy(rle) == (2.0, 3.0, 6.0, 7.0)
    assert isinstance(rle["counts"], str)
    json.dumps(rle)


def test_mask_rle_round_trip_and_compression_round_trip():
    m = _blobs(0)
    rle = masks.mask_to_rle(m)
    assert np.array_equal(masks.rle_to_mask(rle), m.astype(np.uint8))
    raw = masks.decompress_rle(rle)
    assert isinstance(raw["counts"], list) and sum(raw["counts"]) == m.size
    assert masks.compress_rle(raw) == rle
    assert masks.is_compressed_rle(rle) and not masks.is_compressed_rle(raw)
    assert masks.rle_area(raw) == int(m.sum())


def test_mask_starting_with_foreground_decompresses_with_leading_zero_run():
    m = np.ones((3, 4), bool)
    assert masks.decompress_rle(masks.mask_to_rle(m))["counts"] == [0, 12]


@pytest.mark.parametrize("seed", range(20))
def test_mask_to_polygons_is_exact_for_masks_without_holes(seed):
    m = _blobs(seed)
    polygons = masks.mask_to_polygons(m)
    back = masks.rle_to_mask(masks.polygons_to_rle(polygons, height=m.shape[0], width=m.shape[1]))
    assert np.array_equal(back, m.astype(np.uint8))
    merged = masks.merge_polygons(polygons)
    if merged:
        one = masks.rle_to_mask(masks.polygons_to_rle([merged], height=m.shape[0], width=m.shape[1]))
        assert np.array_equal(one, m.astype(np.uint8))


def test_mask_to_polygons_fills_holes_and_keeps_islands_covered_once():
    m = np.zeros((20, 20), bool)
    m[2:18, 2:18] = True
    m[5:15, 5:15] = False  # hole
    m[8:11, 8:11] = True  # island in the hole
    polygons = masks.mask_to_polygons(m)
    assert polygons == [[2.0, 2.0, 18.0, 2.0, 18.0, 18.0, 2.0, 18.0]]


def test_regions_touching_at_a_corner_become_separate_polygons():
    m = np.zeros((4, 4), bool)
    m[0, 0] = m[1, 1] = True
    assert sorted(masks.mask_to_polygons(m)) == [
        [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0],
        [1.0, 1.0, 2.0, 1.0, 2.0, 2.0, 1.0, 2.0],
    ]


def test_merge_polygons_keeps_the_union():
    parts = [[1, 1, 5, 1, 5, 5, 1, 5], [10, 2, 14, 2, 12, 8], [3, 10, 8, 10, 8, 14, 3, 14]]
    union = masks.rle_to_mask(masks.polygons_to_rle(parts, height=16, width=16))
    merged = masks.rle_to_mask(masks.polygons_to_rle([masks.merge_polygons(parts)], height=16, width=16))
    assert np.array_equal(union, merged)
    assert masks.merge_polygons([parts[0]]) == [float(v) for v in parts[0]]
    assert masks.merge_polygons([]) == []


def test_empty_mask_has_no_polygons_and_an_empty_box():
    empty = np.zeros((5, 5), bool)
    assert masks.mask_to_polygons(empty) == []
    assert masks.rle_bbox_xyxy(masks.mask_to_rle(empty)) == (0.0, 0.0, 0.0, 0.0)


def test_bad_inputs_raise_validation_errors_that_say_what_is_wrong():
    with pytest.raises(ValidationError, match="even number"):
        masks.polygons_to_rle([[1, 2, 3, 4, 5]], height=5, width=5)
    with pytest.raises(ValidationError, match="summing to height\\*width"):
        masks.compress_rle({"size": [2, 2], "counts": [1, 1]})
    with pytest.raises(ValidationError, match="size"):
        masks.rle_area({"counts": "abc"})
    with pytest.raises(ValidationError, match="2-D"):
        masks.mask_to_rle(np.zeros((2, 2, 2)))


def test_polygons_bbox():
    assert masks.polygons_bbox_xyxy([[1, 5, 3, 2, 2, 9], [0.5, 4, 1, 1, 2, 2]]) == (0.5, 1.0, 3.0, 9.0)
