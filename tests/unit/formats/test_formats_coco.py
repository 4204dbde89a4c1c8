"""COCO reader and writer: hand-made files, pycocotools interop, broken inputs."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mleval.core import masks
from mleval.formats import (
    FormatError,
    LabelledDataset,
    LabelledImage,
    LabelledObject,
    read_coco,
    read_coco_results,
    write_coco,
    write_coco_results,
)


def _doc(**overrides) -> dict:
    square = np.zeros((20, 30), np.uint8)
    square[5:10, 4:12] = 1
    uncompressed = masks.decompress_rle(masks.mask_to_rle(square))
    doc = {
        "images": [
            {"id": 10, "file_name": "a.png", "width": 30, "height": 20},
            {"id": 11, "file_name": "b.png", "width": 30, "height": 20},
        ],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 10,
                "category_id": 7,
                "bbox": [1.5, 2.0, 10.0, 4.25],
                "iscrowd": 0,
                "segmentation": [],
            },
            {"id": 2, "image_id": 10, "category_id": 3, "segmentation": [[2, 2, 8, 2, 8, 6, 2, 6]], "iscrowd": 0},
            {
                "id": 3,
                "image_id": 11,
                "category_id": 3,
                "segmentation": uncompressed,
                "iscrowd": 1,
                "bbox": [4, 5, 8, 5],
            },
            {"id": 4, "image_id": 11, "category_id": 7, "segmentation": masks.mask_to_rle(square), "score": 0.75},
        ],
    }
    doc.update(overrides)
    return doc


def _write(folder: Path, doc: dict, make_image, images=("a.png", "b.png")) -> Path:
    for i, name in enumerate(images):
        make_image(folder / name, 30, 20, i)
    path = folder / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def test_read_maps_arbitrary_category_ids_boxes_polygons_rle_crowd_and_scores(tmp_path, make_image):
    ds = read_coco(_write(tmp_path, _doc(), make_image))
    assert ds.errors == []
    assert ds.categories == ["cat", "dog"]  # ascending COCO id: 3, 7
    a, b = ds.images
    assert (a.file_name, a.width, a.height, a.split) == ("a.png", 30, 20, None)
    assert a.source_path == tmp_path / "a.png"
    assert a.objects[0].label == "dog" and a.objects[0].bbox_xyxy == (1.5, 2.0, 11.5, 6.25)
    assert a.objects[1].polygons == [[2.0, 2.0, 8.0, 2.0, 8.0, 6.0, 2.0, 6.0]]
    assert a.objects[1].bbox_xyxy == (2.0, 2.0, 8.0, 6.0)  # no bbox in the file: from the polygon
    crowd, scored = b.objects
    assert crowd.iscrowd and masks.is_compressed_rle(crowd.rle)
    assert scored.score == 0.75 and scored.bbox_xyxy == (4.0, 5.0, 12.0, 10.0)  # from the RLE
    assert np.array_equal(masks.rle_to_mask(crowd.rle), masks.rle_to_mask(scored.rle))


def test_split_from_argument_or_file_name(tmp_path, make_image):
    path = _write(tmp_path, _doc(), make_image)
    assert {img.split for img in read_coco(path, split="val").images} == {"validation"}
    renamed = path.rename(tmp_path / "instances_val2017.json")
    assert {img.split for img in read_coco(renamed).images} == {"validation"}


def test_export_loads_in_pycocotools_and_predictions_pass_loadres_and_cocoeval(sample_dataset, tmp_path):
    write_coco(sample_dataset, tmp_path / "gt.json")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "gt.json"))
    assert len(gt.getImgIds()) == 4 and len(gt.getAnnIds()) == 6
    assert [c["name"] for c in gt.loadCats(gt.getCatIds())] == ["cat", "dog", "person"]
    assert gt.getCatIds() == [1, 2, 3]

    predictions = LabelledDataset(categories=sample_dataset.categories)
    for image in sample_dataset.images:
        objs = [LabelledObject(o.label, o.bbox_xyxy, o.polygons, o.rle, score=0.9) for o in image.objects]
        predictions.images.append(LabelledImage(image.file_name, image.width, image.height, image.split, objs))
    summary = write_coco_results(predictions, tmp_path / "dt.json", reference=sample_dataset)
    assert summary.objects == 6 and summary.issues == []
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(str(tmp_path / "dt.json")), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # perfect predictions

    # segm: box-only ground truth is written with "segmentation": [] (as CVAT does), which
    # pycocotools cannot rasterize, so evaluate masks on the objects that have them.
    for image in sample_dataset.images:
        image.objects = [o for o in image.objects if o.has_mask]
    write_coco(sample_dataset, tmp_path / "gt-masks.json")
    with contextlib.redirect_stdout(io.StringIO()):
        gt_masks = COCO(str(tmp_path / "gt-masks.json"))
        ev = COCOeval(gt_masks, gt_masks.loadRes(str(tmp_path / "dt.json")), "segm")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)

    back = read_coco_results(tmp_path / "dt.json", annotations=tmp_path / "gt.json")
    assert back.errors == []
    assert [len(img.objects) for img in back.images] == [2, 2, 2, 0]
    assert all(o.score == 0.9 for img in back.images for o in img.objects)


def test_results_skip_objects_without_score_or_unknown_image(sample_dataset, tmp_path):
    stray = LabelledImage("elsewhere.png", 10, 10, None, [LabelledObject("cat", (0, 0, 1, 1), score=0.5)])
    unscored = LabelledImage("a.jpg", 64, 48, None, [LabelledObject("cat", (0, 0, 1, 1))])
    preds = LabelledDataset(categories=["cat"], images=[stray, unscored])
    summary = write_coco_results(preds, tmp_path / "dt.json", reference=sample_dataset)
    assert summary.objects == 0 and len(summary.issues) == 2
    assert json.loads((tmp_path / "dt.json").read_text()) == []


def test_include_scores_writes_score_key(tmp_path):
    ds = LabelledDataset(
        ["cat"], [LabelledImage("x.png", 5, 5, None, [LabelledObject("cat", (0, 0, 2, 2), score=0.3)])]
    )
    write_coco(ds, tmp_path / "plain.json")
    write_coco(ds, tmp_path / "scored.json", include_scores=True)
    assert "score" not in json.loads((tmp_path / "plain.json").read_text())["annotations"][0]
    assert json.loads((tmp_path / "scored.json").read_text())["annotations"][0]["score"] == 0.3
    assert read_coco(tmp_path / "scored.json", check_images=False).images[0].objects[0].score == 0.3


def test_missing_images_are_item_errors_unless_checks_are_off(tmp_path, make_image):
    path = _write(tmp_path, _doc(), make_image, images=("a.png",))
    ds = read_coco(path)
    assert [img.file_name for img in ds.images] == ["a.png"]
    assert len(ds.errors) == 1 and "b.png" in ds.errors[0].item and "not found" in ds.errors[0].reason
    unchecked = read_coco(path, check_images=False)
    assert unchecked.errors == [] and len(unchecked.images) == 2
    assert unchecked.images[1].source_path == tmp_path / "b.png"


def test_broken_entries_become_item_errors_and_the_rest_is_read(tmp_path, make_image):
    doc = _doc()
    doc["images"].append({"id": 10, "file_name": "a.png", "width": 30, "height": 20})  # duplicate id
    doc["images"].append({"file_name": "nameless-id.png"})
    doc["categories"].append({"id": 9})  # no name
    doc["categories"].append({"id": 12, "name": "cat"})  # a second id for "cat": merged, reported
    doc["annotations"] += [
        {"id": 20, "image_id": 99, "category_id": 3, "bbox": [0, 0, 1, 1]},
        {"id": 21, "image_id": 10, "category_id": 42, "bbox": [0, 0, 1, 1]},
        {"id": 22, "image_id": 10, "category_id": 3, "bbox": [0, 0, -1, 1]},
        {"id": 23, "image_id": 10, "category_id": 3, "bbox": [0, 0, 1]},
        {"id": 24, "image_id": 10, "category_id": 3},
        {"id": 25, "image_id": 10, "category_id": 3, "segmentation": {"size": [5, 5], "counts": [25]}},
        {"id": 26, "image_id": 10, "category_id": 3, "segmentation": [[1, 2, 3]]},
        "not an object",
        {"id": 27, "image_id": 11, "category_id": 12, "bbox": [0, 0, 1, 1]},
    ]
    ds = read_coco(_write(tmp_path, doc, make_image))
    assert sum(len(img.objects) for img in ds.images) == 5  # the 5 good annotations
    assert ds.categories == ["cat", "dog"] and ds.images[1].objects[-1].label == "cat"
    reasons = {e.item.split(": ", 1)[1]: e.reason for e in ds.errors}
    assert "appears twice" in reasons["image id 10 (a.png)"]
    assert "needs an 'id'" in reasons["images[3]"]
    assert "non-empty 'name'" in reasons["categories[2]"]
    assert "image_id 99" in reasons["annotations[4] (id 20)"]
    assert "category_id 42" in reasons["annotations[5] (id 21)"]
    assert ">= 0" in reasons["annotations[6] (id 22)"]
    assert "[x, y, width, height]" in reasons["annotations[7] (id 23)"]
    assert "neither a bbox nor a segmentation" in reasons["annotations[8] (id 24)"]
    assert "does not match the image" in reasons["annotations[9] (id 25)"]
    assert "even number" in reasons["annotations[10] (id 26)"]
    assert "not an object" in reasons["annotations[11]"]
    assert "used by another id too" in reasons["category id 12"]
    assert all(e.item.startswith("instances.json: ") for e in ds.errors)


def test_invalid_json_and_results_lists_raise_format_errors_naming_the_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"images": [}')
    with pytest.raises(FormatError, match=r"broken.json: not valid JSON \(line 1, column 13"):
        read_coco(bad)
    results = tmp_path / "results.json"
    results.write_text("[]")
    with pytest.raises(FormatError, match="read_coco_results"):
        read_coco(results)
    with pytest.raises(FormatError, match="no such file"):
        read_coco(tmp_path / "absent.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no COCO JSON found"):
        read_coco(tmp_path / "empty")


def test_folder_layout_per_split_and_nested_roboflow_style(sample_dataset, tmp_path):
    write_coco(sample_dataset, tmp_path / "out")
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert names == [
        "annotations/instances_test.json",
        "annotations/instances_train.json",
        "annotations/instances_val.json",
        "images/test/sub/c.png",
        "images/train/a.jpg",
        "images/train/d.jpg",
        "images/val/b.png",
    ]
    # Roboflow's layout: <split>/_annotations.coco.json with the images beside it
    rf = tmp_path / "rf" / "valid"
    rf.mkdir(parents=True)
    (rf / "_annotations.coco.json").write_bytes((tmp_path / "out/annotations/instances_val.json").read_bytes())
    (rf / "b.png").write_bytes((tmp_path / "out/images/val/b.png").read_bytes())
    ds = read_coco(tmp_path / "rf")
    assert ds.errors == [] and [(i.file_name, i.split) for i in ds.images] == [("b.png", "validation")]


def test_writer_refuses_a_non_empty_folder_and_unknown_labels(sample_dataset, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.txt").write_text("x")
    with pytest.raises(FormatError, match="not an empty folder"):
        write_coco(sample_dataset, tmp_path / "full")
    sample_dataset.images[0].objects.append(LabelledObject("zebra", (0, 0, 1, 1)))
    with pytest.raises(Exception, match="zebra"):
        write_coco(sample_dataset, tmp_path / "new.json")
    assert not (tmp_path / "new.json").exists()


def test_images_without_bytes_are_reported_not_fatal(tmp_path):
    ds = LabelledDataset(["cat"], [LabelledImage("x.png", 5, 5, "train", [LabelledObject("cat", (0, 0, 2, 2))])])
    summary = write_coco(ds, tmp_path / "out.zip")
    assert len(summary.issues) == 1 and "no image bytes" in summary.issues[0].reason
    back = read_coco(tmp_path / "out.zip", check_images=False)
    assert back.images[0].objects[0].bbox_xyxy == (0.0, 0.0, 2.0, 2.0)
