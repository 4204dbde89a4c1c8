"""Deploying a model on Ray Serve: one Serve application per deployment name, one catalog row
per version; a new version or a rollback updates the running application in place."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mleval.catalog.catalog import new_id, utc_now
from mleval.catalog.repositories import DeploymentRepository
from mleval.catalog.rules import check_deployment_options
from mleval.core.enums import DeploymentStatus
from mleval.core.errors import MlevalError, NotFoundError, ValidationError
from mleval.core.records import RecordList, _Record
from mleval.deploy.keys import key_entry, new_api_key
from mleval.deploy.limits import parse_rate_limit

if TYPE_CHECKING:
    from mleval.context import WorkspaceContext

MiB = 1024 * 1024
# The Serve application, named by its import path as Serve's own configs name it ("module:attribute"):
# the library does not import the endpoint's code, which depends on it.
SERVE_APP_BUILDER = "serve_apps.detector:build_app"
_SERVING_KEYS = ("imgsz", "conf", "rate_limit", "max_batch_size", "batch_wait_timeout_s", "max_upload_bytes",
                 "max_pixels")


@dataclass(frozen=True)
class DeploymentRecord(_Record):
    _json_fields = ("configuration", "performance_monitoring", "metadata")
    lineage_kind = "deployment"  # what ws.lineage traces it as
    id: str
    name: str
    model_id: str
    endpoint_url: str
    version: str
    status: str
    configuration: dict = field(default_factory=dict)
    performance_monitoring: dict | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: dict | None = None
    imgsz: int | None = None  # the input size the endpoint runs the model at


@dataclass(frozen=True)
class PreparedVersion:
    row_id: str
    name: str
    config: dict[str, Any]  # the replicas' user_config
    serve_options: dict[str, Any]  # replicas / autoscaling / gpu / cpus_per_replica for build_app


def _validate(*, rate_limit: str | None, **options: Any) -> None:
    check_deployment_options(**options)
    parse_rate_limit(rate_limit)


def _parsed(row: dict[str, Any]) -> DeploymentRecord:
    return DeploymentRecord.from_row(row)


def _serving(record: DeploymentRecord) -> PreparedVersion:
    configuration = record.configuration
    autoscaling = configuration.get("autoscaling")
    replicas = int(configuration["replicas"])
    config = {key: configuration[key] for key in _SERVING_KEYS}
    config.update(row_id=record.id, version=record.version, model_id=record.model_id,
                  model_name=(record.metadata or {}).get("model_name", record.model_id))
    return PreparedVersion(record.id, record.name, config, {
        "replicas": replicas, "autoscaling": autoscaling, "gpu": bool(configuration.get("gpu")),
        "cpus_per_replica": float(configuration.get("cpus_per_replica", 1.0))})


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
    ``deploying``); nothing starts. ``serve_apps.detector:app_builder`` builds on this too."""
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
    current = next((_parsed(r) for r in rows if r["status"] == DeploymentStatus.ACTIVE and r["version"] != version), None)
    same = next((_parsed(r) for r in rows if r["version"] == version), None)
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
    return _serving(_parsed(ws.catalog.get("deployments", row_id)))


def serve_app_builder(import_path: str = SERVE_APP_BUILDER) -> Any:
    """The callable that ``import_path`` ("package.module:attribute") names."""
    import importlib

    module, _, attribute = import_path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _launch(ws: WorkspaceContext, row_id: str) -> DeploymentHandle:
    """Run (or update in place) the Serve application of the version in ``row_id``; the version
    that served before becomes inactive once this one answers."""
    from ray import serve

    build_app = serve_app_builder()
    record = _parsed(ws.catalog.get("deployments", row_id))
    prepared = _serving(record)
    configuration = record.configuration
    try:
        serve.start(http_options={"host": configuration["host"], "port": int(configuration["port"])})
        _check_http_options(configuration["host"], int(configuration["port"]))
        app = build_app(workspace=ws.address, deployment_name=record.name, config=prepared.config,
                        **prepared.serve_options)
        serve.run(app, name=record.name, route_prefix=configuration["route_prefix"], blocking=False)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        ws.catalog.update("deployments", row_id, {"status": DeploymentStatus.FAILED.value,
                                                   "metadata": {**(record.metadata or {}), "failure_reason": reason}})
        raise MlevalError(f"deployment {record.name!r} version {record.version} failed to start: {reason}. "
                          "The error is kept in its metadata['failure_reason']; fix it and deploy again, "
                          "or roll back.") from error
    _activate(ws, record)
    return DeploymentHandle(ws, row_id)


