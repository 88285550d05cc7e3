"""Ingest job: land every source as a bronze Delta table, once per delivered file or batch.

Per batch (a file in a landing folder, or a JDBC pull above the last watermark):
  ops.batches row 'started' -> bronze.<source> rows -> bronze._quarantine rows -> 'landed'.
A batch already 'landed' is skipped (idempotency: batch id = hash of source, path, size and
content checksum, so a changed file under the same name is a new batch). Before a source lands
anything, every batch of it left 'started' by a killed run is rolled back (its rows deleted by
batch id, its state set to 'rolled_back'), whether or not the same file or rows come again, so
the rerun completes the work without duplicates or orphans. Rows read = rows landed + rows
quarantined, per batch (checked before the first write, kept in ops.batches) and per source
(ops.runs metrics ``<source>.rows_read``, ``.rows_landed``, ``.rows_quarantined``, summed over the
batches the run landed). A file that cannot be read fails alone, before anything is written.

JDBC pulls rows with ``updated_at >= last watermark`` (a row committed late with the watermark's
timestamp is not missed) and drops the rows re-read at the watermark that bronze already holds,
by (record key, row hash), so a rerun adds nothing twice.

Sources dispatch through a registry (``CONNECTORS``). Identifier values are checked against the
suppression list in the form silver holds them (:func:`suppression_forms`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from jobs.common import schemas as S
from jobs.common.errors import ConfigError, DataError, SchemaError
from jobs.common.keys import record_key, row_hash, salted_hash
from jobs.common.registry import Registry
from jobs.common.runlog import Run, record_run

from .config import SourceConfig, bronze_column, bronze_column_clashes, describe_clash
from .readers import MISSING_KEY, SUPPRESSED, ParsedFile, check_required, parse_file

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

    from jobs.common.context import Context

log = logging.getLogger(__name__)

Fault = Callable[[str], None]
# Fault points (tests kill a run there): after_started, after_bronze, after_quarantine, during_rollback.
STARTED, LANDED, ROLLED_BACK = "started", "landed", "rolled_back"


def bronze_address(source: str) -> str:
    return f"bronze.{source}"


def bronze_columns(src: SourceConfig) -> dict[str, str]:
    """Source field -> bronze column; fails when two fields would land in one column (never merged)."""
    clashes = bronze_column_clashes(src.fields)
    if clashes:
        raise SchemaError(f"source {src.name}: " + "; ".join(describe_clash(*c) for c in clashes))
    return {f: bronze_column(f) for f in src.fields}


def bronze_schema(src: SourceConfig) -> "StructType":
    from pyspark.sql.types import StringType, StructField, StructType

    fields = [StructField(col, StringType(), True) for col in bronze_columns(src).values()]
    return StructType(fields + [StructField(c.name, c.dtype, True) for c in S.bronze_lineage_columns()])


def discover_files(src: SourceConfig, data_root: str) -> list[str]:
    """Files of a source: one file, every file in a landing folder, or a glob."""
    location = src.location or ""
    path = location if os.path.isabs(location) else os.path.join(data_root, location)
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, src.pattern)))
    elif any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path))
    elif os.path.exists(path):
        files = [path]
    else:
        raise DataError(f"source {src.name}: location {path} does not exist; expected a file, folder or glob")
    return [f for f in files if os.path.isfile(f) and not os.path.basename(f).startswith((".", "_"))]


def batch_id_for(source: str, path: str, size: int, checksum: str) -> str:
    return hashlib.sha256(f"{source}|{path}|{size}|{checksum}".encode()).hexdigest()[:32]


def lineage_path(path: str, data_root: str) -> str:
    """How bronze and ops.batches name a file: relative to data.root when inside it (so a lake and
    its landing folders can move together), else absolute."""
    full = os.path.abspath(path)
    root = os.path.abspath(data_root)
    return os.path.relpath(full, root) if full.startswith(root + os.sep) else full


@dataclass
class BatchResult:
    batch_id: str
    path: str
    rows_read: int
    rows_landed: int
    rows_quarantined: int
    skipped: bool = False


ID_KINDS = ("email", "phone", "customer_number", "loyalty_card", "cookie_id", "device_id")


def _id_fields(src: SourceConfig) -> dict[str, str]:
    """Identifier kind -> the source field that carries it."""
    return {kind: src.mapping[kind] for kind in ID_KINDS if kind in src.mapping}


class SuppressionForms(NamedTuple):
    """What a batch's identifiers are checked against the suppression list in: each row's
    country as sent, and (kind, value as sent, country as sent) -> the form silver.identifiers
    would hold (None: silver holds none, a placeholder or an invalid value)."""

    countries: list[str | None]
    by_item: dict[tuple[str, str | None, str | None], str | None]


def suppression_forms(ctx: "Context", parsed: ParsedFile, src: SourceConfig) -> SuppressionForms:
    """The form silver gives every identifier value of a parsed batch, in which its suppression
    hash is taken: silver's own transform (:func:`~jobs.standardize.transforms.silver_identifier_forms`,
    one small Spark job), a phone read in its row's country as silver reads it, else the
    source's ``default_country``. Privacy writes the list from silver.identifiers, so the two
    compare like with like (an erased ``jan@gmial.com`` resent as ``Jan@GMIAL.con``, an erased
    loyalty card resent with spaces)."""
    from jobs.standardize.transforms import silver_identifier_forms

    field = src.mapping.get("country")
    column = parsed.values.get(field) if field else None
    countries: list[str | None] = list(column) if column else [None] * parsed.rows
    items: set[tuple[str, str | None, str | None]] = set()
    for kind, f in _id_fields(src).items():
        values = parsed.values.get(f)
        if values:
            items.update((kind, v, countries[i]) for i, v in enumerate(values) if v and v.strip())
    if not items:
        return SuppressionForms(countries, {})
    return SuppressionForms(countries, silver_identifier_forms(ctx.spark, items, ctx.cfg.standardize, src.default_country))


def _row_values(
    cols: dict[str, list[str | None]], extras: dict[str, list[str | None]], fields: list[str], i: int
) -> list[str | None]:
    """What the row hash covers: every mapped value, then every unmapped one as name=value."""
    return [cols[f][i] for f in fields] + [f"{c}={v[i]}" for c, v in extras.items() if v[i] is not None]


def row_identities(parsed: ParsedFile, src: SourceConfig, rows: list[int]) -> dict[int, tuple[str | None, str]]:
    """(record key, row hash) of parsed ``rows`` as bronze would store them (key None: no key)."""
    empty: list[str | None] = [None] * parsed.rows
    mapped = set(src.fields)
    cols = {f: parsed.values.get(f, empty) for f in src.fields}
    extras = {c: parsed.values[c] for c in parsed.columns if c not in mapped}
    out: dict[int, tuple[str | None, str]] = {}
    for i in rows:
        pk = [cols[k][i] for k in src.primary_key]
        key = None if any(p is None or not str(p).strip() for p in pk) else record_key(src.name, *(str(p) for p in pk))
        out[i] = (key, row_hash(_row_values(cols, extras, src.fields, i)))
    return out


def build_bronze(
    parsed: ParsedFile,
    src: SourceConfig,
    batch_id: str,
    file: str,
    ingested_at: datetime,
    suppression: set[tuple[str, str]],
    salt: str,
    forms: SuppressionForms | None = None,
) -> tuple["pa.Table", list[dict[str, Any]]]:
    """Bronze rows (strings + lineage) and quarantine rows for one parsed batch.

    A row whose record key, or an identifier in its normal form (``forms``, from
    :func:`suppression_forms`), is in ``suppression`` is quarantined as suppressed.
    """
    import pyarrow as pa

    from jobs.common.delta import to_arrow_schema

    columns = bronze_columns(src)
    fields = src.fields
    mapped = set(fields)
    extra_cols = [c for c in parsed.columns if c not in mapped]
    id_fields = _id_fields(src)
    countries, by_item = forms if forms is not None else ([], {})
    values = parsed.values
    empty: list[str | None] = [None] * parsed.rows
    cols = {f: values.get(f, empty) for f in fields}
    extras = {c: values[c] for c in extra_cols}
    keep: list[int] = []
    keys: list[str] = []
    hashes: list[str] = []
    quarantine: list[dict[str, Any]] = []

    def quarantine_row(i: int, reason: str, key: str | None) -> None:
        quarantine.append(
            _quarantine_row(src.name, batch_id, file, parsed.lines[i], reason, parsed.raws[i], ingested_at, key)
        )

    for i in range(parsed.rows):
        pk = [cols[k][i] for k in src.primary_key]
        if any(p is None or not str(p).strip() for p in pk):
            quarantine_row(i, f"{MISSING_KEY}: {', '.join(src.primary_key)}", None)
            continue
        key = record_key(src.name, *(str(p) for p in pk))
        if suppression:
            hit = ("record_key", salted_hash(salt, "record_key", key)) in suppression
            if not hit:
                for kind, f in id_fields.items():
                    v = cols[f][i]
                    norm = by_item.get((kind, v, countries[i])) if v and v.strip() and countries else None
                    if norm and (kind, salted_hash(salt, kind, norm)) in suppression:
                        hit = True
                        break
            if hit:
                # The raw text of a suppressed row is not kept: that would bring the subject back.
                quarantine.append(
                    _quarantine_row(src.name, batch_id, file, parsed.lines[i], SUPPRESSED, None, ingested_at, key)
                )
                continue
        keep.append(i)
        keys.append(key)
        hashes.append(row_hash(_row_values(cols, extras, fields, i)))
    n = len(keep)
    data: dict[str, list[Any]] = {columns[f]: [cols[f][i] for i in keep] for f in fields}
    data[S.RECORD_KEY] = keys
    data[S.SOURCE] = [src.name] * n
    data[S.BATCH_ID] = [batch_id] * n
    data[S.INGESTED_AT] = [ingested_at] * n
    data[S.FILE] = [file] * n
    data[S.LINE] = [parsed.lines[i] for i in keep]
    data[S.ROW_HASH] = hashes
    data[S.EXTRA] = [[(c, extras[c][i]) for c in extra_cols if extras[c][i] is not None] for i in keep]
    schema = to_arrow_schema(bronze_schema(src))
    return pa.table(data, schema=schema), quarantine


def _quarantine_row(
    source: str,
    batch_id: str,
    file: str,
    line: int,
    reason: str,
    raw: str | None,
    at: datetime,
    key: str | None = None,
) -> dict[str, Any]:
    qid = hashlib.sha256(f"{source}|{batch_id}|{line}|{reason}".encode()).hexdigest()[:32]
    return {
        "quarantine_id": qid,
        S.RECORD_KEY: key,
        S.SOURCE: source,
        S.BATCH_ID: batch_id,
        S.FILE: file,
        S.LINE: line,
        "reason": reason,
        "raw": raw,
        S.INGESTED_AT: at,
    }


def load_suppression(ctx: "Context") -> set[tuple[str, str]]:
    if not ctx.lake.exists(S.PRIVACY_SUPPRESSION.address):
        return set()
    rows = ctx.lake.read(S.PRIVACY_SUPPRESSION.address).select("id_type", "id_hash").collect()
    return {(r.id_type, r.id_hash) for r in rows}


def _batch_states(ctx: "Context") -> dict[str, dict[str, Any]]:
    if not ctx.lake.exists(S.OPS_BATCHES.address):
        return {}
    rows = ctx.lake.read(S.OPS_BATCHES.address).collect()
    return {r.batch_id: r.asDict() for r in rows}


def recover_source(
    ctx: "Context", src: SourceConfig, fault: Fault | None = None, states: dict[str, dict[str, Any]] | None = None
) -> list[str]:
    """Roll back every batch of ``src`` a killed run left 'started'; returns their batch ids.

    Rows are deleted by batch id (never by a value) from bronze and quarantine first, then the
    batches are marked 'rolled_back'. Done before landing anything, so it does not matter whether
    the rerun sees the same file (same batch id), a changed one, or other JDBC rows. Killed in
    between, the batches are still 'started' and the next run deletes again (a no-op) and marks them.
    """
    states = _batch_states(ctx) if states is None else states
    rows = sorted(
        (s for s in states.values() if s["source"] == src.name and s["status"] == STARTED), key=lambda s: s["batch_id"]
    )
    if not rows:
        return []
    ids = [r["batch_id"] for r in rows]
    listed = ", ".join(f"'{b}'" for b in ids)  # our own hex ids
    for address in (bronze_address(src.name), S.BRONZE_QUARANTINE.address):
        if ctx.lake.exists(address):
            removed = ctx.lake.delete(address, f"{S.BATCH_ID} IN ({listed})")
            if removed:
                log.warning("source %s: removed %s rows that killed batch(es) %s left in %s", src.name, removed, listed, address)
    if fault:
        fault("during_rollback")
    marked = [{**r, "status": ROLLED_BACK} for r in rows]
    ctx.lake.upsert_rows(S.OPS_BATCHES.address, marked, S.OPS_BATCHES.schema, ["batch_id"])
    log.warning("source %s: rolled back %s batch(es) left 'started' by a killed run", src.name, len(ids))
    return ids


def land_batch(
    ctx: "Context",
    src: SourceConfig,
    parsed: ParsedFile,
    batch_id: str,
    file: str,
    size: int,
    checksum: str,
    run: Run,
    suppression: set[tuple[str, str]],
    fault: Fault | None = None,
    watermark: str | None = None,
) -> BatchResult:
    """Write one batch: 'started' -> bronze -> quarantine -> 'landed'.

    Everything that can fail on the data (schema, reconciliation) is done before the first write,
    so a refused batch leaves every table as it was.
    """
    now = datetime.now(timezone.utc)
    schema = bronze_schema(src)
    forms = suppression_forms(ctx, parsed, src) if suppression else None
    bronze, quarantine = build_bronze(parsed, src, batch_id, file, now, suppression, ctx.cfg.privacy.salt, forms)
    parse_quarantine = [
        _quarantine_row(src.name, batch_id, file, line, reason, raw, now) for line, reason, raw in parsed.quarantine
    ]
    quarantine = parse_quarantine + quarantine
    if bronze.num_rows + len(quarantine) != parsed.rows_read:
        raise DataError(
            f"source {src.name}, {file}: {parsed.rows_read} rows read but {bronze.num_rows} landed "
            f"and {len(quarantine)} quarantined; refusing to lose rows"
        )
    batch_row = {
        "batch_id": batch_id,
        "source": src.name,
        "path": file,
        "size": size,
        "checksum": checksum,
        "rows_read": parsed.rows_read,
        "rows_landed": None,
        "rows_quarantined": None,
        "watermark": watermark,
        "status": STARTED,
        "run_id": run.run_id,
        "landed_at": None,
    }
    added = ctx.lake.add_missing_columns(bronze_address(src.name), schema)
    if added:
        # A field mapped since the table was created: earlier rows keep its value in _extra.
        log.info("source %s: bronze columns added for newly mapped fields: %s", src.name, ", ".join(added))
    ctx.lake.upsert_rows(S.OPS_BATCHES.address, [batch_row], S.OPS_BATCHES.schema, ["batch_id"])
    if fault:
        fault("after_started")
    ctx.lake.append_arrow(bronze_address(src.name), bronze, schema)
    if fault:
        fault("after_bronze")
    if quarantine:
        ctx.lake.append_rows(S.BRONZE_QUARANTINE.address, quarantine, S.BRONZE_QUARANTINE.schema)
    if fault:
        fault("after_quarantine")
    batch_row.update(
        rows_landed=bronze.num_rows,
        rows_quarantined=len(quarantine),
        status=LANDED,
        landed_at=datetime.now(timezone.utc),
    )
    ctx.lake.upsert_rows(S.OPS_BATCHES.address, [batch_row], S.OPS_BATCHES.schema, ["batch_id"])
    return BatchResult(batch_id, file, parsed.rows_read, bronze.num_rows, len(quarantine))


Connector = Callable[["Context", SourceConfig, Run, "set[tuple[str, str]]", "Fault | None", "list[str]"], "list[BatchResult]"]
CONNECTORS: Registry[Connector] = Registry("source connector")


@CONNECTORS.register("csv")
@CONNECTORS.register("json")
@CONNECTORS.register("ndjson")
@CONNECTORS.register("parquet")
def ingest_files(
    ctx: "Context",
    src: SourceConfig,
    run: Run,
    suppression: set[tuple[str, str]],
    fault: Fault | None = None,
    failures: list[str] | None = None,
) -> list[BatchResult]:
    """Land every new file of a source; a file that cannot be read fails alone (``failures``)."""
    states = _batch_states(ctx)
    results: list[BatchResult] = []
    failures = failures if failures is not None else []
    for path in discover_files(src, ctx.data_root):
        with open(path, "rb") as fh:
            data = fh.read()
        checksum = hashlib.sha256(data).hexdigest()
        named = lineage_path(path, ctx.data_root)
        batch_id = batch_id_for(src.name, named, len(data), checksum)
        previous = states.get(batch_id)
        if previous is not None and previous.get("status") == LANDED:
            results.append(BatchResult(batch_id, named, 0, 0, 0, skipped=True))
            continue
        where = f"source {src.name}, file {path}"
        try:
            parsed = parse_file(data, src, where)
            check_required(parsed, src, where)
        except DataError as exc:
            log.error("%s", exc)
            failures.append(str(exc))
            continue
        result = land_batch(ctx, src, parsed, batch_id, named, len(data), checksum, run, suppression, fault)
        run.stage(f"{src.name}: {os.path.basename(path)} landed {result.rows_landed:,}, quarantined {result.rows_quarantined:,}", result.rows_read)
        results.append(result)
    return results


def _instant(value: Any) -> datetime | None:
    """A watermark value as an aware UTC datetime (None: not a date or time, cannot be compared)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return None


