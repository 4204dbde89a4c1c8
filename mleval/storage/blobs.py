"""Content-addressed blob store: ``sha256/ab/cdef...`` under a root folder or object-store URI.

Bytes are written to a temporary name and renamed into place once complete, so a crash
never leaves half a blob under a real key; they are hashed while they stream, or first when
they are already in memory (then bytes already stored are not written again). The same
bytes are stored once. Paths go through ``pyarrow.fs`` (see ``location.py``) so a root such as
``s3://bucket/ws/blobs`` works the same way as a local folder.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow.fs as pafs

from mleval.core.errors import NotFoundError
from mleval.storage.location import StorageLocation

CHUNK_BYTES = 1 << 20
# A temporary older than this belongs to a write whose writer died: no write takes an hour.
STALE_TEMPORARY_S = 3600.0


@dataclass(frozen=True)
class StoredBlob:
    key: str  # "sha256/ab/cdef..."
    sha256: str
    size: int
    already_stored: bool


def blob_key(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256[2:]}"


class BlobStore:
    """Immutable blobs addressed by the sha256 of their bytes."""

    def __init__(self, root: str | Path | StorageLocation):
        location = StorageLocation.parse(root)
        self.root_uri = str(location)
        self._fs, self._root = location.filesystem, location.path
        self._local = location.is_local
        self._fs.create_dir(f"{self._root}/tmp", recursive=True)
        self._made_dirs: set[str] = set()

    def _path(self, key: str) -> str:
        if not key.startswith("sha256/") or ".." in key:
            raise NotFoundError(f"{key!r} is not a blob key (expected 'sha256/ab/cdef...').")
        return f"{self._root}/{key}"

    def put_stream(self, source: BinaryIO, *, chunk_bytes: int = CHUNK_BYTES) -> StoredBlob:
        """Store everything ``source`` yields, hashing as it streams (memory: one chunk)."""
        digest = hashlib.sha256()
        size = 0
        temporary = self._temporary()
        try:
            with self._open_sink(temporary) as sink:
                while chunk := source.read(chunk_bytes):
                    digest.update(chunk)
                    sink.write(chunk)
                    size += len(chunk)
            sha256 = digest.hexdigest()
            key = blob_key(sha256)
            if self.exists(key):
                self._delete_path(temporary)
                return StoredBlob(key, sha256, size, already_stored=True)
            self._ensure_parent(key)
            self._move(temporary, self._path(key))
            return StoredBlob(key, sha256, size, already_stored=False)
        except BaseException:
            self._delete_path(temporary)
            raise

    def _temporary(self, beside: str | None = None) -> str:
        """A fresh temporary name under ``tmp/``, where a write that never finished is found without
        listing the blobs. On a local disk the blob ``beside``'s prefix names a subfolder
        (``tmp/ab/``), so parallel writers do not queue on one shared folder's lock."""
        name = os.urandom(16).hex()  # as unique as a uuid4, at a fifth of its cost per file
        if not (beside and self._local):
            return f"{self._root}/tmp/{name}"
        folder = f"{self._root}/tmp/{beside[7:9]}"
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        return f"{folder}/{name}"

    def remove_stale_temporaries(self, older_than_s: float = STALE_TEMPORARY_S) -> list[str]:
        """Remove what writes that never finished (their writer was killed) left under ``tmp/``,
        when older than ``older_than_s`` (a younger one may belong to a write under way). Lists
        ``tmp/`` only, so it is cheap whatever the number of blobs; returns the paths removed."""
        selector = pafs.FileSelector(f"{self._root}/tmp", recursive=True, allow_not_found=True)
        cutoff = time.time() - older_than_s
        stale = [info.path for info in self._fs.get_file_info(selector)
                 if info.type == pafs.FileType.File and info.mtime is not None and info.mtime.timestamp() < cutoff]
        for path in stale:
            self._delete_path(path)
        return stale

    # Plain file calls on a local disk: for many small images pyarrow's per-file overhead dominates.
    def _open_sink(self, path: str):
        return open(path, "xb") if self._local else self._fs.open_output_stream(path)

    def _move(self, source: str, destination: str) -> None:
        if self._local:
            os.replace(source, destination)
        else:
            self._fs.move(source, destination)

    def _delete_path(self, path: str) -> None:
        try:
            if self._local:
                os.unlink(path)
            else:
                self._fs.delete_file(path)
        except (FileNotFoundError, OSError):
            pass

    def put_file(self, path: str | Path) -> StoredBlob:
        with open(path, "rb") as source:
            return self.put_stream(source)

    def put_bytes(self, data: bytes | bytearray | memoryview) -> StoredBlob:
        """Store bytes already in memory. They are hashed first, so bytes the store already
        holds are not written again."""
        data = memoryview(data).cast("B")
        sha256 = hashlib.sha256(data).hexdigest()
        key = blob_key(sha256)
        if self.exists(key):
            return StoredBlob(key, sha256, data.nbytes, already_stored=True)
        self._ensure_parent(key)
        temporary = self._temporary(beside=key)
        try:
            if self._local:
                _write_file(temporary, data)
            else:
                with self._fs.open_output_stream(temporary) as sink:
                    sink.write(data)
            self._move(temporary, self._path(key))
        except BaseException:
            self._delete_path(temporary)
            raise
        return StoredBlob(key, sha256, data.nbytes, already_stored=False)

    def _ensure_parent(self, key: str) -> None:
        parent = self._path(key).rsplit("/", 1)[0]
        if parent not in self._made_dirs:
            if self._local:
                os.makedirs(parent, exist_ok=True)
            else:
                self._fs.create_dir(parent, recursive=True)
            self._made_dirs.add(parent)

    def exists(self, key: str) -> bool:
        if self._local:
            return os.access(self._path(key), os.F_OK)  # os.path.exists pays for an exception when absent
        return self._fs.get_file_info(self._path(key)).type == pafs.FileType.File

    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of the blob (seekable)."""
        try:
            return self._fs.open_input_file(self._path(key))
        except FileNotFoundError:
            raise NotFoundError(
                f"blob {key} is missing from {self.root_uri}: the workspace's files were moved or deleted."
            ) from None

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    @property
    def is_local(self) -> bool:
        """Whether the blobs are files on this machine's disk (not an object store)."""
        return self._local

    def local_path(self, key: str) -> str | None:
        """The blob's path on this machine's disk, or None for an object store."""
        return self._path(key) if self._local else None

    def download(self, key: str, destination: str | Path) -> None:
        """Copy the blob to a file on this machine (written to a temporary name, renamed into place)."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.with_name(f"{destination.name}.{uuid.uuid4().hex}.tmp")
        try:
            with self.open(key) as source, open(temporary, "wb") as sink:
                while chunk := source.read(CHUNK_BYTES):
                    sink.write(chunk)
            os.replace(temporary, destination)
        finally:
            temporary.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        self._delete_path(self._path(key))

    def scan(self) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """Everything under the store, with modification times (epoch seconds): (blobs as (key, time),
        temporaries as (path, time)). A temporary is a write that never finished (its writer died) or
        one under way; ``*.tmp`` beside the blobs are those of earlier versions, which wrote them there."""
        selector = pafs.FileSelector(self._root, recursive=True, allow_not_found=True)
        keys, temporaries = [], []
        for info in self._fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            relative = info.path[len(self._root.rstrip("/")) + 1:]
            modified = info.mtime.timestamp() if info.mtime is not None else 0.0
            if relative.startswith("tmp/") or relative.endswith(".tmp"):
                temporaries.append((info.path, modified))
            elif relative.startswith("sha256/"):
                keys.append((relative, modified))
        return keys, temporaries

    def delete_path(self, path: str) -> None:
        """Remove a temporary found by :meth:`scan`."""
        if not path.startswith(self._root.rstrip("/") + "/"):
            raise NotFoundError(f"{path} is not inside the blob store {self.root_uri}.")
        self._delete_path(path)


def _write_file(path: str, data: memoryview) -> None:
    """Create ``path`` (it must not exist) holding ``data``, with plain descriptor calls: for
    thousands of small blobs, a buffered file object's overhead is a good part of the write."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        written = 0
        while written < data.nbytes:
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)
