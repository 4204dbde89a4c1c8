"""The catalog owner: a named, detached Ray actor that alone holds ``catalog.duckdb`` open.

DuckDB allows one writing process per file. When Ray runs, every process (notebook
kernels, training workers, Serve replicas) reaches the catalog through this actor, one per
workspace, and bulk rows travel as Arrow tables through Ray's object store. For a workspace
on an object store the actor keeps the file on its node's disk and checkpoints it to the
store (see ``replica.py``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from mleval.catalog.replica import CATALOG_FILE
from mleval.cluster import NAMESPACE
from mleval.core.errors import CatalogUnavailableError, MlevalError
from mleval.storage.location import StorageLocation

# Catalog methods callable through the owner; reads and writes alike.
REMOTE_METHODS = frozenset({
    "query", "query_rows", "sql_readonly", "get", "find_by_name", "insert", "update", "delete",
    "assign_split", "link_dataset_images", "append_rows", "append_log", "schema_version", "table_schema", "json_columns", "to_arrow",
    "checkpoint", "rule_violations", "blob_references",
})


def owner_key(location: StorageLocation) -> str:
    """What a workspace's owner is named after: its catalog file for a local folder, its URI otherwise."""
    return str(location.local_path / CATALOG_FILE) if location.is_local else location.identity


def owner_name(key: str) -> str:
    """The actor name for ``key``: a catalog file's path (local workspaces) or a workspace URI."""
    digest = hashlib.sha1((key if "://" in key else os.path.abspath(key)).encode()).hexdigest()[:16]
    return f"catalog-{digest}"


class CatalogOwner:
    """Actor body: opens the catalog in the actor's process and serves calls one at a time."""

    def __init__(self, location: StorageLocation, catalog_dir: str | None = None):
        from mleval.catalog.replica import open_catalog

        self._catalog = open_catalog(location, catalog_dir)

    def call(self, method: str, args: tuple, kwargs: dict) -> Any:
        if method not in REMOTE_METHODS:
            raise MlevalError(f"catalog method {method!r} is not available through the catalog owner.")
        return getattr(self._catalog, method)(*args, **kwargs)

    def pid(self) -> int:
        return os.getpid()

    def path(self) -> str:
        return self._catalog.path

    def close(self) -> None:
        """Checkpoint (object-store workspaces) and close the file, before the actor is stopped."""
        self._catalog.close()


class RemoteCatalog:
    """The Catalog interface, forwarded to the workspace's catalog owner actor.

    A call that finds the owner gone (its process died: Ray restarts it, or it was killed for good)
    is sent once more, to the restarted owner or to a new one started here. That is safe because
    what a retried write may repeat cannot double: rows carry the ids their writer made, so an
    insert that had landed before the owner died is refused as taken and counted as done; splits,
    dataset links and deletes are idempotent. (A repeated log line is possible.)
    """

    def __init__(self, handle: Any, path: str, location: StorageLocation | None = None,
                 catalog_dir: str | None = None):
        self._handle = handle
        self.path = path
        self._location, self._catalog_dir = location, catalog_dir

    def _forward(self, method: str, args: tuple, kwargs: dict) -> Any:
        import ray

        try:
            return self._call(method, args, kwargs)
        except ray.exceptions.RayActorError as error:  # died, restarting or gone for good
            self._reconnect(error)
            try:
                return self._call(method, args, kwargs)
            except MlevalError as retried:
                if method == "insert" and getattr(retried, "rule", "").endswith(".unique"):
                    return _row_count(args, kwargs)  # it had landed before the owner died
                raise

    def _call(self, method: str, args: tuple, kwargs: dict) -> Any:
        import ray

        try:
            return ray.get(self._handle.call.remote(method, args, kwargs))
        except ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, MlevalError):
                raise error.cause from None
            raise

    def _reconnect(self, error: Exception) -> None:
        """The restarted owner, or a new one when it is gone for good."""
        if self._location is None:
            raise CatalogUnavailableError(f"the catalog owner of {self.path} died ({type(error).__name__}); "
                                          "open the workspace again (Workspace.open) to reach a new one.") from error
        try:
            self._handle = connect_owner(self._location, self._catalog_dir)._handle
        except Exception as failure:
            raise CatalogUnavailableError(
                f"the catalog owner of {self._location} died ({type(error).__name__}) and could not be started "
                f"again ({failure}). Check that this node can open {self.path} (disk space, another process "
                "holding it), then open the workspace again; nothing acknowledged before was lost.") from failure

    def owner_pid(self) -> int:
        import ray

        return ray.get(self._handle.pid.remote())

    def close(self) -> None:
        """The owner is shared by every process on the workspace: closing a client leaves it running."""


