"""Evaluation runs, comparisons and plots over stored predictions (no Ray: predictions are inserted here)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from mleval.catalog.catalog import new_id, utc_now
from mleval.core.detections import Detections, ImagePrediction
from mleval.core.errors import MlevalError, NotFoundError, ValidationError
from mleval.core.masks import polygons_to_rle
from mleval.evaluation import plots
from mleval.evaluation.compare import compare
from mleval.evaluation.runs import _usable, delete_run, evaluate, list_metrics, list_runs, load_run
from tests.unit.conftest import detectors_of, image_bytes
from tests.unit.evaluation._reference import reference_eval

W, H = 100, 80
# image index -> ground-truth objects (label, xyxy); image 4's is an accepted model annotation,
# image 5 has none (and a generated model annotation that is not ground truth)
GROUND_TRUTH = {
    0: [("circle", (10, 10, 40, 40)), ("square", (50, 20, 90, 70))],
    1: [("square", (5, 5, 30, 30))],
    2: [("circle", (20, 20, 60, 60)), ("circle", (60, 10, 95, 50))],
    3: [("square", (0, 0, 50, 40)), ("circle", (55, 45, 85, 75))],
    4: [("square", (30, 30, 70, 70))],
    5: [],
}


def _hexagon(box):
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    xs = [x1 + 0.25 * w, x1 + 0.75 * w, x2, x1 + 0.75 * w, x1 + 0.25 * w, x1]
    ys = [y1, y1, y1 + 0.5 * h, y2, y2, y1 + 0.5 * h]
    return [float(v) for point in zip(xs, ys) for v in point]


def _perfect(objects, index):
    dets = [(label, box, 0.9 - 0.05 * k) for k, (label, box) in enumerate(objects)]
    return dets + ([("dog", (1, 1, 20, 20), 0.8)] if index == 0 else [])  # a class the ground truth lacks


def _noisy(objects, index):
    rng = np.random.default_rng(index)
    dets = []
    for k, (label, box) in enumerate(objects):
        if index == 3 and k == 1:
            continue  # missed
        moved = tuple(float(np.clip(v + rng.integers(-6, 7), 0, W if j % 2 == 0 else H)) for j, v in enumerate(box))
        wrong = index == 2 and k == 0
        dets.append(("square" if wrong else label, moved, float(rng.uniform(0.3, 0.95))))
    if index in (0, 1):
        dets.append(("circle", (70, 5, 95, 25), 0.6))  # false positive
    return dets


@pytest.fixture
def scene(ws):
    report = ws.images.upload([(f"{i}.png", image_bytes(size=(W, H), seed=i)) for i in range(6)], split="test")
    images = sorted(report.succeeded, key=lambda r: r.filename)
    ws.images.upload([("train.png", image_bytes(size=(W, H), seed=99))], split="train", dataset=None)
    ws.datasets.create("shapes", images=images)
    detectors_of(ws, ["circle", "square", "dog"], "yolo11n", "yolo12n")
    perfect, noisy = ws.models.get("yolo11n"), ws.models.get("yolo12n")
    for i, objects in GROUND_TRUTH.items():
        if not objects:
            continue
        labels, boxes = [o[0] for o in objects], [o[1] for o in objects]
        polygons = [[_hexagon(b)] for b in boxes]
        if i == 4:
            record = ws.annotations.add(images[i], labels=labels, boxes_xyxy=boxes, polygons=polygons,
                                        creation_method="model", model_id=noisy.id, scores=[0.9])
            ws.annotations.review(record.id, "accept")
        else:
            ws.annotations.add(images[i], labels=labels, boxes_xyxy=boxes, polygons=polygons)
    ws.annotations.add(images[5], labels=["triangle"], boxes_xyxy=[[1, 1, 9, 9]], creation_method="model",
                       model_id=noisy.id, scores=[0.5])
    detections = {}
    for model, make in ((perfect, _perfect), (noisy, _noisy)):
        detections[model.name] = {i: make(objects, i) for i, objects in GROUND_TRUTH.items()}
        _store_predictions(ws, model, images, detections[model.name], failed={5} if model is noisy else set())
    return {"ws": ws, "images": images, "detections": detections}


def _store_predictions(ws, model, images, detections, *, failed, conf=0.001):
    job_id, now = new_id(), utc_now()
    ws.catalog.insert("inference_jobs", [{
        "id": job_id, "model_id": model.id, "target_images": [i.id for i in images], "status": "completed",
        "progress_percentage": 100.0, "created_at": now, "end_time": now,
        "metadata": {"settings": {"conf": conf, "imgsz": 640}},
    }])
    rows = []
    for i, image in enumerate(images):
        if i in failed:
            rows.append({"image_id": image.id, "error": "unreadable image: test"})
            continue
        dets = detections[i]
        masks = [polygons_to_rle([_hexagon(box)], height=H, width=W) for _, box, _ in dets]
        rows.append({"image_id": image.id, "boxes_xyxy": [list(map(float, b)) for _, b, _ in dets],
                     "class_names": [d[0] for d in dets], "scores": [d[2] for d in dets],
                     "masks_rle": json.dumps(masks), "preprocess_ms": 1.0, "inference_ms": 10.0 + i,
                     "postprocess_ms": 2.0, "error": None})
    table = pa.Table.from_pylist(rows).append_column("inference_job_id", pa.array([job_id] * len(rows))) \
        .append_column("model_id", pa.array([model.id] * len(rows)))
    ws.catalog.append_rows("predictions", table)
    return job_id


def _reference(detections, *, iou_type="bbox"):
    """pycocotools on the same objects, built here independently of mleval."""
    classes = {"circle": 1, "square": 2}
    gt = {"images": [{"id": i, "width": W, "height": H} for i in GROUND_TRUTH],
          "categories": [{"id": c, "name": n} for n, c in classes.items()], "annotations": []}
    for i, objects in GROUND_TRUTH.items():
        for label, (x1, y1, x2, y2) in objects:
            ann = {"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": classes[label],
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            if iou_type == "segm":
                ann["segmentation"] = [_hexagon((x1, y1, x2, y2))]
                ann["area"] = 0.75 * (x2 - x1) * (y2 - y1)
            gt["annotations"].append(ann)
    dt = []
    for i, dets in detections.items():
        for label, (x1, y1, x2, y2), score in dets:
            if label in classes:
                d = {"image_id": i, "category_id": classes[label], "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
                if iou_type == "segm":
                    d["segmentation"] = polygons_to_rle([_hexagon((x1, y1, x2, y2))], height=H, width=W)
                dt.append(d)
    return reference_eval(gt, dt, iou_type=iou_type)


@pytest.mark.parametrize("model", ["yolo11n", "yolo12n"])
def test_evaluate_matches_pycocotools_and_stores_metric_rows(scene, model):
    ws = scene["ws"]
    run = evaluate(ws, model, "shapes")
    reference = _reference(scene["detections"][model])
    assert run.key == f"{model}-shapes-test-1"
    assert run.summary["mAP50_95"] == pytest.approx(reference.stats[0], abs=1e-12)
    assert run.summary["mAP50"] == pytest.approx(reference.stats[1], abs=1e-12)
    assert run.evaluation.stats[0] == pytest.approx(reference.stats[0], abs=1e-12)
    assert run.config["class_names"] == ["circle", "square"]  # not the generated "triangle"
    assert run.summary["num_ground_truths"] == 8
    if model == "yolo11n":
        assert run.summary["mAP50_95"] == pytest.approx(1.0)
        assert run.summary["dropped_detections"] == 1 and run.summary["dropped_classes"] == {"dog": 1}
        assert run.summary["failed_images"] == 0 and run.summary["num_images"] == 6
        assert run.summary["ms_per_image"] == pytest.approx(1.0 + 12.5 + 2.0)
    else:
        assert run.summary["mAP50_95"] < 0.9
        assert run.summary["failed_images"] == 1 and run.summary["num_images"] == 5
    assert run.inference_job_id is not None

    metrics = {(r["metric_type"], r["class_name"]): r for r in run.metrics.to_pylist()}
    assert metrics[("mAP50", None)]["threshold"] == 0.5
    assert metrics[("mAP50", None)]["metric_value"] == pytest.approx(run.summary["mAP50"])
    assert metrics[("mAP50_95", None)]["threshold"] is None
    for name in ("precision", "recall", "F1"):
        assert metrics[(name, None)]["threshold"] == 0.5
        assert metrics[(name, None)]["metric_value"] == pytest.approx(run.summary[name])
    assert metrics[("IoU", None)]["metric_value"] == pytest.approx(run.evaluation.mean_iou())
    assert metrics[("execution_time", None)]["metric_value"] == pytest.approx(run.summary["ms_per_image"])
    per_class = {r["name"]: r["ap50"] for r in run.evaluation.per_class().to_pylist()}
    for name in ("circle", "square"):
        assert metrics[("AP", name)]["threshold"] == 0.5
        assert metrics[("AP", name)]["metric_value"] == pytest.approx(per_class[name])
    assert {r["evaluation_run_id"] for r in run.metrics.to_pylist()} == {run.id}
    stored = ws.sql(f"SELECT count(*) AS n FROM performance_metrics WHERE evaluation_run_id = '{run.id}'")
    assert stored.column("n")[0].as_py() == run.metrics.num_rows
    assert run.per_class.column("class_name").to_pylist() == ["circle", "square"]
    assert run.confusion_matrix.column_names == ["predicted", "circle", "square", "background"]


def test_undefined_numbers_are_left_out_of_the_metric_rows(scene):
    run = evaluate(scene["ws"], "yolo11n", "shapes", conf=0.95)  # no detection is kept
    assert run.summary["num_detections"] == 0 and run.summary["mean_iou"] is None
    assert run.summary["mAP50"] == 0.0
    types = run.metrics.column("metric_type").to_pylist()
    assert "IoU" not in types and "mAP50" in types
    assert None not in run.metrics.column("metric_value").to_pylist()


def test_segm_evaluation_matches_pycocotools(scene):
    run = evaluate(scene["ws"], "yolo12n", "shapes", iou_type="segm")
    reference = _reference(scene["detections"]["yolo12n"], iou_type="segm")
    assert run.iou_type == "segm"
    assert run.summary["mAP50_95"] == pytest.approx(reference.stats[0], abs=1e-12)
    assert run.summary["mAP50"] == pytest.approx(reference.stats[1], abs=1e-12)


def test_runs_are_listed_reloaded_and_deleted(scene):
    ws = scene["ws"]
    first = evaluate(ws, "yolo11n", "shapes")
    second = evaluate(ws, "yolo11n", "shapes", conf=0.86)  # stored predictions, scores >= 0.86 kept
    other = evaluate(ws, "yolo12n", "shapes", key="noisy")
    assert second.key == "yolo11n-shapes-test-2" and second.config["conf"] == 0.86
    assert (second.summary["num_detections"], first.summary["num_detections"]) == (5, 8)
    assert set(list_runs(ws).column("key").to_pylist()) == {first.key, second.key, "noisy"}
    assert list_runs(ws, model="yolo12n").column("key").to_pylist() == ["noisy"]

    loaded = load_run(ws, first.key)
    assert loaded.summary == first.summary and loaded.config == first.config
    assert loaded.metrics.equals(first.metrics)
    assert loaded.per_class.equals(first.per_class) and loaded.confusion_matrix.equals(first.confusion_matrix)
    assert loaded.evaluation is None and loaded.pr_curve == first.pr_curve
    assert "yolo11n" in loaded._repr_html_() and loaded.to_pandas().shape[0] == 2

    with pytest.raises(ValidationError, match="exists"):
        evaluate(ws, "yolo12n", "shapes", key="noisy")
    delete_run(ws, "noisy")
    assert "noisy" not in list_runs(ws).column("key").to_pylist()
    with pytest.raises(NotFoundError, match="noisy"):
        load_run(ws, "noisy")
    live = list_metrics(ws)
    assert other.id not in live.column("evaluation_run_id").to_pylist()
    assert live.num_rows == first.metrics.num_rows + second.metrics.num_rows
    # the Parquet rows stay (append-only); the performance_metrics view leaves them out
    view = ws.sql(f"SELECT count(*) AS n FROM performance_metrics WHERE evaluation_run_id = '{other.id}'")
    assert view.column("n")[0].as_py() == 0
    pattern = (ws.root / "tables" / "performance_metrics" / "*" / "*.parquet").as_posix()
    raw = ws.sql(f"SELECT count(*) AS n FROM read_parquet('{pattern}') WHERE evaluation_run_id = '{other.id}'")
    assert raw.column("n")[0].as_py() == other.metrics.num_rows
    again = evaluate(ws, "yolo12n", "shapes", key="noisy")
    assert again.id != other.id and load_run(ws, "noisy").metrics.num_rows == other.metrics.num_rows


def test_compare_ranks_models_and_reuses_runs(scene):
    ws = scene["ws"]
    comparison = compare(ws, ["yolo12n", "yolo11n"], "shapes")
    board = comparison.leaderboard.to_pylist()
    assert [row["model"] for row in board] == ["yolo11n", "yolo12n"]
    assert board[0]["mAP50_95"] == pytest.approx(1.0) and board[1]["mAP50_95"] < 1.0
    assert comparison.best["mAP50_95"] == "yolo11n" and comparison.best["F1"] == "yolo11n"
    ap = {row["class_name"]: row for row in comparison.per_class_ap.to_pylist()}
    for name in ("circle", "square"):
        assert ap[name]["delta_yolo11n"] == pytest.approx(ap[name]["yolo11n"] - ap[name]["yolo12n"])
    assert "<b>" in comparison._repr_html_() and comparison.to_pandas().shape[0] == 2

    keys = {run.key for run in comparison.runs}
    assert {run.key for run in compare(ws, ["yolo11n", "yolo12n"], "shapes").runs} == keys
    assert not keys & {run.key for run in compare(ws, ["yolo11n", "yolo12n"], "shapes", refresh=True).runs}
    assert not keys & {run.key for run in compare(ws, ["yolo11n"], "shapes", conf=0.3).runs}
    with pytest.raises(ValidationError, match="distinct"):
        compare(ws, ["yolo11n", "yolo11n"], "shapes")


def test_plots_return_figures(scene):
    from matplotlib.figure import Figure

    ws = scene["ws"]
    comparison = compare(ws, ["yolo11n", "yolo12n"], "shapes")
    reloaded = [load_run(ws, run.key) for run in comparison.runs]
    figures = [plots.pr_curves(comparison), plots.pr_curves(reloaded, class_name="circle"),
               plots.confusion_matrix(reloaded[1]), plots.confusion_matrix(reloaded[0], normalize=False),
               plots.per_class_ap(comparison), plots.per_class_ap(reloaded[0], column="f1"),
               plots.leaderboard(comparison)]
    for figure in figures:
        assert isinstance(figure, Figure) and figure.axes
        figure.canvas.draw()
    with pytest.raises(ValidationError, match="circle"):
        plots.pr_curves(comparison, class_name="hexagon")


class _FakeSam2:
    """Answers each box prompt with the box itself as a mask: IoU with the hexagon ground truth is 0.75."""

    def predict(self, images, *, boxes, labels):
        from mleval.core.masks import mask_to_rle

        answers = []
        for image, image_boxes, names in zip(images, boxes, labels):
            masks = []
            for x1, y1, x2, y2 in image_boxes:
                mask = np.zeros(image.shape[:2], bool)
                mask[int(y1):int(y2), int(x1):int(x2)] = True
                masks.append(mask_to_rle(mask))
            detections = Detections(np.asarray(image_boxes, float).reshape(-1, 4), names, np.ones(len(names)), masks)
            answers.append(ImagePrediction(detections, 0.0, 100.0, 5.0))
        return answers


def test_sam2_is_scored_with_box_prompts_and_mask_iou(scene, monkeypatch):
    ws = scene["ws"]
    sam = ws.models.get("sam2.1_t")
    monkeypatch.setattr(ws.models, "load", lambda model, **_: type("Loaded", (), {"predictor": _FakeSam2()}))
    run = evaluate(ws, sam, "shapes", batch_size=4)
    assert run.iou_type == "segm" and run.inference_job_id is None and run.confusion_matrix is None
    assert run.summary["num_gt"] == 8 and run.summary["ms_per_image"] == pytest.approx(105.0)
    assert run.summary["mean_iou"] == pytest.approx(0.75, abs=0.03)
    assert run.summary["recall50"] == 1.0 and run.summary["recall75"] < 1.0
    metrics = {(r["metric_type"], r["class_name"], r["threshold"]) for r in run.metrics.to_pylist()}
    assert {("IoU", None, None), ("IoU", "circle", None), ("IoU", "square", None), ("recall", None, 0.5)} <= metrics
    board = compare(ws, ["yolo11n", sam], "shapes").leaderboard.to_pylist()
    assert [row["model"] for row in board] == ["yolo11n", "sam2.1_t"]


def test_errors_name_the_problem(scene):
    ws = scene["ws"]
    with pytest.raises(ValidationError, match="no validation images"):
        evaluate(ws, "yolo11n", "shapes", split="validation")
    with pytest.raises(ValidationError, match="iou_type"):
        evaluate(ws, "yolo11n", "shapes", iou_type="keypoints")
    ws.datasets.create("empty-truth", images=[scene["images"][5]])
    with pytest.raises(ValidationError, match="no ground truth"):
        evaluate(ws, "yolo11n", "empty-truth")


def test_stored_predictions_are_reused_only_when_they_can_answer():
    settings = json.dumps({"settings": {"conf": 0.25, "imgsz": 640}})
    assert _usable(settings, 0.25, 640) and _usable(settings, 0.5, 640)
    assert not _usable(settings, 0.001, 640)  # detections under 0.25 were never stored
    assert not _usable(settings, 0.25, 320)
    assert _usable(None, 0.001, 320)  # rows stored without settings: taken as they are


def test_a_false_negative_names_the_annotation_and_object_it_missed(scene):
    ws, images = scene["ws"], scene["images"]
    run = evaluate(ws, "yolo12n", "shapes")  # misses image 3's circle, calls image 2's first circle a square
    missed = run.false_negatives(iou_threshold=0.5).to_pylist()
    by_object = {(row["image_id"], row["object_index"]): row for row in missed}
    for image, k, label in ((images[3], 1, "circle"), (images[2], 0, "circle")):
        row = by_object[(image.id, k)]
        annotation = ws.annotations.list(image=image, ground_truth=True)[0]
        assert row["annotation_id"] == annotation.id and row["class_name"] == label
        assert annotation.class_labels[k] == label
    for row in missed:  # every row points at the ground-truth object of its class
        annotation = next(a for a in ws.annotations.list(image=row["image_id"]) if a.id == row["annotation_id"])
        assert annotation.class_labels[row["object_index"]] == row["class_name"]
    perfect = evaluate(ws, "yolo11n", "shapes")
    assert perfect.false_negatives().num_rows == 0
    with pytest.raises(MlevalError, match="read back from the catalog"):
        load_run(ws, perfect.key).false_negatives()


def test_a_false_positive_names_the_prediction_and_the_ground_truth_it_came_closest_to(scene):
    ws, images, noisy = scene["ws"], scene["images"], scene["detections"]["yolo12n"]
    run = evaluate(ws, "yolo12n", "shapes")
    wrong = run.false_positives(iou_threshold=0.5).to_pylist()
    index_of = {image.id: i for i, image in enumerate(images)}
    by_object = {(index_of[row["image_id"]], row["object_index"]): row for row in wrong}
    # the extra circles on images 0 and 1, and image 2's first circle called a square
    assert {(0, 2), (1, 1), (2, 0)} <= set(by_object)
    for row in wrong:  # every row points at the detection of its class in the model's prediction
        label, _, score = noisy[index_of[row["image_id"]]][row["object_index"]]
        assert (row["class_name"], row["score"]) == (label, pytest.approx(score))
    assert [row["score"] for row in wrong] == sorted((row["score"] for row in wrong), reverse=True)
    square = by_object[(2, 0)]
    assert square["class_name"] == "square" and square["best_annotation_id"] is None  # no square on image 2
    circle = by_object[(0, 2)]  # image 0 has a circle elsewhere: named, with no overlap
    assert circle["best_iou"] == 0.0 and circle["best_object_index"] == 0
    for row in (r for r in wrong if r["best_annotation_id"] is not None):
        annotation = next(a for a in ws.annotations.list(image=row["image_id"]) if a.id == row["best_annotation_id"])
        assert annotation.class_labels[row["best_object_index"]] == row["class_name"]
        assert 0 <= row["best_iou"] < 0.5
    assert evaluate(ws, "yolo11n", "shapes").false_positives().num_rows == 0  # its "dog" is not a dataset class
    with pytest.raises(ValidationError, match="iou_threshold"):
        run.false_positives(iou_threshold=0.42)


def test_a_run_keeps_its_error_breakdown_and_lists_the_objects_behind_it(scene):
    ws, images = scene["ws"], scene["images"]
    run = evaluate(ws, "yolo12n", "shapes")  # image 2's first circle called a square, image 3's circle missed
    errors = run.errors()
    assert set(errors) >= {"cls", "loc", "both", "dupe", "bkg", "miss", "counts"}
    assert errors["counts"]["cls"] >= 1 and errors["counts"]["bkg"] >= 2 and errors["counts"]["miss"] >= 1
    assert load_run(ws, run.key).errors() == errors  # stored with the run, not recomputed
    assert 0 <= run.calibration()["ece"] <= 1
    [swapped] = [r for r in run.objects("cls").to_pylist() if r["image_id"] == images[2].id]
    annotation = ws.annotations.list(image=images[2], ground_truth=True)[0]
    assert (swapped["class_name"], swapped["confused_class"]) == ("square", "circle")
    assert (swapped["annotation_id"], swapped["object_index"]) == (annotation.id, 0)
    stray = {r["image_id"] for r in run.objects("bkg").to_pylist()}
    assert {images[0].id, images[1].id} <= stray  # the circles drawn on empty corners
    assert run.objects("fn").num_rows == run.false_negatives().num_rows
    by_image = run.slice({"first two": [images[0].id, images[1].id], "rest": [i.id for i in images[2:5]]})
    assert by_image.column("slice").to_pylist() == ["first two", "rest"]
    assert run.slice("size").column("size").to_pylist() == ["small", "medium", "large"]
    with pytest.raises(ValidationError, match="evaluation.slice"):
        run.slice({"elsewhere": ["not-an-image"]})


def test_the_label_error_finder_points_at_the_objects_a_stored_run_disagrees_with(scene):
    ws, images = scene["ws"], scene["images"]
    run = evaluate(ws, "yolo12n", "shapes")
    issues = ws.find_label_issues(run)
    assert issues.column_names[:7] == ["kind", "image_id", "annotation_id", "object_index", "box",
                                      "current_label", "suggested_label"]
    assert issues.column("score").to_pylist() == sorted(issues.column("score").to_pylist(), reverse=True)
    rows = issues.to_pylist()
    swapped = next(r for r in rows if r["image_id"] == images[2].id and r["object_index"] == 0)
    annotation = ws.annotations.list(image=images[2], ground_truth=True)[0]
    assert (swapped["kind"], swapped["annotation_id"]) == ("wrong_class", annotation.id)
    assert (swapped["current_label"], swapped["suggested_label"]) == ("circle", "square")
    # the confident circle on image 1's empty corner (image 0's touches its square, so it is no "missing")
    [extra] = [r for r in rows if r["kind"] == "missing"]
    assert (extra["image_id"], extra["annotation_id"], extra["box"]) == (images[1].id, None, [70, 5, 95, 25])
    assert not any(r["model_saw_image"] for r in rows)  # yolo12n here was never trained on them
    ws.find_label_issues(run, propose=True)  # the missing circle becomes a proposal to accept or reject
    [proposal] = [a for a in ws.annotations.list(image=images[1], creation_method="model")
                  if (a.metadata or {}).get("proposed_by") == "find_label_issues"]
    assert (proposal.class_labels, proposal.review_state) == (["circle"], "generated")
    assert [list(b) for b in proposal.boxes_xyxy] == [[70, 5, 95, 25]]
    with pytest.raises(ValidationError, match="evaluation.images"):  # the run's model on another split: empty
        ws.find_label_issues(run, "shapes", split="validation")
    again = ws.find_label_issues(run, "shapes", split="test")  # the run's own labels: the same table
    assert again.to_pylist() == rows
    plots.reliability(run)  # draws from the stored calibration


def test_the_error_browser_shows_each_kind_of_object_and_opens_its_image(scene):
    import io

    from PIL import Image

    from mleval_widgets import Annotator, ErrorBrowser

    ws, images = scene["ws"], scene["images"]
    run = evaluate(ws, "yolo12n", "shapes")
    browser = ErrorBrowser(ws, run, kind="cls", thumbnail_px=80)
    [tile] = browser.grid.children
    picture, caption, button = tile.children
    assert max(Image.open(io.BytesIO(bytes(picture.value))).size) == 80
    assert "square" in caption.value and "on circle" in caption.value
    annotator = Annotator(ws, [images[0]], classes=["circle", "square"], user_tag="fixer")
    browser.on_select(annotator.show)
    button.click()
    assert annotator.image.id == images[2].id  # the image whose circle the model called a square
    browser.kind.value = "fn"
    assert len(browser.rows) == run.false_negatives().num_rows and "false negatives" in browser.summary.value
    browser.kind.value = "fp"
    browser.min_score.value = 0.9
    assert all(row["score"] >= 0.9 for row in browser.rows)
