"""What the layers under the Workspace facade work with: a workspace's stores (location, catalog,
blob store; ``mleval.stores``) and the record services over them (images, datasets, annotations,
models).

The facade (``mleval.workspace``) composes a :class:`WorkspaceContext` and adds the
orchestration on top (inference, training, evaluation, deployment). Ray tasks, actors and
Serve replicas never receive either: they get the picklable :class:`WorkspaceAddress`
(storage location and catalog folder) and open a context of their own with
:meth:`WorkspaceAddress.open`, whose catalog goes through the workspace's catalog owner actor
when Ray runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from mleval.storage.blobs import BlobStore
from mleval.storage.location import StorageLocation
from mleval.stores import WorkspaceStores, open_workspace_catalog

if TYPE_CHECKING:
    from mleval.annotations import AnnotationCollection
    from mleval.datasets import DatasetCollection
    from mleval.images.collection import ImageCollection
    from mleval.models.registry import ModelRegistry


@dataclass(frozen=True)
class WorkspaceAddress:
    """Where a workspace is, as Ray passes it to workers: its storage location (with its storage
    options) and the local folder of an object-store workspace's catalog file."""

    location: StorageLocation
    catalog_dir: str | None = None

    def open(self) -> WorkspaceContext:
        """A context of this process's own over the workspace (through the catalog owner when Ray runs)."""
        return WorkspaceContext(self.location, open_workspace_catalog(self.location, self.catalog_dir),
                                BlobStore(self.location.join("blobs")), catalog_dir=self.catalog_dir)


class WorkspaceContext(WorkspaceStores):
    """A workspace's stores and the record services over them; each service gets the stores and
    the sibling services it uses, not this context."""

    @property
    def address(self) -> WorkspaceAddress:
        return WorkspaceAddress(self.location, self.catalog_dir)

    @cached_property
    def images(self) -> ImageCollection:
        from mleval.images.collection import ImageCollection

        return ImageCollection(self, self.datasets)

    @cached_property
    def datasets(self) -> DatasetCollection:
        from mleval.datasets import DatasetCollection

        return DatasetCollection(self)

    @cached_property
    def annotations(self) -> AnnotationCollection:
        from mleval.annotations import AnnotationCollection

        return AnnotationCollection(self)

    @cached_property
    def models(self) -> ModelRegistry:
        from mleval.models.registry import ModelRegistry

        return ModelRegistry(self)
