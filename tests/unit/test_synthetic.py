"""Unit tests of the synthetic shapes dataset and the mixed image files generator."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from PIL import Image

from mleval.core.errors import ValidationError
from mleval.synthetic import (
    IMAGE_FILE_MODES,
    SHAPES,
    SPLITS,
    generate_image_files,
    generate_shapes,
    render_shapes_image,
)

# The mode PIL reports when it reads back a file written in a given mode, where the two differ.
_READ_MODE = {("gif", "L"): "P"}
_EXTENSION_FORMAT = {"jpg": "JPEG", "png": "PNG", "tif": "TIFF", "bmp": "BMP", "webp": "WEBP", "gif": "GIF"}


def _colour_extent(pixels: np.ndarray, obj, margin: int = 3) -> tuple[int, int, int, int]:
    """Pixel-edge extent ``(x1, y1, x2, y2)`` of the pixels of ``obj``'s colour near its box."""
    height, width = pixels.shape[:2]
    x1, y1, x2, y2 = obj.bbox_xyxy
    left, top = max(int(x1) - margin, 0), max(int(y1) - margin, 0)
    right, bottom = min(int(x2) + margin + 1, width), min(int(y2) + margin + 1, height)
    window = np.all(pixels[top:bottom, left:right] == obj.color_rgb, axis=-1)
    ys, xs = np.nonzero(window)
    assert xs.size, f"no pixel of colour {obj.color_rgb} near {obj.bbox_xyxy}"
    return left + xs.min(), top + ys.min(), left + xs.max() + 1, top + ys.max() + 1


def _render(seed: int, **options):
    return render_shapes_image(np.random.default_rng(seed), **options)


def test_render_is_deterministic_per_seed():
    first_image, first_objects = _render(7)
    again_image, again_objects = _render(7)
    other_image, _ = _render(8)
    assert np.array_equal(np.asarray(first_image), np.asarray(again_image))
    assert first_objects == again_objects
    assert not np.array_equal(np.asarray(first_image), np.asarray(other_image))


@pytest.mark.parametrize("backgrounds", [("flat",), ("gradient", "stripes", "blobs", "noise")])
def test_boxes_are_inside_the_image_and_tight_around_the_drawn_pixels(backgrounds):
    for seed in range(25):
        image, objects = _render(seed, image_size=(96, 80), classes=SHAPES, backgrounds=backgrounds)
        pixels = np.asarray(image)
        assert image.size == (96, 80) and image.mode == "RGB"
        assert 1 <= len(objects) <= 4
        for obj in objects:
            x1, y1, x2, y2 = obj.bbox_xyxy
            assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 80
            extent = _colour_extent(pixels, obj)
            assert np.allclose(extent, obj.bbox_xyxy, atol=1.0), (seed, obj.label, extent, obj.bbox_xyxy)
            xs, ys = obj.polygon[0::2], obj.polygon[1::2]
            assert (min(xs), min(ys), max(xs), max(ys)) == obj.bbox_xyxy


def test_area_matches_the_drawn_pixel_count_on_a_flat_background():
    for seed in range(10):
        image, objects = _render(seed, backgrounds=("flat",), classes=SHAPES)
        pixels = np.asarray(image)
        for obj in objects:
            x1, y1, x2, y2 = (round(v) for v in obj.bbox_xyxy)
            drawn = np.all(pixels[y1:y2, x1:x2] == obj.color_rgb, axis=-1).sum()
            perimeter = 2 * ((x2 - x1) + (y2 - y1))
            assert abs(drawn - obj.area) <= 0.5 * perimeter, (obj.label, drawn, obj.area)


def test_shapes_do_not_touch_and_boxes_overlap_little():
    for seed in range(25):
        _, objects = _render(seed, max_objects=4)
        for a, b in itertools.combinations(objects, 2):
            ax1, ay1, ax2, ay2 = a.bbox_xyxy
            bx1, by1, bx2, by2 = b.bbox_xyxy
            inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
            assert inter / union <= 0.3


