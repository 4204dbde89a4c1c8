"""Workspace import / export: round trips per format and across formats, re-imports, class ids,
pycocotools interop, and hand-broken inputs that import item by item."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import mleval
from mleval.core import masks
from mleval.core.errors import ValidationError
from mleval.formats import LabelledDataset, LabelledImage, LabelledObject, read, write
from mleval.synthetic import generate_shapes
from tests.unit.conftest import disk_rle as _disk_rle
from tests.unit.conftest import png_file as _png

# -- data ------------------------------------------------------------------------------------





def _hand_dataset(src: Path) -> LabelledDataset:
    """Fractional boxes, a polygon, a 2-part polygon, an RLE mask, a crowd region, a background
    image, three splits, a subfolder; classes deliberately not in alphabetical order."""
    rle = _disk_rle(50, 40, 25, 20, 9)
    crowd = _disk_rle(64, 48, 50, 38, 6)
    two_parts = [[2.0, 2.0, 8.0, 2.0, 8.0, 9.0, 2.0, 9.0], [20.0, 10.0, 30.0, 10.0, 25.0, 18.0]]
    dog_polygon = [[10.0, 10.0, 30.0, 10.0, 30.0, 25.25, 10.0, 25.25]]
    return LabelledDataset(categories=["zebra", "dog", "cat"], images=[
        LabelledImage("a.png", 64, 48, "train", [
            LabelledObject("cat", (3.25, 4.5, 20.75, 30.125)),
            LabelledObject("dog", (10.0, 10.0, 30.0, 25.25), polygons=dog_polygon),
            LabelledObject("zebra", masks.rle_bbox_xyxy(crowd), rle=crowd, iscrowd=True),
        ], source_path=_png(src / "a.png", 64, 48, 1)),
        LabelledImage("b.png", 50, 40, "validation", [
            LabelledObject("zebra", masks.rle_bbox_xyxy(rle), rle=rle),
            LabelledObject("dog", (0.0, 0.0, 50.0, 40.0)),
        ], source_path=_png(src / "b.png", 50, 40, 2)),
        LabelledImage("sub/c.png", 33, 21, "test", [
            LabelledObject("cat", (1.0 / 3.0, 2.0 / 7.0, 32.123456789, 20.987654321)),
            LabelledObject("zebra", masks.polygons_bbox_xyxy(two_parts), polygons=two_parts),
        ], source_path=_png(src / "sub" / "c.png", 33, 21, 3)),
        LabelledImage("d.png", 20, 20, "train", [], source_path=_png(src / "d.png", 20, 20, 4)),
    ])


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """A COCO folder of generated shapes: annotations/instances_{train,val,test}.json, 6/3/3 images."""
    root = tmp_path_factory.mktemp("shapes")
    synthetic = generate_shapes(root, train=6, validation=3, test=3, image_size=64)
    (root / "annotations").mkdir()
    for split, stem in (("train", "train"), ("validation", "val"), ("test", "test")):
        (root / "annotations" / f"instances_{stem}.json").write_text(json.dumps(synthetic.to_coco(split)))
    return root


def _open(path: Path) -> mleval.Workspace:
    return mleval.Workspace.open(path)


# -- comparing -------------------------------------------------------------------------------

Contents = dict[str, tuple[str, list[tuple[str, tuple, np.ndarray | None, bool]]]]


def _mask(segment: dict | None, height: int, width: int) -> np.ndarray | None:
    if not segment:
        return None
    rle = segment["rle"] if "rle" in segment else masks.polygons_to_rle(segment["polygons"], height=height, width=width)
    return masks.rle_to_mask(rle).astype(bool)


def _file_contents(dataset: LabelledDataset) -> Contents:
    """sha256 of the image bytes -> (split, objects); what a dataset file says."""
    out: Contents = {}
    for image in dataset.images:
        objects = [
            (o.label, o.bbox_xyxy, _mask({"rle": o.rle} if o.rle else {"polygons": o.polygons} if o.polygons else None,
                                         image.height, image.width), o.iscrowd)
            for o in image.objects
        ]
        out[hashlib.sha256(image.read_bytes()).hexdigest()] = (image.split or "train", objects)
    return out


def _ws_contents(ws: mleval.Workspace, dataset: str) -> Contents:
    """sha256 -> (split, objects) of a dataset's images and ground truth, straight from the catalog."""
    out: Contents = {}
    for image in ws.images.list(dataset=dataset):
        objects = []
        for ann in ws.annotations.list(image=image, ground_truth=True):
            segments = ann.segments or [None] * len(ann.class_labels)
            crowd = (ann.metadata or {}).get("iscrowd") or [0] * len(ann.class_labels)
            objects += [(label, tuple(box), _mask(seg, image.height, image.width), bool(c))
                        for label, box, seg, c in zip(ann.class_labels, ann.bounding_boxes, segments, crowd)]
        out[image.sha256] = (image.dataset_split, objects)
    return out


