"""evaluate on a real local Ray: batch inference runs when predictions are missing, then is reused."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mleval.evaluation.runs import evaluate, list_runs, load_run
from mleval.synthetic import generate_shapes

# yolo11n's (COCO) names for the shapes, so that some random-weight detections are kept, not all dropped
AS_COCO = {"circle": "person", "square": "car", "triangle": "dog"}


@pytest.fixture
def shapes(ray_workspace, tmp_path):
    ws = ray_workspace
    data = generate_shapes(tmp_path / "source", train=0, validation=0, test=4, image_size=64)
    ws.datasets.create("shapes")
    report = ws.images.upload([image.path for image in data.images], split="test", dataset="shapes")
    ids = {record.filename: record.id for record in report.succeeded}
    ws.annotations.add_batch(pa.table({
        "image_id": [ids[image.path.name] for image in data.images],
        "class_labels": [[AS_COCO[o.label] for o in image.objects] for image in data.images],
        "bounding_boxes": pa.array([[list(o.bbox_xyxy) for o in image.objects] for image in data.images],
                                   pa.list_(pa.list_(pa.float64(), 4))),
    }))
    return ws


def test_evaluate_runs_batch_inference_then_reuses_its_predictions(shapes):
    ws = shapes
    run = evaluate(ws.context, "yolo11n", "shapes", imgsz=64, batch_size=4, timeout_s=240, infer=ws.infer)
    job = ws.catalog.get("inference_jobs", run.inference_job_id)
    assert job["status"] == "completed" and job["model_id"] is not None
    summary = run.summary
    assert summary["num_images"] == 4 and summary["failed_images"] == 0
    assert 0.0 <= summary["mAP50_95"] <= summary["mAP50"] <= 1.0
    stored = ws.sql(f"SELECT sum(len(list_filter(scores, lambda s: s >= 0.001))) AS n FROM predictions "
                    f"WHERE inference_job_id = '{run.inference_job_id}'").column("n")[0].as_py()
    assert summary["num_detections"] + summary["dropped_detections"] == stored
    assert summary["ms_per_image"] > 0 and summary["images_per_second"] > 0
    types = set(run.metrics.column("metric_type").to_pylist())
    assert {"mAP50", "mAP50_95", "precision", "recall", "F1", "execution_time", "AP"} <= types  # IoU: no TP here

    again = evaluate(ws, "yolo11n", "shapes", imgsz=64, batch_size=4)
    assert again.inference_job_id == run.inference_job_id  # stored predictions, no second inference
    assert ws.sql("SELECT count(*) AS n FROM inference_jobs").column("n")[0].as_py() == 1
    assert again.summary["mAP50_95"] == summary["mAP50_95"]
    assert list_runs(ws).column("key").to_pylist() == [again.key, run.key]
    assert load_run(ws, run.key).metrics.num_rows == run.metrics.num_rows
