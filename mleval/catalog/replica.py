"""The catalog of a workspace on an object store: a local DuckDB file, checkpointed to the store.

DuckDB cannot write its file on an object store, so the catalog of an ``s3://...`` workspace
lives on the local disk of the process that owns it (the catalog owner actor's node when
Ray runs): in ``catalog_dir`` if given, else ``~/.cache/mleval/workspaces/<name>-<hash>/``
(``$MLEVAL_CACHE_DIR`` or ``$XDG_CACHE_HOME`` move it). The store keeps its checkpoint::

    catalog/checkpoint.json           which checkpoint is current (id, sha256, size, writer)
    catalog/checkpoints/<id>.duckdb   a complete copy of the file
    catalog/lease.json                the process that holds the catalog now

A checkpoint makes the file whole (DuckDB ``CHECKPOINT``), copies it aside while the
catalog's lock holds writers back, then uploads the copy and only then points
``checkpoint.json`` at it, so the store always names a complete file. The owner checkpoints
every ``CHECKPOINT_EVERY_S`` when the file changed, on ``ws.checkpoint()`` and on close;
what was written after the last checkpoint is only on that machine until the next one.

A machine without a local copy restores the store's checkpoint. A local copy made from an
older checkpoint is replaced by the current one, unless it holds changes never uploaded:
then opening stops and says how to choose. One writer at a time: the lease names the
holder and is renewed at each checkpoint tick; another process is refused while it is fresh
(a holder that died frees it after ``LEASE_TTL_S``, or at once on the same host). pyarrow
offers no atomic compare-and-swap on object stores, so the lease catches mistakes (two
notebooks on two clusters), not two opens within the same second.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from mleval.core.errors import CatalogBusyError, MlevalError
from mleval.storage.location import StorageLocation

logger = logging.getLogger("mleval.catalog")

CATALOG_FILE = "catalog.duckdb"
CHECKPOINT_EVERY_S = 30.0
LEASE_TTL_S = 120.0
_CHUNK_BYTES = 1 << 20


def cache_root() -> Path:
    """``$MLEVAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/mleval``, else ``~/.cache/mleval``."""
    if os.environ.get("MLEVAL_CACHE_DIR"):
        return Path(os.environ["MLEVAL_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "mleval"


def local_folder(location: StorageLocation) -> Path:
    """This machine's folder for the object-store workspace at ``location`` (catalog, scratch files)."""
    identity = location.identity
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", identity.split("://", 1)[-1]).strip("-")[:60]
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return cache_root() / "workspaces" / f"{readable}-{digest}"


def open_catalog(location: StorageLocation, catalog_dir: str | Path | None = None):
    """The catalog of the workspace at ``location``, opened in this process: the file in the folder
    itself for a local workspace, a checkpointed local copy for one on an object store."""
    from mleval.catalog.catalog import Catalog

    if location.is_local:
        if catalog_dir is not None:
            raise MlevalError(f"catalog_dir={str(catalog_dir)!r} applies to workspaces on an object store; the "
                              f"catalog of the local workspace {location} is {location.join(CATALOG_FILE)}.")
        return Catalog(location.local_path / CATALOG_FILE)
    folder = Path(catalog_dir).expanduser().resolve() if catalog_dir is not None else local_folder(location)
    replica = CatalogReplica(location.join("catalog"), folder)
    path = replica.prepare()
    try:
        return Catalog(path, tables=location.join("tables"), replica=replica)
    except BaseException:
        replica.release()
        raise