def _forwarding(method: str):
    def forward(self: RemoteCatalog, *args: Any, **kwargs: Any) -> Any:
        return self._forward(method, args, kwargs)

    forward.__name__ = forward.__qualname__ = method
    forward.__doc__ = f"Catalog.{method}, run by the catalog owner actor."
    return forward


# The interface the owner serves, as methods of the client (the same list the owner accepts).
for _method in sorted(REMOTE_METHODS):
    setattr(RemoteCatalog, _method, _forwarding(_method))


def connect_owner(location: StorageLocation, catalog_dir: str | Path | None = None) -> RemoteCatalog:
    """Get or start the catalog owner of the workspace at ``location`` on this node (Ray must be
    connected); ``catalog_dir`` is where a new owner keeps an object-store workspace's catalog."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor = ray.remote(CatalogOwner).options(
        name=owner_name(owner_key(location)),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        max_restarts=-1,
        # The file is on this node's disk (or a mount of it): keep its owner here. Not soft: Ray places a
        # zero-CPU actor with soft affinity on another node more often than not.
        scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False),
    )
    if catalog_dir is not None:  # resolved here: the actor's working directory may differ
        catalog_dir = Path(catalog_dir).expanduser().resolve()
    handle = actor.remote(location, None if catalog_dir is None else str(catalog_dir))
    try:
        path = _owner_path(handle)  # the file is open (or the reason it is not is known) before use
    except ray.exceptions.RayActorError as error:
        cause = getattr(error, "cause", None) or error
        if isinstance(cause, MlevalError):
            raise cause from None
        raise MlevalError(f"the catalog owner for {location} could not start: {cause}") from None
    if catalog_dir is not None and Path(path).parent != catalog_dir:
        raise MlevalError(f"the catalog owner of {location} already runs with its catalog at {path}, not in "
                          f"catalog_dir={str(catalog_dir)!r}: leave catalog_dir out, or stop the owner first "
                          "(mleval.catalog.owner.stop_owner(ws.location)) to move the catalog.")
    return RemoteCatalog(handle, path, location, None if catalog_dir is None else str(catalog_dir))


def _owner_path(handle: Any, *, restart_wait_s: float = 60.0) -> str:
    """The owner's catalog path, waiting while Ray restarts an owner whose process died."""
    import time

    import ray

    deadline = time.monotonic() + restart_wait_s
    while True:
        try:
            return ray.get(handle.path.remote())
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def owner_exists(location: StorageLocation) -> bool:
    """Whether the workspace's catalog owner actor runs on the Ray this process is connected to."""
    import ray

    try:
        ray.get_actor(owner_name(owner_key(location)), namespace=NAMESPACE)
    except ValueError:
        return False
    return True


def stop_owner(workspace: str | StorageLocation) -> bool:
    """Stop a workspace's catalog owner, releasing the file (checkpointed first when the workspace is
    on an object store). ``workspace`` is its location or its catalog file's path. Returns False
    when none ran."""
    import ray

    key = owner_key(workspace) if isinstance(workspace, StorageLocation) else workspace
    try:
        handle = ray.get_actor(owner_name(key), namespace=NAMESPACE)
    except ValueError:
        return False
    failure = None
    try:
        ray.get(handle.close.remote(), timeout=120)
    except ray.exceptions.RayTaskError as error:  # it could not checkpoint: stop it, then say why
        failure = error.cause if isinstance(error.cause, MlevalError) else error
    except ray.exceptions.GetTimeoutError:
        failure = MlevalError(f"the catalog owner of {key} did not close within 120 s; it was stopped, and what "
                              "it wrote since its last checkpoint may be missing from the store.")
    except ray.exceptions.RayActorError:
        pass  # already dead: nothing left to close
    ray.kill(handle)
    if failure is not None:
        raise failure
    return True


def _row_count(args: tuple, kwargs: dict) -> int:
    rows = kwargs.get("rows", args[1] if len(args) > 1 else ())
    return rows.num_rows if hasattr(rows, "num_rows") else len(rows)
