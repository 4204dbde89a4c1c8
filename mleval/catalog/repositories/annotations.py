"""Queries about annotations."""

from __future__ import annotations

import pyarrow as pa

from mleval.catalog.repositories._base import Repository, limit_clause
from mleval.catalog.rules import GROUND_TRUTH_SQL
from mleval.core.records import AnnotationRecord, RecordList

_PREDICTED_BY = "a.creation_method = 'model' AND a.model_id = ?"


class AnnotationRepository(Repository):
    def list(self, *, image_id: str | None = None, creation_method: str | None = None, model_id: str | None = None,
             review_state: str | None = None, ground_truth: bool | None = None,
             limit: int | None = None) -> RecordList[AnnotationRecord]:
        """Annotations, oldest first, filtered by image, method, model, state or ground-truth status."""
        where, params = [], []
        for column, value in (("image_id", image_id), ("creation_method", creation_method),
                              ("model_id", model_id), ("review_state", review_state)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(str(value))
        if ground_truth is not None:
            where.append(GROUND_TRUTH_SQL if ground_truth else f"NOT {GROUND_TRUTH_SQL}")
        sql = "SELECT * FROM annotations" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at, id" + limit_clause(limit)
        return RecordList(AnnotationRecord.from_row(r) for r in self.catalog.query_rows(sql, params))

    def images_with_ground_truth(self, image_ids: list[str], *, user_tag: str | None) -> set[str]:
        """Those of ``image_ids`` that hold ground truth tagged ``user_tag`` (None: untagged)."""
        table = self.catalog.query(
            "SELECT DISTINCT image_id FROM annotations WHERE image_id IN (SELECT unnest(?::UUID[])) "
            f"AND user_tag IS NOT DISTINCT FROM ? AND {GROUND_TRUTH_SQL}", [image_ids, user_tag])
        return {str(i) for i in table.column("image_id").to_pylist()}

    def labelled(self, image_ids: list[str]) -> set[str]:
        """Those of ``image_ids`` that hold any ground truth (whoever made it)."""
        table = self.catalog.query(
            "SELECT DISTINCT image_id FROM annotations WHERE image_id IN (SELECT unnest(?::UUID[])) "
            f"AND {GROUND_TRUTH_SQL}", [image_ids])
        return {str(i) for i in table.column("image_id").to_pylist()}

    def objects_of_dataset(self, dataset_id: str, *, split: str | None = None, model_id: str | None = None,
                           latest_only: bool = False) -> pa.Table:
        """Annotations on the dataset's images (of one split, or all), oldest first: ground truth, or
        with ``model_id`` that model's predictions (``latest_only``: the newest per image). Columns
        image_id, annotation_id, class_labels, bounding_boxes, segments, confidence_scores, metadata."""
        where, params = (GROUND_TRUTH_SQL, []) if model_id is None else (_PREDICTED_BY, [model_id])
        sql = ("SELECT CAST(a.image_id AS VARCHAR) AS image_id, CAST(a.id AS VARCHAR) AS annotation_id, "
               "a.class_labels, a.bounding_boxes, a.segments, a.confidence_scores, a.metadata "
               "FROM annotations a JOIN dataset_images l ON l.image_id = a.image_id AND l.dataset_id = ? "
               "JOIN images i ON i.id = a.image_id "
               f"WHERE {where}" + (" AND i.dataset_split = ?" if split else "")
               + (" QUALIFY row_number() OVER (PARTITION BY a.image_id ORDER BY a.created_at DESC, a.id DESC) = 1"
                  if latest_only else "")
               + " ORDER BY a.created_at, a.id")
        return self.catalog.query(sql, [dataset_id, *params, *([split] if split else [])])

    def ground_truth_labels_in_order(self) -> list[str]:
        """Every ground-truth label of the workspace in first-appearance order (ties: the imported
        category order kept in metadata.category_index, then the name)."""
        sql = f"""
            WITH objects AS (
                SELECT created_at, unnest(class_labels) AS label,
                       unnest(coalesce(CAST(json_extract(metadata, '$.category_index') AS INTEGER[]), [])) AS position
                FROM annotations WHERE {GROUND_TRUTH_SQL}
            ), first AS (SELECT label, min(created_at) AS seen FROM objects WHERE label IS NOT NULL GROUP BY label)
            SELECT f.label FROM first f JOIN objects o ON o.label = f.label AND o.created_at = f.seen
            GROUP BY f.label, f.seen ORDER BY f.seen, min(o.position) NULLS LAST, f.label
        """
        return self.catalog.query(sql).column("label").to_pylist()
