"""Append-only Parquet tables, partitioned by month, read through DuckDB views.

Performance metrics are written once and read in bulk, so they live as Parquet files
``tables/<name>/month=YYYY-MM/part-<uuid>.parquet`` and the catalog exposes each as a view
of the same name. On a local disk a file is written to a temporary name and renamed, and
DuckDB reads the files itself; on an object store (no DuckDB httpfs here) pyarrow writes
them and DuckDB scans them as a pyarrow dataset.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mleval.storage.location import StorageLocation

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

    root: StorageLocation
    name: str
    schema: pa.Schema
    partition_name: str
    timestamp_column: str | None = None
    key_column: str | None = None
    visible_where: str | None = None  # rows hidden from the view (e.g. metrics of deleted runs)

    @property
    def folder(self) -> StorageLocation:
        return self.root.join(self.name)

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

    def append(self, rows: pa.Table) -> list[str]:
        """Write conformed rows, one file per partition key; returns the files' paths in the filesystem."""
        keys = self._keys(rows)
        filesystem, folder = self.folder.filesystem, self.folder.path
        written = []
        for key in pc.unique(keys).to_pylist():
            part = rows.filter(pc.equal(keys, key))
            final = f"{folder}/{self.partition_name}={key}/part-{uuid.uuid4().hex}.parquet"
            if self.root.is_local:
                os.makedirs(os.path.dirname(final), exist_ok=True)
                temporary = final.removesuffix(".parquet") + ".tmp"
                pq.write_table(part, temporary)
                os.replace(temporary, final)
            else:  # an object appears only once its upload completed: no temporary name needed
                pq.write_table(part, final, filesystem=filesystem)
            written.append(final)
        return written

    def files(self) -> list[str]:
        """Every Parquet file of the table (paths in the filesystem), found by listing the folder."""
        selector = pafs.FileSelector(self.folder.path, recursive=True, allow_not_found=True)
        return sorted(info.path for info in self.folder.filesystem.get_file_info(selector)
                      if info.type == pafs.FileType.File and info.path.endswith(".parquet")
                      and f"/{self.partition_name}=" in info.path)

    def local_source_sql(self) -> str | None:
        """DuckDB's own scan of the files on a local disk, or None while there are none."""
        folder = self.folder.local_path
        if not any(folder.glob(f"{self.partition_name}=*/*.parquet")):
            return None
        pattern = (folder / f"{self.partition_name}=*" / "*.parquet").as_posix()
        return f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"

    def dataset(self, files: list[str]) -> ds.Dataset:
        """The files as one pyarrow dataset (columns of the schema plus the partition key)."""
        partition = pa.schema([(self.partition_name, pa.string())])
        return ds.dataset(files, schema=pa.unify_schemas([self.schema, partition]), format="parquet",
                          filesystem=self.folder.filesystem, partition_base_dir=self.folder.path,
                          partitioning=ds.partitioning(partition, flavor="hive"))

    def view_sql(self, source: str | None) -> str:
        """A SELECT over ``source`` (a relation of the files' rows with the partition key), or an
        empty, typed relation when there are no files yet."""
        if source is not None:
            where = f" WHERE {self.visible_where}" if self.visible_where else ""
            return f"SELECT * EXCLUDE ({self.partition_name}) FROM {source}{where}"
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
