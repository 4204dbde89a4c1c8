"""The public entry point: ``Workspace.open(path)``.

A workspace is a folder::

    workspace.json     what this folder is, and which mleval created it
    catalog.duckdb     the entities (DuckDB), written by one process
    blobs/sha256/..    image and model files, content-addressed
    tables/..          append-heavy rows (Parquet), read through DuckDB views

Without Ray the workspace opens the catalog file directly. With Ray connected (or a
``ray_address``), every process goes through the workspace's catalog owner actor.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa

from mleval.catalog.catalog import Catalog, utc_now
from mleval.cluster import ensure_ray, ray_is_running
from mleval.core.errors import MlevalError
from mleval.storage.blobs import BlobStore

MARKER = "workspace.json"
FORMAT = "mleval-workspace"


def _local_root(path_or_uri: str | Path) -> Path:
    text = str(path_or_uri)
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text:
        raise MlevalError(
            f"workspace {text!r}: only local folders and file:// URIs can hold a workspace's catalog "
            "in this version; put the workspace on a shared mount (NFS) to share it across a cluster."
        )
    return Path(text).expanduser().resolve()


def _write_marker(root: Path) -> None:
    from mleval import __version__

    marker = root / MARKER
    if marker.exists():
        content = json.loads(marker.read_text())
        if content.get("format") != FORMAT:
            raise MlevalError(f"{marker} exists but does not describe an mleval workspace; choose another folder.")
        return
    temporary = marker.with_suffix(".tmp")
    temporary.write_text(json.dumps(
        {"format": FORMAT, "created_at": utc_now().isoformat(), "created_by": f"mleval {__version__}"}, indent=2
    ))
    os.replace(temporary, marker)


class Workspace:
    """A folder of images, annotations, models and results, with the API over them."""

    def __init__(self, root: Path, catalog: Any, blobs: BlobStore):
        self.root = root
        self.catalog = catalog
        self.blobs = blobs

    @classmethod
    def open(cls, path_or_uri: str | Path, *, ray_address: str | None = None) -> Workspace:
        """Create or open the workspace at ``path_or_uri``. Opening never rewrites existing data.

        ``ray_address`` ("auto", "ray://head:10001", "local") connects this process to Ray
        and routes catalog access through the workspace's catalog owner actor.
        """
        root = _local_root(path_or_uri)
        if root.exists() and not root.is_dir():
            raise MlevalError(f"{root} is a file; a workspace is a folder. Pass a folder path.")
        root.mkdir(parents=True, exist_ok=True)
        _write_marker(root)
        blobs = BlobStore(root / "blobs")
        if ray_address is not None:
            ensure_ray(ray_address)
        return cls(root, _open_catalog(root / "catalog.duckdb"), blobs)

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def uses_catalog_owner(self) -> bool:
        return not isinstance(self.catalog, Catalog)

    def attach_ray(self, address: str | None = None) -> None:
        """Connect to Ray (starting a local one if needed) and hand the catalog to its owner actor."""
        ensure_ray(address)
        if not self.uses_catalog_owner:
            self.catalog.close()
            self.catalog = _open_catalog(self.catalog_path)

    @cached_property
    def images(self):
        from mleval.images.collection import ImageCollection

        return ImageCollection(self)

    @cached_property
    def datasets(self):
        from mleval.datasets import DatasetCollection

        return DatasetCollection(self)

    @cached_property
    def annotations(self):
        from mleval.annotations import AnnotationCollection

        return AnnotationCollection(self)

    @cached_property
    def models(self):
        from mleval.models.registry import ModelRegistry

        return ModelRegistry(self)

    def predict(self, model: Any, image: Any, *, conf: float = 0.25, imgsz: int = 640, store: bool = True):
        """Run ``model`` (record or name) on one image; its detections are stored as a model
        annotation in state ``generated``. Returns an InferenceResult with timings."""
        from mleval.prediction import predict_image

        return predict_image(self, model, image, conf=conf, imgsz=imgsz, store=store)

    def assist(self, image: Any, *, model: Any = "sam2.1_t", points: Any = None, box: Any = None,
               label: str = "object", user_tag: str | None = None):
        """SAM 2 proposes a mask from point prompts ``[(x, y, 1|0), ...]`` and/or a box; stored as a
        ``generated`` annotation. Returns a Proposal with ``.accept()`` / ``.reject()``."""
        from mleval.assist import assist

        return assist(self, image, model=model, points=points, box=box, label=label, user_tag=user_tag)

    def prelabel(self, images: Any, model: Any, *, conf: float = 0.25, imgsz: int = 640):
        """A detector proposes boxes on each image, stored as ``generated`` annotations to accept or reject."""
        from mleval.assist import prelabel

        return prelabel(self, images, model, conf=conf, imgsz=imgsz)

    def infer(
        self,
        model: Any,
        images: Any = None,
        *,
        split: str | None = None,
        dataset: Any = None,
        conf: float = 0.25,
        batch_size: int = 8,
        imgsz: int = 640,
        concurrency: int | None = None,
        use_gpu: bool | None = None,
    ):
        """Batch inference on Ray Data over ``images`` (records or ids) or a split/dataset.

        Returns a job handle at once (``.status``, ``.progress``, ``.logs``, ``.wait()``,
        ``.cancel()``); predictions land as Parquet rows and model annotations as it runs.
        """
        from mleval.images.collection import image_id_of
        from mleval.jobs.inference import start_inference

        if images is None:
            image_ids = [r.id for r in self.images.list(split=split, dataset=dataset)]
        else:
            image_ids = [image_id_of(i) for i in images]
        record = self.models.get(model)
        if (record.metadata or {}).get("task") == "promptable-segment":
            raise MlevalError(f"{record.name} is a promptable segmenter: it needs point or box prompts per image. "
                              "Use ws.assist(image, model=..., box=...) or evaluate it with ground-truth boxes.")
        self.attach_ray()
        if use_gpu is None:
            import ray

            use_gpu = ray.cluster_resources().get("GPU", 0) > 0
        return start_inference(self, record.id, image_ids, conf=conf, batch_size=batch_size, imgsz=imgsz,
                               concurrency=concurrency, use_gpu=use_gpu)

    def train(self, base_model: Any, dataset: Any, *, hyperparameters: dict, workers: int = 1,
              use_gpu: bool | None = None, name: str | None = None):
        """Fine-tune a YOLO detector on a dataset's ground truth with Ray Train (DDP over ``workers``).

        ``hyperparameters`` needs epochs, batch_size and learning_rate (optional: patience, imgsz,
        optimizer, weight_decay, warmup_epochs, mosaic, fliplr, seed). Returns a job handle at once
        (``.progress``, ``.metrics`` per epoch, ``.logs``, ``.wait()``, ``.cancel()``); when it completes,
        ``job.record["result_model_id"]`` is the new model, ready for inference, evaluation and deployment.
        """
        from mleval.jobs.training import start_training

        self.attach_ray()
        if use_gpu is None:
            import ray

            use_gpu = ray.cluster_resources().get("GPU", 0) > 0
        return start_training(self, base_model, dataset, hyperparameters=hyperparameters, workers=workers,
                              use_gpu=use_gpu, name=name)

    def evaluate(self, model: Any, dataset: Any, *, split: str = "test", iou_type: str = "bbox",
                 conf: float = 0.001, imgsz: int = 640, key: str | None = None, batch_size: int = 8,
                 timeout_s: float | None = None):
        """Evaluate ``model`` on a dataset split: COCO mAP (pycocotools-exact), P/R/F1, IoU, confusion
        matrix, timing. Runs batch inference when the predictions are missing; stores the run and
        its metrics. SAM 2 models are scored promptably (ground-truth boxes as prompts, mask IoU)."""
        from mleval.evaluation.runs import evaluate

        return evaluate(self, model, dataset, split=split, iou_type=iou_type, conf=conf, imgsz=imgsz, key=key,
                        batch_size=batch_size, timeout_s=timeout_s)

    def compare(self, models: Any, dataset: Any, *, split: str = "test", refresh: bool = False,
                **evaluate_options: Any):
        """Leaderboard of several models on one dataset split (reusing stored runs unless ``refresh``)."""
        from mleval.evaluation.compare import compare

        return compare(self, models, dataset, split=split, refresh=refresh, **evaluate_options)

    @cached_property
    def evaluations(self):
        """Stored evaluation runs: ``.list()``, ``.load(key)``, ``.delete(key)``, ``.metrics(...)``."""
        from mleval.evaluation.runs import EvaluationRunCollection

        return EvaluationRunCollection(self)

    def deploy(self, model: Any, **options: Any):
        """Deploy ``model`` as an HTTP endpoint on Ray Serve (``POST /<name>/predict``, ``/docs``,
        ``/metrics``) with API keys and a rate limit. A new version of the same name replaces the
        running one in place; ``.rollback()`` returns to the previous version. See ``mleval.deploy.deploy``."""
        from mleval.deploy import deploy

        return deploy(self, model, **options)

    @cached_property
    def deployments(self):
        """Deployed endpoints: ``.list(status=None)``, ``.get(name, version=None)``."""
        from mleval.deploy import DeploymentCollection

        return DeploymentCollection(self)

    def import_dataset(self, path: str | Path, *, format: str, name: str, split: str | None = None, **options: Any):
        """Import a COCO / YOLO / Pascal VOC dataset: images, annotations and splits, into
        dataset ``name``. Returns a report; bad items are listed, the rest imported."""
        from mleval.interchange import import_dataset

        return import_dataset(self, path, format=format, name=name, split=split, **options)

    def export(self, *, dataset: Any, format: str, path: str | Path, include_predictions: bool = False,
               model: Any = None, split: str | None = None, **options: Any):
        """Export a dataset's ground truth (and optionally a model's predictions) as COCO / YOLO / VOC,
        to a folder or a .zip."""
        from mleval.interchange import export_dataset

        return export_dataset(self, dataset=dataset, format=format, path=path,
                              include_predictions=include_predictions, model=model, split=split, **options)

    def sql(self, query: str) -> pa.Table:
        """Run a read-only SQL query over the catalog (tables: images, annotations, models, datasets,
        dataset_images, training_jobs, inference_jobs, deployments, evaluation_runs; views over
        Parquet: performance_metrics, predictions)."""
        return self.catalog.sql_readonly(query)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "catalog owner actor" if self.uses_catalog_owner else "direct catalog"
        return f"Workspace({str(self.root)!r}, {mode})"


def _open_catalog(path: Path) -> Any:
    if ray_is_running():
        from mleval.catalog.owner import connect_owner

        return connect_owner(str(path))
    return Catalog(path)
