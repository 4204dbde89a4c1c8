"""Starting a version on Ray Serve: its application is built from the import path Serve's own
configs use, run (or updated in place), and made the active version once it answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mleval.catalog.repositories import DeploymentRepository
from mleval.core.enums import DeploymentStatus
from mleval.core.errors import MlevalError
from mleval.deploy.records import DeploymentRecord, deployment_record, prepared_version

if TYPE_CHECKING:
    from mleval.context import WorkspaceContext

# The Serve application, named by its import path as Serve's own configs name it ("module:attribute"):
# the library does not import the endpoint's code, which depends on it.
SERVE_APP_BUILDER = "mleval_serve.detector:build_app"


def serve_app_builder(import_path: str = SERVE_APP_BUILDER) -> Any:
    """The callable that ``import_path`` ("package.module:attribute") names."""
    import importlib

    module, _, attribute = import_path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def launch_version(ws: WorkspaceContext, row_id: str) -> None:
    """Run (or update in place) the Serve application of the version in ``row_id``; the version
    that served before becomes inactive once this one answers."""
    from ray import serve

    build_app = serve_app_builder()
    record = deployment_record(ws.catalog.get("deployments", row_id))
    prepared = prepared_version(record)
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
