"""A deployed version as a notebook holds it: its URL and status, API keys, metrics, rollback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mleval.catalog.catalog import utc_now
from mleval.catalog.repositories import DeploymentRepository
from mleval.core.enums import DeploymentStatus
from mleval.core.errors import MlevalError, NotFoundError, ValidationError
from mleval.core.records import RecordList
from mleval.deploy.keys import key_entry, new_api_key
from mleval.deploy.launch import launch_version
from mleval.deploy.records import DeploymentRecord, deployment_record

if TYPE_CHECKING:
    from mleval.context import WorkspaceContext


class DeploymentHandle:
    """One deployed version: ``.url``, ``.status``, API keys, ``.metrics()``, ``.rollback()``."""

    lineage_kind = "deployment"  # what ws.lineage traces it as

    def __init__(self, ws: WorkspaceContext, row_id: str):
        self._ws = ws
        self.id = str(row_id)

    @property
    def record(self) -> DeploymentRecord:
        return deployment_record(self._ws.catalog.get("deployments", self.id))

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
        return [deployment_record(r) for r in DeploymentRepository(self._ws.catalog).versions_of(self.name)]

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
        launch_version(self._ws, previous_id)
        return DeploymentHandle(self._ws, previous_id)

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
            launch_version(self._ws, self.id)
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
    return RecordList(deployment_record(r) for r in DeploymentRepository(ws.catalog).list(status=status))


def get_deployment(ws: WorkspaceContext, name: str, *, version: str | None = None) -> DeploymentHandle:
    """The active version of ``name`` (or the newest), or the given ``version``."""
    rows = [deployment_record(r) for r in DeploymentRepository(ws.catalog).versions_of(name)]
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


__all__ = ["DeploymentCollection", "DeploymentHandle", "get_deployment", "list_deployments"]
