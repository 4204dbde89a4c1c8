"""Queries about models."""

from __future__ import annotations

from mleval.catalog.repositories._base import Repository, where_clause
from mleval.core.records import ModelRecord, RecordList


class ModelRepository(Repository):
    def names(self) -> set[str]:
        return set(self.catalog.query("SELECT name FROM models").column("name").to_pylist())

    def list(self, *, type: str | None = None, framework: str | None = None) -> RecordList[ModelRecord]:
        where, params = where_clause([("type", type), ("framework", framework)])
        rows = self.catalog.query_rows("SELECT * FROM models" + where + " ORDER BY created_at, name", params)
        return RecordList(ModelRecord.from_row(r) for r in rows)

    def find(self, key: str) -> ModelRecord | None:
        """The newest model named ``key``, or the one with id ``key``."""
        rows = self.catalog.query_rows(
            "SELECT * FROM models WHERE name = ? OR CAST(id AS VARCHAR) = ? ORDER BY created_at DESC", [key, key])
        return ModelRecord.from_row(rows[0]) if rows else None