def _having(ctx: "Context", df: "DataFrame", column: str, values: list[str]) -> "DataFrame":
    """Rows of ``df`` whose ``column`` is one of ``values`` (a semi-join when the list is long)."""
    from pyspark.sql import functions as F

    if len(values) <= 1000:
        return df.where(F.col(column).isin(values))
    wanted = ctx.spark.createDataFrame([(v,) for v in values], f"`{column}` string")
    return df.join(wanted, column, "left_semi")


def _seen_at_watermark(ctx: "Context", src: SourceConfig, parsed: ParsedFile, file: str, rows: list[int]) -> set[int]:
    """Which of ``rows`` (re-read at the last watermark) an earlier batch already landed or quarantined.

    Landed: bronze holds the same (record key, row hash). Quarantined: the same raw text without a
    key (missing key), or the same key refused as suppressed (its raw text is never kept).
    """
    from pyspark.sql import functions as F

    ident = row_identities(parsed, src, rows)
    keys = sorted({k for k, _ in ident.values() if k is not None})
    raws = sorted({parsed.raws[i] for i, (k, _) in ident.items() if k is None})
    landed: set[tuple[str, str]] = set()
    if keys and ctx.lake.exists(bronze_address(src.name)):
        found = _having(ctx, ctx.lake.read(bronze_address(src.name)), S.RECORD_KEY, keys)
        landed = {(r[0], r[1]) for r in found.select(S.RECORD_KEY, S.ROW_HASH).collect()}
    refused_keys: set[str] = set()
    refused_raws: set[str] = set()
    if ctx.lake.exists(S.BRONZE_QUARANTINE.address):
        q = ctx.lake.read(S.BRONZE_QUARANTINE.address).where((F.col(S.SOURCE) == src.name) & (F.col(S.FILE) == file))
        if keys:
            suppressed = _having(ctx, q.where(F.col("reason") == SUPPRESSED), S.RECORD_KEY, keys)
            refused_keys = {r[0] for r in suppressed.select(S.RECORD_KEY).collect()}
        if raws:
            keyless = _having(ctx, q.where(F.col(S.RECORD_KEY).isNull()), "raw", raws)
            refused_raws = {r[0] for r in keyless.select("raw").collect()}
    seen = set()
    for i, (key, digest) in ident.items():
        if (key is not None and ((key, digest) in landed or key in refused_keys)) or (
            key is None and parsed.raws[i] in refused_raws
        ):
            seen.add(i)
    return seen


