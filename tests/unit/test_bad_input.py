"""Bad input is refused at the write, with the rule it broke, before it can spoil an export or a read."""

from __future__ import annotations

import json
import math

import pytest

from mleval.core.errors import ValidationError
from tests.unit.conftest import image_bytes


@pytest.mark.parametrize("polygon", [[1, 1, 20, 20], [1, 1, 20, 20, 5], [1, 1, 20, math.nan, 5, 5],
                                     [1, 1, 20, math.inf, 5, 5]])
def test_a_polygon_every_export_would_refuse_is_refused_when_stored(ws, uploaded, polygon):
    with pytest.raises(ValidationError, match=r"\[annotation.segment\].*even number \(>= 6\) of finite"):
        ws.annotations.add(uploaded[0], labels=["cat"], polygons=[[polygon]], boxes_xyxy=[[1, 1, 20, 20]])
    assert ws.annotations.list(image=uploaded[0]) == []


def test_a_dataset_with_good_polygons_still_exports_in_every_format(ws, uploaded, tmp_path):
    ws.datasets.create("d", images=uploaded[:2])
    ws.annotations.add(uploaded[0], labels=["cat"], polygons=[[[1, 1, 20, 1, 20, 20]]])
    with pytest.raises(ValidationError, match="annotation.segment"):
        ws.annotations.add(uploaded[1], labels=["cat"], polygons=[[[1, 1, 20, 20]]], boxes_xyxy=[[1, 1, 20, 20]])
    for fmt in ("coco", "yolo", "voc"):
        report = ws.export(dataset="d", format=fmt, path=tmp_path / f"out-{fmt}", progress=False)
        assert report.objects == 1


@pytest.mark.parametrize("scores", [[7.5], [-1.0], [math.nan]])
def test_confidence_scores_must_be_between_0_and_1(ws, uploaded, scores):
    with pytest.raises(ValidationError, match=r"\[annotation.confidence_scores_range\]"):
        ws.annotations.add(uploaded[0], labels=["cat"], boxes_xyxy=[[1, 1, 20, 20]], scores=scores,
                           creation_method="model", model_id=ws.models.get("yolo11n").id)


@pytest.mark.parametrize("box", [[1, 1, 20], [1, 1, 20, 20, 5]])
def test_a_box_of_other_than_4_numbers_names_the_rule(ws, uploaded, box):
    with pytest.raises(ValidationError, match=r"\[annotation.bounding_boxes_type\].*4 numbers \[x1, y1, x2, y2\]"):
        ws.annotations.add(uploaded[0], labels=["cat"], boxes_xyxy=[box])


def test_an_id_that_is_no_uuid_names_the_rule(ws):
    with pytest.raises(ValidationError, match=r"\[image.id_format\] 'not-an-id' is not a image id"):
        ws.images.get("not-an-id")
    with pytest.raises(ValidationError, match=r"\[annotation.value_type\]|\[annotation.image_id_type\]"):
        ws.annotations.add("not-an-id", labels=["cat"], boxes_xyxy=[[1, 1, 2, 2]])


def test_upload_names_that_climb_or_are_absolute_are_stored_as_base_names(ws, tmp_path):
    report = ws.images.upload([("../../etc/x.png", image_bytes(seed=1)), ("/abs/y.png", image_bytes(seed=2)),
                               ("sub/z.png", image_bytes(seed=3))], split="train", progress=False)
    names = {r.filename: r for r in report.succeeded}
    assert set(names) == {"x.png", "y.png", "sub/z.png"}
    assert names["x.png"].metadata["original_name"] == "../../etc/x.png"
    assert "original_name" not in names["sub/z.png"].metadata
    ws.datasets.create("d", images=report.succeeded)
    ws.export(dataset="d", format="coco", path=tmp_path / "out", progress=False)
    listed = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    for image in listed["images"]:
        assert ".." not in image["file_name"] and not image["file_name"].startswith("/")
        assert (tmp_path / "out" / "images" / "train" / image["file_name"]).is_file()


def test_a_coco_import_reads_no_file_outside_its_folder(ws, tmp_path):
    outside = tmp_path / "private.png"
    outside.write_bytes(image_bytes(seed=5))
    folder = tmp_path / "dataset"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "ok.png").write_bytes(image_bytes(seed=6))
    images = [{"id": 1, "file_name": "ok.png", "width": 64, "height": 48},
              {"id": 2, "file_name": str(outside), "width": 64, "height": 48},
              {"id": 3, "file_name": "../../private.png", "width": 64, "height": 48}]
    annotations = [{"id": k, "image_id": k, "category_id": 1, "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 0}
                   for k in (1, 2, 3)]
    (folder / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "cat"}]}))
    report = ws.import_dataset(folder, format="coco", name="imported", progress=False)
    assert report.images == 1
    refused = [e for e in report.errors if "inside the dataset's folder" in str(e)]
    assert len(refused) == 2 and any(str(outside) in str(e) for e in refused)
    assert [r.filename for r in ws.images.list()] == ["ok.png"]


def test_a_dataset_that_declares_its_classes_refuses_others(ws, uploaded):
    ws.datasets.create("pets", images=uploaded[:2], classes=["cat", "dog"])
    assert ws.datasets.get("pets").classes == ["cat", "dog"]
    ws.annotations.add(uploaded[0], labels=["cat"], boxes_xyxy=[[1, 1, 20, 20]])
    with pytest.raises(ValidationError, match=r"\[annotation.class_declared\].*dataset pets declares"):
        ws.annotations.add(uploaded[1], labels=["cta"], boxes_xyxy=[[1, 1, 20, 20]])
    ws.annotations.add(uploaded[2], labels=["cta"], boxes_xyxy=[[1, 1, 20, 20]])  # not in the dataset: free
    # a model's proposal of another class is stored, but cannot become ground truth
    proposal = ws.annotations.add(uploaded[1], labels=["bird"], boxes_xyxy=[[1, 1, 20, 20]], scores=[0.9],
                                  creation_method="model", model_id=ws.models.get("yolo11n").id)
    with pytest.raises(ValidationError, match="annotation.class_declared"):
        ws.annotations.review(proposal.id, "accept")
    with pytest.raises(ValidationError, match=r"\[dataset.classes_cover_ground_truth\].*\['cat'\]"):
        ws.datasets.set_classes("pets", ["dog"])
    assert ws.datasets.set_classes("pets", None).classes is None
    with pytest.raises(ValidationError, match=r"\[dataset.classes_named\]"):
        ws.datasets.create("bad", classes=["a", "a"])


def test_the_endpoint_schema_refuses_an_empty_image(ws):
    from mleval.deploy.schemas import PredictJSONRequest

    schema = PredictJSONRequest.model_json_schema()
    assert schema["properties"]["image_base64"]["minLength"] == 1


@pytest.mark.parametrize("polygons", [[None], [[]]])
def test_an_object_without_a_box_or_a_segment_is_refused(ws, uploaded, polygons):
    """Found by tests/fuzz: such a row was stored, and every export of its dataset then failed (KeyError)."""
    with pytest.raises(ValidationError, match=r"\[annotation.object_geometry\]|\[mask.polygon_points\]"):
        ws.annotations.add(uploaded[0], labels=["cat"], polygons=polygons)