def _assert_same(a: Contents, b: Contents, *, check_masks: bool = True) -> None:
    assert sorted(a) == sorted(b)
    for key, (split, objects) in a.items():
        other_split, others = b[key]
        assert split == other_split
        assert [o[0] for o in objects] == [o[0] for o in others]
        for (label, box, mask, crowd), (_, other_box, other_mask, other_crowd) in zip(objects, others):
            assert np.allclose(box, other_box, atol=1e-6, rtol=0), (label, box, other_box)
            assert crowd == other_crowd
            if check_masks:
                assert (mask is None) == (other_mask is None), label
                assert mask is None or np.array_equal(mask, other_mask), label


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,suffix", [("coco", ""), ("coco", ".zip"), ("yolo", ""), ("yolo", ".zip"), ("voc", "")])
def test_import_export_import_keeps_boxes_labels_splits_masks_and_class_ids(tmp_path, fmt, suffix):
    src = tmp_path / f"src-{fmt}{suffix}"
    write(_hand_dataset(tmp_path / "pixels"), src, format=fmt)
    in_file = read(src, format=fmt)
    with _open(tmp_path / "ws1") as ws1, _open(tmp_path / "ws2") as ws2:
        first = ws1.import_dataset(src, format=fmt, name="hand")
        assert first.errors == [] and first.images == 4
        out = tmp_path / f"out-{fmt}{suffix}"
        exported = ws1.export(dataset="hand", format=fmt, path=out)
        assert exported.categories == in_file.categories  # class ids as the file had them
        second = ws2.import_dataset(out, format=fmt, name="hand")
        assert second.errors == [] and (second.images, second.objects) == (first.images, first.objects)
        _assert_same(_file_contents(in_file), _ws_contents(ws1, "hand"))
        _assert_same(_ws_contents(ws1, "hand"), _ws_contents(ws2, "hand"))
        again = read(out, format=fmt)
        assert again.categories == in_file.categories
        _assert_same(_file_contents(in_file), _file_contents(again))


def test_across_formats_coco_yolo_voc_coco_keeps_boxes_labels_splits(shapes, tmp_path):
    previous = None
    for step, (fmt_in, fmt_out) in enumerate([("coco", "yolo"), ("yolo", "voc"), ("voc", "coco"), ("coco", None)]):
        source = shapes if step == 0 else tmp_path / f"step{step - 1}"
        with _open(tmp_path / f"ws{step}") as ws:
            report = ws.import_dataset(source, format=fmt_in, name="shapes")
            assert report.errors == [] and report.images == 12
            contents = _ws_contents(ws, "shapes")
            assert {split for split, _ in contents.values()} == {"train", "validation", "test"}
            if previous is not None:
                _assert_same(previous, contents, check_masks=False)
            previous = contents
            if fmt_out:
                ws.export(dataset="shapes", format=fmt_out, path=tmp_path / f"step{step}")


# -- re-imports and class ids ----------------------------------------------------------------


def test_reimport_stores_annotations_once(ws, shapes):
    first = ws.import_dataset(shapes, format="coco", name="shapes")
    assert (first.images, first.duplicates, first.annotations) == (12, 0, 12)
    record = ws.datasets.get("shapes")
    assert (record.train_count, record.validation_count, record.test_count) == (6, 3, 3)
    again = ws.import_dataset(shapes, format="coco", name="shapes")
    assert (again.images, again.duplicates, again.annotations, again.already_imported) == (0, 12, 0, 12)
    copy = ws.import_dataset(shapes, format="coco", name="copy")  # same files, another dataset
    assert copy.annotations == 0 and ws.datasets.get("copy").total == 12
    count = "SELECT count(*) AS n FROM annotations"
    assert ws.sql(count).column("n")[0].as_py() == 12
    relabelled = ws.import_dataset(shapes, format="coco", name="shapes", user_tag="second pass")
    assert relabelled.annotations == 12 and ws.sql(count).column("n")[0].as_py() == 24
    assert "12 duplicates" in repr(relabelled)


