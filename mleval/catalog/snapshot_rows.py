"""The catalog's side of dataset snapshots: a dataset's content as it stands, and the snapshot rows.

``mleval.snapshots`` hashes the content and keeps it in the blob store; the queries live here, with
the catalog's other SQL.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from mleval.catalog.rules import GROUND_TRUTH_SQL

_MEMBERS_SQL = (
    "SELECT CAST(i.id AS VARCHAR) AS image_id, i.dataset_split AS split, i.sha256, i.width, i.height "
    "FROM images i JOIN dataset_images l ON l.image_id = i.id AND l.dataset_id = ? ORDER BY image_id")
_ANNOTATIONS_SQL = (
    "SELECT CAST(a.id AS VARCHAR) AS annotation_id, CAST(a.image_id AS VARCHAR) AS image_id, a.revision, "
    "a.class_labels, a.bounding_boxes, CAST(a.segments AS VARCHAR) AS segments, a.creation_method, a.review_state "
    "FROM annotations a JOIN dataset_images l ON l.image_id = a.image_id AND l.dataset_id = ? "
    f"WHERE {GROUND_TRUTH_SQL} ORDER BY annotation_id")


def dataset_content(catalog: Any, dataset_id: str) -> tuple[pa.Table, pa.Table]:
    """(members, ground-truth annotations) of a dataset now, each in a stable order (by id)."""
    return catalog.query(_MEMBERS_SQL, [dataset_id]), catalog.query(_ANNOTATIONS_SQL, [dataset_id])


def snapshot_row(catalog: Any, snapshot_id: str) -> dict[str, Any] | None:
    rows = catalog.query_rows("SELECT * FROM dataset_snapshots WHERE id = ?", [str(snapshot_id)])
    return rows[0] if rows else None


def snapshot_rows(catalog: Any, dataset_id: str) -> list[dict[str, Any]]:
    """The dataset's snapshot rows, newest first."""
    return catalog.query_rows("SELECT * FROM dataset_snapshots WHERE dataset_id = ? ORDER BY created_at DESC",
                              [dataset_id])


def find_record_id(catalog: Any, table: str, text: str, name_column: str | None) -> str | None:
    """The id of the row of ``table`` whose id (or ``name_column``) is ``text``; an active deployment
    before older versions, newer rows before older ones."""
    from mleval.catalog.catalog import TABLES

    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")
    where = "CAST(id AS VARCHAR) = ?" + (f" OR {name_column} = ?" if name_column else "")
    order = " ORDER BY (status = 'active') DESC, created_at DESC" if table == "deployments" else ""
    rows = catalog.query_rows(f"SELECT CAST(id AS VARCHAR) AS id FROM {table} WHERE {where}{order}",
                              [text, text] if name_column else [text])
    return rows[0]["id"] if rows else None