def test_upright_shapes_without_rotation():
    for seed in range(10):
        for obj in _render(seed, classes=("square", "triangle"), max_rotation_deg=0)[1]:
            x1, y1, x2, y2 = obj.bbox_xyxy
            if obj.label == "square":
                assert obj.area == pytest.approx((x2 - x1) * (y2 - y1), rel=1e-3)
            else:  # apex on top, flat base at the bottom
                assert obj.polygon[1] == pytest.approx(y1) and obj.polygon[3] == pytest.approx(obj.polygon[5])


def test_rotation_turns_squares():
    squares = [obj for seed in range(10) for obj in _render(seed, classes=("square",), max_rotation_deg=45)[1]]
    fill = [obj.area / ((obj.bbox_xyxy[2] - obj.bbox_xyxy[0]) * (obj.bbox_xyxy[3] - obj.bbox_xyxy[1])) for obj in squares]
    assert min(fill) < 0.8


def test_every_shape_class_can_be_drawn():
    labels = {obj.label for seed in range(30) for obj in _render(seed, classes=SHAPES)[1]}
    assert labels == set(SHAPES)


def test_generate_shapes_writes_every_split(tmp_path):
    dataset = generate_shapes(tmp_path, train=5, validation=3, test=2, image_size=64)
    assert dataset.classes == ("circle", "square", "triangle")
    assert [sum(img.split == split for img in dataset.images) for split in SPLITS] == [5, 3, 2]
    for img in dataset.images:
        assert img.path.parent == tmp_path / img.split and img.path.suffix == ".png"
        with Image.open(img.path) as opened:
            assert opened.format == "PNG" and opened.size == (img.width, img.height) == (64, 64)
        assert img.objects


