"""The standardize stage's transforms: bronze rows in, silver records / identifiers / events /
data-quality metrics out. Pure DataFrame -> DataFrame functions (no reads, writes or actions).

The job module reads the bronze tables, renames each source's mapped columns to the canonical
names (CANONICAL_FIELDS / EVENT_FIELDS), adds ``trust_rank`` and ``extensions``, and calls these.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from jobs.common.errors import require_columns
from jobs.common.keys import record_key_col, strip_col
from jobs.common.schemas import (
    BATCH_ID,
    CANONICAL_FIELDS,
    EVENT_FIELDS,
    ID_COOKIE,
    ID_CUSTOMER_NUMBER,
    ID_DEVICE,
    ID_EMAIL,
    ID_LOYALTY_CARD,
    ID_PHONE,
    IDENTIFIER_TYPES,
    INGESTED_AT,
    RECORD_KEY,
    ROW_HASH,
    SILVER_DQ_METRICS,
    SILVER_EVENTS,
    SILVER_IDENTIFIERS,
    SILVER_RECORDS,
    SOURCE,
    TMP,
)
from jobs.standardize.cleansers import RECORD_STEPS, TIMESTAMP_FIELDS, SourceCountry, add_identifier_columns
from jobs.standardize.config import StandardizeConfig
from jobs.standardize.dates import parse_timestamp
from jobs.standardize.emails import add_email_columns
from jobs.standardize.text import FLAG_PREFIX, clean_text, lookup

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

REQUIRED_LINEAGE = (RECORD_KEY, SOURCE, BATCH_ID)
OPTIONAL_LINEAGE = {ROW_HASH: "string", INGESTED_AT: "timestamp"}

# silver column -> the working column it is taken from, where the names differ
_RECORD_SOURCES = {
    "record_key": RECORD_KEY,
    "source": SOURCE,
    "batch_id": BATCH_ID,
    "row_hash": ROW_HASH,
    "ingested_at": INGESTED_AT,
    **{out: field for field, out in TIMESTAMP_FIELDS.items() if out != field},
}

# Columns measured by compute_dq_metrics, and how validity is decided for each (None: no check).
DQ_COLUMNS: tuple[str, ...] = (
    "given_name", "family_name", "initials", "gender", "birth_date", "email", "phone", "street",
    "house_number", "postcode", "city", "country", "customer_number", "loyalty_card",
)
_DQ_VALID: dict[str, str] = {
    "email": "email_valid",
    "phone": "phone_valid",
    "postcode": "postcode_valid",
    "birth_date": "birth_date_valid",
}
# A cleanser nulls invalid values; the flag tells that something was sent (for completeness).
_DQ_INVALID_FLAG: dict[str, str] = {
    "email": "email_invalid",
    "phone": "phone_invalid",
    "postcode": "postcode_invalid",
    "birth_date": "birth_date_invalid",
    "country": "country_invalid",
    "house_number": "house_number_invalid",
    "gender": "gender_invalid",
}


def _prepare(df: DataFrame, fields: Sequence[str], where: str) -> DataFrame:
    """Lineage checked, missing canonical fields added as null, every field cleaned text."""
    require_columns(REQUIRED_LINEAGE, df.columns, where)
    cols: dict[str, Column] = {}
    for name, dtype in OPTIONAL_LINEAGE.items():
        cols[name] = F.col(name).cast(dtype) if name in df.columns else F.lit(None).cast(dtype)
    for field in fields:
        cols[field] = clean_text(F.col(field).cast(StringType())) if field in df.columns else F.lit(None).cast("string")
    return df.withColumns(cols)


def standardize_records(
    df: DataFrame,
    cfg: StandardizeConfig,
    default_country: "str | SourceCountry" = "NL",
    carry: Sequence[str] = (),
) -> DataFrame:
    """Bronze person rows (canonical string columns + lineage) -> SILVER_RECORDS.

    Input: any subset of CANONICAL_FIELDS as columns (missing ones are null), ``_record_key,
    _source, _batch_id`` (required), ``_row_hash, _ingested_at``, ``trust_rank`` (int) and
    ``extensions`` (map<string,string>) where present. ``default_country`` (ISO-2) is the
    source's country: it fills a missing country and is the phone region of such records; a
    :class:`~jobs.standardize.cleansers.SourceCountry` gives it per row (several sources at once).

    The steps of ``cfg.steps`` run in order (see cleansers.RECORD_STEPS); the result has exactly
    SILVER_RECORDS' columns, order and types, with ``dq_flags`` collecting every finding
    (empty array when none), then the ``carry`` columns of ``df`` unchanged (the job's markers).
    A step left out of config leaves its columns as sent, cast to the silver type where that cast
    succeeds.
    """
    work = _prepare(df, list(CANONICAL_FIELDS), "standardize_records")
    for extra, dtype in (("trust_rank", "int"), ("extensions", "map<string,string>")):
        work = work.withColumn(extra, F.col(extra).cast(dtype) if extra in df.columns else F.lit(None).cast(dtype))
    require_columns(list(carry), df.columns, "standardize_records(carry)")
    for step in cfg.steps:
        work = RECORD_STEPS.get(step)(work, cfg, default_country)
    return _finalize_records(work, carry)


def _finalize_records(work: DataFrame, carry: Sequence[str] = ()) -> DataFrame:
    """Project the working frame onto SILVER_RECORDS (plus ``carry``), collecting flag columns into dq_flags."""
    flags = [c for c in work.columns if c.startswith(FLAG_PREFIX)]
    if flags:
        dq = F.array_distinct(F.filter(F.array(*[F.col(c) for c in flags]), lambda x: x.isNotNull()))
    else:
        dq = F.array().cast("array<string>")
    available = set(work.columns)
    out: list[Column] = []
    for col in SILVER_RECORDS.columns:
        if col.name == "dq_flags":
            out.append(dq.alias("dq_flags"))
            continue
        src = col.name if col.name in available else _RECORD_SOURCES.get(col.name, col.name)
        if src not in available:
            out.append(F.lit(None).cast(col.dtype).alias(col.name))
        elif isinstance(col.dtype, StringType):
            out.append(F.col(src).cast(col.dtype).alias(col.name))
        else:
            # a step left out of config leaves strings; try_cast never fails the job on them
            out.append(F.col(src).try_cast(col.dtype).alias(col.name))
    return work.select(*out, *[F.col(c) for c in carry])


def extract_identifiers(records: DataFrame, allowed: Mapping[str, Collection[str]] | None = None) -> DataFrame:
    """SILVER_RECORDS -> SILVER_IDENTIFIERS: one row per (record, type, value).

    Only values that survived cleansing: valid e-mail and phone (placeholders and invalid values
    are already null), customer number, loyalty card, cookie and device id as normalised.
    ``allowed`` (record source -> identifier types it contributes, ``SourceConfig.identifiers``)
    keeps a source's other types out; a source it does not name contributes all six.
    """
    barred = {t: sorted(s for s, types in (allowed or {}).items() if t not in types) for t in IDENTIFIER_TYPES}

    def of_allowed_sources(t: str, value: Column) -> Column:
        return F.when(~F.col("source").isin(barred[t]), value) if barred[t] else value

    pairs = [
        (t, of_allowed_sources(t, v))
        for t, v in (
            (ID_EMAIL, F.when(F.col("email_valid"), F.col("email"))),
            (ID_PHONE, F.when(F.col("phone_valid"), F.col("phone"))),
            (ID_CUSTOMER_NUMBER, F.col("customer_number")),
            (ID_LOYALTY_CARD, F.col("loyalty_card")),
            (ID_COOKIE, F.col("cookie_id")),
            (ID_DEVICE, F.col("device_id")),
        )
    ]
    structs = F.array(*[F.struct(F.lit(t).alias("id_type"), v.alias("id_value")) for t, v in pairs])
    return (
        records.select("record_key", "source", F.explode(structs).alias(f"{TMP}id"))
        .where(F.col(f"{TMP}id.id_value").isNotNull())
        .select(
            F.col("record_key"),
            F.col(f"{TMP}id.id_type").alias("id_type"),
            F.col(f"{TMP}id.id_value").alias("id_value"),
            F.col("source"),
        )
        .select(*[F.col(c.name).cast(c.dtype) for c in SILVER_IDENTIFIERS.columns])
    )


IdentifierItem = tuple[str, "str | None", "str | None"]


def silver_identifier_forms(
    spark: "SparkSession",
    items: Collection[IdentifierItem],
    cfg: StandardizeConfig,
    default_country: str = "NL",
) -> dict[IdentifierItem, str | None]:
    """(identifier type, value as sent, the row's country as sent or None) -> the ``id_value``
    silver.identifiers holds for it, or None where silver holds none (a placeholder such as
    ``test@test.nl`` or ``0000000000``, an invalid e-mail address or phone number).

    For code that compares single values on the driver with what silver holds (ingest's
    suppression check, erasure subjects, profile lookups): the values go through silver's own
    record transform (:func:`standardize_records` with ``cfg``, then :func:`extract_identifiers`),
    one small Spark job, so the two cannot drift apart. A phone is read in the row's country as
    silver reads it ('België' -> BE; a placeholder or unknown country -> ``default_country``).
    """
    distinct = sorted({i for i in items if i[1] is not None}, key=lambda i: (i[0], i[1] or "", i[2] or ""))
    unknown = sorted({t for t, _, _ in distinct if t not in IDENTIFIER_TYPES})
    if unknown:
        raise ValueError(f"silver_identifier_forms: got identifier type(s) {unknown}; expected one of {', '.join(IDENTIFIER_TYPES)}")
    if not distinct:
        return {}
    fields = list(IDENTIFIER_TYPES)
    rows = [(str(n), "lookup", "lookup", c, *[v if t == f else None for f in fields]) for n, (t, v, c) in enumerate(distinct)]
    schema = ", ".join(f"{c} string" for c in (RECORD_KEY, SOURCE, BATCH_ID, "country", *fields))
    records = standardize_records(spark.createDataFrame(rows, schema), cfg, default_country)
    held = {(int(r.record_key), r.id_type): r.id_value for r in extract_identifiers(records).collect()}
    return {item: held.get((n, item[0])) for n, item in enumerate(distinct)}


OWNER_RECORD_KEY = "owner_record_key"


def owner_record_key(owner_source: str, key: Sequence[Column]) -> Column:
    """The record key of an event's owning person record, from the event's copy of its primary key.

    The same function ingest's keys come from (:func:`jobs.common.keys.record_key_col` is
    :func:`~jobs.common.keys.record_key` in Spark), so an order's ``customer_id`` gives its
    account's ``_record_key``. Null when a key part is missing or blank, as ingest refuses a row
    whose key is (it never has a record key).
    """
    present = functools.reduce(lambda a, b: a & b, [c.isNotNull() & (strip_col(c) != "") for c in key])
    return F.when(present, record_key_col(owner_source, *key))


def normalize_event_type(c: Column, cfg: StandardizeConfig, mapping: Mapping[str, str] | None = None) -> Column:
    """'Page View' -> 'page_view'; then the source's mapping ('open' -> 'email_open'), then the
    configured aliases ('bestelling' -> 'order'). Keys are compared in the same normalised form."""

    def key(v: str) -> str:
        return re.sub(r"[\s\-]+", "_", v.strip().lower())

    k = F.regexp_replace(F.lower(F.trim(c)), r"[\s\-]+", "_")
    source_map = {key(a): b for a, b in (mapping or {}).items()}
    aliases = {key(a): b for a, b in cfg.event_type_aliases.items()}
    return F.coalesce(lookup(source_map, k), lookup(aliases, k), k)


def parse_amount(c: Column) -> Column:
    """'59.95', '59,95', '€ 1.234,56', '1,234.56', '-10' -> decimal(18,2); unparseable -> null.

    With both separators the last one is the decimal separator; with one kind only, a single
    occurrence is the decimal separator and repeated ones ('1.234.567') group thousands.
    """
    s = F.regexp_replace(F.trim(c), r"[^0-9,.\-+]", "")
    last_comma = F.locate(",", F.reverse(s))
    last_dot = F.locate(".", F.reverse(s))
    commas = F.length(s) - F.length(F.regexp_replace(s, ",", ""))
    dots = F.length(s) - F.length(F.regexp_replace(s, r"\.", ""))
    both = (commas > 0) & (dots > 0)
    comma_decimal = F.when(both, last_comma < last_dot).otherwise((commas == 1) & (dots == 0))
    dot_thousands = F.when(both, last_comma < last_dot).otherwise(dots > 1)
    normalised = (
        F.when(comma_decimal, F.regexp_replace(F.regexp_replace(s, r"\.", ""), ",", "."))
        .when(dot_thousands, F.regexp_replace(s, r"\.", ""))
        .otherwise(F.regexp_replace(s, ",", ""))
    )
    return F.when(normalised.rlike(r"^[+-]?(\d+\.?\d*|\.\d+)$"), normalised.try_cast("decimal(18,2)"))


_CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP", "eur": "EUR", "euro": "EUR", "fl": "NLG", "chf": "CHF"}


def standardize_events(
    df: DataFrame,
    cfg: StandardizeConfig,
    default_country: "str | SourceCountry" = "NL",
    event_type_map: Mapping[str, str] | None = None,
    default_event_type: str | None = None,
) -> DataFrame:
    """Bronze event rows (EVENT_FIELDS as strings + lineage) -> SILVER_EVENTS.

    Each event is tied to one identifier, the first present in ``cfg.event_identifier_priority``
    (customer_number, loyalty_card, email, cookie_id, device_id by default), normalised exactly as
    in records so that the match stage can join them. ``event_type_map`` is the source's own
    mapping (``SourceConfig.event_types``); ``default_event_type`` is used for rows without a type
    (``SourceConfig.event_type``). Login events keep ``login_customer_number`` next to
    ``cookie_id``: that pair links an anonymous cookie to a customer. ``default_country`` is
    accepted for symmetry with records (events carry no phone numbers yet). An ``owner_record_key``
    column (:func:`owner_record_key`, from ``SourceConfig.owner``) is kept as given; without it the
    column is null.
    """
    work = _prepare(df, list(EVENT_FIELDS), "standardize_events")
    em = f"{TMP}ev_email_"
    work = add_email_columns(work, "email", cfg, em)
    by_field = {ID_CUSTOMER_NUMBER: "customer_number", ID_LOYALTY_CARD: "loyalty_card", ID_COOKIE: "cookie_id", ID_DEVICE: "device_id"}
    work = add_identifier_columns(work, {f"{TMP}id_{t}": (field, t) for t, field in by_field.items()}, cfg)
    ids = {t: F.col(f"{TMP}id_{t}") for t in by_field} | {ID_EMAIL: F.when(F.col(f"{em}valid"), F.col(f"{em}value"))}
    event_type = normalize_event_type(F.col("event_type"), cfg, event_type_map)
    if default_event_type:
        event_type = F.coalesce(event_type, F.lit(default_event_type))
    work = work.withColumns(
        {
            **{f"{TMP}id_{t}": v for t, v in ids.items()},
            f"{TMP}type": event_type,
            f"{TMP}amount": parse_amount(F.col("amount")),
            f"{TMP}symbol": F.regexp_extract(F.lower(F.col("amount")), r"(€|\$|£|eur|euro|chf)", 1),
            f"{TMP}currency": F.upper(F.col("currency")),
        }
    )
    currency = F.coalesce(
        F.when(F.col(f"{TMP}currency").rlike(r"^[A-Z]{3}$"), F.col(f"{TMP}currency")),
        lookup(_CURRENCY_SYMBOLS, F.lower(F.col("currency"))),
        F.when(F.col(f"{TMP}symbol") != "", lookup(_CURRENCY_SYMBOLS, F.col(f"{TMP}symbol"))),
        F.when(F.col(f"{TMP}amount").isNotNull(), F.lit(cfg.default_currency)),
    )
    tie = F.coalesce(
        *[
            F.when(
                F.col(f"{TMP}id_{t}").isNotNull(),
                F.struct(F.lit(t).alias("id_type"), F.col(f"{TMP}id_{t}").alias("id_value")),
            )
            for t in cfg.event_identifier_priority
        ]
    )
    work = work.withColumn(f"{TMP}tie", tie)
    out = {
        "event_key": F.col(RECORD_KEY),
        "source": F.col(SOURCE),
        "event_type": F.col(f"{TMP}type"),
        "event_at": parse_timestamp(F.col("event_at"), cfg.timestamp_formats),
        "amount": F.col(f"{TMP}amount"),
        "currency": currency,
        "id_type": F.col(f"{TMP}tie.id_type"),
        "id_value": F.col(f"{TMP}tie.id_value"),
        "record_key": F.col(RECORD_KEY),
        OWNER_RECORD_KEY: F.col(OWNER_RECORD_KEY) if OWNER_RECORD_KEY in df.columns else F.lit(None).cast("string"),
        "cookie_id": F.col(f"{TMP}id_{ID_COOKIE}"),
        "login_customer_number": F.when(F.col(f"{TMP}type") == "login", F.col(f"{TMP}id_{ID_CUSTOMER_NUMBER}")),
        "campaign": F.col("campaign"),
        "url": F.col("url"),
        "batch_id": F.col(BATCH_ID),
        "row_hash": F.col(ROW_HASH),
    }
    return work.select(*[out[c.name].cast(c.dtype).alias(c.name) for c in SILVER_EVENTS.columns])


def compute_dq_metrics(records: DataFrame, run_id: str, columns: Sequence[str] = DQ_COLUMNS) -> DataFrame:
    """SILVER_RECORDS-shaped rows -> SILVER_DQ_METRICS: per source, batch and column, in one aggregation.

    Each input row counts for its ``batch_id``; the job gives one row per row a batch delivered
    (jobs/standardize/job.py), which is what the table measures.

    - rows: rows of the batch;
    - filled: a value survived cleansing, or was sent and found invalid (flag ``<col>_invalid``):
      an invalid e-mail is nulled, but the source did fill it;
    - valid: the column's validity flag where one exists (email, phone, postcode, birth_date), the
      absence of an invalid flag for country, house_number and gender; null for columns without a
      check (names, street, city, ids);
    - placeholders: ``placeholder:<col>`` in dq_flags.

    All sums are computed by one ``groupBy().agg()`` and then unpivoted with ``explode``, so the
    table is one Spark job, not one per column.
    """
    require_columns(["source", "batch_id", "dq_flags", *columns], records.columns, "compute_dq_metrics")
    flags = F.coalesce(F.col("dq_flags"), F.array().cast("array<string>"))
    aggs: list[Column] = [F.count(F.lit(1)).alias(f"{TMP}rows")]
    for col in columns:
        invalid_flag = _DQ_INVALID_FLAG.get(col)
        sent_invalid = F.array_contains(flags, invalid_flag) if invalid_flag else F.lit(False)
        filled = F.col(col).isNotNull() | sent_invalid
        aggs.append(F.sum(filled.cast("long")).alias(f"{TMP}f_{col}"))
        if col in _DQ_VALID:
            aggs.append(F.sum(F.coalesce(F.col(_DQ_VALID[col]), F.lit(False)).cast("long")).alias(f"{TMP}v_{col}"))
        elif invalid_flag:
            aggs.append(F.sum((F.col(col).isNotNull() & ~sent_invalid).cast("long")).alias(f"{TMP}v_{col}"))
        aggs.append(F.sum(F.array_contains(flags, f"placeholder:{col}").cast("long")).alias(f"{TMP}p_{col}"))
    grouped = records.groupBy("source", "batch_id").agg(*aggs)
    per_column = F.array(
        *[
            F.struct(
                F.lit(col).alias("column"),
                F.col(f"{TMP}f_{col}").alias("filled"),
                (F.col(f"{TMP}v_{col}") if (col in _DQ_VALID or col in _DQ_INVALID_FLAG) else F.lit(None).cast("long")).alias("valid"),
                F.col(f"{TMP}p_{col}").alias("placeholders"),
            )
            for col in columns
        ]
    )
    m = F.col(f"{TMP}m")
    rows = F.col(f"{TMP}rows")
    exploded = grouped.select("source", "batch_id", rows, F.explode(per_column).alias(f"{TMP}m"))
    out = {
        "source": F.col("source"),
        "batch_id": F.col("batch_id"),
        "column": m["column"],
        "rows": rows,
        "filled": m["filled"],
        "valid": m["valid"],
        "placeholders": m["placeholders"],
        "completeness": F.when(rows > 0, m["filled"] / rows),
        "validity": F.when(m["filled"] > 0, m["valid"] / m["filled"]),
        "placeholder_rate": F.when(rows > 0, m["placeholders"] / rows),
        "run_id": F.lit(run_id),
    }
    return exploded.select(*[out[c.name].cast(c.dtype).alias(c.name) for c in SILVER_DQ_METRICS.columns])
