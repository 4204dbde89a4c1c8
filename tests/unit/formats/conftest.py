"""Tiny synthetic datasets for the format tests: images made with PIL in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mleval.core import masks
from mleval.formats import LabelledDataset, LabelledImage, LabelledObject
from tests.unit.conftest import disk_rle as _disk_rle
from tests.unit.conftest import png_file as _image


@pytest.fixture
def make_image():
    return _image


@pytest.fixture
def sample_dataset(tmp_path: Path) -> LabelledDataset:
    """4 images over 3 splits: fractional boxes, a polygon, a 2-part polygon, an RLE mask, a background image."""
    src = tmp_path / "src"
    rle = _disk_rle(50, 40, 25, 20, 9)
    two_parts = [[2.0, 2.0, 8.0, 2.0, 8.0, 9.0, 2.0, 9.0], [20.0, 10.0, 30.0, 10.0, 25.0, 18.0]]
    images = [
        LabelledImage(
            "a.jpg",
            64,
            48,
            "train",
            [
                LabelledObject("cat", (3.25, 4.5, 20.75, 30.125)),
                LabelledObject(
                    "dog", (10.0, 10.0, 30.0, 25.25), polygons=[[10.0, 10.0, 30.0, 10.0, 30.0, 25.25, 10.0, 25.25]]
                ),
            ],
            source_path=_image(src / "a.jpg", 64, 48, 1),
        ),
        LabelledImage(
            "b.png",
            50,
            40,
            "validation",
            [
                LabelledObject("person", masks.rle_bbox_xyxy(rle), rle=rle),
                LabelledObject("dog", (0.0, 0.0, 50.0, 40.0)),
            ],
            source_path=_image(src / "b.png", 50, 40, 2),
        ),
        LabelledImage(
            "sub/c.png",
            33,
            21,
            "test",
            [
                LabelledObject("cat", (1.0 / 3.0, 2.0 / 7.0, 32.123456789, 20.987654321)),
                LabelledObject("person", masks.polygons_bbox_xyxy(two_parts), polygons=two_parts),
            ],
            source_path=_image(src / "sub" / "c.png", 33, 21, 3),
        ),
        LabelledImage("d.jpg", 20, 20, "train", [], source_path=_image(src / "d.jpg", 20, 20, 4)),
    ]
    return LabelledDataset(categories=["cat", "dog", "person"], images=images)


def object_mask(obj: LabelledObject, image: LabelledImage) -> np.ndarray | None:
    if obj.rle is not None:
        return masks.rle_to_mask(obj.rle)
    if obj.polygons:
        return masks.rle_to_mask(masks.polygons_to_rle(obj.polygons, height=image.height, width=image.width))
    return None


def assert_same(a: LabelledDataset, b: LabelledDataset, *, tol: float = 1e-6, check_masks: bool = True) -> None:
    """Same categories, images (by file_name), sizes, splits, labels, boxes (to ``tol`` px), masks, image bytes."""
    assert b.categories == a.categories
    assert not b.errors, b.errors
    by_name = {img.file_name: img for img in b.images}
    assert sorted(by_name) == sorted(img.file_name for img in a.images)
    for img in a.images:
        other = by_name[img.file_name]
        assert (other.width, other.height, other.split) == (img.width, img.height, img.split), img.file_name
        assert other.read_bytes() == img.read_bytes(), img.file_name
        assert [o.label for o in other.objects] == [o.label for o in img.objects], img.file_name
        for x, y in zip(img.objects, other.objects):
            assert np.allclose(x.bbox_xyxy, y.bbox_xyxy, atol=tol, rtol=0), (img.file_name, x.bbox_xyxy, y.bbox_xyxy)
            assert (x.iscrowd, x.score) == (y.iscrowd, y.score)
            if check_masks and x.has_mask:
                assert y.has_mask, (img.file_name, x.label)
                assert np.array_equal(object_mask(x, img), object_mask(y, other)), (img.file_name, x.label)


@pytest.fixture
def same():
    return assert_same
