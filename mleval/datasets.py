"""``ws.datasets``: named collections of images whose split counts follow the images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mleval.catalog.catalog import new_id, utc_now
from mleval.catalog.repositories import DatasetRepository
from mleval.catalog.rules import require_dataset_not_empty
from mleval.core.errors import NotFoundError, ValidationError
from mleval.core.records import DatasetRecord, ImageRecord, RecordList, image_id_of

if TYPE_CHECKING:
    from mleval.stores import WorkspaceStores


class DatasetCollection:
    def __init__(self, workspace: WorkspaceStores):
        self._ws = workspace

    def create(
        self,
        name: str,
        *,
        description: str | None = None,
        images: Sequence[ImageRecord | str] = (),
        metadata: dict | None = None,
        classes: Sequence[str] | None = None,
    ) -> DatasetRecord:
        """Create a dataset, optionally with images. Names are unique. With ``classes`` the dataset
        declares its class names: a ground-truth annotation of its images with another label is then
        refused (rule ``annotation.class_declared``)."""
        dataset_id = new_id()
        now = utc_now()
        metadata = dict(metadata or {})
        if classes is not None:
            metadata["classes"] = _checked_classes(classes)
        self._ws.catalog.insert("datasets", [{
            "id": dataset_id, "name": name, "description": description,
            "created_at": now, "updated_at": now, "metadata": metadata or None,
        }])
        if images:
            self._ws.catalog.link_dataset_images(dataset_id, [image_id_of(i) for i in images])
        return self.get(dataset_id)

    def get(self, dataset: DatasetRecord | str) -> DatasetRecord:
        """A dataset by record, name or id, with fresh split counts."""
        key = dataset.id if isinstance(dataset, DatasetRecord) else str(dataset)
        found = DatasetRepository(self._ws.catalog).find(key)
        if found is None:
            names = [d.name for d in self.list()]
            raise NotFoundError(
                f"no dataset named {key!r}; existing datasets: {names or 'none'}. "
                "Create one with ws.datasets.create(name)."
            )
        return found

    def get_or_create(self, name: str, **options: Any) -> DatasetRecord:
        try:
            return self.get(name)
        except NotFoundError:
            return self.create(name, **options)

    def list(self) -> RecordList[DatasetRecord]:
        return DatasetRepository(self._ws.catalog).list()

    def add_images(self, dataset: DatasetRecord | str, images: Sequence[ImageRecord | str]) -> DatasetRecord:
        record = self.get(dataset)
        self._ws.catalog.link_dataset_images(record.id, [image_id_of(i) for i in images])
        return self.get(record.id)

    def remove_images(self, dataset: DatasetRecord | str, images: Sequence[ImageRecord | str]) -> DatasetRecord:
        record = self.get(dataset)
        self._ws.catalog.link_dataset_images(record.id, [image_id_of(i) for i in images], remove=True)
        return self.get(record.id)

    def require_images(self, dataset: DatasetRecord | str) -> DatasetRecord:
        """The dataset, or a rule error when no split holds an image (before training/evaluation)."""
        record = self.get(dataset)
        require_dataset_not_empty(record.name, record.train_count, record.validation_count, record.test_count)
        return record

    def set_classes(self, dataset: DatasetRecord | str, classes: Sequence[str] | None) -> DatasetRecord:
        """Declare the dataset's class names (None: any label). Refused, naming them, when ground truth
        on its images already uses labels outside ``classes``."""
        record = self.get(dataset)
        metadata = dict(record.metadata or {})
        if classes is None:
            metadata.pop("classes", None)
        else:
            metadata["classes"] = _checked_classes(classes)
            used = DatasetRepository(self._ws.catalog).ground_truth_labels(record.id)
            outside = sorted(used - set(metadata["classes"]))
            if outside:
                raise ValidationError("dataset.classes_cover_ground_truth",
                                      f"ground truth on dataset {record.name!r} uses {outside}, not in {classes}; "
                                      "add them, or relabel or delete those annotations first.")
        self._ws.catalog.update("datasets", record.id, {"metadata": metadata})
        return self.get(record.id)

    def delete(self, dataset: DatasetRecord | str) -> None:
        """Delete the dataset (its images stay in the workspace)."""
        self._ws.catalog.delete("datasets", [self.get(dataset).id])

    def snapshot(self, dataset: DatasetRecord | str, *, note: str | None = None, progress: Any = True):
        """Freeze the dataset's membership, splits and ground-truth annotation revisions (Parquet in
        the blob store). The id is a hash of that content: taking it again unchanged returns the same
        snapshot; any edit gives a new id. Returns a DatasetSnapshotRecord (``.id``)."""
        from mleval.snapshots import take_snapshot

        return take_snapshot(self._ws.catalog, self._ws.blobs, self.get(dataset), note=note, progress=progress)

    def snapshots(self, dataset: DatasetRecord | str) -> RecordList:
        """The dataset's snapshots, newest first."""
        from mleval.snapshots import list_snapshots

        return RecordList(list_snapshots(self._ws.catalog, self.get(dataset).id))

    def snapshot_tables(self, snapshot: Any):
        """(members, annotations) pyarrow Tables of a snapshot (record or id), as they were frozen."""
        from mleval.snapshots import get_snapshot, snapshot_tables

        snapshot_id = getattr(snapshot, "id", snapshot)
        return snapshot_tables(self._ws.blobs, get_snapshot(self._ws.catalog, snapshot_id))


def _checked_classes(classes: Sequence[str]) -> list[str]:
    names = [str(c).strip() for c in classes] if not isinstance(classes, str) else []
    if not names or any(not n for n in names) or len(set(names)) != len(names):
        raise ValidationError("dataset.classes_named", f"classes must be a list of distinct, non-empty class names; "
                              f"got {classes!r}.")
    return names
