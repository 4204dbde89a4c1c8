"""Dataset snapshots: a dataset's membership, splits and ground-truth revisions, frozen.

A snapshot keeps two Parquet blobs in the workspace's store: the members (image id, split,
sha256, size) and the ground-truth annotations (id, revision, labels, boxes, segments) at the
moment it was taken. Its id is a hash of that content, computed over a canonical form of the
rows (not the Parquet bytes), so the same content gives the same id whenever it is taken, and
any change (an image added or moved, an annotation edited) gives a new one. Training jobs and
evaluation runs take one and record its id, so a result can be traced to the data it saw.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mleval.catalog.catalog import utc_now
from mleval.catalog.snapshot_rows import dataset_content, snapshot_row, snapshot_rows
from mleval.core.errors import NotFoundError
from mleval.core.progress import Progress, ProgressOption, check_progress
from mleval.core.records import _Record

if TYPE_CHECKING:
    from mleval.core.records import DatasetRecord
    from mleval.storage.blobs import BlobStore

@dataclass(frozen=True)
class DatasetSnapshotRecord(_Record):
    """A frozen dataset: ``images`` per split, ground-truth ``annotations`` (rows), ``objects`` (boxes
    and masks in them), ``revisions`` (the sum of their revision numbers) and ``classes``."""

    lineage_kind = "snapshot"  # what ws.lineage traces it as
    id: str
    dataset_id: str
    note: str | None
    content_key: str
    images: int
    train_count: int
    validation_count: int
    test_count: int
    annotations: int
    objects: int
    revisions: int
    classes: list[str]
    created_at: datetime | None = None
    metadata: dict | None = None

    def _repr_html_(self) -> str:
        from html import escape

        return (f"<b>dataset snapshot {escape(self.id)}</b>: {self.images} images (train {self.train_count}, "
                f"validation {self.validation_count}, test {self.test_count}), {self.annotations} ground-truth "
                f"annotations ({self.objects} objects, revisions summing to {self.revisions}), classes "
                f"{escape(', '.join(self.classes))}" + (f"; note: {escape(self.note)}" if self.note else ""))


def _content_id(members: pa.Table, annotations: pa.Table) -> str:
    digest = hashlib.sha256()
    for name, table in (("members", members), ("annotations", annotations)):
        digest.update(name.encode())
        for row in table.to_pylist():
            digest.update(json.dumps(row, sort_keys=True, separators=(",", ":"), default=str).encode())
            digest.update(b"\n")
    return digest.hexdigest()[:32]


def _parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def take_snapshot(catalog: Any, blobs: BlobStore, dataset: DatasetRecord, *, note: str | None = None,
                  progress: ProgressOption = True) -> DatasetSnapshotRecord:
    """Freeze ``dataset`` (see the module docstring); an unchanged dataset returns its existing snapshot."""
    check_progress(progress)
    with Progress(progress, total=4, desc=f"snapshot of {dataset.name}", unit="step") as bar:
        members, annotations = dataset_content(catalog, dataset.id)
        bar.update_to(1)
        snapshot_id = _content_id(members, annotations)
        bar.update_to(2)
        existing = snapshot_row(catalog, snapshot_id)
        if existing:
            bar.update_to(4)
            return DatasetSnapshotRecord.from_row(existing)
        members_blob = blobs.put_bytes(_parquet_bytes(members))
        annotations_blob = blobs.put_bytes(_parquet_bytes(annotations))
        bar.update_to(3)
        splits = members.column("split").to_pylist()
        labels = [label for row in annotations.column("class_labels").to_pylist() for label in row]
        catalog.insert("dataset_snapshots", [{
            "id": snapshot_id, "dataset_id": dataset.id, "note": note, "content_key": members_blob.key,
            "images": members.num_rows, "train_count": splits.count("train"),
            "validation_count": splits.count("validation"), "test_count": splits.count("test"),
            "annotations": annotations.num_rows, "objects": len(labels),
            "revisions": sum(annotations.column("revision").to_pylist()), "classes": sorted(set(labels)),
            "created_at": utc_now(),
            "metadata": {"dataset_name": dataset.name, "annotations_key": annotations_blob.key},
        }])
        bar.update_to(4)
    return get_snapshot(catalog, snapshot_id)


def get_snapshot(catalog: Any, snapshot_id: str) -> DatasetSnapshotRecord:
    row = snapshot_row(catalog, snapshot_id)
    if row is None:
        raise NotFoundError(f"no dataset snapshot with id {snapshot_id!r}; ws.datasets.snapshots(dataset) lists them.")
    return DatasetSnapshotRecord.from_row(row)


def list_snapshots(catalog: Any, dataset_id: str) -> list[DatasetSnapshotRecord]:
    return [DatasetSnapshotRecord.from_row(row) for row in snapshot_rows(catalog, dataset_id)]


def snapshot_tables(blobs: BlobStore, snapshot: DatasetSnapshotRecord) -> tuple[pa.Table, pa.Table]:
    """The snapshot's (members, ground-truth annotations) tables, read back from the store."""
    import pyarrow.parquet as pq

    members = pq.read_table(io.BytesIO(blobs.read_bytes(snapshot.content_key)))
    annotations = pq.read_table(io.BytesIO(blobs.read_bytes((snapshot.metadata or {})["annotations_key"])))
    return members, annotations