def _check_http_options(host: str, port: int) -> None:
    """Serve keeps the HTTP host and port it started with (a later ``serve.start`` only logs that it
    ignores new ones): refuse a deployment whose URL would not be where it answers."""
    from ray.serve.context import _get_global_client

    running = _get_global_client().http_config
    if (running.host, int(running.port)) != (host, port):
        raise MlevalError(
            f"Ray Serve already listens on {running.host}:{running.port} on this cluster, not {host}:{port}; "
            f"deploy with host={running.host!r}, port={running.port}, or stop every application first "
            "(ray.serve.shutdown()) to listen elsewhere.")


def _activate(ws: WorkspaceContext, record: DeploymentRecord) -> None:
    if ws.catalog.get("deployments", record.id)["status"] != DeploymentStatus.ACTIVE:
        ws.catalog.update("deployments", record.id, {"status": DeploymentStatus.ACTIVE.value})
    for row_id in DeploymentRepository(ws.catalog).other_active(record.name, record.id):
        ws.catalog.update("deployments", row_id, {"status": DeploymentStatus.INACTIVE.value})


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
    ``max_batch_size`` / ``batch_wait_timeout_s`` shape Serve's dynamic batching (with the
    default wait of 0, a lone request goes straight to the model and requests that arrive
    while the model is busy form the next batch; a GPU gains from a few milliseconds' wait);
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
    return _launch(ws, prepared.row_id)


class DeploymentHandle:
    """One deployed version: ``.url``, ``.status``, API keys, ``.metrics()``, ``.rollback()``."""

    lineage_kind = "deployment"  # what ws.lineage traces it as

    def __init__(self, ws: WorkspaceContext, row_id: str):
        self._ws = ws
        self.id = str(row_id)

    @property
    def record(self) -> DeploymentRecord:
        return _parsed(self._ws.catalog.get("deployments", self.id))

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> str:
        return self.record.version

    @property
    def url(self) -> str:
        return self.record.endpoint_url

    @property
    def status(self) -> str:
        return self.record.status

    def _rows(self) -> list[DeploymentRecord]:
        return [_parsed(r) for r in DeploymentRepository(self._ws.catalog).versions_of(self.name)]

    # -- API keys --------------------------------------------------------------------------
    def create_api_key(self, name: str) -> str:
        """A new key for every version of this deployment. It is returned once; only its hash is kept."""
        if not name or not name.strip():
            raise ValidationError("deployment.api_key_name", "an API key needs a non-empty name (who or what uses it).")
        taken = {k["name"] for r in self._rows() for k in (r.metadata or {}).get("api_keys", ())}
        if name in taken:
            raise ValidationError("deployment.api_key_unique",
                                  f"key name {name!r} exists on deployment {self.name!r}; revoke it first or pick another.")
        key = new_api_key()
        record = self.record
        metadata = dict(record.metadata or {})
        metadata["api_keys"] = [*metadata.get("api_keys", []), key_entry(name, key, utc_now().isoformat())]
        self._ws.catalog.update("deployments", self.id, {"metadata": metadata})
        return key

    def revoke_api_key(self, name: str) -> None:
        """Refused by every replica within ~10 s (replicas reload the key table that often)."""
        found = False
        for record in self._rows():
            keys = (record.metadata or {}).get("api_keys", [])
            kept = [k for k in keys if k["name"] != name]
            if len(kept) != len(keys):
                found = True
                self._ws.catalog.update("deployments", record.id, {"metadata": {**record.metadata, "api_keys": kept}})
        if not found:
            raise NotFoundError(f"deployment {self.name!r} has no API key named {name!r}; see .api_keys.")

    @property
    def api_keys(self) -> list[dict[str, str]]:
        """Name, prefix and creation time of each key (never the key)."""
        return [{k: v for k, v in entry.items() if k != "sha256"}
                for r in self._rows() for entry in (r.metadata or {}).get("api_keys", ())]

    # -- monitoring ------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """Requests, errors by status, images, latency p50/p95/p99 (ms), in total and per API key,
        for this version: live from the collector when Ray runs, else as last persisted."""
        from mleval.cluster import ray_is_running

        if ray_is_running():
            import ray

            from mleval.deploy.monitor import get_collector

            collector = get_collector(self._ws.address, self.name)
            return ray.get(collector.summary.remote(self.id, self.version))
        return (self.record.performance_monitoring or {}).get("summary") or {}

    def persist_metrics(self) -> None:
        """Write the live figures into the row's ``performance_monitoring`` now (also done every 5 s)."""
        import ray

        from mleval.deploy.monitor import get_collector

        ray.get(get_collector(self._ws.address, self.name).persist.remote())

    # -- lifecycle -------------------------------------------------------------------------
    def rollback(self) -> DeploymentHandle:
        """Serve the version that served before this one, in place; returns its handle."""
        previous_id = (self.record.metadata or {}).get("previous_id")
        if not previous_id:
            raise MlevalError(f"deployment {self.name!r} version {self.version} has no previous version to roll back to.")
        self._ws.attach_ray()
        self._ws.catalog.update("deployments", previous_id, {"status": DeploymentStatus.DEPLOYING.value})
        return _launch(self._ws, previous_id)

    def set_status(self, status: str) -> None:
        """``"inactive"`` stops serving (the Serve app is deleted, the row kept); ``"active"`` serves
        this version again."""
        from ray import serve

        if status == DeploymentStatus.INACTIVE:
            self._ws.attach_ray()
            serve.delete(self.name)
            self._ws.catalog.update("deployments", self.id, {"status": DeploymentStatus.INACTIVE.value})
        elif status == DeploymentStatus.ACTIVE:
            self._ws.attach_ray()
            self._ws.catalog.update("deployments", self.id, {"status": DeploymentStatus.DEPLOYING.value})
            _launch(self._ws, self.id)
        else:
            raise ValidationError("deployment.status_settable", f"status can be set to 'active' or 'inactive'; got {status!r}.")

    def delete(self) -> None:
        """Stop serving and remove every version of this deployment from the catalog."""
        from ray import serve

        from mleval.deploy.monitor import kill_collector
        from mleval.deploy.shared_limits import kill_shared_limiter

        name, rows = self.name, self._rows()
        self._ws.attach_ray()
        serve.delete(name)
        kill_collector(self._ws.location, name)
        kill_shared_limiter(self._ws.location, name)
        self._ws.catalog.delete("deployments", [r.id for r in rows])

    def __repr__(self) -> str:
        record = self.record
        return f"DeploymentHandle({record.name!r}, version={record.version!r}, status={record.status!r}, url={record.endpoint_url!r})"

    def _repr_html_(self) -> str:
        from html import escape

        record = self.record
        usage = (record.performance_monitoring or {}).get("summary") or {}
        rows = [("status", record.status), ("model", (record.metadata or {}).get("model_name", record.model_id)),
                ("imgsz", record.imgsz), ("requests", usage.get("requests", 0)), ("errors", usage.get("errors", 0)),
                ("p50 latency ms", usage.get("latency_p50_ms"))]
        body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
                       for k, v in rows)
        url = escape(record.endpoint_url)
        return (f"<b>deployment {escape(record.name)}</b> v{escape(record.version)}: POST <code>{url}/predict</code>, "
                f"<a href='{url}/docs' target='_blank'>API docs</a><table>{body}</table>")


