"""The metrics collector of one deployment name: a detached Ray actor that merges what its
replicas report and persists it into each version's ``performance_monitoring`` every few
seconds, so the figures survive replica and cluster restarts."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from mleval.cluster import NAMESPACE
from mleval.deploy.stats import DeploymentStats

if TYPE_CHECKING:
    from mleval.context import WorkspaceAddress
    from mleval.storage.location import StorageLocation

logger = logging.getLogger("mleval.deploy")

PERSIST_EVERY_S = 5.0

# (api key name or None, HTTP status, latency ms, images)
Event = tuple[str | None, int, float, int]


def collector_name(workspace_path: str | StorageLocation, deployment_name: str) -> str:
    import hashlib

    digest = hashlib.sha1(f"{workspace_path}\0{deployment_name}".encode()).hexdigest()[:12]
    return f"mleval-deploy-metrics-{digest}"


def _parse(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class MetricsCollector:
    def __init__(self, workspace: WorkspaceAddress, deployment_name: str, persist_every_s: float = PERSIST_EVERY_S):
        self._address = workspace
        self._name = deployment_name
        self._lock = threading.Lock()
        self._stats: dict[str, DeploymentStats] = {}
        self._versions: dict[str, str] = {}
        self._dirty: set[str] = set()
        self._ws = None
        self._persist_every_s = persist_every_s
        threading.Thread(target=self._persist_loop, daemon=True).start()

    def _workspace(self):
        if self._ws is None:
            self._ws = self._address.open()
        return self._ws

    def _stats_of(self, row_id: str, version: str) -> DeploymentStats:
        if row_id not in self._stats:
            try:
                saved = _parse(self._workspace().catalog.get("deployments", row_id).get("performance_monitoring"))
            except Exception:  # a deleted row: count from zero rather than lose the events
                saved = None
            self._stats[row_id] = DeploymentStats.from_json((saved or {}).get("stats"))
            self._versions[row_id] = version
        return self._stats[row_id]

    def record(self, row_id: str, version: str, events: list[Event]) -> None:
        with self._lock:
            stats = self._stats_of(row_id, version)
            for key_name, status, latency_ms, images in events:
                stats.add(key_name, int(status), float(latency_ms), int(images))
            self._dirty.add(row_id)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{row id: {"version", "stats" (mergeable JSON)}}`` of every version seen."""
        with self._lock:
            return {row_id: {"version": self._versions[row_id], "stats": stats.to_json()}
                    for row_id, stats in self._stats.items()}

    def summary(self, row_id: str, version: str) -> dict[str, Any]:
        with self._lock:
            return self._stats_of(row_id, version).summary()

    def persist(self) -> int:
        """Write the changed versions' figures to the catalog now; returns how many rows."""
        with self._lock:
            pending = {row_id: (self._stats[row_id].to_json(), self._stats[row_id].summary())
                       for row_id in self._dirty}
            self._dirty.clear()
        written = 0
        for row_id, (stats, summary) in pending.items():
            try:
                self._workspace().catalog.update("deployments", row_id, {"performance_monitoring": {
                    "summary": summary, "stats": stats, "persisted_at": time.time()}})
                written += 1
            except Exception as error:  # the row was deleted meanwhile: nothing to keep
                logger.info("metrics of deployment row %s not persisted: %s", row_id, error)
        return written

    def forget(self, row_ids: list[str]) -> None:
        with self._lock:
            for row_id in row_ids:
                self._stats.pop(row_id, None)
                self._versions.pop(row_id, None)
                self._dirty.discard(row_id)

    def _persist_loop(self) -> None:
        while True:
            time.sleep(self._persist_every_s)
            try:
                self.persist()
            except Exception as error:  # keep persisting later; a transient catalog error must not end the loop
                logger.warning("persisting deployment metrics failed: %s", error)


def get_collector(workspace: WorkspaceAddress, deployment_name: str):
    """The collector actor of ``deployment_name``, started if needed (needs Ray connected)."""
    import ray

    return ray.remote(MetricsCollector).options(
        name=collector_name(workspace.location, deployment_name), namespace=NAMESPACE, lifetime="detached",
        get_if_exists=True, num_cpus=0, max_restarts=-1, max_concurrency=4,
    ).remote(workspace, deployment_name)


def kill_collector(workspace_path: str | StorageLocation, deployment_name: str) -> None:
    import ray

    try:
        handle = ray.get_actor(collector_name(workspace_path, deployment_name), namespace=NAMESPACE)
    except ValueError:
        return
    try:
        ray.get(handle.persist.remote(), timeout=30)
    finally:
        ray.kill(handle)
