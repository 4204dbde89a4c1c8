"""Deploying a model on Ray Serve: one Serve application per deployment name, one catalog row
per version; a new version or a rollback updates the running application in place.

Here: checking a version's options and writing its row (``prepare_version``), then starting it
(``deploy``). Starting on Serve is ``launch.py``; the handle a notebook holds is ``handle.py``;
the row's types are ``records.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mleval.catalog.catalog import new_id, utc_now
from mleval.catalog.repositories import DeploymentRepository
from mleval.catalog.rules import check_deployment_options
from mleval.core.enums import DeploymentStatus
from mleval.core.errors import ValidationError
from mleval.deploy.handle import DeploymentCollection, DeploymentHandle, get_deployment, list_deployments
from mleval.deploy.launch import SERVE_APP_BUILDER, launch_version, serve_app_builder
from mleval.deploy.limits import parse_rate_limit
from mleval.deploy.records import DeploymentRecord, PreparedVersion, deployment_record, prepared_version

if TYPE_CHECKING:
    from mleval.context import WorkspaceContext

MiB = 1024 * 1024


def _validate(*, rate_limit: str | None, **options: Any) -> None:
    check_deployment_options(**options)
    parse_rate_limit(rate_limit)


def prepare_version(
    ws: WorkspaceContext,
    model: Any,
    *,
    name: str | None = None,
    version: str = "1.0.0",
    replicas: int = 1,
    max_batch_size: int = 8,
    batch_wait_timeout_s: float = 0.0,
    autoscaling: dict | None = None,
    rate_limit: str | None = "20/s",
    gpu: bool = False,
    cpus_per_replica: float = 1.0,
    host: str = "127.0.0.1",
    port: int = 8000,
    imgsz: int | None = None,
    conf: float = 0.25,
    max_upload_bytes: int = 20 * MiB,
    max_pixels: int = 50_000_000,
) -> PreparedVersion:
    """Validate the options (see :func:`deploy`) and write the version's row (status
    ``deploying``); nothing starts. ``mleval_serve.detector:app_builder`` builds on this too."""
    from mleval.models.settings import imgsz_for

    record = ws.models.get(model)
    name = name or record.name
    imgsz = imgsz_for(record, imgsz)
    _validate(name=name, version=version, replicas=replicas, max_batch_size=max_batch_size,
              batch_wait_timeout_s=batch_wait_timeout_s, autoscaling=autoscaling, rate_limit=rate_limit, port=port,
              imgsz=imgsz, conf=conf, max_upload_bytes=max_upload_bytes, host=host)
    if record.is_promptable:
        raise ValidationError("deployment.model_servable",
                              f"{record.name} is a promptable segmenter (it needs point or box prompts); "
                              "deploy a detector or a YOLO -seg model.")
    ws.models.weights_file(record)  # a registered model's weights must be in the blob store
    configuration = {
        "replicas": replicas, "max_batch_size": max_batch_size, "batch_wait_timeout_s": batch_wait_timeout_s,
        "autoscaling": autoscaling, "rate_limit": rate_limit, "gpu": gpu, "cpus_per_replica": cpus_per_replica,
        "host": host, "port": int(port), "imgsz": imgsz, "conf": conf, "max_upload_bytes": max_upload_bytes,
        "max_pixels": max_pixels, "route_prefix": f"/{name}", "app_name": name,
    }
    url_host = f"[{host}]" if ":" in host else host
    endpoint_url = f"http://{url_host}:{int(port)}/{name}"
    rows = DeploymentRepository(ws.catalog).versions_of(name)
    current = next((deployment_record(r) for r in rows if r["status"] == DeploymentStatus.ACTIVE and r["version"] != version), None)
    same = next((deployment_record(r) for r in rows if r["version"] == version), None)
    if same is not None:  # redeploying a version: new options, same row (and its keys and metrics)
        metadata = dict(same.metadata or {})
        if current is not None:
            metadata["previous_id"] = current.id
        ws.catalog.update("deployments", same.id, {
            "status": DeploymentStatus.DEPLOYING.value, "model_id": record.id, "configuration": configuration,
            "endpoint_url": endpoint_url, "imgsz": imgsz, "metadata": {**metadata, "model_name": record.name}})
        row_id = same.id
    else:
        row_id = new_id()
        now = utc_now()
        ws.catalog.insert("deployments", [{
            "id": row_id, "name": name, "model_id": record.id, "endpoint_url": endpoint_url, "version": version,
            "status": DeploymentStatus.DEPLOYING.value, "configuration": configuration,
            "performance_monitoring": None, "created_at": now, "updated_at": now, "imgsz": imgsz,
            "metadata": {"model_name": record.name, "api_keys": [],
                         "previous_id": current.id if current is not None else None},
        }])
    return prepared_version(deployment_record(ws.catalog.get("deployments", row_id)))


def deploy(
    ws: WorkspaceContext,
    model: Any,
    *,
    name: str | None = None,
    version: str = "1.0.0",
    replicas: int = 1,
    max_batch_size: int = 8,
    batch_wait_timeout_s: float = 0.0,
    autoscaling: dict | None = None,
    rate_limit: str | None = "20/s",
    gpu: bool = False,
    cpus_per_replica: float = 1.0,
    host: str = "127.0.0.1",
    port: int = 8000,
    imgsz: int | None = None,
    conf: float = 0.25,
    max_upload_bytes: int = 20 * MiB,
    max_pixels: int = 50_000_000,
) -> DeploymentHandle:
    """Serve ``model`` (record or name) over HTTP on the workspace's Ray at
    ``http://{host}:{port}/{name}`` (``name`` defaults to the model's name).

    Deploying another ``version`` of the same ``name`` updates the running replicas in place
    (no request refused); ``rate_limit`` ("20/s", "600/min" or None) applies per API key across
    all replicas, however many autoscaling runs (one bucket actor per deployment, ``shared_limits``);
    ``max_batch_size`` / ``batch_wait_timeout_s`` shape the replica's dynamic batching (with the
    default wait of 0, a lone request goes straight to the model and requests that arrive
    while the model is busy form the next batch; a GPU gains from a few milliseconds' wait;
    ``serve_apps/model_thread.py``);
    ``autoscaling`` is Serve's autoscaling_config (it replaces ``replicas``); ``imgsz`` and
    ``conf`` are the model's input size (pixels; None is the size the model was trained at, and
    the size used is the record's ``imgsz``) and default score threshold; uploads over
    ``max_upload_bytes`` or ``max_pixels`` are refused with 413.

    Returns a :class:`DeploymentHandle` once every replica has loaded the model; raises
    :class:`MlevalError` (the version's row marked ``failed`` with the reason) if it cannot start.
    """
    ws.attach_ray()
    prepared = prepare_version(
        ws, model, name=name, version=version, replicas=replicas, max_batch_size=max_batch_size,
        batch_wait_timeout_s=batch_wait_timeout_s, autoscaling=autoscaling, rate_limit=rate_limit, gpu=gpu,
        cpus_per_replica=cpus_per_replica, host=host, port=port, imgsz=imgsz, conf=conf,
        max_upload_bytes=max_upload_bytes, max_pixels=max_pixels)
    launch_version(ws, prepared.row_id)
    return DeploymentHandle(ws, prepared.row_id)


__all__ = ["SERVE_APP_BUILDER", "DeploymentCollection", "DeploymentHandle", "DeploymentRecord", "PreparedVersion",
           "deploy", "get_deployment", "list_deployments", "prepare_version", "serve_app_builder"]
