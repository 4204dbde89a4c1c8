"""Queries about deployments (one row per version of a deployment name)."""

from __future__ import annotations

from typing import Any

from mleval.catalog.repositories._base import Repository


class DeploymentRepository(Repository):
    def versions_of(self, name: str) -> list[dict[str, Any]]:
        """Every version row of the deployment ``name``, newest first."""
        return self.catalog.query_rows("SELECT * FROM deployments WHERE name = ? ORDER BY created_at DESC", [name])

    def other_active(self, name: str, row_id: str) -> list[str]:
        """Ids of the versions of ``name`` other than ``row_id`` that are active."""
        rows = self.catalog.query_rows(
            "SELECT CAST(id AS VARCHAR) AS id FROM deployments WHERE name = ? AND status = 'active' AND id <> ?",
            [name, row_id])
        return [r["id"] for r in rows]

    def list(self, *, status: str | None = None) -> list[dict[str, Any]]:
        """Every version row (of one status), newest first."""
        sql = "SELECT * FROM deployments" + (" WHERE status = ?" if status else "") + " ORDER BY created_at DESC"
        return self.catalog.query_rows(sql, [status] if status else [])

    def key_metadata(self, name: str) -> list[Any]:
        """The metadata (holding its API keys) of every version of ``name``."""
        return [r["metadata"] for r in self.catalog.query_rows("SELECT metadata FROM deployments WHERE name = ?",
                                                               [name])]
