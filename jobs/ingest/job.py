"""Ingest job: land every source as a bronze Delta table, once per delivered file or batch.

Per batch (a file in a landing folder, or a JDBC pull above the last watermark):
  ops.batches row 'started' -> bronze.<source> rows -> bronze._quarantine rows -> 'landed'.
A batch already 'landed' is skipped (idempotency: batch id = hash of source, path, size and
content checksum, so a changed file under the same name is a new batch). A batch left 'started'
by a killed run is cleaned up (its rows deleted by batch id) and landed again, so the rerun
completes it without duplicates. Rows read = rows landed + rows quarantined, per batch.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jobs.common import schemas as S
from jobs.common.errors import DataError
from jobs.common.keys import record_key, row_hash, salted_hash
from jobs.common.runlog import Run, record_run

from .config import SourceConfig
from .readers import MISSING_KEY, SUPPRESSED, ParsedFile, check_required, parse_file

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql.types import StructType

    from jobs.common.context import Context

log = logging.getLogger(__name__)

Fault = Callable[[str], None]
_INVALID_NAME = re.compile(r"[ ,;{}()\n\t=]")


def bronze_column(field: str) -> str:
    """Bronze column name of a source field (Delta forbids some characters without column mapping)."""
    return _INVALID_NAME.sub("_", field)


def bronze_address(source: str) -> str:
    return f"bronze.{source}"


def bronze_schema(src: SourceConfig) -> "StructType":
    from pyspark.sql.types import StringType, StructField, StructType

    fields = [StructField(bronze_column(f), StringType(), True) for f in src.fields]
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


def _normalise_identifier(kind: str, value: str, country: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if kind == "email":
        return value.lower()
    if kind == "phone":
        import phonenumbers

        try:
            num = phonenumbers.parse(value, country)
        except phonenumbers.NumberParseException:
            return None
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    return value


def build_bronze(
    parsed: ParsedFile,
    src: SourceConfig,
    batch_id: str,
    file: str,
    ingested_at: datetime,
    suppression: set[tuple[str, str]],
    salt: str,
) -> tuple["pa.Table", list[dict[str, Any]]]:
    """Bronze rows (strings + lineage) and quarantine rows for one parsed batch."""
    import pyarrow as pa

    from jobs.common.delta import to_arrow_schema

    fields = src.fields
    mapped = set(fields)
    extra_cols = [c for c in parsed.columns if c not in mapped]
    id_fields = {
        kind: src.mapping[kind]
        for kind in ("email", "phone", "customer_number", "loyalty_card", "cookie_id", "device_id")
        if kind in src.mapping
    }
    country_field = src.mapping.get("country")
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
                country = (cols[country_field][i] if country_field else None) or src.default_country
                country = country if len(country) == 2 else src.default_country
                for kind, f in id_fields.items():
                    v = cols[f][i]
                    norm = _normalise_identifier(kind, v, country.upper()) if v else None
                    if norm and (kind, salted_hash(salt, kind, norm)) in suppression:
                        hit = True
                        break
            if hit:
                # The raw text of a suppressed row is not kept: that would bring the subject back.
                quarantine.append(
                    _quarantine_row(src.name, batch_id, file, parsed.lines[i], SUPPRESSED, None, ingested_at, key)
                )
                continue
        row_values = [cols[f][i] for f in fields] + [f"{c}={extras[c][i]}" for c in extra_cols if extras[c][i] is not None]
        keep.append(i)
        keys.append(key)
        hashes.append(row_hash(row_values))
    n = len(keep)
    data: dict[str, list[Any]] = {bronze_column(f): [cols[f][i] for i in keep] for f in fields}
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


def _cleanup_partial(ctx: "Context", src: SourceConfig, batch_id: str) -> None:
    """Delete what a killed run wrote for this batch (by batch id, never by a value)."""
    for address in (bronze_address(src.name), S.BRONZE_QUARANTINE.address):
        if ctx.lake.exists(address):
            removed = ctx.lake.delete(address, f"{S.BATCH_ID} = '{batch_id}'")
            if removed:
                log.warning("batch %s: removed %s rows a killed run left in %s", batch_id, removed, address)


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
    previous: dict[str, Any] | None,
    fault: Fault | None = None,
    watermark: str | None = None,
) -> BatchResult:
    now = datetime.now(timezone.utc)
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
        "status": "started",
        "run_id": run.run_id,
        "landed_at": None,
    }
    if previous is not None:
        _cleanup_partial(ctx, src, batch_id)
    ctx.lake.upsert_rows(S.OPS_BATCHES.address, [batch_row], S.OPS_BATCHES.schema, ["batch_id"])
    bronze, quarantine = build_bronze(parsed, src, batch_id, file, now, suppression, ctx.cfg.privacy.salt)
    parse_quarantine = [
        _quarantine_row(src.name, batch_id, file, line, reason, raw, now) for line, reason, raw in parsed.quarantine
    ]
    quarantine = parse_quarantine + quarantine
    if bronze.num_rows + len(quarantine) != parsed.rows_read:
        raise DataError(
            f"source {src.name}, {file}: {parsed.rows_read} rows read but {bronze.num_rows} landed "
            f"and {len(quarantine)} quarantined; refusing to lose rows"
        )
    ctx.lake.append_arrow(bronze_address(src.name), bronze, bronze_schema(src))
    if fault:
        fault("after_bronze")
    if quarantine:
        ctx.lake.append_rows(S.BRONZE_QUARANTINE.address, quarantine, S.BRONZE_QUARANTINE.schema)
    if fault:
        fault("after_quarantine")
    batch_row.update(
        rows_landed=bronze.num_rows,
        rows_quarantined=len(quarantine),
        status="landed",
        landed_at=datetime.now(timezone.utc),
    )
    ctx.lake.upsert_rows(S.OPS_BATCHES.address, [batch_row], S.OPS_BATCHES.schema, ["batch_id"])
    return BatchResult(batch_id, file, parsed.rows_read, bronze.num_rows, len(quarantine))


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
        if previous is not None and previous.get("status") == "landed":
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
        result = land_batch(ctx, src, parsed, batch_id, named, len(data), checksum, run, suppression, previous, fault)
        run.stage(f"{src.name}: {os.path.basename(path)} landed {result.rows_landed:,}, quarantined {result.rows_quarantined:,}", result.rows_read)
        results.append(result)
    return results


def ingest_jdbc(
    ctx: "Context", src: SourceConfig, run: Run, suppression: set[tuple[str, str]], fault: Fault | None = None
) -> list[BatchResult]:
    """Pull rows changed since the last landed watermark (``updated_at > last``)."""
    import pyarrow as pa

    assert src.jdbc is not None  # validated by SourceConfig
    jdbc = src.jdbc
    states = _batch_states(ctx)
    marks = [s["watermark"] for s in states.values() if s["source"] == src.name and s["status"] == "landed" and s["watermark"]]
    last = max(marks) if marks else None
    wm = jdbc.watermark_column
    query = f"SELECT * FROM {jdbc.table}"
    if last:
        stamp = datetime.fromisoformat(last)  # our own ISO value; parsed so nothing else gets in
        query += f" WHERE {wm} > TIMESTAMP '{stamp.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
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
    order = [*src.primary_key]
    table = df.orderBy(wm, *order).toArrow()
    if table.num_rows == 0:
        log.info("source %s: no rows changed since %s", src.name, last)
        return []
    new_mark = max(v for v in table.column(wm).to_pylist() if v is not None)
    mark_text = new_mark.isoformat() if hasattr(new_mark, "isoformat") else str(new_mark)
    values: dict[str, list[str | None]] = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            values[name] = [v.isoformat() if v is not None else None for v in col.to_pylist()]
        else:
            values[name] = col.cast(pa.string()).to_pylist()
    n = table.num_rows
    import json

    raws = [json.dumps({c: values[c][i] for c in table.column_names}, ensure_ascii=False) for i in range(n)]
    parsed = ParsedFile(list(table.column_names), values, list(range(1, n + 1)), raws, rows_read=n, encoding="jdbc")
    where = f"source {src.name}, table {jdbc.table}"
    check_required(parsed, src, where)
    checksum = hashlib.sha256(f"{last}|{mark_text}|{n}".encode()).hexdigest()
    batch_id = batch_id_for(src.name, f"jdbc:{jdbc.table}", n, checksum)
    result = land_batch(
        ctx, src, parsed, batch_id, f"jdbc:{jdbc.table}", n, checksum, run, suppression, states.get(batch_id), fault, mark_text
    )
    run.stage(f"{src.name}: {jdbc.table} landed {result.rows_landed:,} (watermark {mark_text})", n)
    return [result]


def run(ctx: "Context", sources: list[str] | None = None, fault: Fault | None = None) -> dict[str, Any]:
    """Land every configured source (or the named ones); returns counts per source."""
    cfg = ctx.cfg
    chosen = [s for s in cfg.sources if not sources or s.name in sources]
    unknown = sorted(set(sources or []) - {s.name for s in cfg.sources})
    if unknown:
        raise DataError(f"unknown source(s) {', '.join(unknown)}; configured: {', '.join(s.name for s in cfg.sources)}")
    summary: dict[str, Any] = {}
    with record_run(ctx.lake, "ingest", ctx.config_hash, ctx.parent_run_id) as r:
        suppression = load_suppression(ctx)
        failures: list[str] = []
        for src in chosen:
            try:
                if src.format == "jdbc":
                    results = ingest_jdbc(ctx, src, r, suppression, fault)
                else:
                    results = ingest_files(ctx, src, r, suppression, fault, failures)
            except DataError as exc:
                failures.append(str(exc))
                continue
            read = sum(b.rows_read for b in results)
            landed = sum(b.rows_landed for b in results)
            quarantined = sum(b.rows_quarantined for b in results)
            r.rows_in += read
            r.rows_out += landed
            r.rows_quarantined += quarantined
            r.metric(f"{src.name}.batches", sum(1 for b in results if not b.skipped))
            r.metric(f"{src.name}.skipped", sum(1 for b in results if b.skipped))
            summary[src.name] = {"read": read, "landed": landed, "quarantined": quarantined, "batches": len(results)}
        if r.rows_in != r.rows_out + r.rows_quarantined:
            raise DataError(f"ingest: {r.rows_in} rows read but {r.rows_out} landed and {r.rows_quarantined} quarantined")
        if failures:
            raise DataError("ingest failed: " + " || ".join(failures))
    return summary
