"""The Delta table layer: one contract, two engines.

* ``DeltaRsEngine`` (the ``deltalake`` package, delta-rs) is the embedded default: it needs no JVM
  jars. Spark writes Parquet files into the table folder and delta-rs commits them with its
  write-transaction API, so large writes never funnel through the driver. Reads hand Spark the
  table's current file list (cast to the table schema), so they are distributed too.
* ``DeltaSparkEngine`` (delta-spark) is used where the Delta classes and SQL extensions are in the
  session (clusters, Databricks). Written against the public delta-spark API.

Both write real Delta tables that every Delta reader opens. Tables are addressed ``layer.name``
under ``lake.root`` by :class:`Lake`.

Privacy (../shared/ARCHITECTURE.md, Invariants): tables are created without min/max statistics
(``delta.dataSkippingNumIndexedCols=0``) so PII never lands in ``_delta_log``, and without deletion
vectors (``delta.enableDeletionVectors=false``) so a delete rewrites the files that held the rows
instead of leaving them in live files; rows are deleted by
key through a join with a key table, never with a value in the predicate; ``purge_history``
vacuums with retention 0, checkpoints and drops old log entries.

Commit metadata: inside ``with lake.commit_metadata(run_id=...)`` every commit carries the pairs as
a JSON object in the commit's ``userMetadata`` (the Delta protocol's field; delta-spark's
``DESCRIBE HISTORY`` shows it as a column), so a table version can be traced to the run that
wrote it (:func:`commit_metadata_of`). ``commit_empty`` makes a version without data changes.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import random
import re
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .errors import DataError, SchemaError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

T = TypeVar("T")

# No min/max statistics on any column: PII must not be copied into the Delta log. No deletion
# vectors: with them a delete only marks rows as deleted and leaves them in the live data files, where
# no vacuum removes them (Databricks turns them on for new tables by default); without them a delete
# rewrites the files, and the purge removes the old ones.
TABLE_PROPERTIES: dict[str, str] = {"delta.dataSkippingNumIndexedCols": "0", "delta.enableDeletionVectors": "false"}
ENGINE_NAMES = ("delta-rs", "delta-spark")
WriteMode = Literal["append", "overwrite"]


# A merge whose source fits goes through the driver as one Arrow table (delta-rs merges it and
# rewrites only the files it touches); a bigger one is rewritten in Spark. Spark refuses to send
# the driver more than spark.driver.maxResultSize (1 GiB by default) in one collect: at 1,000,000
# persons the first golden run's 1.8 million profiles (about 1 KiB a row) failed on it. So the
# Arrow path is bounded by an estimate of bytes as well as by rows.
ARROW_MERGE_BYTES = 256 * 2**20

# delta-rs holds the part of the target a merge (or a delete by key, which is one) rewrites in
# memory. At 1,000,000 persons an incremental run's delete by key on match.pairs (25.3 million
# rows, 15 GB by estimated_row_bytes) grew the process past 15 GiB and the machine (24 GiB) ran out
# of memory, while silver.records (3.1 million rows, 5.2 GB estimated) merged in delta-rs within
# the standardize stage's 243 s. A target estimated above this is rewritten in Spark instead.
MERGE_REWRITE_BYTES = 8 * 2**30


def estimated_row_bytes(dtype: Any) -> int:
    """A rough upper estimate of one value's size in Arrow (strings 40 bytes, collections 4 items)."""
    from pyspark.sql import types as T

    if isinstance(dtype, T.StructType):
        return sum(estimated_row_bytes(f.dataType) for f in dtype.fields) + 1
    if isinstance(dtype, T.ArrayType):
        return 4 + 4 * estimated_row_bytes(dtype.elementType)
    if isinstance(dtype, T.MapType):
        return 4 + 4 * (estimated_row_bytes(dtype.keyType) + estimated_row_bytes(dtype.valueType))
    if isinstance(dtype, (T.StringType, T.BinaryType)):
        return 40
    if isinstance(dtype, T.DecimalType):
        return 16
    if isinstance(dtype, (T.BooleanType, T.ByteType)):
        return 1
    if isinstance(dtype, (T.ShortType,)):
        return 2
    if isinstance(dtype, (T.IntegerType, T.FloatType, T.DateType)):
        return 4
    return 8


def _nullable(schema: "StructType") -> "StructType":
    from pyspark.sql.types import StructField, StructType

    return StructType([StructField(f.name, f.dataType, True, f.metadata) for f in schema.fields])


def to_arrow_schema(schema: "StructType") -> "pa.Schema":
    from pyspark.sql.pandas.types import to_arrow_schema as _to_arrow

    return _to_arrow(_nullable(schema), timezone="UTC", prefers_large_types=False)


def from_arrow_schema(schema: "pa.Schema") -> "StructType":
    from pyspark.sql.pandas.types import from_arrow_schema as _from_arrow

    return _nullable(_from_arrow(schema, prefer_timestamp_ntz=True))


def conform(df: "DataFrame", schema: "StructType", where: str) -> "DataFrame":
    """Select ``schema``'s columns from ``df`` in order, cast to their types.

    Columns missing from ``df`` fail naming the missing and the available ones; columns ``df``
    has beyond the schema fail too (nothing is dropped silently).
    """
    from pyspark.sql import functions as F

    have = df.columns
    missing = [f.name for f in schema.fields if f.name not in have]
    extra = [c for c in have if c not in schema.fieldNames()]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"column(s) not in the table: {', '.join(extra)}")
        raise SchemaError(f"{where}: {'; '.join(parts)}; table columns: {', '.join(schema.fieldNames())}")
    current = dict(df.dtypes)
    cols = []
    for f in schema.fields:
        if current[f.name] == f.dataType.simpleString():
            cols.append(F.col(f"`{f.name}`"))
        else:
            cols.append(F.col(f"`{f.name}`").cast(f.dataType).alias(f.name))
    return df.select(*cols)