def _subset(parsed: ParsedFile, keep: list[int]) -> ParsedFile:
    values = {c: [v[i] for i in keep] for c, v in parsed.values.items()}
    raws = [parsed.raws[i] for i in keep]
    return ParsedFile(list(parsed.columns), values, list(range(1, len(keep) + 1)), raws, rows_read=len(keep), encoding=parsed.encoding)


@CONNECTORS.register("jdbc")
def ingest_jdbc(
    ctx: "Context",
    src: SourceConfig,
    run: Run,
    suppression: set[tuple[str, str]],
    fault: Fault | None = None,
    failures: list[str] | None = None,
) -> list[BatchResult]:
    """Pull rows with ``updated_at >= last`` landed watermark, minus those already held.

    ``>=``, not ``>``: a row committed after the last pull but stamped with the same time as the
    watermark would otherwise be missed for ever. The rows re-read at the watermark are dropped
    when an earlier batch already holds them (same record key and row hash), so a rerun with
    nothing new lands nothing.
    """
    import pyarrow as pa

    del failures  # one pull per source: a failure fails the source (DataError)
    jdbc = src.jdbc
    if jdbc is None:
        raise ConfigError([f"sources.{src.name}.jdbc: got none; expected a jdbc section (url, table, user) for format jdbc"])
    states = _batch_states(ctx)
    marks = [s["watermark"] for s in states.values() if s["source"] == src.name and s["status"] == LANDED and s["watermark"]]
    last = max(marks) if marks else None
    wm = jdbc.watermark_column
    query = f"SELECT * FROM {jdbc.table}"
    stamp = datetime.fromisoformat(last) if last else None  # our own ISO value; parsed so nothing else gets in
    if stamp is not None:
        query += f" WHERE {wm} >= TIMESTAMP '{stamp.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    reader = (
        ctx.spark.read.format("jdbc")
        .option("url", jdbc.url)
        .option("query", query)
        .option("driver", jdbc.driver)
        .option("fetchsize", str(jdbc.fetch_size))
    )
    if jdbc.user:
        reader = reader.option("user", jdbc.user)
    if jdbc.password:
        reader = reader.option("password", jdbc.password)
    try:
        df = reader.load()
    except Exception as exc:  # noqa: BLE001 - the JDBC driver's errors are Java exceptions
        raise DataError(f"source {src.name}: cannot read {jdbc.table} over JDBC: {str(exc).splitlines()[0]}") from exc
    if wm not in df.columns:
        raise SchemaError(
            f"source {src.name}: table {jdbc.table} has no watermark column {wm!r}; available: {', '.join(df.columns)}"
        )
    table = df.orderBy(wm, *src.primary_key).toArrow()
    if table.num_rows == 0:
        log.info("source %s: no rows changed since %s", src.name, last)
        return []
    marks_seen = table.column(wm).to_pylist()
    new_mark = max(v for v in marks_seen if v is not None)
    mark_text = new_mark.isoformat() if hasattr(new_mark, "isoformat") else str(new_mark)
    values: dict[str, list[str | None]] = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            values[name] = [v.isoformat() if v is not None else None for v in col.to_pylist()]
        else:
            values[name] = col.cast(pa.string()).to_pylist()
    n = table.num_rows
    raws = [json.dumps({c: values[c][i] for c in table.column_names}, ensure_ascii=False) for i in range(n)]
    parsed = ParsedFile(list(table.column_names), values, list(range(1, n + 1)), raws, rows_read=n, encoding="jdbc")
    where = f"source {src.name}, table {jdbc.table}"
    check_required(parsed, src, where)
    file = f"jdbc:{jdbc.table}"
    if stamp is not None:
        last_instant = _instant(stamp)
        # Rows not after the watermark were (or may have been) pulled before; only they are checked.
        boundary = [
            i for i, v in enumerate(marks_seen) if v is not None and (_instant(v) is None or _instant(v) <= last_instant)
        ]
        seen = _seen_at_watermark(ctx, src, parsed, file, boundary)
        if seen:
            run.metric(f"{src.name}.already_landed", len(seen))
            log.info("source %s: %s row(s) re-read at watermark %s are already landed", src.name, len(seen), last)
            parsed = _subset(parsed, [i for i in range(n) if i not in seen])
            n = parsed.rows_read
        if n == 0:
            log.info("source %s: no new rows at or after %s", src.name, last)
            return []
    checksum = hashlib.sha256("\n".join([str(last), mark_text, *parsed.raws]).encode("utf-8")).hexdigest()
    batch_id = batch_id_for(src.name, file, n, checksum)
    result = land_batch(ctx, src, parsed, batch_id, file, n, checksum, run, suppression, fault, mark_text)
    run.stage(f"{src.name}: {jdbc.table} landed {result.rows_landed:,} (watermark {mark_text})", n)
    return [result]


