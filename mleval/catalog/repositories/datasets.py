"""Queries about datasets."""

from __future__ import annotations

from mleval.catalog.repositories._base import Repository
from mleval.catalog.rules import GROUND_TRUTH_SQL
from mleval.core.records import DatasetRecord, RecordList


class DatasetRepository(Repository):
    def find(self, key: str) -> DatasetRecord | None:
        """The dataset named ``key`` or with id ``key``, with its split counts."""
        rows = self.catalog.query_rows("SELECT * FROM datasets WHERE name = ? OR CAST(id AS VARCHAR) = ?", [key, key])
        return DatasetRecord.from_row(rows[0]) if rows else None

    def list(self) -> RecordList[DatasetRecord]:
        rows = self.catalog.query_rows("SELECT * FROM datasets ORDER BY created_at, name")
        return RecordList(DatasetRecord.from_row(row) for row in rows)

    def ground_truth_labels(self, dataset_id: str) -> set[str]:
        """The labels ground truth on the dataset's images uses."""
        table = self.catalog.query(
            "SELECT DISTINCT unnest(a.class_labels) AS label FROM annotations a JOIN dataset_images l "
            f"ON l.image_id = a.image_id AND l.dataset_id = ? WHERE {GROUND_TRUTH_SQL}", [dataset_id])
        return set(table.column("label").to_pylist())

    def split_counts(self, dataset_id: str) -> dict[str, dict[str, int]]:
        """Per split: ``images`` and ``annotated`` (images holding ground truth)."""
        rows = self.catalog.query_rows(
            "SELECT i.dataset_split AS split, count(*) AS images, count(*) FILTER (WHERE EXISTS "
            f"(SELECT 1 FROM annotations a WHERE a.image_id = i.id AND {GROUND_TRUTH_SQL})) AS annotated "
            "FROM images i JOIN dataset_images l ON l.image_id = i.id AND l.dataset_id = ? "
            "GROUP BY i.dataset_split", [dataset_id])
        return {r["split"]: {"images": int(r["images"]), "annotated": int(r["annotated"])} for r in rows}
