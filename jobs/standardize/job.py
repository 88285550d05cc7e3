"""Standardize job: bronze -> silver.records, silver.identifiers, silver.events, silver.dq_metrics.

Reads each source's bronze table, renames the mapped source fields to the canonical names and
hands them to the pure transforms in ``transforms``. silver.records holds the latest row per
record key. Incremental runs standardise only rows whose (record key, row hash) silver has not
seen and merge them in; full runs rebuild silver.

silver.dq_metrics measures, per source and batch, the rows that batch delivered (every row it
landed in bronze, including re-deliveries of unchanged rows and rows a later batch superseded),
in both modes: a batch's metrics do not change when later batches arrive, so a full run gives the
rows an incremental run merged batch by batch. An incremental run measures the batches silver.dq_metrics
does not have yet (one killed before it wrote them is measured by the next); a full run measures
every batch again and replaces the table. Each distinct version (record key, row hash) is
standardised once per run, and a version silver.records already holds is not standardised again:
its silver row is what the batch delivered. Records an events source derives (``records_from``,
anonymous web cookies) are no source's delivery and are not measured.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import logging
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType

from jobs.common import schemas as S
from jobs.common.keys import record_key_col
from jobs.common.runlog import record_run
from jobs.ingest.config import SourceConfig
from jobs.ingest.job import bronze_address, bronze_column

from .cleansers import SourceCountry
from .transforms import (
    DQ_COLUMNS,
    OWNER_RECORD_KEY,
    compute_dq_metrics,
    extract_identifiers,
    owner_record_key,
    standardize_events,
    standardize_records,
)

if TYPE_CHECKING:
    from jobs.common.context import Context

log = logging.getLogger(__name__)

LINEAGE_IN = (S.RECORD_KEY, S.SOURCE, S.BATCH_ID, S.ROW_HASH, S.INGESTED_AT)


_ORDER = (S.INGESTED_AT, S.BATCH_ID, S.LINE)  # landing order; batch and line make it total
_STARTS = f"{S.TMP}job_starts"


def with_current_version_start(rows: DataFrame, name: str) -> DataFrame:
    """``rows`` with the boolean column ``name``: true on the row each record key's current
    version is taken from, the first row of its last run of identical versions (row hashes) in
    landing order.

    A source that sends an unchanged row again (a daily full export) adds nothing: the version
    keeps the lineage (batch, ingest time) of the delivery that brought it. An incremental run
    sees exactly that, because silver already holds the version and does not take it again, and
    a full run over the same bronze rows must pick the same row, or golden's ``last_seen_at``
    (which reads the ingest time) would differ between the two. A version that comes back after
    another (A, B, A) starts a new run: it is taken from its latest arrival.
    """
    by_key = Window.partitionBy(S.RECORD_KEY).orderBy(*[F.col(c).asc() for c in _ORDER])
    rows = rows.withColumn(_STARTS, F.coalesce(F.lag(S.ROW_HASH).over(by_key) != F.col(S.ROW_HASH), F.lit(True)))
    here = F.struct(*[F.col(c) for c in _ORDER])
    last_start = F.max(F.when(F.col(_STARTS), here)).over(Window.partitionBy(S.RECORD_KEY))
    return rows.withColumn(name, F.col(_STARTS) & (here == last_start)).drop(_STARTS)


def latest_rows(bronze: DataFrame) -> DataFrame:
    """One row per record key: its current version, from :func:`with_current_version_start`."""
    flag = f"{S.TMP}job_current"
    return with_current_version_start(bronze, flag).where(F.col(flag)).drop(flag)


def source_field(bronze: DataFrame, field: str) -> Column:
    """A source field's value in bronze: its column, else the field in ``_extra``.

    Rows landed before the field was mapped (a mapping or owner key added to a source later)
    keep it in ``_extra``; a table that never landed a row since has no column for it at all.
    """
    extra = F.col(S.EXTRA)[field]
    column = bronze_column(field)
    return F.coalesce(F.col(f"`{column}`"), extra) if column in bronze.columns else extra


def _extensions(bronze: DataFrame, src: SourceConfig) -> Any:
    if not src.extensions:
        return F.create_map().cast(MapType(StringType(), StringType()))
    pairs = [
        F.struct(F.lit(name).alias("key"), source_field(bronze, field).alias("value"))
        for name, field in sorted(src.extensions.items())
    ]
    return F.map_from_entries(F.filter(F.array(*pairs), lambda e: e["value"].isNotNull()))


def canonical_person_rows(bronze: DataFrame, src: SourceConfig) -> DataFrame:
    """Source fields renamed to canonical names, plus lineage (with ``_line``), trust rank and extensions."""
    cols = [source_field(bronze, field).alias(canonical) for canonical, field in src.mapping.items()]
    return bronze.select(
        *cols,
        *[F.col(c) for c in (*LINEAGE_IN, S.LINE)],
        F.lit(src.trust_rank).alias("trust_rank"),
        _extensions(bronze, src).alias("extensions"),
    )


def canonical_event_rows(bronze: DataFrame, src: SourceConfig) -> DataFrame:
    """Source fields renamed to canonical event names, lineage, the event type and the owner key.

    ``owner_record_key``: the record key of the person record that owns each event
    (``SourceConfig.owner``), computed from the event's copy of that record's primary key.
    """
    cols = [source_field(bronze, field).alias(canonical) for canonical, field in src.mapping.items()]
    if src.owner is not None:
        owner = owner_record_key(src.owner.source, [source_field(bronze, f) for f in src.owner.key])
        cols.append(owner.alias(OWNER_RECORD_KEY))
    df = bronze.select(*cols, *[F.col(c) for c in LINEAGE_IN])
    raw_type = F.col("event_type") if "event_type" in src.mapping else F.lit(None).cast("string")
    mapped = raw_type
    if src.event_types:
        mapping = F.create_map(*[x for k, v in sorted(src.event_types.items()) for x in (F.lit(k), F.lit(v))])
        mapped = F.coalesce(mapping[F.lower(F.trim(raw_type))], raw_type)
    return df.withColumn("event_type", F.coalesce(mapped, F.lit(src.event_type)))


def derived_person_rows(bronze: DataFrame, src: SourceConfig) -> DataFrame:
    """Events whose identifier (a cookie) becomes an anonymous person record of ``records_source``.

    A record's values (first and last event time, the device of its latest event) come from all
    its events, each in its current version (:func:`latest_rows`: an event delivered twice counts
    once, from the delivery that brought it); its lineage (batch, ingest time) from its latest event by (event time, key), and
    its row hash covers every value it carries. So a late event with an older time (which moves
    ``created_at``) or a new device changes the hash, and an incremental run re-derives exactly
    what a full run over the same events derives, lineage included.
    """
    assert src.records_from is not None  # callers pass events sources with records_from only
    ident = bronze_column(src.mapping[src.records_from])
    at = bronze_column(src.mapping["event_at"]) if "event_at" in src.mapping else S.INGESTED_AT
    source_name = src.records_source or src.name
    device = bronze_column(src.mapping["device_id"]) if "device_id" in src.mapping and src.records_from != "device_id" else None
    order = F.struct(F.col(at), F.col(S.RECORD_KEY))  # total: one row per event key (latest_rows)
    agg = latest_rows(bronze).where(F.col(ident).isNotNull()).groupBy(F.col(ident).alias("__cdp_id")).agg(
        F.min(at).alias("created_at"),
        F.max(at).alias("updated_at"),
        F.max_by(F.col(S.INGESTED_AT), order).alias(S.INGESTED_AT),
        F.max_by(F.col(S.BATCH_ID), order).alias(S.BATCH_ID),
        *([F.max_by(F.col(device), order).alias("device_id")] if device else []),
    )
    hashed = [F.col("__cdp_id"), F.col("created_at").cast("string"), F.col("updated_at").cast("string")]
    if device:
        hashed.append(F.coalesce(F.col("device_id"), F.lit("\x00")))
    out = agg.select(
        F.col("__cdp_id").alias(src.records_from),
        F.col("__cdp_id").alias("source_id"),
        *([F.col("device_id")] if device and src.records_from != "device_id" else []),
        F.col("created_at"),
        F.col("updated_at"),
        record_key_col(source_name, F.col("__cdp_id")).alias(S.RECORD_KEY),
        F.lit(source_name).alias(S.SOURCE),
        F.col(S.BATCH_ID),
        F.substring(F.sha2(F.concat_ws("\x1f", *hashed), 256), 1, 32).alias(S.ROW_HASH),
        F.col(S.INGESTED_AT),
        F.lit(src.trust_rank).alias("trust_rank"),
        F.create_map().cast(MapType(StringType(), StringType())).alias("extensions"),
    )
    return out


def identifier_types_by_source(sources: list[SourceConfig]) -> dict[str, tuple[str, ...]]:
    """Record source -> the identifier types it contributes to silver.identifiers.

    A persons source by its name; the anonymous records an events source derives
    (``records_from``) under ``records_source``: its ``identifiers`` apply to those records.
    Sources deriving records under one name contribute the union of their types.
    """
    out: dict[str, set[str]] = {}
    for src in sources:
        if src.kind == "persons":
            out.setdefault(src.name, set()).update(src.identifiers)
        elif src.records_from:
            out.setdefault(src.records_source or src.name, set()).update(src.identifiers)
    return {name: tuple(t for t in S.IDENTIFIER_TYPES if t in types) for name, types in out.items()}


# Carried through standardisation: the row is its record's latest version (a silver.records row);
# the other standardised rows are older versions, standardised for their batch's dq metrics only.
LATEST = f"{S.TMP}job_latest"
_HELD, _MEASURED, _FIRST, _NEEDED = (f"{S.TMP}job_{n}" for n in ("held", "measured", "first", "needed"))


def _flag_of(rows: DataFrame, keys: DataFrame | None, on: list[str], name: str) -> DataFrame:
    """``rows`` + boolean ``name``: whether ``keys`` (columns ``on``) holds the row's values."""
    if keys is None:
        return rows.withColumn(name, F.lit(False))
    marked = keys.select(*on).distinct().withColumn(name, F.lit(True))
    return rows.join(marked, on, "left").withColumn(name, F.coalesce(F.col(name), F.lit(False)))