def test_generate_shapes_is_deterministic_and_images_do_not_depend_on_counts(tmp_path):
    first = generate_shapes(tmp_path / "a", train=3, validation=2, test=2, image_size=(80, 64), seed=3)
    again = generate_shapes(tmp_path / "b", train=3, validation=2, test=2, image_size=(80, 64), seed=3)
    more_train = generate_shapes(tmp_path / "c", train=6, validation=2, test=2, image_size=(80, 64), seed=3)
    other_seed = generate_shapes(tmp_path / "d", train=3, validation=2, test=2, image_size=(80, 64), seed=4)
    for a, b in zip(first.images, again.images, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()
        assert a.objects == b.objects
    validation = [img for img in first.images if img.split == "validation"]
    validation_more = [img for img in more_train.images if img.split == "validation"]
    assert [img.objects for img in validation] == [img.objects for img in validation_more]
    assert [img.objects for img in first.images] != [img.objects for img in other_seed.images]


def test_generate_shapes_in_jpeg(tmp_path):
    dataset = generate_shapes(tmp_path, train=2, validation=1, test=1, image_format="jpeg")
    for img in dataset.images:
        with Image.open(img.path) as opened:
            assert img.path.suffix == ".jpg" and opened.format == "JPEG"


def test_to_coco_loads_in_pycocotools(tmp_path):
    coco_module = pytest.importorskip("pycocotools.coco")
    dataset = generate_shapes(tmp_path / "data", train=4, validation=3, test=2, classes=("circle", "star", "cross"))
    everything = dataset.to_coco()
    path = tmp_path / "all.json"
    path.write_text(json.dumps(everything))
    coco = coco_module.COCO(str(path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["circle", "star", "cross"]
    assert coco.getCatIds() == [1, 2, 3]
    assert len(coco.getImgIds()) == 9
    assert len(coco.getAnnIds()) == sum(len(img.objects) for img in dataset.images)
    for annotation in coco.loadAnns(coco.getAnnIds()):
        assert annotation["iscrowd"] == 0 and annotation["area"] > 0
        info = coco.loadImgs(annotation["image_id"])[0]
        assert (tmp_path / "data" / info["file_name"]).is_file()
        mask = coco.annToMask(annotation)
        ys, xs = np.nonzero(mask)
        x, y, w, h = annotation["bbox"]
        # pycocotools' rasterizer drops the thin tip of a star by up to two pixels
        assert np.allclose((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), (x, y, x + w, y + h), atol=2.5)

    validation = dataset.to_coco(split="validation")
    image_ids = {img["id"] for img in validation["images"]}
    assert len(image_ids) == 3
    assert {a["image_id"] for a in validation["annotations"]} <= image_ids
    assert all(img["file_name"].startswith("validation/") for img in validation["images"])
    same_ids = {a["id"]: a for a in everything["annotations"]}
    assert all(same_ids[a["id"]] == a for a in validation["annotations"])


@pytest.mark.parametrize(
    ("options", "rule"),
    [
        ({"classes": ("circle", "blob")}, "synthetic.classes"),
        ({"classes": ()}, "synthetic.classes"),
        ({"max_objects": 0}, "synthetic.max_objects"),
        ({"image_size": 8}, "synthetic.image_size"),
        ({"image_format": "heic"}, "synthetic.image_format"),
        ({"train": -1}, "synthetic.count"),
        ({"object_size": (0.5, 0.2)}, "synthetic.object_size"),
        ({"backgrounds": ("plaid",)}, "synthetic.backgrounds"),
        ({"max_rotation_deg": 270}, "synthetic.max_rotation_deg"),
    ],
)
def test_generate_shapes_rejects_bad_options(tmp_path, options, rule):
    with pytest.raises(ValidationError) as caught:
        generate_shapes(tmp_path, **options)
    assert caught.value.rule == rule


def test_to_coco_rejects_an_unknown_split(tmp_path):
    dataset = generate_shapes(tmp_path, train=1, validation=0, test=0)
    with pytest.raises(ValidationError, match="split"):
        dataset.to_coco(split="val")


def test_generate_image_files_mixes_formats_sizes_and_modes(tmp_path):
    paths = generate_image_files(tmp_path / "files", count=60, min_size=16, max_size=96, seed=1)
    assert len(paths) == 60 and len(set(paths)) == 60
    tag_to_mode = {"rgb": "RGB", "rgba": "RGBA", "l": "L", "la": "LA", "p": "P", "cmyk": "CMYK", "i16": "I;16"}
    seen_formats, seen_modes = set(), set()
    for path in paths:
        _, tag, size = path.stem.split("_")
        written_mode = tag_to_mode[tag]
        extension = path.suffix.lstrip(".")
        name = {"jpg": "jpeg", "tif": "tiff"}.get(extension, extension)
        assert written_mode in IMAGE_FILE_MODES[name]
        with Image.open(path) as opened:
            opened.load()
            assert opened.format == _EXTENSION_FORMAT[extension]
            assert opened.mode == _READ_MODE.get((name, written_mode), written_mode)
            assert "x".join(map(str, opened.size)) == size
            assert all(16 <= side <= 96 for side in opened.size)
        seen_formats.add(name)
        seen_modes.add(written_mode)
    assert seen_formats == set(IMAGE_FILE_MODES)
    assert {"L", "RGBA", "I;16"} <= seen_modes


def test_generate_image_files_is_deterministic_and_respects_formats(tmp_path):
    first = generate_image_files(tmp_path / "a", count=8, formats=("png", "tiff"), max_size=128, seed=5)
    again = generate_image_files(tmp_path / "b", count=8, formats=("png", "tiff"), max_size=128, seed=5)
    assert [p.name for p in first] == [p.name for p in again]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, again))
    assert {p.suffix for p in first} == {".png", ".tif"}


@pytest.mark.parametrize(
    ("options", "rule"),
    [
        ({"count": -1}, "synthetic.count"),
        ({"count": 1, "formats": ("jpeg", "jxl")}, "synthetic.formats"),
        ({"count": 1, "min_size": 100, "max_size": 50}, "synthetic.file_size"),
    ],
)
def test_generate_image_files_rejects_bad_options(tmp_path, options, rule):
    with pytest.raises(ValidationError) as caught:
        generate_image_files(tmp_path, **options)
    assert caught.value.rule == rule
