"""Batch inference on a workspace in S3 (a local moto server): the catalog owner keeps the catalog
on its node and checkpoints it, predictor actors read the blobs from the store, and a new
owner on an empty catalog folder restores everything."""

from __future__ import annotations

import pyarrow.fs as pafs

import mleval
from mleval.catalog.owner import stop_owner
from tests.unit.conftest import image_bytes


def test_batch_inference_on_an_s3_workspace(ray_session, s3_bucket, s3_options, tmp_path):
    uri = f"s3://{s3_bucket}/ws"
    ws = mleval.Workspace.open(uri, storage_options=s3_options, catalog_dir=tmp_path / "owner-a")
    try:
        assert ws.uses_catalog_owner and ws.catalog_path == tmp_path / "owner-a" / "catalog.duckdb"
        ws.images.upload([(f"{i}.png", image_bytes(size=(96, 64), seed=i)) for i in range(20)], split="test")
        job = ws.infer("yolo11n", split="test", conf=0.0, imgsz=64, batch_size=10, concurrency=1)
        job.wait(timeout=300)
        assert job.status == "completed", job.logs
        rows = ws.sql(f"SELECT count(*) AS n, count(error) AS failed FROM predictions "
                      f"WHERE inference_job_id = '{job.id}'").to_pylist()
        assert rows == [{"n": 20, "failed": 0}]
        s3 = pafs.S3FileSystem(**s3_options)
        written = s3.get_file_info(pafs.FileSelector(f"{s3_bucket}/ws/tables/predictions/job={job.id}"))
        assert written and all(info.path.endswith(".parquet") for info in written)
        annotations = ws.sql(f"SELECT count(*) AS n FROM annotations WHERE inference_job_id = '{job.id}'")
    finally:
        stop_owner(ws.location)  # checkpoints the catalog to the store first

    again = mleval.Workspace.open(uri, storage_options=s3_options, catalog_dir=tmp_path / "owner-b")
    try:
        assert again.images.count(split="test") == 20
        assert again.sql(f"SELECT count(*) AS n FROM predictions WHERE inference_job_id = '{job.id}'") \
            .column("n")[0].as_py() == 20
        assert again.sql(f"SELECT count(*) AS n FROM annotations WHERE inference_job_id = '{job.id}'") \
            .equals(annotations)
        assert again.catalog.get("inference_jobs", job.id)["status"] == "completed"
    finally:
        stop_owner(again.location)
