"""Batch inference on Ray Data.

A driver task (no CPU reserved) runs the pipeline so the notebook stays free: image ids and
blob paths flow through ``map_batches`` into a pool of predictor actors that read and
decode the images themselves (pixels never cross the object store), and each finished
batch is stored at once: prediction rows to Parquet, detections as model annotations,
progress and a log line to the job record. An unreadable image fails itself, not the job.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mleval.catalog.catalog import new_id, utc_now
from mleval.catalog.repositories import ImageRepository
from mleval.core.enums import JobStatus
from mleval.core.errors import TransitionError
from mleval.jobs.handle import JobHandle

if TYPE_CHECKING:
    from mleval.context import WorkspaceAddress, WorkspaceContext

PROGRESS_INTERVAL_S = 0.5


class PredictorActor:
    """Ray Data callable class: loads the model once, then predicts batches of image ids."""

    def __init__(self, workspace: WorkspaceAddress, model_id: str, imgsz: int, conf: float):
        self._ws = workspace.open()  # blobs read through the store's filesystem, rebuilt here
        self._predictor = self._ws.models.load(model_id, imgsz=imgsz).predictor
        self._conf = conf

    def __call__(self, batch: pa.Table) -> pa.Table:
        from mleval.prediction import prediction_rows

        outcomes: list[Any] = read_images(self._ws.blobs, batch.column("file_path").to_pylist())
        positions = [k for k, o in enumerate(outcomes) if not isinstance(o, str)]
        predictions = self._predictor.predict([outcomes[k] for k in positions], conf=self._conf)
        for position, prediction in zip(positions, predictions):
            outcomes[position] = prediction
        return prediction_rows(batch.column("image_id").to_pylist(), outcomes)


def read_images(blobs, keys: list[str]) -> list[Any]:
    """Each blob decoded to RGB, or for one that cannot be, the error text (it fails itself, not the batch)."""
    from mleval.images.decode import decode_rgb

    found: list[Any] = []
    for key in keys:
        try:
            found.append(decode_rgb(blobs.read_bytes(key)))
        except Exception as error:
            found.append(f"unreadable image: {error}")
    return found


def image_blocks(ws: WorkspaceContext, image_ids: list[str], block_rows: int):
    """A Ray Dataset of (image_id, file_path), ``block_rows`` a block, made here rather than by a
    repartition task (the actors may hold every CPU); one batch per block, so results and
    progress stream batch by batch."""
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False  # progress goes where the caller says
    paths = ImageRepository(ws.catalog).file_paths(image_ids)
    items = pa.table({"image_id": image_ids, "file_path": [paths[i] for i in image_ids]})
    return ray.data.from_arrow([items.slice(start, block_rows) for start in range(0, items.num_rows, block_rows)])


def start_inference(
    ws: WorkspaceContext,
    model_id: str,
    image_ids: list[str],
    *,
    conf: float,
    batch_size: int,
    imgsz: int,
    concurrency: int | None,
    use_gpu: bool,
) -> JobHandle:
    """Create the InferenceJob (queued) and start its driver task on Ray."""
    import ray

    job_id = new_id()
    settings = {"conf": conf, "batch_size": batch_size, "imgsz": imgsz, "concurrency": concurrency,
                "use_gpu": use_gpu}
    ws.catalog.insert("inference_jobs", [{
        "id": job_id, "model_id": model_id, "target_images": image_ids, "status": JobStatus.QUEUED.value,
        "progress_percentage": 0.0, "created_at": utc_now(), "imgsz": imgsz, "metadata": {"settings": settings},
    }])
    runner = ray.remote(num_cpus=0, max_retries=0)(run_inference_job).remote(ws.address, job_id, settings)
    return JobHandle(ws, "inference_jobs", job_id, runner)


def pool_size(concurrency: int | None, use_gpu: bool, images: int, batch_size: int) -> int:
    import ray

    resources = ray.available_resources()
    available = int(resources.get("GPU" if use_gpu else "CPU", 1)) or 1
    wanted = concurrency or available
    return max(1, min(wanted, -(-images // batch_size)))


def run_inference_job(workspace: WorkspaceAddress, job_id: str, settings: dict) -> None:
    """The driver task: runs the Ray Data pipeline and stores each batch as it lands."""
    ws = workspace.open()
    catalog = ws.catalog
    job = catalog.get("inference_jobs", job_id)
    image_ids = [str(i) for i in job["target_images"]]
    model_id = str(job["model_id"])
    started = time.perf_counter()
    try:
        catalog.update("inference_jobs", job_id, {"status": JobStatus.RUNNING.value, "start_time": utc_now()})
    except TransitionError:
        return  # cancelled before it started
    try:
        _run_pipeline(ws, job_id, model_id, image_ids, settings, started)
    except TransitionError:
        return  # cancelled while finishing: the stored rows stay, the status stays cancelled
    except Exception as error:
        catalog.append_log("inference_jobs", job_id, f"failed: {type(error).__name__}: {error}")
        if catalog.get("inference_jobs", job_id)["status"] == JobStatus.RUNNING.value:
            catalog.update("inference_jobs", job_id, {"status": JobStatus.FAILED.value, "end_time": utc_now()})
        raise


def _run_pipeline(ws: WorkspaceContext, job_id: str, model_id: str, image_ids: list[str], settings: dict,
                  started: float) -> None:
    import ray

    from mleval.prediction import annotation_rows

    # Progress goes to the job record; Ray Data's own bars would flood the notebook's logs.
    catalog = ws.catalog
    pool = pool_size(settings["concurrency"], settings["use_gpu"], len(image_ids), settings["batch_size"])
    catalog.append_log("inference_jobs", job_id, f"{len(image_ids)} images, batch size {settings['batch_size']}, "
                                                 f"{pool} predictor actor(s)")
    predictions = image_blocks(ws, image_ids, settings["batch_size"]).map_batches(
        PredictorActor,
        fn_constructor_kwargs={"workspace": ws.address, "model_id": model_id,
                               "imgsz": settings["imgsz"], "conf": settings["conf"]},
        batch_size=settings["batch_size"],
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=pool),
        num_cpus=0 if settings["use_gpu"] else 1,
        num_gpus=1 if settings["use_gpu"] else 0,
    )
    done = failed = found = 0
    last_report = 0.0
    for batch in predictions.iter_batches(batch_size=None, batch_format="pyarrow"):
        if done == 0:
            catalog.append_log("inference_jobs", job_id, "first batch predicted")
        batch = batch.append_column("inference_job_id", pa.array([job_id] * batch.num_rows)) \
                     .append_column("model_id", pa.array([model_id] * batch.num_rows))
        catalog.append_rows("predictions", batch)
        annotations = annotation_rows(batch, model_id=model_id, inference_job_id=job_id,
                                      settings={"imgsz": settings["imgsz"], "conf": settings["conf"]})
        if annotations.num_rows:
            ws.annotations.add_batch(annotations)
        errors = [(i, e) for i, e in zip(batch.column("image_id").to_pylist(),
                                         batch.column("error").to_pylist()) if e]
        for image_id, error in errors:
            catalog.append_log("inference_jobs", job_id, f"image {image_id} failed: {error}")
        done += batch.num_rows
        failed += len(errors)
        found += annotations.num_rows
        now = time.perf_counter()
        if now - last_report >= PROGRESS_INTERVAL_S or done == len(image_ids):
            last_report = now
            record = catalog.update("inference_jobs", job_id,
                                    {"progress_percentage": round(100.0 * done / len(image_ids), 2)})
            if record["status"] == JobStatus.CANCELLED.value:
                catalog.append_log("inference_jobs", job_id, f"stopped after {done} images")
                return
    seconds = time.perf_counter() - started
    results = {"images": done, "failed_images": failed, "images_with_detections": found,
               "seconds": round(seconds, 3), "images_per_second": round(done / seconds, 2) if seconds else None}
    catalog.append_log("inference_jobs", job_id, f"finished: {results}")
    catalog.update("inference_jobs", job_id, {"status": JobStatus.COMPLETED.value, "end_time": utc_now(),
                                              "progress_percentage": 100.0, "results": results})