def test_images_already_in_the_workspace_keep_their_split(ws, shapes, tmp_path):
    ws.import_dataset(shapes, format="coco", name="shapes")
    everything = {"images": [], "annotations": [], "categories": []}
    for stem in ("train", "val", "test"):  # one file without splits: its images fall back to `split`
        doc = json.loads((shapes / "annotations" / f"instances_{stem}.json").read_text())
        for key in everything:
            everything[key] += [] if key == "categories" and everything[key] else doc[key]
    (tmp_path / "all.json").write_text(json.dumps(everything))
    report = ws.import_dataset(tmp_path / "all.json", format="coco", name="all", split="train", image_root=shapes)
    assert report.duplicates == 12 and report.already_imported == 12
    moved = [e for e in report.errors if "kept there, not moved to 'train'" in e.reason]
    assert len(moved) == len(report.errors) == 6
    assert ws.datasets.get("all").validation_count == 3


def test_class_ids_are_stable_across_exports_and_datasets(ws, shapes, tmp_path):
    ws.import_dataset(shapes, format="coco", name="shapes")
    extra = LabelledDataset(["square", "aardvark"], [
        LabelledImage("x.png", 30, 20, "train", [LabelledObject("aardvark", (1, 1, 9, 9)),
                                                 LabelledObject("square", (2, 2, 8, 8))],
                      source_path=_png(tmp_path / "px" / "x.png", 30, 20, 9)),
    ])
    write(extra, tmp_path / "extra", format="yolo")
    ws.import_dataset(tmp_path / "extra", format="yolo", name="extra")
    expected = ["circle", "square", "triangle", "aardvark"]  # first appearance: shapes, then the new label
    first = ws.export(dataset="shapes", format="yolo", path=tmp_path / "a")
    second = ws.export(dataset="extra", format="yolo", path=tmp_path / "b.zip")
    assert first.categories == second.categories == expected
    assert read(tmp_path / "b.zip", format="yolo").categories == expected
    only_test = ws.export(dataset="shapes", format="coco", path=tmp_path / "c.json", split="test")
    assert only_test.images == 3 and only_test.categories == expected


def test_export_names_are_unique_and_carry_an_image_suffix(ws, make_image, tmp_path):
    report = ws.images.upload([("x.png", make_image(seed=1)), ("sub\\x.png", make_image(seed=2)),
                               ("x.png", make_image(seed=3)), ("noext", make_image(seed=4))],
                              dataset=ws.datasets.create("d"))
    for image in report.succeeded:
        ws.annotations.add(image, labels=["a"], boxes_xyxy=[[1, 1, 9, 9]])
    ws.export(dataset="d", format="yolo", path=tmp_path / "y")
    back = read(tmp_path / "y", format="yolo")
    names = sorted(image.file_name for image in back.images)
    assert len(names) == 4 and "noext.png" in names and "sub/x.png" in names and "x.png" in names
    assert not back.errors and all(len(image.objects) == 1 for image in back.images)


# -- pycocotools -----------------------------------------------------------------------------


