"""The catalog: one DuckDB file holding the entities, written by one process.
(Over 400 lines: the writer's whole transactional interface, which the owner actor serves
method by method; its queries live in ``repositories/``.)

Every write checks the rules of ``rules.py`` first and runs in a transaction, so a batch
lands whole or not at all. Bulk rows arrive as Arrow tables; a list of dicts is accepted
for convenience and converted with the table's own schema.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mleval.catalog import rules
from mleval.catalog.parquet_tables import PERFORMANCE_METRICS_SCHEMA, PREDICTIONS_SCHEMA, ParquetTable
from mleval.catalog.schema import LATEST_VERSION, MIGRATIONS, MIGRATIONS_TABLE
from mleval.core.enums import DatasetSplit
from mleval.core.errors import CatalogBusyError, ConflictError, MlevalError, NotFoundError, ValidationError
from mleval.storage.location import StorageLocation

TABLES = tuple(rules.ENTITY_OF_TABLE)[:-1]  # performance_metrics live in Parquet, not in a table
_READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN"}
# Rows that must go before a record can (deleting images takes their annotations along).
_REFERENCES = {
    "datasets": (("training_jobs", "dataset_id"), ("evaluation_runs", "dataset_id")),
    "models": (("annotations", "model_id"), ("training_jobs", "base_model_id"), ("training_jobs", "result_model_id"),
               ("inference_jobs", "model_id"), ("deployments", "model_id"), ("evaluation_runs", "model_id")),
}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


def _constraint_error(table: str, error: duckdb.ConstraintException) -> ValidationError:
    """A constraint the rules leave to DuckDB (a key already taken, a missing referenced row)."""
    entity = rules.ENTITY_OF_TABLE[table]
    message = str(error).removeprefix("Constraint Error: ")
    if "unique constraint" in message or "primary key constraint" in message:
        return ValidationError(f"{entity}.unique", f"{message.rstrip('.')} (that {entity} exists already).")
    return ValidationError(f"{entity}.constraint", message)


class Catalog:
    """Direct access to ``catalog.duckdb``. Only the process that owns the file uses this class.

    ``tables`` is where the Parquet tables live (by default ``tables/`` beside the file);
    ``replica`` keeps the file checkpointed to an object store (see ``replica.py``).
    """

    def __init__(self, path: str | Path, *, tables: StorageLocation | None = None, replica: Any = None):
        self.path = str(path)
        self._replica = replica
        try:
            self._con = duckdb.connect(self.path)
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise CatalogBusyError(
                    f"the catalog {self.path} is open for writing in another process ({error}). "
                    "DuckDB allows one writer: start Ray and open the workspace with "
                    "Workspace.open(path, ray_address='auto') in every process, so they share "
                    "the catalog owner actor, or close the other process."
                ) from None
            raise
        self._con.execute("SET TimeZone = 'UTC'")
        self._lock = threading.RLock()
        self._json_columns: dict[str, set[str]] = {}
        self._schemas: dict[str, pa.Schema] = {}
        self._migrate()
        tables_root = tables or StorageLocation.parse(Path(self.path).parent / "tables")
        self._parquet_files: dict[str, list[str]] = {}  # files of object-store tables, listed once
        self._parquet = {
            "performance_metrics": ParquetTable(
                tables_root, "performance_metrics", PERFORMANCE_METRICS_SCHEMA, "month",
                timestamp_column="evaluation_timestamp",
                # Parquet is append-only: the metrics of a deleted evaluation run are hidden, not erased.
                visible_where="evaluation_run_id IS NULL OR evaluation_run_id IN "
                              "(SELECT CAST(id AS VARCHAR) FROM evaluation_runs)"),
            "predictions": ParquetTable(tables_root, "predictions", PREDICTIONS_SCHEMA, "job",
                                        key_column="inference_job_id"),
        }
        for name in self._parquet:
            self._refresh_view(name)
        self._open = True
        if replica is not None:
            replica.start(self.checkpoint, self.close)

    # -- lifecycle -------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._lock:
            self._con.execute(MIGRATIONS_TABLE)
            applied = self._con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0][0]
            if applied > LATEST_VERSION:
                raise MlevalError(
                    f"the catalog {self.path} has schema version {applied}, newer than this mleval "
                    f"understands ({LATEST_VERSION}): upgrade mleval to open it. Nothing was changed."
                )
            migrated = False
            for version, description, ddl in MIGRATIONS:
                if version <= applied:
                    continue
                with self._transaction():
                    self._con.execute(ddl)
                    self._con.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, description, utc_now()]
                    )
                migrated = True
            if migrated:
                # Into the file at once: DuckDB 2.0 cannot replay an ALTER TABLE from the write-ahead log
                # of a process that died (it re-binds the table's CHECKs before its core functions are
                # loaded and tries to download them), so a crash after a migration must find it checkpointed.
                self._con.execute("CHECKPOINT")

    def schema_version(self) -> int:
        return self.query("SELECT max(version) AS v FROM schema_migrations").column("v")[0].as_py()

    def checkpoint(self) -> bool:
        """Write everything into the catalog file (DuckDB CHECKPOINT) and, for a workspace on an
        object store, upload it when it changed. Returns whether a copy was uploaded."""
        if self._replica is None:
            with self._lock:
                self._con.execute("CHECKPOINT")
            return False
        return self._replica.checkpoint(self._lock, self._flush)

    def _flush(self) -> None:
        if not self._open:
            raise MlevalError(f"the catalog {self.path} is closed; open the workspace again to checkpoint it.")
        self._con.execute("CHECKPOINT")

    def close(self) -> None:
        """Close the file; a catalog kept on an object store is checkpointed first and its lease given up."""
        try:
            if self._replica is not None and self._open:
                self._replica.stop(self.checkpoint)
        finally:
            with self._lock:
                self._open = False
                self._con.close()

    @contextmanager
    def _transaction(self):
        with self._lock:
            self._con.begin()
            try:
                yield
            except BaseException:
                self._con.rollback()
                raise
            self._con.commit()

    # -- reads -----------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run a query and return its rows as an Arrow table (internal; any statement)."""
        with self._lock:
            return self._con.sql(sql, params=list(params) if params else None).to_arrow_table()

    def query_rows(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        return self.query(sql, params).to_pylist()

    def sql_readonly(self, sql: str) -> pa.Table:
        """Run a user's read-only query (SELECT / EXPLAIN). Anything that writes is refused."""
        statements = duckdb.extract_statements(sql)
        for statement in statements:
            if statement.type.name not in _READ_ONLY_STATEMENTS:
                raise ValidationError(
                    "sql.read_only",
                    f"ws.sql runs read-only queries; got a {statement.type.name} statement. "
                    "Change data through the Workspace API (ws.images, ws.annotations, ...).",
                )
        with self._lock:
            return self._con.sql(sql).to_arrow_table()

    def get(self, table: str, record_id: str) -> dict[str, Any]:
        _check_id(table, record_id)
        rows = self.query_rows(f"SELECT * FROM {_table(table)} WHERE id = ?", [str(record_id)])
        if not rows:
            raise NotFoundError(f"no {rules.ENTITY_OF_TABLE[table]} with id {record_id!r} in this workspace.")
        return rows[0]

    def find_by_name(self, table: str, name: str) -> list[dict[str, Any]]:
        return self.query_rows(f"SELECT * FROM {_table(table)} WHERE name = ? ORDER BY created_at", [name])

    # -- writes ----------------------------------------------------------------------------
    def insert(self, table: str, rows: pa.Table | Sequence[dict[str, Any]]) -> int:
        """Validate and insert rows (all or none). Returns the number inserted."""
        staged = self.to_arrow(table, rows)
        if staged.num_rows == 0:
            return 0
        columns = ", ".join(staged.column_names)
        try:
            with self._staged(staged), self._transaction():
                rules.find_violation(self._con, table, "staged", template=_table(table))
                try:
                    self._con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM staged")
                except duckdb.ConstraintException as error:
                    raise _constraint_error(table, error) from None
        except duckdb.ConversionException as error:  # e.g. an id that is no UUID
            raise _conversion_error(table, error) from None
        return staged.num_rows

    @contextmanager
    def _staged(self, rows: pa.Table):
        # Registered outside the transaction: unregistering inside an aborted one would fail.
        with self._lock:
            self._con.register("staged", rows)
            try:
                yield
            finally:
                self._con.unregister("staged")

    def update(
        self,
        table: str,
        record_id: str,
        changes: dict[str, Any],
        *,
        expected_revision: int | None = None,
        updated_by: str | None = None,
    ) -> dict[str, Any]:
        """Change one record, checking state transitions, rules and (where kept) the revision.

        A stale ``expected_revision`` raises :class:`ConflictError` carrying both the rejected
        edit and the saved record, so neither is lost.
        """
        entity = rules.ENTITY_OF_TABLE[table]
        with self._lock:
            current = self.get(table, record_id)
            changes = dict(changes)
            if "revision" in current:
                if expected_revision is not None and expected_revision != current["revision"]:
                    raise ConflictError(
                        f"{entity} {record_id} was changed by {current.get('updated_by') or 'someone else'} "
                        f"at {current.get('updated_at')} (revision {current['revision']}); your edit was based "
                        f"on revision {expected_revision}. Reload it, reapply your change and save again; "
                        "your edit is in error.rejected.",
                        rejected=changes,
                        current=current,
                        changed_by=current.get("updated_by"),
                        changed_at=current.get("updated_at"),
                    )
                changes["revision"] = current["revision"] + 1
                changes["updated_by"] = updated_by
            if entity in rules.TRANSITIONS:
                field = rules.TRANSITIONS[entity][0]
                if field in changes and changes[field] != current[field]:
                    rules.check_transition(entity, current[field], changes[field])
            if "updated_at" in current:
                changes["updated_at"] = utc_now()
            assignments = ", ".join(f"{column} = ?" for column in changes)
            values = [self._db_value(table, column, value) for column, value in changes.items()]
            with self._staged(self.to_arrow(table, [{**current, **changes}])), self._transaction():
                rules.find_violation(self._con, table, "staged", template=table)
                self._con.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", [*values, str(record_id)])
            return self.get(table, record_id)

    def delete(self, table: str, ids: Iterable[str]) -> int:
        """Delete records by id. Images take their annotations and dataset links with them."""
        ids = [str(i) for i in ids]
        if not ids:
            return 0
        self._refuse_if_referenced(table, ids)
        # DuckDB checks a foreign key against the state before the transaction, so the
        # referencing rows must be gone in a committed transaction before the record goes.
        with self._transaction():
            if table == "images":
                datasets = self._datasets_of(ids)
                self._con.execute("DELETE FROM annotations WHERE image_id IN (SELECT unnest(?::UUID[]))", [ids])
                self._con.execute("DELETE FROM dataset_images WHERE image_id IN (SELECT unnest(?::UUID[]))", [ids])
                self._refresh_dataset_counts(datasets)
            elif table == "datasets":  # its snapshots' rows go too (their Parquet blobs stay in the store)
                self._con.execute("DELETE FROM dataset_images WHERE dataset_id IN (SELECT unnest(?::UUID[]))", [ids])
                self._con.execute("DELETE FROM dataset_snapshots WHERE dataset_id IN (SELECT unnest(?::UUID[]))",
                                  [ids])
        with self._transaction():
            count = self._con.execute(
                f"DELETE FROM {_table(table)} WHERE id IN (SELECT unnest(?::UUID[]))", [ids]
            ).fetchall()[0][0]
        return count

    def _refuse_if_referenced(self, table: str, ids: list[str]) -> None:
        for referencing, column in _REFERENCES.get(table, ()):
            count = self._con.execute(
                f"SELECT count(*) FROM {referencing} WHERE {column} IN (SELECT unnest(?::UUID[]))", [ids]
            ).fetchall()[0][0]
            if count:
                entity = rules.ENTITY_OF_TABLE[table]
                raise ValidationError(
                    f"{entity}.still_referenced",
                    f"cannot delete {entity} {', '.join(ids[:3])}: {count} row(s) of {referencing} refer to it "
                    f"({column}). Delete those first; nothing was deleted.",
                )

    def rule_violations(self) -> dict[str, list[tuple[str, int, str]]]:
        """Stored rows that break a rule of ``rules.py``, per table (see ``rules.count_violations``)."""
        with self._lock:
            found = {table: rules.count_violations(self._con, table) for table in (*TABLES, "performance_metrics")
                     if table in rules.ROW_RULES}
        return {table: rows for table, rows in found.items() if rows}

    def blob_references(self) -> dict[str, list[str]]:
        """Every blob key the catalog refers to, by what refers to it (images, models, snapshots)."""
        queries = {
            "images": "SELECT file_path AS k FROM images",
            "models": "SELECT model_path AS k FROM models WHERE model_path LIKE 'sha256/%'",
            "dataset snapshots": "SELECT content_key AS k FROM dataset_snapshots UNION ALL "
                                 "SELECT json_extract_string(metadata, '$.annotations_key') FROM dataset_snapshots",
        }
        return {name: [k for k in self.query(sql).column("k").to_pylist() if k] for name, sql in queries.items()}

    # -- append-only Parquet tables ---------------------------------------------------------
    def append_rows(self, name: str, rows: pa.Table | Sequence[dict[str, Any]]) -> int:
        """Validate and append rows to a Parquet table (``performance_metrics``)."""
        if name not in self._parquet:
            raise ValidationError("catalog.table", f"unknown Parquet table {name!r}; known: {sorted(self._parquet)}.")
        table = self._parquet[name]
        if not isinstance(rows, pa.Table):
            rows = pa.Table.from_pylist(
                [{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in row.items()} for row in rows]
            )
        if "id" not in rows.column_names:
            rows = rows.append_column("id", pa.array([new_id() for _ in range(rows.num_rows)]))
        staged = table.conform(rows)
        with self._staged(staged):
            rules.find_violation(self._con, name, "staged")
        with self._lock:
            self._refresh_view(name, table.append(staged))
        return staged.num_rows

    def append_log(self, table: str, record_id: str, line: str) -> None:
        """Append a line to a job's ``execution_logs`` (an atomic append, no read-modify-write)."""
        with self._lock:
            self._con.execute(
                f"UPDATE {_table(table)} SET execution_logs = coalesce(execution_logs, '') || ? WHERE id = ?",
                [f"{utc_now():%H:%M:%S} {line.rstrip()}\n", str(record_id)],
            )

    def _refresh_view(self, name: str, written: Sequence[str] = ()) -> None:
        # A temporary view: recreated at each open, so a moved workspace folder still reads.
        table = self._parquet[name]
        with self._lock:
            if table.root.is_local:
                source = table.local_source_sql()
            else:  # no httpfs: DuckDB scans the files through pyarrow, listed once and then kept up to date
                files = self._parquet_files.setdefault(name, table.files())
                files.extend(path for path in written if path not in files)
                source = f"{name}_parquet_files" if files else None
                if source:
                    self._con.register(source, table.dataset(files))
            self._con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {table.view_sql(source)}")

    # -- splits and datasets ---------------------------------------------------------------
    def assign_split(self, image_ids: Sequence[str], split: str) -> int:
        """Move images to a split; every dataset holding them gets its counts recomputed."""
        if split not in DatasetSplit.__members__.values():
            raise ValidationError(
                "image.dataset_split_valid",
                f"dataset_split must be one of: {', '.join(DatasetSplit)}; got {split!r}.",
            )
        ids = [str(i) for i in image_ids]
        with self._transaction():
            self._require_images(ids)
            self._con.execute(
                "UPDATE images SET dataset_split = ? WHERE id IN (SELECT unnest(?::UUID[]))", [split, ids]
            )
            self._refresh_dataset_counts(self._datasets_of(ids))
        return len(ids)

    def link_dataset_images(self, dataset_id: str, image_ids: Sequence[str], *, remove: bool = False) -> int:
        """Add images to (or remove them from) a dataset; counts are recomputed in the same transaction."""
        ids = [str(i) for i in image_ids]
        with self._transaction():
            self.get("datasets", dataset_id)
            if remove:
                self._con.execute(
                    "DELETE FROM dataset_images WHERE dataset_id = ? AND image_id IN (SELECT unnest(?::UUID[]))",
                    [str(dataset_id), ids],
                )
            else:
                self._require_images(ids)
                self._con.execute(
                    "INSERT INTO dataset_images SELECT ?, id, ? FROM (SELECT DISTINCT unnest(?::UUID[]) AS id) "
                    "WHERE id NOT IN (SELECT image_id FROM dataset_images WHERE dataset_id = ?)",
                    [str(dataset_id), utc_now(), ids, str(dataset_id)],
                )
            self._refresh_dataset_counts([str(dataset_id)])
        return len(ids)

    def _require_images(self, ids: list[str]) -> None:
        missing = self._con.execute(
            "SELECT list(id) FROM (SELECT unnest(?::UUID[]) AS id) WHERE id NOT IN (SELECT id FROM images)", [ids]
        ).fetchall()[0][0]
        if missing:
            shown = ", ".join(str(m) for m in missing[:5])
            raise NotFoundError(f"{len(missing)} image id(s) are not in this workspace: {shown}")

    def _datasets_of(self, image_ids: list[str]) -> list[str]:
        rows = self._con.execute(
            "SELECT DISTINCT dataset_id FROM dataset_images WHERE image_id IN (SELECT unnest(?::UUID[]))",
            [image_ids],
        ).fetchall()
        return [str(row[0]) for row in rows]

    def _refresh_dataset_counts(self, dataset_ids: list[str]) -> None:
        # Counts are derived from the links in the same transaction, so they always match.
        if not dataset_ids:
            return
        self._con.execute(
            """
            UPDATE datasets d SET
                train_count = c.train, validation_count = c.validation, test_count = c.test, updated_at = ?
            FROM (
                SELECT d2.id,
                    count(i.id) FILTER (WHERE i.dataset_split = 'train') AS train,
                    count(i.id) FILTER (WHERE i.dataset_split = 'validation') AS validation,
                    count(i.id) FILTER (WHERE i.dataset_split = 'test') AS test
                FROM datasets d2
                LEFT JOIN dataset_images l ON l.dataset_id = d2.id
                LEFT JOIN images i ON i.id = l.image_id
                WHERE d2.id IN (SELECT unnest(?::UUID[]))
                GROUP BY d2.id
            ) c
            WHERE d.id = c.id
            """,
            [utc_now(), dataset_ids],
        )

    # -- conversions -----------------------------------------------------------------------
    def table_schema(self, table: str) -> pa.Schema:
        if table not in self._schemas:
            self._schemas[table] = self.query(f"SELECT * FROM {_table(table)} LIMIT 0").schema
        return self._schemas[table]

    def json_columns(self, table: str) -> set[str]:
        if table not in self._json_columns:
            rows = self.query_rows(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND data_type = 'JSON'",
                [table],
            )
            self._json_columns[table] = {row["column_name"] for row in rows}
        return self._json_columns[table]

    def to_arrow(self, table: str, rows: pa.Table | Sequence[dict[str, Any]]) -> pa.Table:
        """Rows as an Arrow table with the catalog table's column types (JSON values dumped)."""
        if isinstance(rows, pa.Table):
            return rows
        schema = self.table_schema(table)
        json_columns = self.json_columns(table)
        unknown = {key for row in rows for key in row} - set(schema.names)
        if unknown:
            raise ValidationError(
                f"{rules.ENTITY_OF_TABLE[table]}.fields",
                f"unknown field(s) {sorted(unknown)}; the fields are {schema.names}.",
            )
        present = [name for name in schema.names if any(name in row for row in rows)]
        columns = {}
        for name in present:
            values = [row.get(name) for row in rows]
            if name in json_columns:
                values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
            elif pa.types.is_string(schema.field(name).type):
                values = [v if v is None else str(v) for v in values]
            try:
                columns[name] = pa.array(values, type=schema.field(name).type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as error:
                raise ValidationError(
                    f"{rules.ENTITY_OF_TABLE[table]}.{name}_type",
                    f"{name} must be {_describe(schema.field(name).type)}; got {_short(values)} ({error})."
                ) from None
        return pa.table(columns)

    def _db_value(self, table: str, column: str, value: Any) -> Any:
        if column in self.json_columns(table) and value is not None and not isinstance(value, str):
            return json.dumps(value)
        if isinstance(value, uuid.UUID):
            return str(value)
        return value


def _conversion_error(table: str, error: Exception) -> ValidationError:
    entity = rules.ENTITY_OF_TABLE[table]
    message = str(error).removeprefix("Conversion Error: ")
    return ValidationError(f"{entity}.value_type", f"a value does not fit its field: {message}. Ids are UUIDs "
                                                   "(e.g. a record's .id); check the values passed.")


def _check_id(table: str, record_id: Any) -> None:
    """An id of a table keyed by UUID must be one (DuckDB would raise its own conversion error)."""
    if table == "dataset_snapshots":  # keyed by a content hash
        return
    try:
        uuid.UUID(str(record_id))
    except ValueError:
        entity = rules.ENTITY_OF_TABLE.get(table, table)
        raise ValidationError(f"{entity}.id_format", f"{record_id!r} is not a {entity} id: ids are UUIDs such as "
                                                     "'1b4e28ba-2fa1-11d2-883f-0016d3cca427' (a record's .id).") from None


def _describe(arrow_type: pa.DataType) -> str:
    text = str(arrow_type)
    if text.startswith("list<") and "fixed_size_list<" in text and "[4]" in text or text.endswith("[4]>"):
        return "a list of boxes, each 4 numbers [x1, y1, x2, y2]"
    return f"of type {text}"


def _short(values: list) -> str:
    text = repr(values)
    return text if len(text) <= 120 else text[:117] + "..."


def _table(name: str) -> str:
    if name not in TABLES:
        raise ValidationError("catalog.table", f"unknown table {name!r}; the tables are {', '.join(TABLES)}.")
    return name