def person_versions(rows: DataFrame, held: DataFrame | None, measured: DataFrame | None) -> DataFrame:
    """The versions of a persons source's records to standardise, each once, flagged :data:`LATEST`.

    ``rows``: every bronze row of the source (:func:`canonical_person_rows`: lineage with
    ``_line``). A version is a (record key, row hash); it is standardised when silver.records does
    not hold it from the row it is taken from (``held``: ``_record_key, _row_hash, _batch_id``;
    None in a full run, which rebuilds silver): a version silver took from an earlier delivery is
    taken again when another version came between (A from b2, then B in b3 and A in b4: A from b4,
    as a full run takes it) and it is either its record's latest row (a new or changed
    record: silver.records) or delivered by a batch silver.dq_metrics has not measured
    (``measured``: ``_source, _batch_id``; None in a full run: every batch is measured again).
    The record's current version is taken from the row :func:`with_current_version_start` marks (the
    delivery that brought it, as an incremental run keeps it); another version from its latest row.
    """
    order = [F.col(c).desc() for c in _ORDER]
    df = _flag_of(rows, held, [S.RECORD_KEY, S.ROW_HASH, S.BATCH_ID], _HELD)
    df = _flag_of(df, measured, [S.SOURCE, S.BATCH_ID], _MEASURED)
    wanted = (F.col(LATEST) | ~F.col(_MEASURED)).cast("int")
    df = with_current_version_start(df, LATEST)
    current_hash = F.max(F.when(F.col(LATEST), F.col(S.ROW_HASH))).over(Window.partitionBy(S.RECORD_KEY))
    df = df.withColumn(
        _FIRST,
        F.when(F.col(S.ROW_HASH) == current_hash, F.col(LATEST)).otherwise(
            F.row_number().over(Window.partitionBy(S.RECORD_KEY, S.ROW_HASH).orderBy(*order)) == 1
        ),
    )
    df = df.withColumn(_NEEDED, ~F.col(_HELD) & (F.max(wanted).over(Window.partitionBy(S.RECORD_KEY, S.ROW_HASH)) == 1))
    return df.where(F.col(_FIRST) & F.col(_NEEDED)).drop(_HELD, _MEASURED, _FIRST, _NEEDED)


