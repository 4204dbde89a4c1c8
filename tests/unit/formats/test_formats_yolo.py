"""YOLO reader and writer: ultralytics layout, label lines, EXIF sizes, broken inputs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from mleval.formats import FormatError, LabelledDataset, LabelledImage, LabelledObject, read_yolo, write_yolo


def _dataset(root: Path, make_image, data: str, labels: dict[str, str], images: dict[str, tuple[int, int]]) -> Path:
    for rel, (w, h) in images.items():
        make_image(root / rel, w, h, len(rel))
    for rel, text in labels.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "data.yaml").write_text(data)
    return root


def test_reads_detection_and_segmentation_lines_txt_lists_and_val_split(tmp_path, make_image):
    root = _dataset(
        tmp_path / "ds",
        make_image,
        "path: .\ntrain: images/train\nval: val.txt\nnames:\n  0: cat\n  1: dog\n",
        {
            "labels/train/a.txt": "0 0.5 0.5 0.25 0.5\n\n1 0.1 0.1 0.5 0.1 0.5 0.6 0.1 0.6\n",
            "labels/val/b.txt": "1 0.5 0.5 1 1 0.875\n",  # trailing score (ultralytics save_conf)
            "val.txt": "./images/val/b.jpg\n",
        },
        {"images/train/a.png": (40, 20), "images/val/b.jpg": (10, 10), "images/train/nested/bg.png": (8, 8)},
    )
    ds = read_yolo(root / "data.yaml")
    assert ds.errors == [] and ds.categories == ["cat", "dog"]
    by_name = {img.file_name: img for img in ds.images}
    assert set(by_name) == {"a.png", "nested/bg.png", "b.jpg"}
    a = by_name["a.png"]
    assert (a.width, a.height, a.split) == (40, 20, "train")
    assert a.objects[0].bbox_xyxy == (15.0, 5.0, 25.0, 15.0) and a.objects[0].polygons is None
    assert a.objects[1].polygons == [[4.0, 2.0, 20.0, 2.0, 20.0, 12.0, 4.0, 12.0]]
    assert a.objects[1].bbox_xyxy == (4.0, 2.0, 20.0, 12.0)
    assert by_name["nested/bg.png"].objects == []
    b = by_name["b.jpg"]
    assert b.split == "validation" and b.objects[0].score == 0.875 and b.objects[0].bbox_xyxy == (0.0, 0.0, 10.0, 10.0)
    assert read_yolo(root).categories == ["cat", "dog"]  # the folder works as well as the yaml


def test_names_as_list_and_nc_only(tmp_path, make_image):
    root = _dataset(
        tmp_path / "l", make_image, "train: images\nval: images\nnames: [a, b]\n", {}, {"images/x.png": (4, 4)}
    )
    ds = read_yolo(root)
    assert ds.categories == ["a", "b"] and len(ds.images) == 1  # listed twice, read once
    assert ds.images[0].split == "train"
    root = _dataset(tmp_path / "n", make_image, "train: images\nval: images\nnc: 2\n", {}, {"images/x.png": (4, 4)})
    assert read_yolo(root).categories == ["class_0", "class_1"]


def test_image_size_is_exif_upright_like_ultralytics(tmp_path):
    (tmp_path / "images").mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.new("RGB", (40, 10)).save(tmp_path / "images" / "r.jpg", exif=exif.tobytes())
    (tmp_path / "data.yaml").write_text("train: images\nval: images\nnames: [a]\n")
    image = read_yolo(tmp_path).images[0]
    assert (image.width, image.height) == (10, 40)


def test_write_layout_data_yaml_and_label_lines(sample_dataset, tmp_path):
    summary = write_yolo(sample_dataset, tmp_path / "out")
    out = tmp_path / "out"
    config = yaml.safe_load((out / "data.yaml").read_text())
    assert config == {
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "names": {0: "cat", 1: "dog", 2: "person"},
    }
    assert "path" not in config  # resolves from the yaml's own folder
    assert (out / "images/test/sub/c.png").is_file() and (out / "labels/test/sub/c.txt").is_file()
    assert (out / "labels/train/d.txt").read_text() == ""  # background image
    lines = (out / "labels/train/a.txt").read_text().splitlines()
    # a.jpg has a polygon, so its box-only cat is written as a rectangle: ultralytics rejects mixed files
    assert all(len(line.split()) >= 7 for line in lines)
    assert lines[1] == "1 0.15625 0.208333333333 0.46875 0.208333333333 0.46875 0.526041666667 0.15625 0.526041666667"
    assert summary.objects == 6
    assert any("RLE mask" in issue.reason for issue in summary.issues)


def test_writer_skips_crowd_clips_boxes_and_writes_scores(tmp_path):
    image = LabelledImage(
        "x.png",
        10,
        10,
        None,
        [
            LabelledObject("a", (-2, 0, 4, 4), score=0.5),
            LabelledObject("a", (0, 0, 10, 10), iscrowd=True),
        ],
    )
    summary = write_yolo(LabelledDataset(["a"], [image]), tmp_path / "out", include_scores=True)
    assert (tmp_path / "out/labels/train/x.txt").read_text() == "0 0.2 0.2 0.4 0.4 0.5\n"
    reasons = " | ".join(i.reason for i in summary.issues)
    assert "crowd" in reasons and "clipped" in reasons and "no image bytes" in reasons
    config = (tmp_path / "out/data.yaml").read_text()
    assert "val: images/train" in config and "No val images" in config


def test_zip_round_trip(sample_dataset, same, tmp_path):
    write_yolo(sample_dataset, tmp_path / "ds.zip")
    assert "data.yaml" in zipfile.ZipFile(tmp_path / "ds.zip").namelist()
    back = read_yolo(tmp_path / "ds.zip")
    assert back.images[0].source_path is None and back.images[0].open_bytes is not None
    same(sample_dataset, back)


def test_broken_lines_and_files_become_item_errors(tmp_path, make_image):
    root = _dataset(
        tmp_path / "ds",
        make_image,
        "train: images/train\nval: list.txt\ntest: images/missing\nnames: [cat]\n",
        {
            "labels/train/a.txt": "\n".join(
                [
                    "0 0.5 0.5 0.2 0.2",  # good
                    "3 0.5 0.5 0.2 0.2",  # unknown class id
                    "0 0.5 zero 0.2 0.2",  # not a number
                    "0 0.5 0.5 0.2",  # too few numbers
                    "0 1.5 0.5 0.2 0.2",  # not normalized
                    "0.5 0.5 0.5 0.2 0.2",  # fractional class id
                    "0 0.5 0.5 -0.005 0.2",  # negative width
                ]
            ),
            "labels/train/ghost.txt": "0 0.5 0.5 0.1 0.1\n",  # no image
            "list.txt": "images/train/a.png\nimages/gone.png\n",
        },
        {"images/train/a.png": (10, 10)},
    )
    (root / "images/train/corrupt.png").write_bytes(b"not an image")
    ds = read_yolo(root)
    assert [len(img.objects) for img in ds.images] == [1]
    errors = {e.item: e.reason for e in ds.errors}
    assert "class id 3 is not in data.yaml names" in errors["labels/train/a.txt:2"]
    assert "not a list of numbers" in errors["labels/train/a.txt:3"]
    assert "expected 4 numbers" in errors["labels/train/a.txt:4"]
    assert "normalized" in errors["labels/train/a.txt:5"]
    assert "class id 0.5" in errors["labels/train/a.txt:6"]
    assert ">= 0" in errors["labels/train/a.txt:7"]
    assert "no image" in errors["labels/train/ghost.txt"]
    assert "not found" in errors["list.txt:2"]
    assert "not a readable image" in errors["images/train/corrupt.png"]
    assert "not a folder, a .txt list or an image" in errors["data.yaml: test"]


def test_missing_or_invalid_data_yaml_raises_format_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no data.yaml found"):
        read_yolo(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "data.yaml").write_text("names: [a\ntrain: x\n")
    with pytest.raises(FormatError, match="not valid YAML"):
        read_yolo(tmp_path / "bad")
    (tmp_path / "bad" / "data.yaml").write_text("train: images\nnames: 3\n")
    with pytest.raises(FormatError, match="'names' must be"):
        read_yolo(tmp_path / "bad")


def test_coordinates_survive_normalization_to_1e_6_px(tmp_path):
    box = (1234.567891, 2345.678912, 8765.432198, 5432.198765)
    image = LabelledImage("big.png", 9999, 7777, "train", [LabelledObject("a", box)], open_bytes=lambda: b"")
    write_yolo(LabelledDataset(["a"], [image]), tmp_path / "out")
    text = (tmp_path / "out/labels/train/big.txt").read_text().split()
    cx, cy, w, h = (float(v) for v in text[1:])
    back = ((cx - w / 2) * 9999, (cy - h / 2) * 7777, (cx + w / 2) * 9999, (cy + h / 2) * 7777)
    assert np.allclose(back, box, atol=1e-6, rtol=0)
