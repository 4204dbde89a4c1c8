"""Pascal VOC reader and writer: 1-based pixel convention, schema fields, masks, broken inputs."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mleval.formats import FormatError, LabelledDataset, LabelledImage, LabelledObject, read_voc, write_voc

_XML = """<annotation>
  <folder>VOC2012</folder>
  <filename>{filename}</filename>
  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>
  <object>
    <name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>{w}</xmax><ymax>{h}</ymax></bndbox>
  </object>
  <object>
    <name>cat</name>
    <bndbox><xmin>3.5</xmin><ymin>2</ymin><xmax>7</xmax><ymax>8</ymax></bndbox>
  </object>
</annotation>
"""


def _voc(root: Path, make_image, ids=("2008_000001", "2008_000002"), w=20, h=10) -> Path:
    (root / "Annotations").mkdir(parents=True)
    for i, voc_id in enumerate(ids):
        make_image(root / "JPEGImages" / f"{voc_id}.jpg", w, h, i)
        (root / "Annotations" / f"{voc_id}.xml").write_text(_XML.format(filename=f"{voc_id}.jpg", w=w, h=h))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text(f"{ids[0]}\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text(f"{ids[1]}\n")
    return root


def test_reads_one_based_inclusive_boxes_as_zero_based_pixel_edges(tmp_path, make_image):
    ds = read_voc(_voc(tmp_path / "VOC2012", make_image))
    assert ds.errors == [] and ds.categories == ["cat", "dog"]  # no labelmap.txt: sorted
    first = ds.images[0]
    assert (first.file_name, first.width, first.height, first.split) == ("2008_000001.jpg", 20, 10, "train")
    dog, cat = first.objects
    assert dog.bbox_xyxy == (0.0, 0.0, 20.0, 10.0)  # xmin=1..xmax=W covers the whole image
    assert cat.bbox_xyxy == (2.5, 1.0, 7.0, 8.0)
    assert dog.attributes == {"pose": "Left", "truncated": 1, "difficult": 0}
    assert ds.images[1].split == "validation"


def test_vocdevkit_folder_and_zip_are_found(tmp_path, make_image):
    _voc(tmp_path / "VOCdevkit" / "VOC2012", make_image)
    assert len(read_voc(tmp_path / "VOCdevkit").images) == 2
    archive = shutil.make_archive(str(tmp_path / "voc"), "zip", tmp_path, "VOCdevkit")
    ds = read_voc(archive)
    assert len(ds.images) == 2 and ds.errors == [] and ds.images[0].read_bytes()[:2] == b"\xff\xd8"


def test_written_xml_has_the_voc_schema_and_writer_inverts_the_reader(tmp_path, make_image):
    src = read_voc(_voc(tmp_path / "in", make_image))
    write_voc(src, tmp_path / "out")
    doc = ET.parse(tmp_path / "out" / "Annotations" / "2008_000001.xml").getroot()
    assert doc.tag == "annotation"
    for field in ("folder", "filename", "size/width", "size/height", "size/depth", "segmented"):
        assert doc.find(field) is not None, field
    obj = doc.findall("object")[1]
    for field in ("name", "pose", "truncated", "difficult", "bndbox/xmin", "bndbox/ymin", "bndbox/xmax", "bndbox/ymax"):
        assert obj.find(field) is not None, field
    assert [obj.findtext(f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")] == ["3.5", "2", "7", "8"]
    assert doc.findtext("filename") == "2008_000001.jpg" and doc.findtext("size/width") == "20"
    assert (tmp_path / "out/ImageSets/Main/trainval.txt").read_text() == "2008_000001\n2008_000002\n"
    assert "dog:" in (tmp_path / "out/labelmap.txt").read_text()
    original = (tmp_path / "in/Annotations/2008_000002.xml").read_text()
    assert (
        "<xmax>20</xmax>" in original
        and "<xmax>20</xmax>" in (tmp_path / "out/Annotations/2008_000002.xml").read_text()
    )
    back = read_voc(tmp_path / "out")
    assert back.images[0].objects[0].attributes == src.images[0].objects[0].attributes


def test_masks_round_trip_through_segmentation_object_pngs(sample_dataset, same, tmp_path):
    write_voc(sample_dataset, tmp_path / "out")
    png = Image.open(tmp_path / "out/SegmentationObject/b.png")
    assert png.mode == "P" and set(np.unique(np.asarray(png))) == {0, 1}  # the person's disk
    same(sample_dataset, read_voc(tmp_path / "out"))


def test_labelmap_order_is_kept(tmp_path, make_image):
    root = _voc(tmp_path / "v", make_image)
    (root / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\ndog:128,0,0::\ncat:0,128,0::\n"
    )
    assert read_voc(root).categories == ["dog", "cat"]


def test_crowd_becomes_difficult_and_scores_are_reported(tmp_path):
    image = LabelledImage(
        "x.png", 8, 8, None, [LabelledObject("a", (0, 0, 2, 2), iscrowd=True, score=0.4)], open_bytes=lambda: b"png"
    )
    summary = write_voc(LabelledDataset(["a"], [image]), tmp_path / "out")
    assert "<difficult>1</difficult>" in (tmp_path / "out/Annotations/x.xml").read_text()
    reasons = " | ".join(i.reason for i in summary.issues)
    assert "difficult=1" in reasons and "scores were not written" in reasons
    assert not (tmp_path / "out/ImageSets/Main").exists()  # no split: listed nowhere


def test_broken_files_become_item_errors(tmp_path, make_image):
    root = _voc(tmp_path / "v", make_image, ids=("good", "gone"))
    (root / "JPEGImages" / "gone.jpg").unlink()
    (root / "Annotations" / "broken.xml").write_text("<annotation><filename>x.jpg</annotation>")
    (root / "Annotations" / "nobox.xml").write_text(
        "<annotation><filename>good.jpg</filename><size><width>0</width><height>0</height></size>"
        "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax></bndbox></object>"
        "<object><name>cat</name><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>"
        "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>"
        "</annotation>"
    )
    (root / "ImageSets" / "Main" / "test.txt").write_text("listed_only\n")
    ds = read_voc(root)
    errors = {e.item: e.reason for e in ds.errors}
    assert "not valid XML" in errors["Annotations/broken.xml"]
    assert "JPEGImages/gone.jpg not found" in errors["Annotations/gone.xml"]
    assert "xmax" in errors["Annotations/nobox.xml: object 1 (dog)"]
    assert "x2 >= x1" in errors["Annotations/nobox.xml: object 2 (cat)"]
    assert "no Annotations/listed_only.xml" in errors["ImageSets/Main/test.txt: listed_only"]
    nobox = next(img for img in ds.images if len(img.objects) == 1)
    assert (nobox.width, nobox.height) == (20, 10)  # size 0 in the XML: read from the image header
    assert len(ds.images) == 2


def test_no_annotations_folder_raises_format_error(tmp_path):
    with pytest.raises(FormatError, match="no Annotations/ folder"):
        read_voc(tmp_path)