def delivered_rows(rows: DataFrame, measured: DataFrame | None) -> DataFrame:
    """(record_key, row_hash, source, batch_id) of the rows batches not measured yet delivered."""
    df = _flag_of(rows, measured, [S.SOURCE, S.BATCH_ID], _MEASURED)
    return df.where(~F.col(_MEASURED)).select(
        F.col(S.RECORD_KEY).alias("record_key"),
        F.col(S.ROW_HASH).alias("row_hash"),
        F.col(S.SOURCE).alias("source"),
        F.col(S.BATCH_ID).alias("batch_id"),
    )


def measured_rows(delivered: DataFrame, versions: DataFrame) -> DataFrame:
    """One SILVER_RECORDS row per delivered row: its version as standardised, under the
    delivering batch (compute_dq_metrics groups by source and batch)."""
    pool = versions.drop("source", "batch_id")
    return delivered.join(pool, ["record_key", "row_hash"]).select(*S.SILVER_RECORDS.column_names)


def person_inputs(ctx: "Context", incremental: bool = False) -> tuple[list[tuple[SourceConfig, DataFrame]], DataFrame | None]:
    """(rows to standardise per source, delivered rows to measure) from bronze.

    Persons sources: :func:`person_versions` and :func:`delivered_rows`. Events sources with
    ``records_from``: their derived anonymous records (all of them, or in an incremental run those
    silver.records does not hold), never measured: a source delivered events, not these records.
    """
    held = measured = None
    if incremental and ctx.lake.exists(S.SILVER_RECORDS.address):
        held = ctx.lake.read(S.SILVER_RECORDS.address).select(
            F.col("record_key").alias(S.RECORD_KEY), F.col("row_hash").alias(S.ROW_HASH), F.col("batch_id").alias(S.BATCH_ID)
        )
    if incremental and ctx.lake.exists(S.SILVER_DQ_METRICS.address):
        measured = ctx.lake.read(S.SILVER_DQ_METRICS.address).select(
            F.col("source").alias(S.SOURCE), F.col("batch_id").alias(S.BATCH_ID)
        )
    out: list[tuple[SourceConfig, DataFrame]] = []
    delivered: list[DataFrame] = []
    for src in ctx.cfg.sources:
        address = bronze_address(src.name)
        if not ctx.lake.exists(address):
            log.warning("source %s has no bronze table yet; skipped", src.name)
            continue
        bronze = ctx.lake.read(address)
        if src.kind == "persons":
            rows = canonical_person_rows(bronze, src)
            out.append((src, person_versions(rows, held, measured)))
            delivered.append(delivered_rows(rows, measured))
        elif src.records_from:
            derived = derived_person_rows(bronze, src)
            if incremental:
                derived = _only_changed(derived, ctx, S.SILVER_RECORDS.address, "record_key")
            out.append((src, derived.withColumn(LATEST, F.lit(True))))
    return out, functools.reduce(DataFrame.unionByName, delivered) if delivered else None