class CatalogReplica:
    """A local DuckDB file kept in step with its checkpoint under ``store`` (see the module docstring)."""

    def __init__(self, store: StorageLocation, folder: Path, *, every_s: float = CHECKPOINT_EVERY_S,
                 lease_ttl_s: float = LEASE_TTL_S):
        self.store = store
        self.folder = folder
        self.path = folder / CATALOG_FILE
        self.every_s = every_s
        self._lease_ttl_s = lease_ttl_s
        self._holder = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}
        self._synced: dict[str, Any] = {}
        self._upload_lock = threading.Lock()
        self._stopping = threading.Event()
        self._lifecycle = threading.Lock()  # a periodic checkpoint and stop() never interleave
        self._close: Callable[[], None] | None = None

    # -- opening --------------------------------------------------------------------------
    def prepare(self) -> Path:
        """Take the lease and make the local file current; returns its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._take_lease()
        try:
            self._make_current()
        except BaseException:
            self.release()
            raise
        return self.path

    def _make_current(self) -> None:
        current = _read_json(self.store.join("checkpoint.json"))
        self._synced = _read_local_json(self.folder / "sync.json")
        if not self.path.exists():
            if current is not None:
                self._restore(current)
            return
        if current is None:  # a store without a checkpoint: the local file is uploaded at the first one
            self._synced = {}
            return
        if self._synced.get("checkpoint") == current["id"]:
            return  # the local file is that checkpoint, or newer (written here since)
        if self._unchanged():
            self._restore(current)
            return
        raise MlevalError(
            f"the local catalog {self.path} holds changes that were never checkpointed to {self.store}, and the "
            f"store's checkpoint is newer (written by {current.get('written_by')} at {current.get('written_at')}). "
            f"To use the store's checkpoint, delete the folder {self.folder} (copy {self.path.name} away first to "
            "look at the local changes with duckdb); then open the workspace again."
        )

    def _restore(self, current: dict[str, Any]) -> None:
        temporary = self.folder / f"restore-{uuid.uuid4().hex}.tmp"
        source = self.store.join(current["file"])
        digest = hashlib.sha256()
        try:
            with source.filesystem.open_input_stream(source.path) as stream, open(temporary, "wb") as sink:
                while chunk := stream.read(_CHUNK_BYTES):
                    digest.update(chunk)
                    sink.write(chunk)
            if current.get("sha256") not in (None, digest.hexdigest()):
                raise MlevalError(f"the catalog checkpoint {source} does not match its sha256 in checkpoint.json: "
                                  "it was changed or cut short on the store. Restore it from a backup of the store.")
            Path(f"{self.path}.wal").unlink(missing_ok=True)  # a log of the replaced file must not be replayed
            os.replace(temporary, self.path)
        except FileNotFoundError:
            raise MlevalError(f"the catalog checkpoint {source} named by checkpoint.json is missing from the "
                              "store; restore it from a backup of the store.") from None
        finally:
            temporary.unlink(missing_ok=True)
        self._save_sync(current["id"], digest.hexdigest())

    # -- checkpoints ----------------------------------------------------------------------
    def start(self, checkpoint: Callable[[], bool], close: Callable[[], None]) -> None:
        """Call ``checkpoint`` every ``every_s`` (renewing the lease) from a daemon thread, and
        ``close`` at interpreter exit, so a kernel that ends without ws.close() still uploads."""
        self._close = close
        atexit.register(close)
        threading.Thread(target=self._tick, args=(checkpoint,), name="mleval-catalog-checkpoint", daemon=True).start()

    def _tick(self, checkpoint: Callable[[], bool]) -> None:
        while not self._stopping.wait(self.every_s):
            with self._lifecycle:
                if self._stopping.is_set():
                    return
                try:
                    self.renew_lease()
                    checkpoint()
                except Exception as error:  # the store may be unreachable a while: the next tick tries again
                    logger.warning("checkpointing the catalog %s to %s failed: %s", self.path, self.store, error)

    def stop(self, checkpoint: Callable[[], bool]) -> None:
        """End the periodic checkpoints, checkpoint a last time and give the lease up."""
        self._stopping.set()
        if self._close is not None:
            atexit.unregister(self._close)
        with self._lifecycle:
            try:
                checkpoint()
            finally:
                self.release()

    def checkpoint(self, lock: AbstractContextManager, flush: Callable[[], None]) -> bool:
        """Upload the file if it changed since the last checkpoint. ``flush`` runs DuckDB's
        CHECKPOINT; under ``lock`` (the catalog's) nothing writes while the file is copied aside.
        Returns whether a checkpoint was uploaded."""
        with self._upload_lock:
            with lock:
                flush()
                if self._unchanged(by_content=False):
                    return False
                state = _file_state(self.path)
                copy = self.folder / f"upload-{uuid.uuid4().hex}.tmp"
                sha256 = _copy_hashing(self.path, copy)
            try:
                if sha256 == self._synced.get("sha256"):  # touched, same bytes
                    self._synced["state"] = state
                    return False
                self._upload(copy, sha256, state)
            finally:
                copy.unlink(missing_ok=True)
            return True

    def _upload(self, copy: Path, sha256: str, state: list[int]) -> None:
        self._check_lease()
        checkpoint_id = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        name = f"checkpoints/{checkpoint_id}.duckdb"
        target = self.store.join(name)
        target.filesystem.create_dir(self.store.join("checkpoints").path, recursive=True)
        with open(copy, "rb") as source, target.filesystem.open_output_stream(target.path) as sink:
            while chunk := source.read(_CHUNK_BYTES):
                sink.write(chunk)
        pointer = self.store.join("checkpoint.json")
        previous = _read_json(pointer)
        pointer.write_bytes(json.dumps({
            "id": checkpoint_id, "file": name, "sha256": sha256, "size": copy.stat().st_size,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "written_by": self._describe(),
        }, indent=2).encode())
        if previous is not None and previous.get("file") != name:
            self.store.join(previous["file"]).delete()
        self._save_sync(checkpoint_id, sha256, state)

    def _unchanged(self, *, by_content: bool = True) -> bool:
        """The local file is the one last restored or uploaded: no WAL, and the same modification
        time and size, or (``by_content``) the same bytes."""
        if not self._synced.get("sha256") or os.path.exists(f"{self.path}.wal"):
            return False
        if _file_state(self.path) == self._synced.get("state"):
            return True
        return by_content and _copy_hashing(self.path, None) == self._synced["sha256"]

    def _save_sync(self, checkpoint_id: str, sha256: str, state: list[int] | None = None) -> None:
        self._synced = {"checkpoint": checkpoint_id, "sha256": sha256, "state": state or _file_state(self.path)}
        temporary = self.folder / "sync.json.tmp"
        temporary.write_text(json.dumps(self._synced))
        os.replace(temporary, self.folder / "sync.json")

    # -- the lease ------------------------------------------------------------------------
    @property
    def _lease(self) -> StorageLocation:
        return self.store.join("lease.json")

    def _describe(self, lease: dict[str, Any] | None = None) -> str:
        lease = lease or self._holder
        return f"process {lease['pid']} on {lease['host']}"

    def _take_lease(self) -> None:
        lease = _read_json(self._lease)
        if lease is not None and lease.get("token") != self._holder["token"] and self._alive(lease):
            if (lease.get("host"), lease.get("pid")) == (self._holder["host"], self._holder["pid"]):
                raise CatalogBusyError(
                    f"the catalog of {self.store.identity.rsplit('/', 1)[0]} is open in another Workspace of this "
                    "process: use that one, or close it (ws.close()) before opening the workspace again.")
            age = time.time() - lease["renewed_at"]
            raise CatalogBusyError(
                f"the catalog of {self.store.identity.rsplit('/', 1)[0]} is held by {self._describe(lease)} "
                f"(renewed {age:.0f} s ago): DuckDB allows one writer. Connect this process to that process's Ray "
                "cluster (Workspace.open(uri, ray_address=...)) so it goes through its catalog owner, or close the "
                f"workspace there; a holder that died frees it {self._lease_ttl_s:.0f} s after its last renewal."
            )
        self.renew_lease()

    def _alive(self, lease: dict[str, Any]) -> bool:
        if time.time() - lease.get("renewed_at", 0) > self._lease_ttl_s:
            return False
        if lease.get("host") == self._holder["host"]:
            return _pid_alive(int(lease.get("pid", -1)))
        return True

    def renew_lease(self) -> None:
        self._lease.write_bytes(json.dumps({**self._holder, "renewed_at": time.time(),
                                            "folder": str(self.folder)}).encode())

    def _check_lease(self) -> None:
        lease = _read_json(self._lease)
        if lease is not None and lease.get("token") != self._holder["token"]:
            raise CatalogBusyError(
                f"the catalog of {self.store} was taken over by {self._describe(lease)} (this process's lease "
                f"lapsed): this checkpoint was not uploaded, and {self.path} now differs from the store. Close "
                "this workspace; delete that file's folder to continue from the store's checkpoint."
            )
        if lease is None:
            self.renew_lease()

    def release(self) -> None:
        """Give the lease up (if still ours)."""
        lease = _read_json(self._lease)
        if lease is not None and lease.get("token") == self._holder["token"]:
            self._lease.delete()


def _read_json(location: StorageLocation) -> dict[str, Any] | None:
    data = location.read_bytes()
    return None if data is None else json.loads(data)


def _read_local_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _file_state(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_mtime_ns, stat.st_size]


def _copy_hashing(source: Path, destination: Path | None) -> str:
    """The sha256 of ``source``, copied to ``destination`` on the way when one is given."""
    digest = hashlib.sha256()
    with open(source, "rb") as reader, (open(destination, "wb") if destination else nullcontext()) as writer:
        while chunk := reader.read(_CHUNK_BYTES):
            digest.update(chunk)
            if writer is not None:
                writer.write(chunk)
    return digest.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0
