"""Queries about images."""

from __future__ import annotations

from typing import Any

from mleval.catalog.repositories._base import Repository, limit_clause
from mleval.core.records import ImageRecord, RecordList

_UUIDS = "(SELECT unnest(?::UUID[]))"


class ImageRepository(Repository):
    def list(self, *, split: str | None = None, dataset_id: str | None = None, limit: int | None = None,
             offset: int = 0) -> RecordList[ImageRecord]:
        """Images in upload order, optionally of one split and/or one dataset."""
        where, params = [], []
        if split is not None:
            where.append("dataset_split = ?")
            params.append(split)
        if dataset_id is not None:
            where.append("id IN (SELECT image_id FROM dataset_images WHERE dataset_id = ?)")
            params.append(dataset_id)
        sql = "SELECT * FROM images" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY upload_timestamp, filename, id" + limit_clause(limit, offset)
        return RecordList(ImageRecord.from_row(row) for row in self.catalog.query_rows(sql, params))

    def count(self, *, split: str | None = None) -> int:
        sql, params = "SELECT count(*) AS n FROM images", []
        if split is not None:
            sql, params = sql + " WHERE dataset_split = ?", [split]
        return self.catalog.query(sql, params).column("n")[0].as_py()

    def ids_by_sha256(self, hashes: list[str]) -> dict[str, str]:
        """sha256 -> image id of the catalog's images among ``hashes``."""
        table = self.catalog.query("SELECT id, sha256 FROM images WHERE sha256 IN (SELECT unnest(?))", [hashes])
        return dict(zip(table.column("sha256").to_pylist(), map(str, table.column("id").to_pylist())))

    def file_paths(self, image_ids: list[str]) -> dict[str, str]:
        """image id -> blob key of its file."""
        table = self.catalog.query(f"SELECT CAST(id AS VARCHAR) AS id, file_path FROM images WHERE id IN {_UUIDS}",
                                   [image_ids])
        return dict(zip(table.column("id").to_pylist(), table.column("file_path").to_pylist()))

    def splits(self, image_ids: list[str]) -> dict[str, str]:
        """image id -> its split."""
        table = self.catalog.query(f"SELECT id, dataset_split FROM images WHERE id IN {_UUIDS}", [image_ids])
        return dict(zip(map(str, table.column("id").to_pylist()), table.column("dataset_split").to_pylist()))

    def sizes(self, image_ids: list[str]) -> dict[str, tuple[int, int]]:
        """image id -> (width, height) as the catalog has it (upright)."""
        table = self.catalog.query(f"SELECT id, width, height FROM images WHERE id IN {_UUIDS}", [image_ids])
        return {str(i): (w, h) for i, w, h in zip(*(table.column(c).to_pylist() for c in ("id", "width", "height")))}

    def of_dataset(self, dataset_id: str, split: str | None = None) -> list[dict[str, Any]]:
        """The dataset's images (of one split, or all), in upload order: id, filename, file_path,
        format, width, height, dataset_split."""
        sql = ("SELECT CAST(i.id AS VARCHAR) AS id, i.filename, i.file_path, i.format, i.width, i.height, "
               "i.dataset_split FROM images i JOIN dataset_images l ON l.image_id = i.id AND l.dataset_id = ?"
               + (" WHERE i.dataset_split = ?" if split else "")
               + " ORDER BY i.upload_timestamp, i.filename, i.id")
        return self.catalog.query_rows(sql, [dataset_id, split] if split else [dataset_id])
