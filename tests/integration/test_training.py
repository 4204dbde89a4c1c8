"""Fine-tuning on Ray Train (``mleval.jobs.training``) with a real local Ray: tiny data, imgsz 64.

The 2-worker run is also the resume test: one worker is killed after the first epoch and the
run has to resume from its checkpoint and complete.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pytest

from mleval.core.errors import ValidationError
from mleval.jobs.handle import JobCancelledError
from mleval.jobs.training import start_training, training_metrics
from tests.integration.conftest import import_shapes

HYPERPARAMETERS = {"epochs": 3, "batch_size": 8, "learning_rate": 0.001, "imgsz": 64, "mosaic": 0.0,
                   "warmup_epochs": 1}


def _wait_for(predicate, timeout_s: float, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError(f"condition not met in {timeout_s} s")


def _kill_rank_1(job) -> int:
    """SIGKILL the rank-1 Ray Train worker of ``job`` (its pid is in the job's logs)."""
    found = re.search(r"rank 1 pid (\d+)", job.logs)
    assert found, job.logs
    pid = int(found.group(1))
    os.kill(pid, signal.SIGKILL)
    return pid


def test_bad_hyperparameters_and_too_small_dataset_are_refused(ray_workspace, tmp_path):
    ws = ray_workspace
    import_shapes(ws, tmp_path, train=3, validation=0)
    with pytest.raises(ValidationError, match=r"'learning_rate'.*\[1e-08, 1.0\].*got 5"):
        start_training(ws, "yolo11n", "shapes", hyperparameters={**HYPERPARAMETERS, "learning_rate": 5})
    with pytest.raises(ValidationError, match="'epochs' is required"):
        start_training(ws, "yolo11n", "shapes", hyperparameters={"batch_size": 8, "learning_rate": 0.01})
    with pytest.raises(ValidationError, match="'imgsz' must be a multiple of 32"):
        start_training(ws, "yolo11n", "shapes", hyperparameters={**HYPERPARAMETERS, "imgsz": 100})
    with pytest.raises(ValidationError, match="unknown hyperparameter"):
        start_training(ws, "yolo11n", "shapes", hyperparameters={**HYPERPARAMETERS, "lr": 0.1})
    with pytest.raises(ValidationError, match=r"3 annotated training images \(minimum 2\) and 0 validation images "
                                              r"\(minimum 1\)"):
        start_training(ws, "yolo11n", "shapes", hyperparameters=HYPERPARAMETERS)
    with pytest.raises(ValidationError, match="YOLO detection models"):
        start_training(ws, "yolo11n-seg", "shapes", hyperparameters=HYPERPARAMETERS)
    with pytest.raises(ValidationError, match="placement_strategy must be one of PACK, SPREAD.*got 'spread'"):
        start_training(ws, "yolo11n", "shapes", hyperparameters=HYPERPARAMETERS, placement_strategy="spread")
    assert ws.sql("SELECT count(*) AS n FROM training_jobs").column("n")[0].as_py() == 0


def test_two_worker_run_resumes_after_a_worker_dies_and_registers_a_loadable_model(ray_workspace, tmp_path):
    ws = ray_workspace
    import_shapes(ws, tmp_path)
    # Enough epochs (about 0.5 s each here) that the kill lands while the run goes on.
    hyperparameters = {**HYPERPARAMETERS, "epochs": 20}
    job = start_training(ws, "yolo11n", "shapes", hyperparameters=hyperparameters, workers=2, name="shapes-ft")
    assert job.status in ("queued", "running")

    # Metrics reach the catalog while the run goes on, not only at the end.
    _wait_for(lambda: training_metrics(ws, job.id).num_rows >= 1, timeout_s=240, poll_s=0.05)
    assert job.status == "running" and job.progress > 0
    assert ws.sql(f"SELECT count(*) AS n FROM performance_metrics WHERE metric_type = 'mAP50' AND "
                  f"json_extract_string(metadata, '$.training_job_id') = '{job.id}'").column("n")[0].as_py() >= 1
    # Ray Train writes this snapshot once it has registered a checkpoint: only then can it resume.
    snapshot = ws.root / "cache" / "training" / job.id / "ray" / f"training-{job.id}" / "checkpoint_manager_snapshot.json"
    _wait_for(snapshot.exists, timeout_s=60, poll_s=0.05)
    _kill_rank_1(job)

    job.wait(timeout=300)
    assert job.status == "completed"
    assert "resumed from the checkpoint of epoch" in job.logs, job.logs
    metadata = json.loads(job.record["metadata"])
    assert metadata["resumed_from_epochs"] and metadata["resumed_from_epochs"][0] >= 1
    metrics = training_metrics(ws, job.id)
    assert metrics.column("epoch").to_pylist() == list(range(1, 21))
    assert {"mAP50", "mAP50_95", "lr", "train/box_loss", "train/cls_loss", "train/dfl_loss"} <= set(
        metrics.column_names)

    model = ws.models.get(str(job.record["result_model_id"]))
    assert model.name == "shapes-ft" and model.training_status == "trained"
    assert model.parent_model_id == ws.models.get("yolo11n").id
    assert model.model_path.startswith("sha256/")
    assert model.metadata["zoo_entry"] == "yolo11n"
    assert model.metadata["class_names"] == ["circle", "square", "triangle"][:len(model.metadata["class_names"])]
    assert set(model.performance_metrics) >= {"mAP50", "mAP50_95"}
    loaded = ws.models.load(model, imgsz=64)
    assert loaded.weights.source == "registered"
    assert loaded.predictor.class_names == tuple(model.metadata["class_names"])
    predictions = loaded.predictor.predict([np.zeros((64, 64, 3), np.uint8)], conf=0.001)
    assert len(predictions) == 1
    result = ws.predict(model, ws.images.list(split="validation")[0], imgsz=64, conf=0.001, store=False)
    assert result is not None


def test_cancel_stops_a_running_training(ray_workspace, tmp_path):
    ws = ray_workspace
    import_shapes(ws, tmp_path)
    job = start_training(ws, "yolo11n", "shapes", hyperparameters={**HYPERPARAMETERS, "epochs": 200}, workers=1)
    _wait_for(lambda: training_metrics(ws, job.id).num_rows >= 1, timeout_s=240)
    job.cancel()
    job.wait(timeout=120)
    assert job.status == "cancelled"
    with pytest.raises(JobCancelledError, match="was cancelled"):
        job.result(progress=False)
    _wait_for(lambda: "stopped" in job.logs, timeout_s=60)
    done = training_metrics(ws, job.id).num_rows
    assert 1 <= done < 200
    model = ws.models.get(json.loads(job.record["metadata"])["result_model_id"])
    _wait_for(lambda: ws.models.get(model.id).training_status == "failed", timeout_s=60)
    assert ws.models.get(model.id).metadata["outcome"] == "cancelled"
    assert job.record["result_model_id"] is None


def test_a_killed_training_driver_leaves_a_whole_workspace_and_says_so(ray_workspace, tmp_path):
    """SIGKILL the driver task at a random point of the run: the job and its result model end as
    failed (not "running" forever), its Ray Train workers stop, and ws.check() finds nothing
    but what ws.gc() collects."""
    import random

    from mleval.jobs.handle import JobFailedError

    ws = ray_workspace
    import_shapes(ws, tmp_path)
    # one point a run (MLEVAL_KILL_POINT picks one, to reproduce a failure)
    point = os.environ.get("MLEVAL_KILL_POINT") or random.choice(["started", "first epoch", "second epoch"])
    print(f"killing the driver at: {point}")
    job = start_training(ws, "yolo11n", "shapes", hyperparameters={**HYPERPARAMETERS, "epochs": 50}, workers=1)
    pid = int(_wait_for(lambda: re.search(r"driver pid (\d+)", job.logs), timeout_s=120).group(1))
    epochs = {"started": 0, "first epoch": 1, "second epoch": 2}[point]
    if epochs:
        _wait_for(lambda: training_metrics(ws, job.id).num_rows >= epochs, timeout_s=240)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(JobFailedError, match="runner died"):
        job.result(timeout=120, progress=False)
    assert job.status == "failed", point
    model = ws.models.get(json.loads(job.record["metadata"])["result_model_id"])
    assert model.training_status == "failed" and model.metadata["outcome"] == "failed", point
    done = training_metrics(ws, job.id).num_rows
    time.sleep(15)  # the workers went with their driver: no epoch is reported after it
    assert training_metrics(ws, job.id).num_rows == done < 50, point
    report = ws.check()
    assert {f.kind for f in report.findings} <= {"blobs no row refers to"}, (point, report)


def test_a_model_trained_at_96_is_used_at_96_everywhere(ray_workspace, tmp_path):
    """The model's own settings are the defaults: evaluate, infer and deploy use the size it was trained at."""
    from mleval.deploy.deployments import prepare_version

    ws = ray_workspace
    import_shapes(ws, tmp_path)
    job = ws.train("yolo11n", "shapes", hyperparameters={**HYPERPARAMETERS, "imgsz": 96, "epochs": 3})
    model = job.result(timeout=300, progress=False)
    assert model.training_status == "trained" and model.id == str(job.record["result_model_id"])
    assert (model.imgsz, model.task, model.settings_source) == (96, "detect", "training")
    assert model.classes == model.metadata["class_names"] and set(model.classes) <= {"circle", "square", "triangle"}
    assert model.base_model_id == ws.models.get("yolo11n").id and model.training_job_id == job.id
    assert model.dataset_snapshot_id == job.record["dataset_snapshot_id"] is not None

    default = ws.evaluate(model, "shapes", split="validation", progress=False)
    explicit = ws.evaluate(model, "shapes", split="validation", imgsz=96, progress=False)
    assert default.imgsz == explicit.imgsz == 96 and default.config["imgsz"] == 96
    assert default.summary["mAP50_95"] == explicit.summary["mAP50_95"]
    assert ws.catalog.get("inference_jobs", default.inference_job_id)["imgsz"] == 96
    other = ws.evaluate(model, "shapes", split="validation", imgsz=160, progress=False)
    assert other.imgsz == 160 and other.inference_job_id != default.inference_job_id  # a size of its own

    predictions = ws.infer(model, split="validation", batch_size=4).result(timeout=240, progress=False)
    assert set(predictions.column_names) >= {"image_id", "object_index", "class_name", "score", "box_xyxy"}
    assert set(predictions.column("class_name").to_pylist()) <= set(model.classes)

    prepared = prepare_version(ws, model, name="shapes-96", port=8123)
    assert prepared.config["imgsz"] == 96 and ws.catalog.get("deployments", prepared.row_id)["imgsz"] == 96
    lineage = ws.lineage(ws.deployments.get("shapes-96"))
    kinds = lineage.kinds()
    assert kinds[:3] == ["deployment", "model", "training_job"]
    assert {"dataset_snapshot", "annotations"} <= set(kinds) and kinds.count("model") == 2  # and the base model
    snapshot = lineage.to_arrow().filter(pa.compute.equal(lineage.to_arrow().column("kind"), "dataset_snapshot"))
    assert snapshot.column("id").to_pylist() == [model.dataset_snapshot_id]


def test_a_failed_training_job_raises_its_cause_from_result(ray_workspace, tmp_path):
    from mleval.jobs.handle import JobFailedError
    from tests.unit.test_model_settings import _checkpoint

    ws = ray_workspace
    import_shapes(ws, tmp_path, train=4, validation=2)
    base = ws.models.register("parts", _checkpoint(tmp_path / "best.pt", imgsz=64, names={0: "circle"}),
                              framework="YOLO11", variant="nano")
    os.remove(ws.blobs.local_path(base.model_path))  # the weights vanish before the job reads them
    job = ws.train(base, "shapes", hyperparameters=HYPERPARAMETERS)
    with pytest.raises(JobFailedError, match=r"model.model_path_accessible.*missing from the blob store") as caught:
        job.result(timeout=120, progress=False)
    assert "model.model_path_accessible" in caught.value.cause and caught.value.log_tail
    assert job.status == "failed"
    assert ws.models.get(str(json.loads(job.record["metadata"])["result_model_id"])).training_status == "failed"