def list_deployments(ws: WorkspaceContext, *, status: str | None = None) -> RecordList[DeploymentRecord]:
    """Every version of every deployment, newest first, optionally of one status."""
    return RecordList(_parsed(r) for r in DeploymentRepository(ws.catalog).list(status=status))


def get_deployment(ws: WorkspaceContext, name: str, *, version: str | None = None) -> DeploymentHandle:
    """The active version of ``name`` (or the newest), or the given ``version``."""
    rows = [_parsed(r) for r in DeploymentRepository(ws.catalog).versions_of(name)]
    if version is not None:
        rows = [r for r in rows if r.version == version]
    if not rows:
        known = sorted({r.name for r in list_deployments(ws)})
        raise NotFoundError(f"no deployment {name!r}{' version ' + version if version else ''}; known: {known}.")
    active = [r for r in rows if r.status == DeploymentStatus.ACTIVE]
    return DeploymentHandle(ws, (active or rows)[0].id)


class DeploymentCollection:
    """``ws.deployments``: ``.list(status=None)``, ``.get(name, version=None)``."""

    def __init__(self, ws: WorkspaceContext):
        self._ws = ws

    def list(self, *, status: str | None = None) -> RecordList[DeploymentRecord]:
        return list_deployments(self._ws, status=status)

    def get(self, name: str, *, version: str | None = None) -> DeploymentHandle:
        return get_deployment(self._ws, name, version=version)


__all__ = ["DeploymentCollection", "DeploymentHandle", "DeploymentRecord", "deploy", "get_deployment",
           "list_deployments", "prepare_version"]