def event_inputs(ctx: "Context") -> list[tuple[SourceConfig, DataFrame]]:
    out = []
    for src in ctx.cfg.sources:
        address = bronze_address(src.name)
        if src.kind != "events" or not ctx.lake.exists(address):
            continue
        out.append((src, canonical_event_rows(latest_rows(ctx.lake.read(address)), src)))
    return out


_COUNTRY = "__cdp_source_country"


def _standardized(
    pairs: list[tuple[SourceConfig, DataFrame]], ctx: "Context", fn: Any, changed_only: bool
) -> DataFrame | None:
    """All sources' canonical rows in one union, standardised by one plan.

    Each source's default country rides along as a column (:class:`SourceCountry`), so the wide
    cleansing plan is built once, not once per source (building it costs thousands of JVM calls).

    When it holds only the rows an incremental run picked against silver (``changed_only``), the
    union is materialised before that plan goes on top of it. It is small then, and below it sit
    the joins against silver that pick those rows: with those, the optimiser pushed the wide
    projection into every branch of the union and adaptive execution optimised that again at every
    stage (measured on an incremental batch of 36 records, with other work on the machine: optimise
    23 s -> 3.6 s, execute 66 s -> 12 s; the whole stage 109 s -> 37 s). A full run's union holds
    every row delivered (at 1,000,000 persons: 3.2 million records, and the web events, several
    times as many) and is not held: materialised, it competes with the standardised rows for the
    driver's memory.
    """
    if not pairs:
        return None
    frames = [df.withColumn(_COUNTRY, F.lit(src.default_country)) for src, df in pairs]
    union = functools.reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    if changed_only:
        union = union.localCheckpoint()
    country = SourceCountry(F.col(_COUNTRY), frozenset(src.default_country for src, _ in pairs))
    return fn(union, ctx.cfg.standardize, country)


def _only_changed(new: DataFrame, ctx: "Context", address: str, key: str) -> DataFrame:
    """Rows whose (key, row hash, batch) the silver table does not hold yet: a new or changed row,
    or a version silver took from another delivery than the one it is taken from now (see
    :func:`person_versions`)."""
    if not ctx.lake.exists(address):
        return new
    seen = ctx.lake.read(address).select(
        F.col(key).alias(S.RECORD_KEY), F.col("row_hash").alias(S.ROW_HASH), F.col("batch_id").alias(S.BATCH_ID)
    )
    return new.join(seen, [S.RECORD_KEY, S.ROW_HASH, S.BATCH_ID], "left_anti")


# The cleansing plan is one wide projection of many small expressions; Spark's whole-stage code
# generation spends far longer compiling it than running it (measured on 988 records: 30 s build +
# 73 s first run with codegen, 19 s + 23 s interpreted), so this stage runs interpreted.
INTERPRETED = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


