"""A workspace's stores: where it is, its catalog and its blob store; what the record services
(images, datasets, annotations, models) are built on. ``mleval.context`` adds the services and
the address Ray workers open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mleval.catalog.catalog import Catalog
from mleval.catalog.replica import local_folder, open_catalog
from mleval.cluster import ensure_ray, ray_is_running
from mleval.core.errors import MlevalError
from mleval.storage.blobs import BlobStore
from mleval.storage.location import StorageLocation


def open_workspace_catalog(location: StorageLocation, catalog_dir: str | Path | None) -> Any:
    """The catalog owner actor's client when Ray runs in this process, the catalog file itself otherwise."""
    if ray_is_running():
        from mleval.catalog.owner import connect_owner

        return connect_owner(location, catalog_dir)
    return open_catalog(location, catalog_dir)


class WorkspaceStores:
    """A workspace's location, catalog (the file, or its owner actor's client) and blob store."""

    def __init__(self, location: StorageLocation | str | Path, catalog: Any, blobs: BlobStore, *,
                 catalog_dir: str | Path | None = None):
        self.location = StorageLocation.parse(location)
        self.catalog = catalog
        self.blobs = blobs
        self.catalog_dir = None if catalog_dir is None else str(catalog_dir)

    @property
    def uses_catalog_owner(self) -> bool:
        return not isinstance(self.catalog, Catalog)

    def attach_ray(self, address: str | None = None) -> None:
        """Connect to Ray (starting a local one if needed) and hand the catalog to its owner actor."""
        ensure_ray(address)
        if not self.uses_catalog_owner:
            self.catalog.close()
            self.catalog = open_workspace_catalog(self.location, self.catalog_dir)

    @property
    def root(self) -> Path:
        """The workspace folder on this machine (local workspaces only; see :attr:`location`)."""
        if self.location.local_path is None:
            raise MlevalError(f"the workspace {self.location} is on an object store and has no local folder: use "
                              "ws.location (a StorageLocation) to reach its files, ws.scratch_dir() for local files.")
        return self.location.local_path

    def scratch_dir(self, *parts: str) -> Path:
        """A folder on this machine's disk for files derived from the workspace (created): under
        ``cache/`` in a local workspace's folder, under the workspace's local cache folder otherwise."""
        base = self.root / "cache" if self.location.is_local else local_folder(self.location) / "cache"
        folder = base.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def close(self) -> None:
        self.catalog.close()
