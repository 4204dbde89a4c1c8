"""Batch inference on a real local Ray: Ray Data, predictor actors, real forward passes."""

from __future__ import annotations

import os

import pytest

from mleval.jobs.handle import JobHandle
from tests.unit.conftest import image_bytes


@pytest.fixture
def images(ray_workspace):
    report = ray_workspace.images.upload(
        [(f"{i}.png", image_bytes(size=(96, 64), seed=i)) for i in range(120)], split="test")
    return report.succeeded


def test_batch_inference_stores_every_prediction_and_survives_a_corrupt_image(ray_workspace, images):
    ws = ray_workspace
    corrupt = images[7]
    with open(ws.blobs.local_path(corrupt.file_path), "r+b") as blob:  # damage the stored bytes
        blob.truncate(40)
    job = ws.infer("yolo11n", split="test", conf=0.0, imgsz=64, batch_size=16)
    assert isinstance(job, JobHandle)
    job.wait(timeout=300)
    record = job.record
    assert record["status"] == "completed" and job.progress == 100.0
    assert f"image {corrupt.id} failed" in job.logs
    predictions = ws.sql(f"SELECT * FROM predictions WHERE inference_job_id = '{job.id}'")
    assert predictions.num_rows == 120
    assert predictions.filter(predictions.column("error").is_valid()).column("image_id").to_pylist() == [corrupt.id]
    stored = ws.sql(
        f"SELECT sum(len(class_labels)) AS objects, count(*) AS annotations FROM annotations "
        f"WHERE inference_job_id = '{job.id}' AND creation_method = 'model' AND review_state = 'generated'"
    ).to_pylist()[0]
    predicted = ws.sql(f"SELECT sum(len(class_names)) AS objects, count(*) FILTER (WHERE len(class_names) > 0) AS "
                       f"annotations FROM predictions WHERE inference_job_id = '{job.id}'").to_pylist()[0]
    assert stored == predicted and stored["objects"] > 0
    assert record["results"] is not None and '"failed_images": 1' in record["results"]


def test_a_cancelled_job_ends_cancelled(ray_workspace, images):
    job = ray_workspace.infer("yolo11n", images=images, conf=0.5, imgsz=64, batch_size=2)
    job.cancel()
    job.wait(timeout=120)
    assert job.status == "cancelled"
    assert "cancelled by the user" in job.logs


def test_single_image_predict_stores_a_generated_annotation(ray_workspace, images):
    result = ray_workspace.predict("yolo11n", images[0], conf=0.0, imgsz=64)
    assert len(result.detections) > 0 and result.prediction.inference_ms > 0
    stored = ray_workspace.annotations.get(result.annotation_id)
    assert stored.review_state == "generated" and len(stored.class_labels) == len(result.detections)
    model = ray_workspace.models.get("yolo11n")
    assert model.metadata["weights_source"] == "architecture" and model.metadata["pretrained"] is False
    assert os.environ.get("YOLO_OFFLINE") == "1"


def test_select_for_labeling_scores_the_unlabelled_pool_on_ray_data(ray_workspace, images, tmp_path):
    from tests.unit.test_model_settings import _checkpoint

    ws = ray_workspace
    # a weights file, so every actor loads the same model (the zoo's fallback draws random weights per load)
    model = ws.models.register("fixed", _checkpoint(tmp_path / "best.pt", imgsz=64, names={0: "circle"}),
                               framework="YOLO11", variant="nano")
    ws.datasets.create("pool", images=images[:40])
    labelled = images[:5]
    for image in labelled:
        ws.annotations.add(image, labels=["circle"], boxes_xyxy=[[5, 5, 30, 30]])
    first = ws.select_for_labeling(model, "pool", 8, seed=1, progress=False)  # hybrid: real embeddings
    assert first.column_names == ["image_id", "score", "rank"] and first.num_rows == 8
    picked = first.column("image_id").to_pylist()
    assert len(set(picked)) == 8 and not set(picked) & {i.id for i in labelled}
    assert set(picked) <= {i.id for i in images[5:40]}
    again = ws.select_for_labeling(model, "pool", 8, seed=1, progress=False)
    assert again.column("image_id").to_pylist() == picked  # the same seed, the same picks
