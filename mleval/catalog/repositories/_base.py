"""What every repository shares: the catalog client it runs on and a WHERE clause builder."""

from __future__ import annotations

from typing import Any


class Repository:
    def __init__(self, catalog: Any):
        self.catalog = catalog


def where_clause(filters: list[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """``" WHERE a = ? AND b = ?"`` for the (column, value) pairs whose value is not None, and the params."""
    kept = [(column, value) for column, value in filters if value is not None]
    if not kept:
        return "", []
    return " WHERE " + " AND ".join(f"{column} = ?" for column, _ in kept), [value for _, value in kept]


def limit_clause(limit: int | None, offset: int = 0) -> str:
    return (f" LIMIT {int(limit)}" if limit is not None else "") + (f" OFFSET {int(offset)}" if offset else "")