def run(ctx: "Context", sources: list[str] | None = None, fault: Fault | None = None) -> dict[str, Any]:
    """Land every configured source (or the named ones); returns counts per source.

    A source or file that fails does not stop the others; the run then fails (ops.runs 'failed',
    with every reason) after the rest has landed.
    """
    cfg = ctx.cfg
    chosen = [s for s in cfg.sources if not sources or s.name in sources]
    unknown = sorted(set(sources or []) - {s.name for s in cfg.sources})
    if unknown:
        raise DataError(f"unknown source(s) {', '.join(unknown)}; configured: {', '.join(s.name for s in cfg.sources)}")
    summary: dict[str, Any] = {}
    with record_run(ctx.lake, "ingest", ctx.config_hash, ctx.parent_run_id) as r:
        suppression = load_suppression(ctx)
        failures: list[str] = []
        states = _batch_states(ctx)
        for src in chosen:
            try:
                connector = CONNECTORS.get(src.format)
            except KeyError as exc:
                failures.append(f"source {src.name}: {exc.args[0]}")
                continue
            try:
                bronze_columns(src)
                recovered = recover_source(ctx, src, fault, states)
                results = connector(ctx, src, r, suppression, fault, failures)
            except (DataError, SchemaError) as exc:
                log.error("%s", exc)
                failures.append(str(exc))
                continue
            if recovered:
                r.metric(f"{src.name}.rolled_back", len(recovered))
            read = sum(b.rows_read for b in results)
            landed = sum(b.rows_landed for b in results)
            quarantined = sum(b.rows_quarantined for b in results)
            r.rows_in += read
            r.rows_out += landed
            r.rows_quarantined += quarantined
            r.metric(f"{src.name}.batches", sum(1 for b in results if not b.skipped))
            r.metric(f"{src.name}.skipped", sum(1 for b in results if b.skipped))
            # Reconciliation per source, next to the run's totals: read = landed + quarantined.
            r.metric(f"{src.name}.rows_read", read)
            r.metric(f"{src.name}.rows_landed", landed)
            r.metric(f"{src.name}.rows_quarantined", quarantined)
            summary[src.name] = {"read": read, "landed": landed, "quarantined": quarantined, "batches": len(results)}
        if r.rows_in != r.rows_out + r.rows_quarantined:
            raise DataError(f"ingest: {r.rows_in} rows read but {r.rows_out} landed and {r.rows_quarantined} quarantined")
        if failures:
            raise DataError(f"ingest failed ({len(failures)}): " + " || ".join(failures))
    return summary
