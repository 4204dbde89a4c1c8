"""Where a workspace's files live: a local folder or a filesystem URI, and the options to reach it.

A ``StorageLocation`` pickles as its URI and options only: each process (a Ray worker on
another node, a Serve replica) rebuilds the pyarrow filesystem itself, so a filesystem that
cannot be pickled never has to be, and credentials given as options travel with the location.

URIs pyarrow knows (``s3://``, ``gs://``, ``hdfs://``, ``abfs://``) use pyarrow's own
filesystems, configured by the URI's query (``s3://bucket/ws?endpoint_override=host:9000&scheme=http``)
or by ``options`` (``S3FileSystem`` keyword arguments). Any other protocol fsspec knows
(``memory://``, ``az://``, ...) goes through fsspec, wrapped as a pyarrow filesystem.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from mleval.core.errors import MlevalError

# Schemes whose pyarrow filesystem takes the options as keyword arguments.
_PYARROW_FILESYSTEMS = {"s3": "S3FileSystem", "gs": "GcsFileSystem", "gcs": "GcsFileSystem"}


class StorageLocation:
    """A folder on this machine (``uri`` is its absolute path) or under a filesystem URI."""

    def __init__(self, uri: str, options: Mapping[str, Any] | None = None):
        self.uri = uri
        self.options = dict(options or {})
        self._filesystem: pafs.FileSystem | None = None
        self._path: str | None = None

    @classmethod
    def parse(cls, path_or_uri: str | os.PathLike | StorageLocation,
              options: Mapping[str, Any] | None = None) -> StorageLocation:
        """A location from a folder path, a ``file://`` URI (both local) or another filesystem URI."""
        if isinstance(path_or_uri, StorageLocation):
            if options:
                raise MlevalError(f"{path_or_uri} already carries its storage options; pass the location alone.")
            return path_or_uri
        text = os.fspath(path_or_uri)
        if text.startswith("file://"):
            text = text[len("file://"):]
        elif "://" in text:
            base, question, query = text.partition("?")
            return cls(base.rstrip("/") + question + query, options)
        if options:
            raise MlevalError(f"storage options {sorted(options)} were given for the local folder {text!r}; "
                              "they apply to object-store URIs (s3://bucket/prefix) only.")
        return cls(str(Path(text).expanduser().resolve()))

    # -- what it is ---------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return "://" not in self.uri

    @property
    def local_path(self) -> Path | None:
        """The folder on this machine, or None for an object store."""
        return Path(self.uri) if self.is_local else None

    @property
    def identity(self) -> str:
        """The URI without its query (no endpoint or credentials): names caches and actors."""
        return self.uri.split("?", 1)[0]

    @property
    def filesystem(self) -> pafs.FileSystem:
        if self._filesystem is None:
            self._filesystem, self._path = _resolve(self.uri, self.options)
        return self._filesystem

    @property
    def path(self) -> str:
        """The location's path inside :attr:`filesystem`."""
        if self._path is None:
            self._filesystem, self._path = _resolve(self.uri, self.options)
        return self._path

    def join(self, *parts: str) -> StorageLocation:
        """The location of ``parts`` below this one (sharing this one's filesystem)."""
        relative = posixpath.join(*parts)
        if relative.startswith("/") or ".." in relative.split("/"):
            raise MlevalError(f"{relative!r} is not a relative path below {self}.")
        base, question, query = self.uri.partition("?")
        child = StorageLocation(f"{base}/{relative}{question}{query}", self.options)
        child._filesystem, child._path = self.filesystem, f"{self.path}/{relative}"
        return child

    # -- small files --------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.filesystem.get_file_info(self.path).type != pafs.FileType.NotFound

    def read_bytes(self) -> bytes | None:
        """The file's bytes, or None when there is no file here."""
        try:
            with self.filesystem.open_input_stream(self.path) as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def write_bytes(self, data: bytes) -> None:
        """Replace the file whole: an object store shows an object only once its upload completed;
        on a disk the bytes go to a temporary name that is renamed into place."""
        filesystem, path = self.filesystem, self.path
        filesystem.create_dir(posixpath.dirname(path), recursive=True)
        if self.is_local:
            temporary = f"{path}.{os.getpid()}.tmp"
            with filesystem.open_output_stream(temporary) as sink:
                sink.write(data)
            os.replace(temporary, path)
            return
        with filesystem.open_output_stream(path) as sink:
            sink.write(data)

    def delete(self) -> None:
        """Remove the file here, if any."""
        try:
            self.filesystem.delete_file(self.path)
        except FileNotFoundError:
            pass

    # -- identity and pickling ----------------------------------------------------------------
    def __reduce__(self):
        return (StorageLocation, (self.uri, self.options))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorageLocation) and (self.uri, self.options) == (other.uri, other.options)

    def __hash__(self) -> int:
        return hash(self.uri)

    def __str__(self) -> str:
        return self.identity

    def __repr__(self) -> str:  # options may hold credentials: only their names are shown
        options = f", options={sorted(self.options)}" if self.options else ""
        return f"StorageLocation({self.identity!r}{options})"


def _resolve(uri: str, options: dict[str, Any]) -> tuple[pafs.FileSystem, str]:
    if "://" not in uri:
        return pafs.LocalFileSystem(), uri
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    try:
        if options and scheme in _PYARROW_FILESYSTEMS:
            if parts.query:
                raise MlevalError(f"{uri.split('?', 1)[0]}: give the filesystem settings either in the URI's query "
                                  f"(?{parts.query}) or as storage options {sorted(options)}, not both.")
            filesystem = getattr(pafs, _PYARROW_FILESYSTEMS[scheme])(**options)
            return filesystem, f"{parts.netloc}{parts.path}".rstrip("/")
        if not options:
            try:
                return pafs.FileSystem.from_uri(uri)
            except (pa.ArrowInvalid, ValueError) as error:
                if "Unrecognized filesystem type" not in str(error):
                    raise
        return _fsspec_filesystem(uri, options)
    except MlevalError:
        raise
    except Exception as error:
        raise MlevalError(f"cannot reach the filesystem of {uri.split('?', 1)[0]} ({type(error).__name__}: {error}). "
                          "Check the URI, and the storage options (for S3: endpoint_override, region, access_key, "
                          "secret_key) or the AWS_* environment variables.") from None


def _fsspec_filesystem(uri: str, options: dict[str, Any]) -> tuple[pafs.FileSystem, str]:
    import fsspec

    try:
        filesystem, path = fsspec.core.url_to_fs(uri, **options)
    except (ImportError, ValueError) as error:
        raise MlevalError(f"no filesystem for {uri.split('?', 1)[0]}: neither pyarrow nor fsspec knows its protocol "
                          f"({error}). Install the fsspec implementation for it (e.g. adlfs for az://).") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), path.rstrip("/")