def test_pycocotools_reads_the_export_and_loads_the_predictions(ws, shapes, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ws.import_dataset(shapes, format="coco", name="shapes")
    model = ws.models.get("yolo11n")
    for image in ws.images.list(split="validation"):
        (truth,) = ws.annotations.list(image=image, ground_truth=True)
        n = len(truth.class_labels)
        ws.annotations.add(image, labels=["circle"] * n, boxes_xyxy=[[0, 0, 5, 5]] * n, scores=[0.5] * n,
                           creation_method="model", model_id=model.id)  # superseded by the next run
        ws.annotations.add(image, labels=truth.class_labels, boxes_xyxy=truth.bounding_boxes,
                           scores=[0.9] * n, creation_method="model", model_id=model.id)
    report = ws.export(dataset="shapes", format="coco", path=tmp_path / "out", include_predictions=True,
                       model="yolo11n")
    assert report.prediction_files == [tmp_path / "out" / "predictions" / "instances_val.json"]
    with contextlib.redirect_stdout(io.StringIO()):
        for stem in ("train", "val", "test"):
            COCO(str(tmp_path / "out" / "annotations" / f"instances_{stem}.json"))
        truth = COCO(str(tmp_path / "out" / "annotations" / "instances_val.json"))
        predictions = truth.loadRes(str(report.prediction_files[0]))
        evaluation = COCOeval(truth, predictions, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert report.predictions == sum(len(a["bbox"]) > 0 for a in predictions.dataset["annotations"])
    assert evaluation.stats[0] == pytest.approx(1.0)  # ids line up: predictions equal to the truth score AP 1

    single = ws.export(dataset="shapes", format="coco", path=tmp_path / "all.json", include_predictions=True,
                       model="yolo11n")
    assert single.prediction_files == [tmp_path / "all_predictions.json"]
    with contextlib.redirect_stdout(io.StringIO()):
        COCO(str(tmp_path / "all.json")).loadRes(str(single.prediction_files[0]))

    zipped = ws.export(dataset="shapes", format="coco", path=tmp_path / "out.zip", include_predictions=True,
                       model="yolo11n")
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert "predictions/instances_val.json" in archive.namelist()
    assert zipped.predictions == report.predictions
    back = read(tmp_path / "out.zip", format="coco")  # the results list sits outside annotations/
    assert not back.errors and len(back.images) == 12


def test_export_rejects_predictions_outside_coco_and_unknown_formats(ws, shapes, tmp_path):
    ws.import_dataset(shapes, format="coco", name="shapes")
    with pytest.raises(ValidationError, match="format='coco'"):
        ws.export(dataset="shapes", format="yolo", path=tmp_path / "y", include_predictions=True, model="yolo11n")
    with pytest.raises(ValidationError, match="unknown format"):
        ws.export(dataset="shapes", format="kitti", path=tmp_path / "k")


# -- broken inputs ---------------------------------------------------------------------------


def _reasons(report) -> str:
    return "\n".join(str(error) for error in report.errors)


def test_broken_coco_imports_item_by_item(ws, tmp_path):
    src = tmp_path / "coco"
    write(_hand_dataset(tmp_path / "pixels"), src, format="coco")
    train = src / "annotations" / "instances_train.json"
    doc = json.loads(train.read_text())
    a = next(i for i in doc["images"] if i["file_name"] == "a.png")
    doc["images"].append({"id": 99, "file_name": "missing.png", "width": 10, "height": 10})
    doc["annotations"] += [
        {"id": 100, "image_id": a["id"], "category_id": 42, "bbox": [1, 1, 2, 2]},  # unknown class
        {"id": 101, "image_id": a["id"], "category_id": 1, "bbox": [60, 40, 10, 10]},  # sticks out: clipped
        {"id": 102, "image_id": a["id"], "category_id": 1, "bbox": [64, 1, 5, 5]},  # outside: left out
    ]
    train.write_text(json.dumps(doc))
    (src / "images" / "val" / "b.png").write_bytes(b"not an image")  # the JSON has its size: fails at upload
    test = src / "annotations" / "instances_test.json"
    test_doc = json.loads(test.read_text())
    test_doc["images"][0].update(width=100, height=100)  # the file is 33x21
    test.write_text(json.dumps(test_doc))

    report = ws.import_dataset(src, format="coco", name="broken")
    reasons = _reasons(report)
    assert "missing.png not found" in reasons and "category_id 42" in reasons
    assert "clipped to [60.0, 40.0, 64.0, 48.0]" in reasons and "no area inside the 64x48 image" in reasons
    assert "b.png" in reasons and "100x100 image but the file is 33x21" in reasons
    assert len(report.errors) == 6, reasons
    assert (report.images, report.annotations, report.objects) == (3, 1, 4)  # a.png; c.png without annotations


def test_broken_yolo_imports_item_by_item(ws, tmp_path):
    src = tmp_path / "yolo"
    write(_hand_dataset(tmp_path / "pixels"), src, format="yolo")
    label = src / "labels" / "train" / "a.txt"
    label.write_text(label.read_text() + "7 0.5 0.5 0.1 0.1\n0 nonsense\n")
    (src / "images" / "train" / "broken.png").write_bytes(b"\x89PNG garbage")
    (src / "labels" / "train" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")

    report = ws.import_dataset(src, format="yolo", name="broken")
    reasons = _reasons(report)
    assert "class id 7" in reasons and "not a list of numbers" in reasons
    assert "broken.png: not a readable image" in reasons and "orphan.txt" in reasons
    assert len(report.errors) == 4, reasons
    assert report.images == 4 and report.annotations == 3


def test_broken_voc_imports_item_by_item(ws, tmp_path):
    src = tmp_path / "voc"
    write(_hand_dataset(tmp_path / "pixels"), src, format="voc")
    (src / "Annotations" / "broken.xml").write_text("<annotation><filename>")
    xml = (src / "Annotations" / "d.xml").read_text()
    (src / "Annotations" / "e.xml").write_text(xml.replace("d.png", "e.png"))  # no such image
    a = src / "Annotations" / "a.xml"
    a.write_text(a.read_text().replace("</annotation>", "<object><name>cat</name></object></annotation>"))

    report = ws.import_dataset(src, format="voc", name="broken")
    reasons = _reasons(report)
    assert "broken.xml: not valid XML" in reasons and "JPEGImages/e.png not found" in reasons
    assert "bndbox needs" in reasons
    assert len(report.errors) == 3, reasons
    assert report.images == 4 and report.annotations == 3
