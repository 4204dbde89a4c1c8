"""Queries about batch inference jobs and the prediction rows they stored."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from mleval.catalog.repositories._base import Repository


class PredictionRepository(Repository):
    def of_job(self, job_id: str) -> pa.Table:
        """An inference job's prediction rows of images that did not fail, by image id: image_id,
        boxes_xyxy, class_names, scores."""
        return self.catalog.query("SELECT image_id, boxes_xyxy, class_names, scores FROM predictions "
                                  "WHERE inference_job_id = ? AND error IS NULL ORDER BY image_id", [job_id])

    def completed_jobs_covering(self, model_id: str, image_ids: list[str]) -> list[dict[str, Any]]:
        """The model's completed inference jobs holding a prediction row for every one of
        ``image_ids``, newest first: id and metadata (its settings)."""
        return self.catalog.query_rows(
            "SELECT p.inference_job_id AS id, any_value(j.metadata) AS metadata FROM predictions p "
            "JOIN inference_jobs j ON CAST(j.id AS VARCHAR) = p.inference_job_id "
            "WHERE j.model_id = ? AND j.status = 'completed' AND p.image_id IN (SELECT unnest(?::VARCHAR[])) "
            "GROUP BY p.inference_job_id HAVING count(DISTINCT p.image_id) = ? "
            "ORDER BY max(coalesce(j.end_time, j.created_at)) DESC", [model_id, image_ids, len(image_ids)])

    def rows_of(self, job_id: str, image_ids: list[str]) -> list[dict[str, Any]]:
        """One prediction row per image of ``image_ids`` that the job holds: boxes, classes, scores,
        masks, stage times and error."""
        return self.catalog.query_rows(
            "SELECT image_id, boxes_xyxy, class_names, scores, masks_rle, preprocess_ms, inference_ms, "
            "postprocess_ms, error FROM predictions WHERE inference_job_id = ? "
            "AND image_id IN (SELECT unnest(?::VARCHAR[])) QUALIFY row_number() OVER (PARTITION BY image_id) = 1",
            [job_id, image_ids])
