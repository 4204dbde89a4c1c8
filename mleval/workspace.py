"""The public entry point: ``Workspace.open(path_or_uri)``.
(Over 400 lines on purpose: the facade lists every action a user can take on a workspace in one
place; each method hands over to its service in a few lines.)

A workspace is a folder, or a prefix on an object store (``s3://bucket/prefix``, or any
URI pyarrow or fsspec can open, see ``mleval.storage.location``)::

    workspace.json     what this folder is, and which mleval created it
    catalog.duckdb     the entities (DuckDB), written by one process
    blobs/sha256/..    image and model files, content-addressed
    tables/..          append-heavy rows (Parquet), read through DuckDB views

Without Ray the workspace opens the catalog file directly. With Ray connected (or a
``ray_address``), every process goes through the workspace's catalog owner actor.

On an object store, blobs and Parquet tables live on the store, written and read through
pyarrow filesystems (DuckDB scans the tables as pyarrow datasets: it needs no httpfs). The
DuckDB file cannot be written there: it lives on the local disk of the process that owns
the catalog (the catalog owner actor's node when Ray runs), in ``catalog_dir`` or
``~/.cache/mleval/workspaces/<name>-<hash>/``, and is checkpointed to ``catalog/`` on the
store every 30 s while it changes, on ``ws.checkpoint()`` and on ``ws.close()``. A machine
without a local copy restores the last checkpoint. Limits: changes since the last
checkpoint live only on the owner's disk until the next one; one process holds the
catalog at a time (a lease on the store refuses a second one, see
``mleval.catalog.replica``); files derived for local tools (training's YOLO export and
checkpoints, weights handed to a framework) go to a scratch folder on the machine that
needs them (:meth:`Workspace.scratch_dir`).
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs

from mleval.catalog.catalog import utc_now
from mleval.catalog.replica import CATALOG_FILE
from mleval.cluster import ensure_ray, ray_is_running
from mleval.context import WorkspaceAddress, WorkspaceContext, open_workspace_catalog
from mleval.core.errors import CatalogBusyError, MlevalError, ValidationError
from mleval.storage.blobs import BlobStore
from mleval.storage.location import StorageLocation

if TYPE_CHECKING:
    from mleval.annotations import AnnotationCollection
    from mleval.datasets import DatasetCollection
    from mleval.images.collection import ImageCollection
    from mleval.models.registry import ModelRegistry

MARKER = "workspace.json"
FORMAT = "mleval-workspace"


def _prepare_root(location: StorageLocation) -> None:
    if location.is_local:
        root = location.local_path
        if root.exists() and not root.is_dir():
            raise MlevalError(f"{root} is a file; a workspace is a folder. Pass a folder path.")
        root.mkdir(parents=True, exist_ok=True)
        return
    try:
        info = location.filesystem.get_file_info(location.path)
        if info.type == pafs.FileType.File:
            raise MlevalError(f"{location} is a file; a workspace is a folder (prefix). Pass a prefix.")
        location.filesystem.create_dir(location.path, recursive=True)
    except OSError as error:
        raise MlevalError(f"workspace {location}: the store cannot be reached or written ({error}). Check that the "
                          "bucket exists, the credentials (storage options or AWS_* environment variables) and the "
                          "endpoint (storage_options={'endpoint_override': ...}).") from None


def _write_marker(location: StorageLocation) -> None:
    from mleval import __version__

    marker = location.join(MARKER)
    existing = marker.read_bytes()
    if existing is not None:
        if json.loads(existing).get("format") != FORMAT:
            raise MlevalError(f"{marker} exists but does not describe an mleval workspace; choose another folder.")
        return
    marker.write_bytes(json.dumps(
        {"format": FORMAT, "created_at": utc_now().isoformat(), "created_by": f"mleval {__version__}"}, indent=2
    ).encode())


def _remove_stale_temporaries(blobs: BlobStore) -> None:
    removed = blobs.remove_stale_temporaries()
    if removed:
        logging.getLogger(__name__).info(
            "removed %d temporaries left in %s by writes that never finished (their writer was killed)",
            len(removed), blobs.root_uri)


class Workspace:
    """A folder (or object-store prefix) of images, annotations, models and results, with the API over them.

    The facade on top: it composes a :class:`~mleval.context.WorkspaceContext` (catalog, blobs and
    the record services) with the orchestration (inference, training, evaluation, deployment);
    no module under it imports it."""

    def __init__(self, root: Path | StorageLocation, catalog: Any, blobs: BlobStore, *,
                 catalog_dir: str | Path | None = None):
        self.context = WorkspaceContext(root, catalog, blobs, catalog_dir=catalog_dir)

    @classmethod
    def open(cls, path_or_uri: str | Path | StorageLocation, *, ray_address: str | None = None,
             storage_options: dict[str, Any] | None = None, catalog_dir: str | Path | None = None) -> Workspace:
        """Create or open the workspace at ``path_or_uri``. Opening never rewrites existing data.

        ``path_or_uri`` is a folder, a ``file://`` URI, or an object-store URI such as
        ``s3://bucket/prefix`` (see the module docstring). ``storage_options`` configure its
        filesystem (for S3, ``pyarrow.fs.S3FileSystem`` arguments: ``endpoint_override``,
        ``region``, ``access_key``, ...); they travel with the workspace to Ray workers.
        ``catalog_dir`` is the local folder for an object-store workspace's catalog file
        (default ``~/.cache/mleval/workspaces/<name>-<hash>``).

        ``ray_address`` ("auto", "ray://head:10001", "local") connects this process to Ray
        and routes catalog access through the workspace's catalog owner actor. Without one, a
        workspace whose catalog is held by its owner actor on a Ray running on this machine (or at
        ``RAY_ADDRESS``), e.g. one another notebook's kernel attached, joins that Ray and its owner.
        """
        location = StorageLocation.parse(path_or_uri, storage_options)
        _prepare_root(location)
        _write_marker(location)
        blobs = BlobStore(location.join("blobs"))
        _remove_stale_temporaries(blobs)
        if ray_address is not None:
            ensure_ray(ray_address)
        try:
            catalog = open_workspace_catalog(location, catalog_dir)
        except CatalogBusyError:
            if ray_address is not None or ray_is_running() or not _join_owner(location):
                raise
            catalog = open_workspace_catalog(location, catalog_dir)
        return cls(location, catalog, blobs, catalog_dir=catalog_dir)

    @property
    def location(self) -> StorageLocation:
        return self.context.location

    @property
    def address(self) -> WorkspaceAddress:
        """Where the workspace is, as Ray workers receive it (picklable; ``.open()`` in a worker)."""
        return self.context.address

    @property
    def catalog(self) -> Any:
        return self.context.catalog

    @property
    def blobs(self) -> BlobStore:
        return self.context.blobs

    @property
    def images(self) -> ImageCollection:
        return self.context.images

    @property
    def datasets(self) -> DatasetCollection:
        return self.context.datasets

    @property
    def annotations(self) -> AnnotationCollection:
        return self.context.annotations

    @property
    def models(self) -> ModelRegistry:
        return self.context.models

    @property
    def root(self) -> Path:
        """The workspace folder on this machine (local workspaces only; see :attr:`location`)."""
        return self.context.root

    @property
    def catalog_path(self) -> Path:
        """The catalog file: in the folder of a local workspace; for one on an object store, the local
        copy on the machine of the process that holds it (this one, or the catalog owner's node)."""
        if self.location.is_local:
            return self.root / CATALOG_FILE
        return Path(self.catalog.path)

    @property
    def uses_catalog_owner(self) -> bool:
        return self.context.uses_catalog_owner

    def scratch_dir(self, *parts: str) -> Path:
        """A folder on this machine's disk for files derived from the workspace (created)."""
        return self.context.scratch_dir(*parts)

    def checkpoint(self) -> bool:
        """Upload the catalog to the object store now if it changed (also done every 30 s, and on
        close). A local workspace's catalog is already in place: its file is just made whole.
        Returns whether a copy was uploaded."""
        return self.catalog.checkpoint()

    def attach_ray(self, address: str | None = None) -> None:
        """Connect to Ray (starting a local one if needed) and hand the catalog to its owner actor."""
        self.context.attach_ray(address)

    def predict(self, model: Any, image: Any, *, conf: float = 0.25, imgsz: int | None = None, store: bool = True):
        """Run ``model`` (record or name) on one image; its detections are stored as a model
        annotation in state ``generated``. Returns an InferenceResult with timings. ``imgsz`` None
        is the model's own input size (the one it was trained at)."""
        from mleval.prediction import predict_image

        return predict_image(self.context, model, image, conf=conf, imgsz=imgsz, store=store)

    def assist(self, image: Any, *, model: Any = "sam2.1_t", points: Any = None, box: Any = None,
               label: str = "object", user_tag: str | None = None):
        """SAM 2 proposes a mask from point prompts ``[(x, y, 1|0), ...]`` and/or a box; stored as a
        ``generated`` annotation. Returns a Proposal with ``.accept()`` / ``.reject()``."""
        from mleval.assist import assist

        return assist(self.context, image, model=model, points=points, box=box, label=label, user_tag=user_tag)

    def prelabel(self, images: Any, model: Any, *, conf: float = 0.25, imgsz: int | None = None):
        """A detector proposes boxes on each image, stored as ``generated`` annotations to accept or
        reject (``imgsz`` None: the model's own input size)."""
        from mleval.assist import prelabel

        return prelabel(self.context, images, model, conf=conf, imgsz=imgsz)

    def infer(
        self,
        model: Any,
        images: Any = None,
        *,
        split: str | None = None,
        dataset: Any = None,
        conf: float = 0.25,
        batch_size: int = 8,
        imgsz: int | None = None,
        concurrency: int | None = None,
        use_gpu: bool | None = None,
    ):
        """Batch inference on Ray Data over ``images`` (records or ids) or a split/dataset.

        Returns a job handle at once (``.status``, ``.progress``, ``.logs``, ``.wait()``,
        ``.result()``, ``.cancel()``); predictions land as Parquet rows and model annotations as it
        runs. ``imgsz`` None is the model's own input size; the size used is on the job's record.
        """
        from mleval.images.collection import image_id_of
        from mleval.jobs.inference import start_inference
        from mleval.models.settings import imgsz_for

        if images is None:
            image_ids = [r.id for r in self.images.list(split=split, dataset=dataset)]
        else:
            image_ids = [image_id_of(i) for i in images]
        record = self.models.get(model)
        imgsz = imgsz_for(record, imgsz)
        if record.is_promptable:
            raise MlevalError(f"{record.name} is a promptable segmenter: it needs point or box prompts per image. "
                              "Use ws.assist(image, model=..., box=...) or evaluate it with ground-truth boxes.")
        self.attach_ray()
        if use_gpu is None:
            import ray

            use_gpu = ray.cluster_resources().get("GPU", 0) > 0
        return start_inference(self.context, record.id, image_ids, conf=conf, batch_size=batch_size, imgsz=imgsz,
                               concurrency=concurrency, use_gpu=use_gpu)

    def train(self, base_model: Any, dataset: Any, *, hyperparameters: dict, workers: int = 1,
              use_gpu: bool | None = None, name: str | None = None, placement_strategy: str = "PACK"):
        """Fine-tune a YOLO detector on a dataset's ground truth with Ray Train (DDP over ``workers``).

        ``hyperparameters`` needs epochs, batch_size and learning_rate (optional: patience, imgsz (default:
        the base model's own), optimizer, weight_decay, warmup_epochs, mosaic, fliplr, seed). The dataset is
        snapshotted first. Returns a job handle at once (``.progress``, ``.metrics`` per epoch, ``.logs``,
        ``.wait()``, ``.result()``, ``.cancel()``); ``job.result()`` is the new model, which keeps the imgsz
        and classes it was trained with for inference, evaluation and deployment.
        ``placement_strategy`` ("PACK" or "SPREAD") places the workers on a cluster's nodes.
        """
        from mleval.jobs.training import start_training

        self.attach_ray()
        if use_gpu is None:
            import ray

            use_gpu = ray.cluster_resources().get("GPU", 0) > 0
        return start_training(self.context, base_model, dataset, hyperparameters=hyperparameters, workers=workers,
                              use_gpu=use_gpu, name=name, placement_strategy=placement_strategy)

    def evaluate(self, model: Any, dataset: Any, *, split: str = "test", iou_type: str = "bbox",
                 conf: float = 0.001, imgsz: int | None = None, key: str | None = None, batch_size: int = 8,
                 timeout_s: float | None = None, class_map: dict | None = None, progress: Any = True):
        """Evaluate ``model`` on a dataset split: COCO mAP (pycocotools-exact), P/R/F1, IoU, confusion
        matrix, timing. Runs batch inference when the predictions are missing; stores the run and
        its metrics, with a snapshot of the dataset. ``imgsz`` None is the model's own input size;
        a model that does not know the dataset's classes is refused unless ``class_map`` says which
        of its classes stands for which. SAM 2 models are scored promptably (ground-truth boxes as
        prompts, mask IoU)."""
        from mleval.evaluation.runs import evaluate

        return evaluate(self.context, model, dataset, split=split, iou_type=iou_type, conf=conf, imgsz=imgsz,
                        key=key, batch_size=batch_size, timeout_s=timeout_s, class_map=class_map, progress=progress,
                        infer=self.infer)

    def find_label_issues(self, run_or_model: Any, dataset: Any = None, split: str | None = None, *,
                          confident: float = 0.5, threshold: float = 0.2, propose: bool = False,
                          **evaluate_options: Any):
        """Suspected label mistakes ("missing", "wrong_class", "bad_box", "spurious"), most likely
        first, as a pyarrow Table (kind, image_id, annotation_id, object_index, box, current_label,
        suggested_label, suggested_box, score, model_saw_image). Pass an evaluation run (with another
        dataset or split, its model is evaluated on those first), or a model with the dataset and
        split. The model should not have learnt from the images it judges: a warning says when it
        did. ``confident``: the score from which a prediction can call a label missing or of the
        wrong class; rows under ``threshold`` are left out. ``propose``: store the likely "missing"
        objects as model proposals the Annotator lists for accept / reject."""
        from mleval.evaluation.label_audit import label_issues_of_run
        from mleval.evaluation.run_store import EvaluationRun

        run = run_or_model
        if not isinstance(run, EvaluationRun):
            if dataset is None:
                raise ValidationError("label_issues.dataset", "pass the dataset (and split) to judge with this "
                                      "model, or an evaluation run.")
            run = self.evaluate(run, dataset, split=split or "test", **evaluate_options)
        elif (dataset is not None and self.datasets.get(dataset).id != run.dataset_id) or \
                (split is not None and split != run.split):  # the run's model on the labels asked for
            run = self.evaluate(run.model_id, dataset if dataset is not None else run.dataset_id,
                                split=split or run.split, **evaluate_options)
        issues = label_issues_of_run(self.context, run, confident=confident, threshold=threshold)
        if propose:
            from mleval.evaluation.label_audit import propose_missing

            propose_missing(self.context, issues, run.model_id)
        return issues

    def select_for_labeling(self, model: Any, images: Any, n: int, *, strategy: str = "hybrid", seed: int = 0,
                            batch_size: int = 16, progress: Any = True):
        """The ``n`` images to label next, as a pyarrow Table (``image_id``, ``score``, ``rank``):
        ``images`` a dataset (its images without ground truth are the pool) or a list of images.
        ``strategy``: "uncertainty" (detection scores nearest 0.5), "diversity" (k-center greedy
        on the model's image embeddings, away from what is labelled), "hybrid" (diverse among the
        most uncertain; the default) or "random". Scored on Ray Data; the same seed, the same picks."""
        from mleval.jobs.pool_scoring import select_for_labeling

        self.attach_ray()
        return select_for_labeling(self.context, model, images, n, strategy=strategy, seed=seed,
                                   batch_size=batch_size, progress=progress)

    def compare(self, models: Any, dataset: Any, *, split: str = "test", refresh: bool = False,
                progress: Any = True, **evaluate_options: Any):
        """Leaderboard of several models on one dataset split (reusing stored runs unless ``refresh``)."""
        from mleval.evaluation.compare import compare

        return compare(self.context, models, dataset, split=split, refresh=refresh, progress=progress,
                       infer=self.infer, **evaluate_options)

    def lineage(self, x: Any):
        """Where ``x`` came from: a deployment, model, job or evaluation run (record, handle, name
        or id) traced back through its training job to its base model and dataset snapshot.
        Returns a Lineage (``.to_arrow()`` with columns kind, id, name, detail; a table in a notebook)."""
        from mleval.lineage import lineage_of

        return lineage_of(self.context, x)

    @cached_property
    def evaluations(self):
        """Stored evaluation runs: ``.list()``, ``.load(key)``, ``.delete(key)``, ``.metrics(...)``."""
        from mleval.evaluation.run_store import EvaluationRunCollection

        return EvaluationRunCollection(self.context)

    def deploy(self, model: Any, **options: Any):
        """Deploy ``model`` as an HTTP endpoint on Ray Serve (``POST /<name>/predict``, ``/docs``,
        ``/metrics``) with API keys and a rate limit. A new version of the same name replaces the
        running one in place; ``.rollback()`` returns to the previous version. See ``mleval.deploy.deploy``."""
        from mleval.deploy import deploy

        return deploy(self.context, model, **options)

    @cached_property
    def deployments(self):
        """Deployed endpoints: ``.list(status=None)``, ``.get(name, version=None)``."""
        from mleval.deploy import DeploymentCollection

        return DeploymentCollection(self.context)

    def import_dataset(self, path: str | Path, *, format: str, name: str, split: str | None = None, **options: Any):
        """Import a COCO / YOLO / Pascal VOC dataset: images, annotations and splits, into
        dataset ``name``. Returns a report; bad items are listed, the rest imported."""
        from mleval.interchange import import_dataset

        return import_dataset(self.context, path, format=format, name=name, split=split, **options)

    def export(self, *, dataset: Any, format: str, path: str | Path, include_predictions: bool = False,
               model: Any = None, split: str | None = None, **options: Any):
        """Export a dataset's ground truth (and optionally a model's predictions) as COCO / YOLO / VOC,
        to a folder or a .zip."""
        from mleval.interchange import export_dataset

        return export_dataset(self.context, dataset=dataset, format=format, path=path,
                              include_predictions=include_predictions, model=model, split=split, **options)

    def check(self, *, hash_sample: int = 100):
        """Verify the workspace's invariants (rows vs blobs, the hashes of ``hash_sample`` blobs, rules
        broken by stored rows, temporaries left by writes that never finished, blobs no row refers to);
        read-only. Returns a CheckReport (``.ok``, ``.findings``, each with how to repair it)."""
        from mleval.health import check_workspace

        return check_workspace(self.catalog, self.blobs, name=str(self.location), hash_sample=hash_sample)

    def gc(self):
        """Remove the blobs no row refers to and temporaries left by writes that never finished, both
        when older than an hour; returns a GcReport of what was removed."""
        from mleval.health import collect_garbage

        return collect_garbage(self.catalog, self.blobs)

    def sql(self, query: str) -> pa.Table:
        """Run a read-only SQL query over the catalog (tables: images, annotations, models, datasets,
        dataset_images, training_jobs, inference_jobs, deployments, evaluation_runs; views over
        Parquet: performance_metrics, predictions)."""
        return self.catalog.sql_readonly(query)

    def close(self) -> None:
        """Close the catalog (a direct one on an object store is checkpointed first). Through the
        catalog owner the catalog stays open for the other processes; it is checkpointed now."""
        if self.uses_catalog_owner and not self.location.is_local:
            self.catalog.checkpoint()
        self.catalog.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "catalog owner actor" if self.uses_catalog_owner else "direct catalog"
        return f"Workspace({str(self.location)!r}, {mode})"


def _join_owner(location: StorageLocation) -> bool:
    """Connect to the running Ray whose catalog owner actor holds this workspace, if there is one;
    this process stays off Ray otherwise."""
    import ray

    from mleval.catalog.owner import owner_exists

    try:
        ensure_ray("auto")
    except ConnectionError:
        return False
    if owner_exists(location):
        return True
    ray.shutdown()
    return False
