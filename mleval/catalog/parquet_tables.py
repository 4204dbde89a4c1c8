"""Append-only Parquet tables, partitioned by month, read through DuckDB views.

Performance metrics are written once and read in bulk, so they live as Parquet files
``tables/<name>/month=YYYY-MM/part-<uuid>.parquet`` (written to a temporary name and
renamed) and the catalog exposes each as a view of the same name.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

PERFORMANCE_METRICS_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("model_id", pa.string()),
    ("dataset_id", pa.string()),
    ("evaluation_run_id", pa.string()),
    ("metric_type", pa.string()),
    ("metric_value", pa.float64()),
    ("threshold", pa.float64()),
    ("class_name", pa.string()),
    ("evaluation_timestamp", pa.timestamp("us", tz="UTC")),
    ("metadata", pa.string()),
])


@dataclass(frozen=True)
class ParquetTable:
    """Rows of ``schema`` under ``root/name/<partition_name>=<key>/``; the key of a row is the
    month of ``timestamp_column`` or, without one, the value of ``key_column``."""

    root: Path
    name: str
    schema: pa.Schema
    partition_name: str
    timestamp_column: str | None = None
    key_column: str | None = None
    visible_where: str | None = None  # rows hidden from the view (e.g. metrics of deleted runs)

    @property
    def folder(self) -> Path:
        return self.root / self.name

    def conform(self, rows: pa.Table) -> pa.Table:
        """Rows with every column of the schema (missing ones null), in schema order and types."""
        columns = []
        for field in self.schema:
            if field.name in rows.column_names:
                columns.append(rows.column(field.name).cast(field.type))
            else:
                columns.append(pa.nulls(rows.num_rows, field.type))
        return pa.Table.from_arrays(columns, schema=self.schema)

    def _keys(self, rows: pa.Table) -> pa.Array:
        if self.timestamp_column is not None:
            return pc.strftime(rows.column(self.timestamp_column), format="%Y-%m")
        return rows.column(self.key_column)

    def append(self, rows: pa.Table) -> list[Path]:
        """Write conformed rows, one file per partition key."""
        keys = self._keys(rows)
        written = []
        for key in pc.unique(keys).to_pylist():
            part = rows.filter(pc.equal(keys, key))
            folder = self.folder / f"{self.partition_name}={key}"
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"part-{uuid.uuid4().hex}.parquet"
            temporary = final.with_suffix(".tmp")
            pq.write_table(part, temporary)
            os.replace(temporary, final)
            written.append(final)
        return written

    def view_sql(self) -> str:
        """A SELECT over every file (or an empty, typed relation while there are none)."""
        if any(self.folder.glob(f"{self.partition_name}=*/*.parquet")):
            pattern = (self.folder / f"{self.partition_name}=*" / "*.parquet").as_posix()
            where = f" WHERE {self.visible_where}" if self.visible_where else ""
            return (f"SELECT * EXCLUDE ({self.partition_name}) FROM read_parquet('{pattern}', "
                    f"hive_partitioning = true, union_by_name = true){where}")
        casts = ", ".join(f"CAST(NULL AS {_duckdb_type(f.type)}) AS {f.name}" for f in self.schema)
        return f"SELECT {casts} WHERE false"


def _duckdb_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE"
    if pa.types.is_integer(arrow_type):
        return "BIGINT"
    if pa.types.is_fixed_size_list(arrow_type):
        return f"{_duckdb_type(arrow_type.value_type)}[{arrow_type.list_size}]"
    if pa.types.is_list(arrow_type):
        return f"{_duckdb_type(arrow_type.value_type)}[]"
    return "VARCHAR"


# What batch inference found, one row per image (see mleval.prediction.PREDICTION_SCHEMA).
PREDICTIONS_SCHEMA = pa.schema([
    ("inference_job_id", pa.string()),
    ("model_id", pa.string()),
    ("image_id", pa.string()),
    ("boxes_xyxy", pa.list_(pa.list_(pa.float64(), 4))),
    ("class_names", pa.list_(pa.string())),
    ("scores", pa.list_(pa.float64())),
    ("masks_rle", pa.string()),
    ("preprocess_ms", pa.float64()),
    ("inference_ms", pa.float64()),
    ("postprocess_ms", pa.float64()),
    ("error", pa.string()),
])
