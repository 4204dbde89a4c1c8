"""Fine-tuning jobs: validation, the TrainingJob record, the driver task and the result model.

``start_training`` checks the hyperparameters and the dataset, creates the TrainingJob
(queued) and the result Model (training_status ``training``), and starts a driver task (no
CPU reserved) that exports the dataset in the YOLO layout, runs a Ray Train ``TorchTrainer``
(see ``loop.py``) and, when it completes, stores the best weights in the blob store and marks
the model ``trained`` with its validation metrics. A failure ends the job ``failed`` with the
cause in its logs; a cancelled job's model ends ``failed`` (metadata says cancelled).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mleval.catalog.catalog import new_id, utc_now
from mleval.catalog.repositories import DatasetRepository
from mleval.core.enums import JobStatus, TrainingStatus
from mleval.core.errors import MlevalError, TransitionError, ValidationError
from mleval.jobs.handle import JobHandle

if TYPE_CHECKING:
    from mleval.context import WorkspaceAddress, WorkspaceContext

MIN_TRAIN_IMAGES = 2
MIN_VALIDATION_IMAGES = 1
OPTIMIZERS = ("SGD", "Adam", "AdamW")
# Ray placement group strategies for the worker group (ray.train.ScalingConfig.placement_strategy).
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")

# name -> (type, minimum, maximum, default); None default = required
HYPERPARAMETERS: dict[str, tuple[type, float, float, Any]] = {
    "epochs": (int, 1, 10_000, None),
    "batch_size": (int, 1, 4096, None),
    "learning_rate": (float, 1e-8, 1.0, None),
    "patience": (int, 1, 10_000, 50),
    "imgsz": (int, 32, 4096, 640),
    "weight_decay": (float, 0.0, 1.0, 0.0005),
    "warmup_epochs": (float, 0.0, 100.0, 3.0),
    "warmup_bias_lr": (float, 0.0, 1.0, 0.0),
    "mosaic": (float, 0.0, 1.0, 1.0),
    "close_mosaic": (int, 0, 10_000, 10),
    "fliplr": (float, 0.0, 1.0, 0.5),
    "seed": (int, 0, 2**31 - 1, 0),
}


def validate_hyperparameters(hyperparameters: dict[str, Any], *, workers: int = 1) -> dict[str, Any]:
    """The hyperparameters with defaults filled in; raises ValidationError naming the bad one and its range."""
    if not isinstance(hyperparameters, dict):
        raise ValidationError("training_job.hyperparameters_required",
                              f"hyperparameters must be a dict with epochs, batch_size, learning_rate; "
                              f"got {type(hyperparameters).__name__}.")
    known = (*HYPERPARAMETERS, "optimizer")
    unknown = sorted(set(hyperparameters) - set(known))
    if unknown:
        raise ValidationError("training_job.hyperparameter_unknown",
                              f"unknown hyperparameter(s) {unknown}; known: {', '.join(known)}.")
    checked: dict[str, Any] = {}
    for name, (kind, low, high, default) in HYPERPARAMETERS.items():
        value = hyperparameters.get(name, default)
        if value is None:
            raise ValidationError("training_job.hyperparameters_required",
                                  f"hyperparameter {name!r} is required ({kind.__name__} in [{low}, {high}]).")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number and low <= value <= high) or (kind is int and value != int(value)):  # NaN fails the range
            raise ValidationError(f"training_job.hyperparameter_{name}",
                                  f"hyperparameter {name!r} must be {'an integer' if kind is int else 'a number'} "
                                  f"in [{low}, {high}]; got {value!r}.")
        checked[name] = kind(value)
    optimizer = hyperparameters.get("optimizer", "AdamW")
    if optimizer not in OPTIMIZERS:
        raise ValidationError("training_job.hyperparameter_optimizer",
                              f"hyperparameter 'optimizer' must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}.")
    checked["optimizer"] = optimizer
    if checked["imgsz"] % 32:
        raise ValidationError("training_job.hyperparameter_imgsz",
                              f"hyperparameter 'imgsz' must be a multiple of 32 (the model stride); "
                              f"got {checked['imgsz']}.")
    if checked["batch_size"] < workers:
        raise ValidationError("training_job.hyperparameter_batch_size",
                              f"hyperparameter 'batch_size' ({checked['batch_size']}) is split over {workers} workers: "
                              f"it must be at least {workers}.")
    return checked


def split_counts(ws: WorkspaceContext, dataset_id: str) -> dict[str, int]:
    """Annotated training images and validation images of the dataset (ground truth only)."""
    by_split = DatasetRepository(ws.catalog).split_counts(dataset_id)
    return {"train_annotated": int(by_split.get("train", {}).get("annotated", 0)),
            "validation": int(by_split.get("validation", {}).get("images", 0))}


def _check_dataset(ws: WorkspaceContext, dataset: Any) -> Any:
    record = ws.datasets.get(dataset)
    counts = split_counts(ws, record.id)
    if counts["train_annotated"] < MIN_TRAIN_IMAGES or counts["validation"] < MIN_VALIDATION_IMAGES:
        raise ValidationError(
            "training_job.dataset_too_small",
            f"dataset {record.name!r} has {counts['train_annotated']} annotated training images (minimum "
            f"{MIN_TRAIN_IMAGES}) and {counts['validation']} validation images (minimum {MIN_VALIDATION_IMAGES}); "
            "annotate more images or move some to the validation split (ws.images.assign_split).")
    return record


def _base_entry(base: Any):
    from mleval.models.loading import _entry_for

    entry = _entry_for(base)
    if entry.task != "detect" or entry.framework.value == "RT-DETR":
        raise ValidationError("training_job.base_model_trainable",
                              f"model {base.name!r} ({entry.name}) cannot be fine-tuned here: training supports YOLO "
                              "detection models (yolo11*, yolo12*).")
    return entry


def start_training(
    ws: WorkspaceContext,
    base_model: Any,
    dataset: Any,
    *,
    hyperparameters: dict[str, Any],
    workers: int = 1,
    use_gpu: bool = False,
    name: str | None = None,
    placement_strategy: str = "PACK",
) -> JobHandle:
    """Fine-tune ``base_model`` on ``dataset`` with Ray Train on ``workers`` workers; returns a handle at once.

    ``hyperparameters``: required ``epochs``, ``batch_size`` (total over workers), ``learning_rate``;
    optional ``patience``, ``imgsz``, ``optimizer``, ``weight_decay``, ``warmup_epochs``, ``mosaic``,
    ``fliplr``, ``seed`` (see ``HYPERPARAMETERS``). The result model is named ``name`` (default
    ``<base>-ft-<job id prefix>``). ``placement_strategy`` places the workers on the cluster's nodes:
    ``"PACK"`` (default: as few nodes as fit, the fastest gradient exchange) or ``"SPREAD"`` (one node
    each where possible, e.g. CPU workers that each want a node's cores and memory); the ``STRICT_``
    forms wait until that placement is possible.
    """
    import ray

    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValidationError("training_job.workers", f"workers must be an integer >= 1; got {workers!r}.")
    if placement_strategy not in PLACEMENT_STRATEGIES:
        raise ValidationError("training_job.placement_strategy",
                              f"placement_strategy must be one of {', '.join(PLACEMENT_STRATEGIES)}; "
                              f"got {placement_strategy!r}.")
    base = ws.models.get(base_model)
    if isinstance(hyperparameters, dict) and "imgsz" not in hyperparameters and base.imgsz:
        hyperparameters = {**hyperparameters, "imgsz": base.imgsz}  # the base model's own size by default
    hp = validate_hyperparameters(hyperparameters, workers=workers)
    entry = _base_entry(base)
    data = _check_dataset(ws, dataset)
    job_id = new_id()
    snapshot = ws.datasets.snapshot(data, note=f"taken for training job {job_id}", progress=False)
    name = name or f"{base.name}-ft-{job_id[:8]}"
    if ws.catalog.find_by_name("models", name):
        raise ValidationError("model.name_version_unique", f"a model named {name!r} exists; choose another name.")
    now = utc_now()
    model_id = new_id()
    ws.catalog.insert("models", [{
        "id": model_id, "name": name, "type": base.type, "variant": base.variant, "version": "1",
        "framework": base.framework, "model_path": f"training:{job_id}",
        "training_status": TrainingStatus.TRAINING.value, "parent_model_id": base.id, "created_at": now,
        "updated_at": now, "metadata": {"zoo_entry": entry.name, "training_job_id": job_id},
        "imgsz": hp["imgsz"], "task": entry.task, "settings_source": "training", "base_model_id": base.id,
        "training_job_id": job_id, "dataset_snapshot_id": snapshot.id,
    }])
    settings = {"workers": workers, "use_gpu": use_gpu, "placement_strategy": placement_strategy,
                "result_model_id": model_id}
    ws.catalog.insert("training_jobs", [{
        "id": job_id, "base_model_id": base.id, "dataset_id": data.id, "status": JobStatus.QUEUED.value,
        "progress_percentage": 0.0, "hyperparameters": hp, "created_at": now, "imgsz": hp["imgsz"],
        "dataset_snapshot_id": snapshot.id,
        "metadata": {"settings": settings, "result_model_id": model_id, "epochs": []},
    }])
    runner = ray.remote(num_cpus=0, max_retries=0)(run_training_job).remote(ws.address, job_id)
    return JobHandle(ws, "training_jobs", job_id, runner,
                     on_runner_died=functools.partial(_end_model, ws, model_id, cancelled=False))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else (value or {})


def training_metrics(ws: WorkspaceContext, job_id: str) -> pa.Table:
    """Per-epoch metrics of a training job so far: ``epoch``, ``mAP50``, ``mAP50_95``, ``lr``,
    ``train/<name>_loss``, ``epoch_s`` (one row per finished epoch)."""
    rows = _json(ws.catalog.get("training_jobs", job_id)["metadata"]).get("epochs", [])
    if not rows:
        return pa.table({"epoch": pa.array([], pa.int64()), "mAP50": pa.array([], pa.float64()),
                         "mAP50_95": pa.array([], pa.float64())})
    return pa.Table.from_pylist(rows)


def run_training_job(workspace: WorkspaceAddress, job_id: str) -> None:
    """The driver task: export, Ray Train run, result model (see the module docstring)."""
    ws = workspace.open()
    catalog = ws.catalog
    job = catalog.get("training_jobs", job_id)
    catalog.append_log("training_jobs", job_id, f"driver pid {os.getpid()} on {socket.gethostname()}")
    model_id = _json(job["metadata"])["result_model_id"]
    try:
        catalog.update("training_jobs", job_id, {"status": JobStatus.RUNNING.value, "start_time": utc_now()})
    except TransitionError:
        _end_model(ws, model_id, cancelled=True)
        return  # cancelled before it started
    try:
        _run(ws, job_id, job, model_id)
    except TransitionError:
        _end_model(ws, model_id, cancelled=True)  # cancelled while finishing
    except Exception as error:
        cause = _root_cause(error)
        catalog.append_log("training_jobs", job_id, f"failed: {cause}")
        if catalog.get("training_jobs", job_id)["status"] == JobStatus.RUNNING.value:
            catalog.update("training_jobs", job_id, {"status": JobStatus.FAILED.value, "end_time": utc_now()})
        _end_model(ws, model_id, cancelled=False)
        raise


def _root_cause(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) < 4000 else text[:2000] + " ... " + text[-1500:]


def _end_model(ws: WorkspaceContext, model_id: str, *, cancelled: bool) -> None:
    record = ws.catalog.get("models", model_id)
    if record["training_status"] == TrainingStatus.TRAINING.value:
        metadata = {**_json(record["metadata"]), "outcome": "cancelled" if cancelled else "failed"}
        ws.catalog.update("models", model_id, {"training_status": TrainingStatus.FAILED.value, "metadata": metadata})


def _run(ws: WorkspaceContext, job_id: str, job: dict[str, Any], model_id: str) -> None:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from mleval.interchange import export_dataset
    from mleval.jobs.training.loop import train_loop_per_worker
    from mleval.models.weights import resolve_weights

    catalog = ws.catalog
    hp = _json(job["hyperparameters"])
    settings = _json(job["metadata"])["settings"]
    # Local scratch of the driver's node: the YOLO layout ultralytics reads, Ray Train's checkpoints and
    # best.pt (a blob once the job ends). Workers on other nodes need it on a shared mount.
    folder = ws.scratch_dir("training", job_id)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    export = export_dataset(ws, dataset=str(job["dataset_id"]), format="yolo", path=folder / "data", link_images=True,
                       progress=False)
    timings["export"] = time.perf_counter() - started
    catalog.append_log("training_jobs", job_id, f"exported {export.images} images, {export.objects} objects, "
                                                f"{len(export.categories)} classes: {export.categories}")
    base = ws.models.get(str(job["base_model_id"]))
    weights = resolve_weights(_base_entry(base), registered_path=ws.models.weights_file(base))
    catalog.append_log("training_jobs", job_id, f"base model {base.name}: {weights.describe()}")
    workers = settings["workers"]
    cpus = int(ray.cluster_resources().get("CPU", 1))
    config = {
        "workspace": ws.address, "job_id": job_id, "result_model_id": model_id,
        "dataset_id": str(job["dataset_id"]), "hyperparameters": hp,
        "names": dict(enumerate(export.categories)), "weights_location": weights.location,
        "train_path": str(folder / "data" / "images" / "train"), "val_path": str(folder / "data" / "images" / "val"),
        "best_path": str(folder / "best.pt"), "threads": 1,
        "loader_workers": min(2, cpus // workers),  # as ultralytics: up to 2 per worker, one per CPU
    }
    started = time.perf_counter()
    config["fit_started_unix"] = time.time()  # the worker measures its start from here
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=settings["use_gpu"],
                                     placement_strategy=settings["placement_strategy"]),
        run_config=RunConfig(name=f"training-{job_id}", storage_path=str(folder / "ray"),
                             failure_config=FailureConfig(max_failures=2),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )
    catalog.append_log("training_jobs", job_id, f"starting Ray Train: {workers} worker(s), "
                                                f"{'GPU' if settings['use_gpu'] else 'CPU'}, "
                                                f"placement {settings['placement_strategy']}")
    trainer.fit()
    timings["fit"] = time.perf_counter() - started
    if catalog.get("training_jobs", job_id)["status"] == JobStatus.CANCELLED.value:
        _end_model(ws, model_id, cancelled=True)
        return
    if not os.path.exists(config["best_path"]):
        raise MlevalError("training finished without a validated epoch: no best weights were written.")
    _finish(ws, job_id, model_id, Path(config["best_path"]), export.categories, timings)
    shutil.rmtree(folder, ignore_errors=True)  # the export, checkpoints and best.pt (now a blob)


def _finish(ws: WorkspaceContext, job_id: str, model_id: str, best_path: Path, class_names: list[str],
            timings: dict[str, float]) -> None:
    catalog = ws.catalog
    started = time.perf_counter()
    epochs = _json(catalog.get("training_jobs", job_id)["metadata"]).get("epochs", [])
    best = max(epochs, key=lambda row: row["mAP50_95"]) if epochs else {}
    stored = ws.blobs.put_file(best_path)
    record = catalog.get("models", model_id)
    metrics = {"mAP50": best.get("mAP50"), "mAP50_95": best.get("mAP50_95"), "best_epoch": best.get("epoch"),
               "epochs_run": len(epochs), "split": "validation"}
    metadata = {**_json(record["metadata"]), "class_names": list(class_names), "weights_source": "trained",
                "outcome": "trained"}
    catalog.update("models", model_id, {"model_path": stored.key, "training_status": TrainingStatus.TRAINED.value,
                                        "performance_metrics": metrics, "metadata": metadata,
                                        "classes": list(class_names)})
    catalog.append_log("training_jobs", job_id, f"finished: best epoch {best.get('epoch')} "
                                                f"mAP50={best.get('mAP50')} mAP50-95={best.get('mAP50_95')}; "
                                                f"model {record['name']} ({stored.key[:20]}...)")
    metadata = _json(catalog.get("training_jobs", job_id)["metadata"])
    timings["finish"] = time.perf_counter() - started
    metadata["driver_timings"] = {k: round(v, 3) for k, v in timings.items()}
    catalog.update("training_jobs", job_id, {"status": JobStatus.COMPLETED.value, "end_time": utc_now(),
                                             "progress_percentage": 100.0, "result_model_id": model_id,
                                             "metadata": metadata})