def commit_metadata_of(entry: dict[str, Any]) -> dict[str, Any]:
    """The pairs :meth:`Lake.commit_metadata` put into a history entry (``{}`` when none)."""
    text = entry.get("userMetadata")
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def retry_commit(fn: Callable[[], T], what: str, attempts: int = 6) -> T:
    """Run ``fn``, retrying concurrent-commit conflicts with exponential backoff and jitter."""
    from deltalake.exceptions import CommitFailedError

    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except CommitFailedError as exc:
            if attempt == attempts:
                raise DataError(f"{what}: commit failed {attempts} times: {exc}") from exc
            log.warning("%s: commit conflict (attempt %s), retrying", what, attempt)
            time.sleep(delay + random.random() * delay)
            delay *= 2
    raise AssertionError("unreachable")


_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def uri_scheme(location: str) -> str | None:
    """A location's URI scheme, lower-cased (``s3a``, ``dbfs``, ``file``); None for a plain path
    (a single letter before the colon is a drive, not a scheme)."""
    m = _URI_SCHEME.match(location.strip())
    return m.group(1).lower() if m else None


def local_path(root: str) -> str | None:
    """The absolute local path of ``root`` (a path, ``file:/...`` or ``file:///...``); None for any
    other URI, with or without ``//`` (``s3a://bucket/x``, ``dbfs:/mnt/lake``)."""
    scheme = uri_scheme(root)
    if scheme == "file":
        rest = root.strip()[len("file:") :]
        return os.path.abspath("/" + rest.lstrip("/")) if rest.startswith("/") else os.path.abspath(rest)
    if scheme is not None:
        return None
    return os.path.abspath(root)


def delta_rs_root_problem(root: str) -> str | None:
    """Why the delta-rs engine cannot serve a lake at ``root`` (None: it can).

    delta-rs commits the Parquet files Spark wrote after moving them into the table folder with
    local renames, so only a local path (a disk or a shared mount every node sees) works. On an
    object store every write would have to go through the driver as one Arrow table, of any size.
    """
    if local_path(root) is not None:
        return None
    return (
        f"a local path or a mount for lake.root with the delta-rs engine: on {uri_scheme(root)}: every write "
        "would go through the driver as one Arrow table, and Spark's Parquet files cannot be committed there. "
        "Use lake.engine: delta-spark (the Delta jars and SQL extensions in the session) for a lake on an object store"
    )


def vacuum_hours(retention_hours: float, where: str) -> int:
    """``retention_hours`` as the whole hours delta-rs takes, rounded up; negative values fail."""
    import math

    if not retention_hours >= 0 or math.isinf(retention_hours):
        raise DataError(f"{where}: got retention_hours {retention_hours!r}; expected a finite number of hours >= 0")
    return math.ceil(retention_hours)


class TableEngine(ABC):
    """The contract every Delta engine fulfils. Paths are table folders."""

    name: str

    def __init__(self, spark: "SparkSession") -> None:
        self.spark = spark
        # JSON text every commit carries as userMetadata while set (Lake.commit_metadata).
        self.user_metadata: str | None = None

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def create(self, path: str, schema: "StructType", partition_by: Sequence[str] = ()) -> None:
        """Create an empty table if none exists (no-op otherwise)."""

    @abstractmethod
    def write(
        self, path: str, df: "DataFrame", mode: WriteMode, partition_by: Sequence[str] = ()
    ) -> None: ...

    @abstractmethod
    def write_rows(self, path: str, rows: list[dict[str, Any]], schema: "StructType") -> None:
        """Append a few rows built on the driver (run log, manifests) without a Spark job."""

    def upsert_rows(self, path: str, rows: list[dict[str, Any]], schema: "StructType", keys: Sequence[str]) -> None:
        """Insert or update a few driver-side rows on ``keys`` (run log, batch states)."""
        if not self.exists(path):
            self.write_rows(path, rows, schema)
            return
        target = self.schema(path)
        data = [tuple(r.get(f.name) for f in target.fields) for r in rows]
        self.merge(path, self.spark.createDataFrame(data, target), keys)

    @abstractmethod
    def write_arrow(self, path: str, table: "pa.Table", schema: "StructType", mode: WriteMode = "append") -> None:
        """Write an Arrow table built on the driver (ingest parses files there)."""

    @abstractmethod
    def read(
        self, path: str, version: int | None = None, timestamp: datetime | None = None
    ) -> "DataFrame": ...

    @abstractmethod
    def schema(self, path: str) -> "StructType": ...

    def read_difference(self, path: str, old_version: int, new_version: int) -> tuple["DataFrame", "DataFrame"]:
        """``(old, new)``: rows of the two versions among which every row that differs between them is.

        Here the two whole versions; an engine that knows which data files the versions share
        leaves those out (a row in a file both versions hold is the same row in both).
        """
        return self.read(path, version=old_version), self.read(path, version=new_version)

    @abstractmethod
    def merge(
        self,
        path: str,
        source: "DataFrame",
        keys: Sequence[str],
        delete_not_matched_by_source: bool = False,
    ) -> dict[str, int]:
        """Upsert ``source`` on ``keys``; optionally delete target rows absent from ``source``."""

    @abstractmethod
    def delete(self, path: str, predicate: str) -> int:
        """Delete rows matching a SQL predicate over non-PII columns; returns rows deleted."""

    @abstractmethod
    def delete_keys(self, path: str, key_column: str, keys: "DataFrame") -> int:
        """Delete rows whose ``key_column`` is in ``keys`` (one column, same name)."""

    @abstractmethod
    def vacuum(self, path: str, retention_hours: float) -> list[str]: ...

    @abstractmethod
    def purge_history(self, path: str) -> None:
        """Remove old versions and old log entries (erasure): vacuum 0, checkpoint, clean log."""

    @abstractmethod
    def history(self, path: str) -> list[dict[str, Any]]: ...

    def commit_empty(self, path: str) -> None:
        """Commit a version that changes no data (it carries the commit metadata)."""
        raise NotImplementedError(f"{type(self).__name__} cannot make an empty commit")

    @abstractmethod
    def version(self, path: str) -> int: ...

    @abstractmethod
    def add_column(self, path: str, name: str, dtype: Any) -> None: ...


