"""Queries about evaluation runs and their performance_metrics rows.

Parquet metric files are append-only: rows of a run that was deleted (or never committed) stay
on disk, so every read here keeps only rows whose run still exists."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from mleval.catalog.repositories._base import Repository

_LIVE_METRICS = "evaluation_run_id IN (SELECT CAST(id AS VARCHAR) FROM evaluation_runs)"
_HEADLINE = ("mAP50_95", "mAP50", "precision", "recall", "F1", "mean_iou", "ms_per_image")
_RUN_SQL = ("SELECT CAST(r.id AS VARCHAR) AS id, r.key, m.name AS model, CAST(r.model_id AS VARCHAR) AS model_id, "
            "d.name AS dataset, CAST(r.dataset_id AS VARCHAR) AS dataset_id, r.split, r.iou_type, r.config, r.summary, "
            "r.evaluation_timestamp, CAST(r.inference_job_id AS VARCHAR) AS inference_job_id, r.metadata, "
            "r.imgsz, r.dataset_snapshot_id "
            "FROM evaluation_runs r JOIN models m ON m.id = r.model_id LEFT JOIN datasets d ON d.id = r.dataset_id")


class EvaluationRepository(Repository):
    def keys(self) -> set[str]:
        return set(self.catalog.query("SELECT key FROM evaluation_runs").column("key").to_pylist())

    def list(self, *, model_id: str | None = None, dataset_id: str | None = None) -> pa.Table:
        """The runs, newest first: key, model, dataset, split, iou_type, imgsz, timestamp, headline
        numbers, dataset_snapshot_id, inference_job_id and id."""
        where, params = [], []
        for column, value in (("r.model_id", model_id), ("r.dataset_id", dataset_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        numbers = ", ".join(f"CAST(r.summary->>'{k}' AS DOUBLE) AS {k}" for k in _HEADLINE)
        return self.catalog.query(
            f"SELECT r.key, m.name AS model, d.name AS dataset, r.split, r.iou_type, r.imgsz, r.evaluation_timestamp, "
            f"{numbers}, r.dataset_snapshot_id, "
            "CAST(r.inference_job_id AS VARCHAR) AS inference_job_id, CAST(r.id AS VARCHAR) AS id "
            "FROM evaluation_runs r JOIN models m ON m.id = r.model_id LEFT JOIN datasets d ON d.id = r.dataset_id"
            + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY r.evaluation_timestamp DESC, r.key",
            params)

    def run_row(self, *, key: str | None = None, run_id: str | None = None) -> dict[str, Any] | None:
        """A run's row by key or id, with its model's and dataset's names."""
        column, value = ("r.key", key) if key is not None else ("r.id", run_id)
        rows = self.catalog.query_rows(_RUN_SQL + f" WHERE {column} = ?", [value])
        return rows[0] if rows else None

    def metrics_of(self, run_id: str) -> pa.Table:
        return self.catalog.query("SELECT * FROM performance_metrics WHERE evaluation_run_id = ? "
                                  "ORDER BY metric_type, threshold NULLS FIRST, class_name NULLS FIRST", [run_id])

    def metrics(self, *, model_id: str | None = None, dataset_id: str | None = None,
                metric_type: str | None = None) -> pa.Table:
        """``performance_metrics`` rows of existing runs (and rows stored without a run), oldest first."""
        where, params = [f"(evaluation_run_id IS NULL OR {_LIVE_METRICS})"], []
        for column, value in (("model_id", model_id), ("dataset_id", dataset_id), ("metric_type", metric_type)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return self.catalog.query("SELECT * FROM performance_metrics WHERE " + " AND ".join(where)
                                  + " ORDER BY evaluation_timestamp, metric_type, class_name NULLS FIRST", params)