@contextmanager
def _session_conf(spark: Any, settings: dict[str, str]) -> Iterator[None]:
    old: dict[str, str | None] = {}
    for k, v in settings.items():
        try:
            old[k] = spark.conf.get(k, None)
            spark.conf.set(k, v)
        except Exception:  # noqa: BLE001 - a platform may pin it; run as configured
            log.debug("could not set %s", k)
    try:
        yield
    finally:
        for k, v in old.items():
            try:
                if v is None:
                    spark.conf.unset(k)
                else:
                    spark.conf.set(k, v)
            except Exception:  # noqa: BLE001
                log.debug("could not restore %s", k)


def run(ctx: "Context", incremental: bool = False) -> dict[str, Any]:
    with _session_conf(ctx.spark, INTERPRETED):
        return _run(ctx, incremental)


def _run(ctx: "Context", incremental: bool = False) -> dict[str, Any]:
    lake = ctx.lake
    with record_run(lake, "standardize", ctx.config_hash, ctx.parent_run_id) as r:
        # Both read before this run writes silver: whether it picks changed rows against it.
        over_records = incremental and lake.exists(S.SILVER_RECORDS.address)
        over_events = incremental and lake.exists(S.SILVER_EVENTS.address)
        persons, delivered = person_inputs(ctx, incremental)
        standardised = _standardized(persons, ctx, functools.partial(standardize_records, carry=[LATEST]), over_records)
        summary: dict[str, Any] = {}
        if standardised is not None:
            standardised = standardised.localCheckpoint()
            records = standardised.where(F.col(LATEST)).drop(LATEST)
            n = records.count()
            r.rows_in += n
            r.stage("records standardised", n)
            dq_rows = 0
            if delivered is not None:
                # Every row the unmeasured batches delivered, as standardised: this run's versions,
                # or (unchanged rows re-delivered) the silver row of the same version, read before
                # this run's merge changes silver.records.
                versions = standardised.drop(LATEST)
                if over_records:
                    held = (
                        lake.read(S.SILVER_RECORDS.address)
                        .join(delivered.select("record_key", "row_hash").distinct(), ["record_key", "row_hash"], "left_semi")
                        .join(versions.select("record_key", "row_hash"), ["record_key", "row_hash"], "left_anti")
                    )
                    versions = versions.unionByName(held)
                dq = compute_dq_metrics(measured_rows(delivered, versions), r.run_id).localCheckpoint()
                dq_rows = sum(row[0] for row in dq.where(F.col("column") == DQ_COLUMNS[0]).select("rows").collect())
            identifiers = extract_identifiers(records, identifier_types_by_source(ctx.cfg.sources))
            ctx.state["changed_record_keys"] = records.select("record_key")
            if incremental:
                changed = records.select("record_key")
                lake.merge(S.SILVER_RECORDS.address, records, ["record_key"])
                lake.delete_keys(S.SILVER_IDENTIFIERS.address, "record_key", changed)
                lake.append(S.SILVER_IDENTIFIERS.address, identifiers)
            else:
                lake.overwrite(S.SILVER_RECORDS.address, records)
                lake.overwrite(S.SILVER_IDENTIFIERS.address, identifiers)
            if delivered is not None:
                if incremental:
                    lake.merge(S.SILVER_DQ_METRICS.address, dq, ["source", "batch_id", "column"])
                else:
                    lake.overwrite(S.SILVER_DQ_METRICS.address, dq)
            r.stage("delivered rows measured", dq_rows)
            r.rows_out += n
            summary["records"] = n
            summary["dq_rows"] = dq_rows
            summary["identifiers"] = lake.read(S.SILVER_IDENTIFIERS.address).count()
        events_in = event_inputs(ctx)
        if over_events:
            events_in = [(src, _only_changed(df, ctx, S.SILVER_EVENTS.address, "event_key")) for src, df in events_in]
        events = _standardized(events_in, ctx, standardize_events, over_events)
        if events is not None:
            events = events.localCheckpoint()
            m = events.count()
            lake.add_missing_columns(S.SILVER_EVENTS.address, S.SILVER_EVENTS.schema)  # a lake older than a column
            if incremental:
                lake.merge(S.SILVER_EVENTS.address, events, ["event_key"])
            else:
                lake.overwrite(S.SILVER_EVENTS.address, events)
            r.rows_in += m
            r.rows_out += m
            r.stage("events standardised", m)
            summary["events"] = m
        for key, value in summary.items():
            r.metric(key, value)
    return summary
