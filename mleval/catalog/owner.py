"""The catalog owner: a named, detached Ray actor that alone holds ``catalog.duckdb`` open.

DuckDB allows one writing process per file. When Ray runs, every process (notebook
kernels, training workers, Serve replicas) reaches the catalog through this actor, one per
workspace, and bulk rows travel as Arrow tables through Ray's object store.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from mleval.cluster import NAMESPACE
from mleval.core.errors import MlevalError

# Catalog methods callable through the owner; reads and writes alike.
REMOTE_METHODS = frozenset({
    "query", "query_rows", "sql_readonly", "get", "find_by_name", "insert", "update", "delete",
    "assign_split", "link_dataset_images", "append_rows", "append_log", "schema_version", "table_schema", "json_columns", "to_arrow",
})


def owner_name(catalog_path: str) -> str:
    digest = hashlib.sha1(os.path.abspath(catalog_path).encode()).hexdigest()[:16]
    return f"catalog-{digest}"


class CatalogOwner:
    """Actor body: opens the catalog in the actor's process and serves calls one at a time."""

    def __init__(self, catalog_path: str):
        from mleval.catalog.catalog import Catalog

        self._catalog = Catalog(catalog_path)

    def call(self, method: str, args: tuple, kwargs: dict) -> Any:
        if method not in REMOTE_METHODS:
            raise MlevalError(f"catalog method {method!r} is not available through the catalog owner.")
        return getattr(self._catalog, method)(*args, **kwargs)

    def pid(self) -> int:
        return os.getpid()


class RemoteCatalog:
    """The Catalog interface, forwarded to the workspace's catalog owner actor."""

    def __init__(self, handle: Any, path: str):
        self._handle = handle
        self.path = path

    def __getattr__(self, method: str):
        if method not in REMOTE_METHODS:
            raise AttributeError(method)

        def forward(*args: Any, **kwargs: Any) -> Any:
            import ray

            try:
                return ray.get(self._handle.call.remote(method, args, kwargs))
            except ray.exceptions.RayTaskError as error:
                if isinstance(error.cause, MlevalError):
                    raise error.cause from None
                raise

        return forward

    def owner_pid(self) -> int:
        import ray

        return ray.get(self._handle.pid.remote())

    def close(self) -> None:
        """The owner is shared by every process on the workspace: closing a client leaves it running."""


def connect_owner(catalog_path: str) -> RemoteCatalog:
    """Get or start the workspace's catalog owner on this node (Ray must be connected)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor = ray.remote(CatalogOwner).options(
        name=owner_name(catalog_path),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        max_restarts=-1,
        # The file is on this node's disk (or a mount of it): keep its owner here.
        scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True),
    )
    handle = actor.remote(os.path.abspath(catalog_path))
    try:
        ray.get(handle.pid.remote())  # the file is open (or the reason it is not is known) before use
    except ray.exceptions.RayActorError as error:
        cause = getattr(error, "cause", None) or error
        raise MlevalError(f"the catalog owner for {catalog_path} could not start: {cause}") from None
    return RemoteCatalog(handle, os.path.abspath(catalog_path))


def stop_owner(catalog_path: str) -> bool:
    """Stop the workspace's catalog owner, releasing the file. Returns False when none ran."""
    import ray

    try:
        handle = ray.get_actor(owner_name(catalog_path), namespace=NAMESPACE)
    except ValueError:
        return False
    ray.kill(handle)
    return True