class DeltaRsEngine(TableEngine):
    """delta-rs engine: Spark writes the Parquet, delta-rs commits; reads by file list."""

    name = "delta-rs"

    def __init__(
        self, spark: "SparkSession", arrow_merge_limit: int = 2_000_000, merge_rewrite_bytes: int = MERGE_REWRITE_BYTES
    ) -> None:
        super().__init__(spark)
        self.arrow_merge_limit = arrow_merge_limit
        self.merge_rewrite_bytes = merge_rewrite_bytes

    # --- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _table(path: str, version: int | None = None) -> Any:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(path, version=version)
        except TableNotFoundError as exc:
            raise DataError(f"no Delta table at {path}") from exc

    def exists(self, path: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(path)

    def _props(self) -> Any:
        """CommitProperties with the current commit metadata, or None."""
        if self.user_metadata is None:
            return None
        from deltalake import CommitProperties

        return CommitProperties(custom_metadata={"userMetadata": self.user_metadata})

    @staticmethod
    def _check_readable(dt: Any, path: str) -> None:
        protocol = dt.protocol()
        features = set(protocol.reader_features or [])
        refused = features & {"deletionVectors", "columnMapping"}
        mode = dt.metadata().configuration.get("delta.columnMapping.mode", "none")
        if refused or mode not in ("none", None):
            what = ", ".join(sorted(refused)) or f"columnMapping mode {mode}"
            raise DataError(
                f"table {path} uses {what}; the delta-rs file-list read path cannot apply it. "
                "Read it with delta-spark (lake.engine: delta-spark) or rewrite it without them"
            )

    def schema(self, path: str) -> "StructType":
        import pyarrow as pa

        dt = self._table(path)
        return from_arrow_schema(pa.schema(dt.schema().to_arrow()))

    def create(self, path: str, schema: "StructType", partition_by: Sequence[str] = ()) -> None:
        from deltalake import DeltaTable
        from deltalake import Schema as DeltaSchema

        if self.exists(path):
            return
        os.makedirs(path, exist_ok=True)
        retry_commit(
            lambda: DeltaTable.create(
                path,
                DeltaSchema.from_arrow(to_arrow_schema(schema)),
                mode="ignore",
                partition_by=list(partition_by) or None,
                configuration=TABLE_PROPERTIES,
                commit_properties=self._props(),
            ),
            f"create {path}",
        )

    def _local(self, path: str) -> bool:
        return local_path(path) is not None

    def write(
        self, path: str, df: "DataFrame", mode: WriteMode, partition_by: Sequence[str] = ()
    ) -> None:
        from deltalake import DeltaTable
        from deltalake import Schema as DeltaSchema
        from deltalake.transaction import AddAction

        problem = delta_rs_root_problem(path)
        if problem:
            raise DataError(f"{mode} {path}: expected {problem}")
        if self.exists(path):
            partition_by = list(self._table(path).metadata().partition_columns)
            df = conform(df, self.schema(path), f"write {path}")
        else:
            self.create(path, df.schema, partition_by)
        # An overwrite may read the table it replaces: the Arrow path collects first, and the
        # Spark path never touches a data file the current version holds (an overwrite only
        # removes them from the log; a vacuum deletes them later).
        if _is_connect(self.spark):
            # The Connect server's files are not this process's: the frame comes over as Arrow.
            self._write_arrow(path, df, mode, partition_by)
            return
        staging = os.path.join(path, "_staging", uuid.uuid4().hex)
        writer = df.write.mode("overwrite").option("compression", "snappy")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(staging)
        actions = []
        now_ms = int(time.time() * 1000)
        for src in sorted(glob.glob(os.path.join(staging, "**", "*.parquet"), recursive=True)):
            rel_dir = os.path.relpath(os.path.dirname(src), staging)
            rel_dir = "" if rel_dir == "." else rel_dir
            name = f"part-{uuid.uuid4().hex}.snappy.parquet"
            rel = os.path.join(rel_dir, name) if rel_dir else name
            dest = os.path.join(path, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            rows = _parquet_rows(src)
            os.replace(src, dest)
            values = _partition_values(rel_dir)
            actions.append(
                AddAction(rel, os.path.getsize(dest), values, now_ms, True, json.dumps({"numRecords": rows}))
            )
        shutil.rmtree(os.path.join(path, "_staging"), ignore_errors=True)
        schema = DeltaSchema.from_arrow(to_arrow_schema(self.schema(path)))

        def commit() -> None:
            dt = DeltaTable(path)
            dt.create_write_transaction(
                actions, mode=mode, schema=schema, partition_by=partition_by or None, commit_properties=self._props()
            )

        retry_commit(commit, f"{mode} {path}")

    def _write_arrow(self, path: str, df: "DataFrame", mode: WriteMode, partition_by: Sequence[str]) -> None:
        from deltalake import write_deltalake

        table = df.toArrow().cast(to_arrow_schema(df.schema))
        retry_commit(
            lambda: write_deltalake(
                path,
                table,
                mode=mode,
                partition_by=list(partition_by) or None,
                configuration=TABLE_PROPERTIES,
                commit_properties=self._props(),
            ),
            f"{mode} {path}",
        )

    def write_rows(self, path: str, rows: list[dict[str, Any]], schema: "StructType") -> None:
        import pyarrow as pa
        from deltalake import write_deltalake

        self.create(path, schema)
        arrow_schema = to_arrow_schema(self.schema(path))
        table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in arrow_schema} for r in rows], schema=arrow_schema)
        retry_commit(lambda: write_deltalake(path, table, mode="append", commit_properties=self._props()), f"append {path}")

    def upsert_rows(self, path: str, rows: list[dict[str, Any]], schema: "StructType", keys: Sequence[str]) -> None:
        import pyarrow as pa

        if not self.exists(path):
            self.write_rows(path, rows, schema)
            return
        target = to_arrow_schema(self.schema(path))
        table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in target} for r in rows], schema=target)
        predicate = " AND ".join(f't."{k}" = s."{k}"' for k in keys)
        retry_commit(
            lambda: self._table(path)
            .merge(table, predicate, source_alias="s", target_alias="t", commit_properties=self._props())
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(),
            f"upsert into {path}",
        )

    def write_arrow(self, path: str, table: "pa.Table", schema: "StructType", mode: WriteMode = "append") -> None:
        from deltalake import write_deltalake

        self.create(path, schema)
        target = to_arrow_schema(self.schema(path))
        table = table.select(target.names).cast(target)
        retry_commit(lambda: write_deltalake(path, table, mode=mode, commit_properties=self._props()), f"{mode} {path}")

    def read(
        self, path: str, version: int | None = None, timestamp: datetime | None = None
    ) -> "DataFrame":
        dt = self._table(path, version)
        if timestamp is not None:
            dt.load_as_version(timestamp)
        self._check_readable(dt, path)
        return self._read_files(dt, path, dt.file_uris())

    def _read_files(self, dt: Any, path: str, files: Sequence[str]) -> "DataFrame":
        import pyarrow as pa

        schema = from_arrow_schema(pa.schema(dt.schema().to_arrow()))
        if not files:
            return self.spark.createDataFrame([], schema)
        reader = self.spark.read.schema(schema)
        if dt.metadata().partition_columns:
            reader = reader.option("basePath", path)
        return conform(reader.parquet(*files), schema, f"read {path}")

    def read_difference(self, path: str, old_version: int, new_version: int) -> tuple["DataFrame", "DataFrame"]:
        """The rows of the data files only one of the two versions holds (Delta data files never
        change; deletion vectors, which would, are refused on read): an incremental job diffs the
        files a batch rewrote or added, not the whole table."""
        old, new = self._table(path, old_version), self._table(path, new_version)
        self._check_readable(old, path)
        self._check_readable(new, path)
        old_files, new_files = old.file_uris(), new.file_uris()
        shared = set(old_files) & set(new_files)
        return (
            self._read_files(old, path, [f for f in old_files if f not in shared]),
            self._read_files(new, path, [f for f in new_files if f not in shared]),
        )

    def to_arrow(self, path: str, version: int | None = None) -> "pa.Table":
        """The whole table on the driver (small tables, scans, tests)."""
        dt = self._table(path, version)
        return dt.to_pyarrow_table()

    def merge(
        self,
        path: str,
        source: "DataFrame",
        keys: Sequence[str],
        delete_not_matched_by_source: bool = False,
    ) -> dict[str, int]:
        if not self.exists(path):
            self.write(path, source, "append")
            return {"num_target_rows_inserted": -1}
        target_schema = self.schema(path)
        source = conform(source, target_schema, f"merge into {path}")
        if not delete_not_matched_by_source and not self._table(path).file_uris():
            # nothing to match against (a table just created): Spark appends it in parallel
            self.write(path, source, "append")
            return {"num_target_rows_inserted": -1}
        if _is_connect(self.spark) or (
            not self._too_big_for_delta_rs(path, target_schema) and self._fits_arrow(source.count(), target_schema)
        ):
            table = source.toArrow().cast(to_arrow_schema(target_schema))
            predicate = " AND ".join(f't."{k}" = s."{k}"' for k in keys)

            def commit() -> dict[str, int]:
                dt = self._table(path)
                merger = (
                    dt.merge(table, predicate, source_alias="s", target_alias="t", commit_properties=self._props())
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                )
                if delete_not_matched_by_source:
                    merger = merger.when_not_matched_by_source_delete()
                return merger.execute()

            metrics = retry_commit(commit, f"merge into {path}")
            return {k: int(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        # Large source or target: rewrite in Spark (copy-on-write of the whole table).
        key_cols = list(keys)
        if delete_not_matched_by_source:
            result = source
        else:
            target = self.read(path)
            result = target.join(source.select(*key_cols), key_cols, "left_anti").unionByName(source)
        self.write(path, result, "overwrite")  # reads the old files as it goes: see write
        return {}

    def _fits_arrow(self, rows: int, schema: "StructType") -> bool:
        """Whether ``rows`` rows of ``schema`` may be merged through the driver as Arrow."""
        return rows <= self.arrow_merge_limit and rows * estimated_row_bytes(schema) <= ARROW_MERGE_BYTES

    def _stored_rows(self, path: str) -> int:
        """Rows of the current version, from the log's per-file statistics (counted when missing)."""
        actions = self._table(path).get_add_actions(flatten=True)
        names = list(actions.schema.names)
        counts = actions.column(names.index("num_records")).to_pylist() if "num_records" in names else []
        if any(c is None for c in counts) or len(counts) != actions.num_rows:
            return self.read(path).count()
        return int(sum(counts))

    def _too_big_for_delta_rs(self, path: str, schema: "StructType") -> bool:
        """Whether a merge into the table at ``path`` should rewrite it in Spark (``MERGE_REWRITE_BYTES``)."""
        return self._stored_rows(path) * estimated_row_bytes(schema) > self.merge_rewrite_bytes

    def delete(self, path: str, predicate: str) -> int:
        metrics = retry_commit(
            lambda: self._table(path).delete(predicate, commit_properties=self._props()), f"delete from {path}"
        )
        return int(metrics.get("num_deleted_rows", 0))

    def delete_keys(self, path: str, key_column: str, keys: "DataFrame") -> int:
        import pyarrow as pa

        if not self.exists(path):
            return 0
        schema = self.schema(path)
        if self._too_big_for_delta_rs(path, schema):
            return self._rewrite_without(path, key_column, keys)
        arrow = keys.select(key_column).distinct().toArrow()
        if arrow.num_rows == 0:
            return 0
        arrow = arrow.cast(pa.schema([pa.field(key_column, pa.string())]))
        predicate = f't."{key_column}" = s."{key_column}"'

        def commit() -> dict[str, Any]:
            dt = self._table(path)
            merger = dt.merge(arrow, predicate, source_alias="s", target_alias="t", commit_properties=self._props())
            return merger.when_matched_delete().execute()

        metrics = retry_commit(commit, f"delete keys from {path}")
        return int(metrics.get("num_target_rows_deleted", 0))

    def _rewrite_without(self, path: str, key_column: str, keys: "DataFrame") -> int:
        """Delete by key as a copy-on-write in Spark: the table without the rows of ``keys``.
        Nothing is written when no stored row has one of the keys (a scan of the key column)."""
        key = keys.select(key_column).distinct()
        stored = self.read(path)
        hit = stored.select(key_column).join(key, key_column, "left_semi").limit(1).count()
        if not hit:
            return 0
        before = self._stored_rows(path)
        self.write(path, stored.join(key, key_column, "left_anti"), "overwrite")
        return before - self._stored_rows(path)

    def vacuum(self, path: str, retention_hours: float) -> list[str]:
        """Delete files no version within ``retention_hours`` needs; returns them.

        delta-rs takes whole hours: a fractional retention is rounded up (it keeps a little more,
        never less; 0.5 must not become 0, which removes every old file).
        """
        hours = vacuum_hours(retention_hours, f"vacuum {path}")
        dt = self._table(path)
        return list(
            dt.vacuum(
                retention_hours=hours,
                dry_run=False,
                enforce_retention_duration=False,
                full=True,
            )
        )

    def purge_history(self, path: str) -> None:
        """Erasure step: drop old versions and every log entry before the current version.

        Log and file retention go to 0, vacuum removes the files old versions referenced, then the
        table is loaded *again*: vacuum commits (VACUUM START/END), and a handle loaded before it
        would checkpoint an older version and keep the log entries written since. The checkpoint
        is taken at the current version and the log before it removed; what is left is checked.
        """
        old = dict(self._table(path).metadata().configuration)
        self._table(path).alter.set_table_properties(
            {"delta.logRetentionDuration": "interval 0 seconds", "delta.deletedFileRetentionDuration": "interval 0 seconds"},
            raise_if_not_exists=False,
        )
        self.vacuum(path, 0)
        dt = self._table(path)  # reload: the vacuum's own commits came after the handle above
        dt.create_checkpoint()
        dt.cleanup_metadata()
        if self._local(path):
            checkpoint, leftover = log_files_before_checkpoint(path)
            if leftover:
                raise DataError(
                    f"purge_history {path}: {len(leftover)} log file(s) older than the checkpoint at version "
                    f"{checkpoint} survived clean-up (first: {os.path.basename(leftover[0])}); expected none, "
                    "they can still hold deleted rows"
                )
        # Restore the retention settings for normal use (one metadata-only commit).
        restore = {
            "delta.logRetentionDuration": old.get("delta.logRetentionDuration", "interval 30 days"),
            "delta.deletedFileRetentionDuration": old.get("delta.deletedFileRetentionDuration", "interval 7 days"),
        }
        self._table(path).alter.set_table_properties(restore, raise_if_not_exists=False)
        _remove_staging(path)

    def history(self, path: str) -> list[dict[str, Any]]:
        return list(self._table(path).history())

    def commit_empty(self, path: str) -> None:
        def commit() -> None:
            dt = self._table(path)
            partition_by = list(dt.metadata().partition_columns) or None
            dt.create_write_transaction([], mode="append", schema=dt.schema(), partition_by=partition_by, commit_properties=self._props())

        retry_commit(commit, f"empty commit to {path}")

    def version(self, path: str) -> int:
        return int(self._table(path).version())

    def add_column(self, path: str, name: str, dtype: Any) -> None:
        import pyarrow as pa
        from deltalake import Field
        from deltalake import Schema as DeltaSchema
        from pyspark.sql.types import StructField, StructType

        arrow = to_arrow_schema(StructType([StructField(name, dtype, True)]))
        field = DeltaSchema.from_arrow(pa.schema(arrow)).fields[0]
        self._table(path).alter.add_columns([Field(field.name, field.type, nullable=True)])


class DeltaSparkEngine(TableEngine):
    """delta-spark engine (JVM): for clusters and Databricks where the Delta jars are present."""

    name = "delta-spark"

    def _dt(self, path: str) -> Any:
        from delta.tables import DeltaTable

        return DeltaTable.forPath(self.spark, path)

    _USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"

    @contextmanager
    def _metadata(self) -> Iterator[None]:
        """Commits inside carry ``user_metadata`` (Delta's session setting for userMetadata)."""
        if self.user_metadata is None:
            yield
            return
        old = self.spark.conf.get(self._USER_METADATA_CONF, None)
        self.spark.conf.set(self._USER_METADATA_CONF, self.user_metadata)
        try:
            yield
        finally:
            if old is None:
                self.spark.conf.unset(self._USER_METADATA_CONF)
            else:
                self.spark.conf.set(self._USER_METADATA_CONF, old)

    def exists(self, path: str) -> bool:
        from delta.tables import DeltaTable

        return bool(DeltaTable.isDeltaTable(self.spark, path))

    def create(self, path: str, schema: "StructType", partition_by: Sequence[str] = ()) -> None:
        from delta.tables import DeltaTable

        builder = DeltaTable.createIfNotExists(self.spark).location(path).addColumns(_nullable(schema))
        if partition_by:
            builder = builder.partitionedBy(*partition_by)
        for key, value in TABLE_PROPERTIES.items():
            builder = builder.property(key, value)
        with self._metadata():
            builder.execute()

    def write(
        self, path: str, df: "DataFrame", mode: WriteMode, partition_by: Sequence[str] = ()
    ) -> None:
        if self.exists(path):
            df = conform(df, self.schema(path), f"write {path}")
        else:
            self.create(path, df.schema, partition_by)
        with self._metadata():
            df.write.format("delta").mode(mode).save(path)

    def write_rows(self, path: str, rows: list[dict[str, Any]], schema: "StructType") -> None:
        self.create(path, schema)
        table_schema = self.schema(path)
        data = [tuple(r.get(f.name) for f in table_schema.fields) for r in rows]
        with self._metadata():
            self.spark.createDataFrame(data, table_schema).write.format("delta").mode("append").save(path)

    def write_arrow(self, path: str, table: "pa.Table", schema: "StructType", mode: WriteMode = "append") -> None:
        self.create(path, schema)
        target = self.schema(path)
        df = self.spark.createDataFrame(table.select(target.fieldNames()).cast(to_arrow_schema(target)))
        with self._metadata():
            df.write.format("delta").mode(mode).save(path)

    def read(
        self, path: str, version: int | None = None, timestamp: datetime | None = None
    ) -> "DataFrame":
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if timestamp is not None:
            reader = reader.option("timestampAsOf", timestamp.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"))
        return reader.load(path)

    def schema(self, path: str) -> "StructType":
        return _nullable(self.spark.read.format("delta").load(path).schema)

    def merge(
        self,
        path: str,
        source: "DataFrame",
        keys: Sequence[str],
        delete_not_matched_by_source: bool = False,
    ) -> dict[str, int]:
        if not self.exists(path):
            self.write(path, source, "append")
            return {}
        source = conform(source, self.schema(path), f"merge into {path}")
        cond = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        merger = (
            self._dt(path).alias("t").merge(source.alias("s"), cond).whenMatchedUpdateAll().whenNotMatchedInsertAll()
        )
        if delete_not_matched_by_source:
            merger = merger.whenNotMatchedBySourceDelete()
        with self._metadata():
            merger.execute()
        return {}

    def delete(self, path: str, predicate: str) -> int:
        before = self.version(path)
        with self._metadata():
            self._dt(path).delete(predicate)
        return _spark_metric(self, path, before, "numDeletedRows")

    def delete_keys(self, path: str, key_column: str, keys: "DataFrame") -> int:
        if not self.exists(path):
            return 0
        before = self.version(path)
        merger = (
            self._dt(path)
            .alias("t")
            .merge(keys.select(key_column).distinct().alias("s"), f"t.`{key_column}` = s.`{key_column}`")
            .whenMatchedDelete()
        )
        with self._metadata():
            merger.execute()
        return _spark_metric(self, path, before, "numTargetRowsDeleted")

    def vacuum(self, path: str, retention_hours: float) -> list[str]:
        vacuum_hours(retention_hours, f"vacuum {path}")  # checks the value; Delta takes fractional hours
        self.spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        self._dt(path).vacuum(retention_hours)
        return []

    def purge_history(self, path: str) -> None:
        """Erasure step: vacuum 0, checkpoint, drop the log before the checkpoint.

        delta-spark has no public API to checkpoint or clean the log on demand, so this goes
        through the JVM ``DeltaLog`` over py4j (``sparkContext._jvm``): internals that can change
        between Delta releases and that a Spark Connect session does not expose at all. Local
        tables get the log before the checkpoint removed here (Delta's own clean-up rounds its
        cut-off down to the day, so today's entries would stay); other file systems rely on
        ``cleanUpExpiredLogs``.
        """
        if _is_connect(self.spark):
            raise DataError(
                f"purge_history {path}: got a Spark Connect session; the delta-spark engine checkpoints and "
                "cleans the Delta log through the JVM DeltaLog (py4j), which Spark Connect does not expose. "
                "Expected a classic Spark session (spark-submit, a Databricks job cluster) for erasure, "
                "or lake.engine: delta-rs"
            )
        props = self._properties(path)
        self.spark.sql(
            f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ("
            "'delta.logRetentionDuration'='interval 0 seconds', "
            "'delta.deletedFileRetentionDuration'='interval 0 seconds')"
        )
        self.vacuum(path, 0)
        jvm = self.spark.sparkContext._jvm  # type: ignore[attr-defined]  # py4j: see the docstring
        delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(self.spark._jsparkSession, path)  # type: ignore[attr-defined]
        delta_log.checkpoint()
        if "://" not in path or path.startswith("file:"):
            _checkpoint, leftover = log_files_before_checkpoint(path.removeprefix("file:"))
            for f in leftover:
                os.remove(f)
        else:
            delta_log.cleanUpExpiredLogs(delta_log.snapshot())
        log_retention = props.get("delta.logRetentionDuration", "interval 30 days")
        file_retention = props.get("delta.deletedFileRetentionDuration", "interval 7 days")
        self.spark.sql(
            f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ("
            f"'delta.logRetentionDuration'='{log_retention}', "
            f"'delta.deletedFileRetentionDuration'='{file_retention}')"
        )

    def _properties(self, path: str) -> dict[str, str]:
        row = self.spark.sql(f"DESCRIBE DETAIL delta.`{path}`").select("properties").first()
        return dict(row[0] or {}) if row is not None else {}

    def history(self, path: str) -> list[dict[str, Any]]:
        return [r.asDict(recursive=True) for r in self._dt(path).history().collect()]

    def commit_empty(self, path: str) -> None:
        """An append of no rows: Delta commits a version with no files (and the metadata)."""
        with self._metadata():
            self.spark.createDataFrame([], self.schema(path)).write.format("delta").mode("append").save(path)

    def version(self, path: str) -> int:
        return int(self._dt(path).history(1).select("version").first()[0])

    def add_column(self, path: str, name: str, dtype: Any) -> None:
        self.spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS (`{name}` {dtype.simpleString()})")


def _spark_metric(engine: DeltaSparkEngine, path: str, before: int, metric: str) -> int:
    for entry in engine.history(path):
        if entry.get("version", -1) > before:
            return int((entry.get("operationMetrics") or {}).get(metric, 0))
    return 0


def _is_connect(spark: "SparkSession") -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _parquet_rows(path: str) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(path).num_rows)


def _partition_values(rel_dir: str) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    if not rel_dir:
        return values
    from urllib.parse import unquote

    for part in rel_dir.split(os.sep):
        key, _, value = part.partition("=")
        values[key] = None if value == "__HIVE_DEFAULT_PARTITION__" else unquote(value)
    return values


def _remove_staging(path: str) -> None:
    shutil.rmtree(os.path.join(path, "_staging"), ignore_errors=True)


# Delta log file names start with a 20-digit version: commits, checkpoints (single, multi-part,
# v2), checksums and compacted logs.
_LOG_VERSION = re.compile(r"^(\d{20})\.")


def log_files_before_checkpoint(path: str) -> tuple[int | None, list[str]]:
    """The last checkpoint's version and the log files of versions below it (local tables).

    After a purge these must be gone: a commit before the checkpoint can hold a deleted row (a
    statistic, a predicate) and nothing needs it any more, readers start from the checkpoint.
    """
    log_dir = os.path.join(path, "_delta_log")
    try:
        with open(os.path.join(log_dir, "_last_checkpoint"), encoding="utf-8") as fh:
            checkpoint = int(json.load(fh)["version"])
    except FileNotFoundError:
        return None, []
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{log_dir}/_last_checkpoint: cannot read the checkpoint version ({exc}); expected JSON with a 'version'") from exc
    older = []
    for name in sorted(os.listdir(log_dir)):
        m = _LOG_VERSION.match(name)
        if m and int(m.group(1)) < checkpoint:
            older.append(os.path.join(log_dir, name))
    return checkpoint, older


def pick_engine(spark: "SparkSession", choice: str = "auto") -> TableEngine:
    """delta-spark when asked for or when the session has Delta's extensions; else delta-rs."""
    from .spark import detect_capabilities

    caps = detect_capabilities(spark)
    if choice == "delta-spark":
        if not caps.delta_spark:
            raise DataError(
                "lake.engine: got 'delta-spark', but the session has no Delta classes or SQL "
                "extensions; expected the delta-spark jars on the classpath (spark.jars / --jars) "
                "or lake.engine: delta-rs"
            )
        return DeltaSparkEngine(spark)
    if choice == "delta-rs":
        return DeltaRsEngine(spark)
    return DeltaSparkEngine(spark) if caps.delta_spark else DeltaRsEngine(spark)


class Lake:
    """Tables addressed ``layer.name`` under one root, through one engine."""

    def __init__(self, spark: "SparkSession", root: str, engine: TableEngine | None = None) -> None:
        self.spark = spark
        self.root = local_path(root) or root
        self.engine = engine or DeltaRsEngine(spark)

    def path(self, address: str) -> str:
        layer, _, name = address.partition(".")
        if not layer or not name or "/" in address or ".." in address:
            raise DataError(f"table address {address!r}: expected 'layer.name'")
        return os.path.join(self.root, layer, name)

    def exists(self, address: str) -> bool:
        return self.engine.exists(self.path(address))

    def create(self, address: str, schema: "StructType", partition_by: Sequence[str] = ()) -> None:
        self.engine.create(self.path(address), schema, partition_by)

    def read(self, address: str, version: int | None = None, timestamp: datetime | None = None) -> "DataFrame":
        return self.engine.read(self.path(address), version, timestamp)

    def read_difference(self, address: str, old_version: int, new_version: int) -> tuple["DataFrame", "DataFrame"]:
        """``(old, new)`` rows of two versions holding every row that differs between them
        (:meth:`TableEngine.read_difference`); diff them by key and content."""
        return self.engine.read_difference(self.path(address), old_version, new_version)

    def read_or_empty(self, address: str, schema: "StructType") -> "DataFrame":
        if self.exists(address):
            return self.read(address)
        return self.spark.createDataFrame([], schema)

    def overwrite(self, address: str, df: "DataFrame", partition_by: Sequence[str] = ()) -> None:
        self.engine.write(self.path(address), df, "overwrite", partition_by)

    def append(self, address: str, df: "DataFrame", partition_by: Sequence[str] = ()) -> None:
        self.engine.write(self.path(address), df, "append", partition_by)

    def append_rows(self, address: str, rows: list[dict[str, Any]], schema: "StructType") -> None:
        self.engine.write_rows(self.path(address), rows, schema)

    def upsert_rows(self, address: str, rows: list[dict[str, Any]], schema: "StructType", keys: Sequence[str]) -> None:
        self.engine.upsert_rows(self.path(address), rows, schema, keys)

    def append_arrow(self, address: str, table: "pa.Table", schema: "StructType") -> None:
        self.engine.write_arrow(self.path(address), table, schema, "append")

    def merge(
        self, address: str, source: "DataFrame", keys: Sequence[str], delete_not_matched_by_source: bool = False
    ) -> dict[str, int]:
        return self.engine.merge(self.path(address), source, keys, delete_not_matched_by_source)

    def delete(self, address: str, predicate: str) -> int:
        return self.engine.delete(self.path(address), predicate)

    def delete_keys(self, address: str, key_column: str, keys: "DataFrame") -> int:
        return self.engine.delete_keys(self.path(address), key_column, keys)

    def vacuum(self, address: str, retention_hours: float) -> list[str]:
        return self.engine.vacuum(self.path(address), retention_hours)

    def purge_history(self, address: str) -> None:
        self.engine.purge_history(self.path(address))

    def history(self, address: str) -> list[dict[str, Any]]:
        return self.engine.history(self.path(address))

    @contextmanager
    def commit_metadata(self, **metadata: str) -> Iterator[None]:
        """Every commit made inside carries ``metadata`` (JSON in its userMetadata); nests."""
        previous = self.engine.user_metadata
        merged = {**(json.loads(previous) if previous else {}), **metadata}
        self.engine.user_metadata = json.dumps(merged, sort_keys=True)
        try:
            yield
        finally:
            self.engine.user_metadata = previous

    def commit_empty(self, address: str) -> None:
        """A version of ``address`` without data changes (e.g. a run that changed nothing)."""
        self.engine.commit_empty(self.path(address))

    def version(self, address: str) -> int:
        return self.engine.version(self.path(address))

    def schema(self, address: str) -> "StructType":
        return self.engine.schema(self.path(address))

    def add_column(self, address: str, name: str, dtype: Any) -> None:
        self.engine.add_column(self.path(address), name, dtype)

    def add_missing_columns(self, address: str, schema: "StructType") -> list[str]:
        """Add ``schema``'s columns an existing table lacks (nullable; old rows read null).

        For tables whose schema grew (a source mapping a new field, a new column of a table of
        the design); writes are conformed to the stored schema and would otherwise refuse the
        new column. Returns the columns added; nothing when the table does not exist yet.
        """
        if not self.exists(address):
            return []
        have = {f.name.lower() for f in self.schema(address).fields}
        added = [f for f in schema.fields if f.name.lower() not in have]
        for f in added:
            self.add_column(address, f.name, f.dataType)
        return [f.name for f in added]

    def tables(self) -> list[str]:
        """Addresses of every Delta table under the root."""
        found = []
        if not os.path.isdir(self.root):
            return found
        for layer in sorted(os.listdir(self.root)):
            layer_dir = os.path.join(self.root, layer)
            if not os.path.isdir(layer_dir) or layer.startswith((".", "_")):
                continue
            for name in sorted(os.listdir(layer_dir)):
                if os.path.isdir(os.path.join(layer_dir, name, "_delta_log")):
                    found.append(f"{layer}.{name}")
        return found
