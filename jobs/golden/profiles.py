"""Golden profiles: one row per person with surviving attributes, aggregates and consent.

:func:`build_profiles` assembles GOLDEN_PROFILES from four aggregations, each one pass:

- records, grouped by person: survivorship (jobs/golden/survivorship.py), record count, sources,
  first/last seen (min/max over source_created_at, source_updated_at and ingested_at) and consent
  per channel;
- identifiers (silver.identifiers through the identity map): id_type -> sorted distinct values.
  Only the records' identifiers, not those events carry;
- events tied to a person (:func:`attribute_events`): orders, receipts, e-mail and web activity,
  and RFM scores (:func:`rfm_scores`);
- extensions: one merged map (:func:`merged_extensions`).

Consent, per channel: the latest statement wins. Among the person's records with a non-null
consent value, the one with the latest ``consent_<channel>_at``; a statement without a time counts
as older than any timed one; ties by the most recent source_updated_at, then trust, then
record_key. Its value and time are the profile's. No statement: both null.

Counts and revenues of persons without events are 0, timestamps null, RFM 1-1-1.
household_id is null here; jobs/golden/households.py fills it (``attach_households``).

What a profile depends on (what makes incremental runs equal to full runs, jobs/golden/job.py):
every column is a function of the person's own records, their identifiers, the events attributed
to the person (jobs/golden/incremental.py says whose attribution a change can move) and the golden
config, with two exceptions:

- ``household_id``: the other persons at the same address (jobs/golden/households.py recomputes
  the households an affected person leaves or joins);
- ``rfm_recency`` and ``rfm_cell`` (:data:`RUN_DATE_COLUMNS`): days from the last order to the
  run date. The profile stores the dates (last_order_at); these two columns are recomputed for
  *every* profile on every run by :func:`refresh_run_date_columns`, a projection over
  golden.profiles without a join, and only rows whose score changed are merged. So a profile can
  change with the calendar alone (its recency crosses a threshold) and an incremental run on a
  run date gives what a full run on that date gives. Segment rules relative to the run date are
  evaluated by the segments job on every run for the same reason.

No column depends on the population (no quantiles): RFM uses the configured thresholds.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common.errors import require_columns
from jobs.common.schemas import (
    CONSENT_CHANNELS,
    ID_COOKIE,
    GOLDEN_PROFILES,
    MONEY,
    TMP,
)
from jobs.golden.config import GoldenConfig, RfmConfig
from jobs.golden.survivorship import (
    MAX_INT,
    MAX_LONG,
    prepare_survivorship,
    record_order,
    survivorship_aggregates,
    surviving_columns,
)

log = logging.getLogger(__name__)

EVENT_ORDER = "order"
EVENT_RECEIPT = "receipt"
EVENT_EMAIL_OPEN = "email_open"
EVENT_EMAIL_CLICK = "email_click"
EVENT_PAGE_VIEW = "page_view"
EVENT_LOGIN = "login"

# columns compared by changed_profiles: everything but the run stamp
UNVERSIONED_COLUMNS = ("run_id", "updated_at")
# columns that depend on the run date (module docstring), recomputed for every profile each run
RUN_DATE_COLUMNS = ("rfm_recency", "rfm_cell")

_MAP_SS = "map<string,string>"


def person_identifiers(identifiers: DataFrame, identity_map: DataFrame) -> DataFrame:
    """(person_id, identifiers): id_type -> sorted distinct values of the person's records."""
    per_type = (
        identifiers.select("record_key", "id_type", "id_value")
        .where(F.col("id_type").isNotNull() & F.col("id_value").isNotNull())
        .join(identity_map.select("record_key", "person_id"), "record_key")
        .groupBy("person_id", "id_type")
        .agg(F.array_sort(F.collect_set("id_value")).alias(f"{TMP}values"))
    )
    return per_type.groupBy("person_id").agg(
        F.map_from_entries(
            F.array_sort(F.collect_list(F.struct(F.col("id_type"), F.col(f"{TMP}values"))))
        ).alias("identifiers")
    )


def identifier_owners(identifiers: DataFrame, identity_map: DataFrame) -> DataFrame:
    """(id_type, id_value, person_id) for identifiers that belong to exactly one person.

    An identifier held by records of several persons (a shared family e-mail address, a loyalty
    card used by a couple) is ambiguous: its events are attributed to none of them rather than
    to a guessed one, and it is left out here.
    """
    return (
        identifiers.select("record_key", "id_type", "id_value")
        .join(identity_map.select("record_key", "person_id"), "record_key")
        .groupBy("id_type", "id_value")
        .agg(F.min("person_id").alias("person_id"), F.max("person_id").alias(f"{TMP}max_pid"))
        .where(F.col("person_id") == F.col(f"{TMP}max_pid"))
        .drop(f"{TMP}max_pid")
    )


def attribute_events(events: DataFrame, identifiers: DataFrame, identity_map: DataFrame) -> DataFrame:
    """SILVER_EVENTS + person_id, for the events that reach exactly one person.

    An event reaches at most one person, by the first of these links that leads to one:

    1. its ``owner_record_key``: the person record that owns it (the webshop account that placed
       an order, the subscriber an e-mail went to; ``SourceConfig.owner``), when that record is in
       the identity map. The most direct link there is: it holds when the order carries no usable
       identifier (blank customer number, placeholder e-mail) and when its identifier is shared;
    2. its identifier (id_type, id_value), chosen by the standardize stage, through
       silver.identifiers and the identity map; ambiguous identifiers (see
       :func:`identifier_owners`) lead nowhere;
    3. its own ``record_key`` when it is a record of the identity map;
    4. its ``cookie_id`` (the anonymous web-cookie records the standardize stage derives from web
       events carry it as an identifier).

    One row per event whichever links agree, so an event tied both by its owner and by an
    identifier counts once. Events that reach nobody are left out (they belong to no known person).
    """
    require_columns(
        ["id_type", "id_value", "record_key", "owner_record_key", "cookie_id", "event_type", "event_at", "amount"],
        events.columns,
        "attribute_events(events)",
    )
    owners = identifier_owners(identifiers, identity_map)
    by_id = owners.select("id_type", "id_value", F.col("person_id").alias(f"{TMP}pid_id"))
    by_owner = identity_map.select(
        F.col("record_key").alias(f"{TMP}owner"), F.col("person_id").alias(f"{TMP}pid_owner")
    )
    by_key = identity_map.select("record_key", F.col("person_id").alias(f"{TMP}pid_key"))
    by_cookie = owners.where(F.col("id_type") == F.lit(ID_COOKIE)).select(
        F.col("id_value").alias(f"{TMP}cookie"), F.col("person_id").alias(f"{TMP}pid_cookie")
    )
    joined = (
        events.join(by_id, ["id_type", "id_value"], "left")
        .join(by_owner, F.col("owner_record_key") == F.col(f"{TMP}owner"), "left")
        .join(by_key, "record_key", "left")
        .join(by_cookie, F.col("cookie_id") == F.col(f"{TMP}cookie"), "left")
    )
    person = F.coalesce(
        F.col(f"{TMP}pid_owner"), F.col(f"{TMP}pid_id"), F.col(f"{TMP}pid_key"), F.col(f"{TMP}pid_cookie")
    )
    return (
        joined.withColumn("person_id", person)
        .where(F.col("person_id").isNotNull())
        .select(*events.columns, "person_id")
    )


def event_aggregates(attributed: DataFrame) -> DataFrame:
    """Per person: orders, receipts, revenue, first/last purchase, e-mail and web activity.

    Amounts are summed as given (decimal(18,2)); the standardize stage fills the default currency,
    and mixed currencies are not converted. first/last order span orders and receipts.
    """
    t = F.col("event_type")
    purchase = t.isin(EVENT_ORDER, EVENT_RECEIPT)
    email = t.isin(EVENT_EMAIL_OPEN, EVENT_EMAIL_CLICK)
    web = t.isin(EVENT_PAGE_VIEW, EVENT_LOGIN)
    return attributed.groupBy("person_id").agg(
        F.count_if(t == EVENT_ORDER).alias("orders_count"),
        F.sum(F.when(t == EVENT_ORDER, F.col("amount"))).alias("orders_revenue"),
        F.count_if(t == EVENT_RECEIPT).alias("receipts_count"),
        F.sum(F.when(t == EVENT_RECEIPT, F.col("amount"))).alias("receipts_revenue"),
        F.min(F.when(purchase, F.col("event_at"))).alias("first_order_at"),
        F.max(F.when(purchase, F.col("event_at"))).alias("last_order_at"),
        F.count_if(t == EVENT_EMAIL_OPEN).alias("email_opens"),
        F.count_if(t == EVENT_EMAIL_CLICK).alias("email_clicks"),
        F.max(F.when(email, F.col("event_at"))).alias("last_email_engagement_at"),
        F.count_if(t == EVENT_PAGE_VIEW).alias("page_views"),
        F.count_if(t == EVENT_LOGIN).alias("web_logins"),
        F.max(F.when(web, F.col("event_at"))).alias("last_web_visit_at"),
    )


def _score_at_most(value: Column, thresholds: list[int]) -> Column:
    """5 when value <= thresholds[0], ... 2 when <= thresholds[3], else (or null) 1."""
    expr = F.when(value.isNull(), F.lit(1))
    for score, limit in zip((5, 4, 3, 2), thresholds):
        expr = expr.when(value <= F.lit(limit), F.lit(score))
    return expr.otherwise(F.lit(1))


def _score_at_least(value: Column, thresholds: list[Column]) -> Column:
    """5 when value >= thresholds[3], ... 2 when >= thresholds[0], else (or null) 1."""
    expr = F.when(value.isNull(), F.lit(1))
    for score, limit in zip((5, 4, 3, 2), reversed(thresholds)):
        expr = expr.when(value >= limit, F.lit(score))
    return expr.otherwise(F.lit(1))


def recency_score(last_order_at: Column, cfg: RfmConfig, run_date: date) -> Column:
    """The recency score 1-5 on ``run_date`` (see :func:`rfm_scores`)."""
    return _score_at_most(F.datediff(F.lit(run_date), F.to_date(last_order_at)), cfg.recency_days)


def rfm_cell(recency: Column, frequency: Column, monetary: Column) -> Column:
    """'R-F-M', e.g. '5-4-3'."""
    return F.concat_ws("-", recency.cast("string"), frequency.cast("string"), monetary.cast("string"))


def rfm_scores(last_order_at: Column, purchases: Column, revenue: Column, cfg: RfmConfig, run_date: date) -> dict[str, Column]:
    """RFM scores 1-5 from the configured thresholds (RfmConfig, ascending lists).

    - recency: days from the last order or receipt to ``run_date``: <= recency_days[0] -> 5,
      <= [1] -> 4, <= [2] -> 3, <= [3] -> 2, later or never -> 1 (a future date counts as 0 days);
    - frequency: orders + receipts: >= frequency_orders[3] -> 5, >= [2] -> 4, >= [1] -> 3,
      >= [0] -> 2, else 1;
    - monetary: total revenue, likewise with monetary_eur;
    - rfm_cell: 'R-F-M'.
    """
    r = recency_score(last_order_at, cfg, run_date)
    f = _score_at_least(purchases, [F.lit(v) for v in cfg.frequency_orders])
    m = _score_at_least(revenue, [F.lit(Decimal(str(v))).cast(MONEY) for v in cfg.monetary_eur])
    return {"rfm_recency": r, "rfm_frequency": f, "rfm_monetary": m, "rfm_cell": rfm_cell(r, f, m)}


def refresh_run_date_columns(profiles: DataFrame, cfg: RfmConfig, run_date: date) -> DataFrame:
    """GOLDEN_PROFILES with :data:`RUN_DATE_COLUMNS` recomputed for ``run_date``.

    rfm_recency from last_order_at; rfm_cell from it and the stored frequency and monetary scores
    (those depend on the person's own events only). Same columns, same order; a projection.
    """
    require_columns(["last_order_at", "rfm_frequency", "rfm_monetary"], profiles.columns, "refresh_run_date_columns")
    r = recency_score(F.col("last_order_at"), cfg, run_date).cast("int")
    return profiles.withColumns(
        {"rfm_recency": r, "rfm_cell": rfm_cell(r, F.col("rfm_frequency"), F.col("rfm_monetary"))}
    ).select(*profiles.columns)


def merged_extensions(records: DataFrame) -> DataFrame:
    """(person_id, extensions): all records' extensions in one map, keys sorted.

    For a key present in several records the value of the most trusted, then most recent record
    wins (then record_key); null values are skipped.
    """
    entry = F.col(f"{TMP}ext")
    exploded = records.select(
        "person_id", "record_key", "trust_rank", "source_updated_at", "source_created_at",
        F.explode(F.map_entries(F.col("extensions"))).alias(f"{TMP}ext"),
    ).where(entry["value"].isNotNull())
    per_key = exploded.groupBy("person_id", entry["key"].alias(f"{TMP}key")).agg(
        F.min_by(F.struct(entry["value"].alias("v")), record_order("source_trust"))["v"].alias(f"{TMP}value")
    )
    return per_key.groupBy("person_id").agg(
        F.map_from_entries(F.array_sort(F.collect_list(F.struct(F.col(f"{TMP}key"), F.col(f"{TMP}value")))))
        .cast(_MAP_SS)
        .alias("extensions")
    )


def _consent_aggregates() -> list[Column]:
    """Latest statement per channel (module docstring), as struct(value, at) columns."""
    out = []
    for ch in CONSENT_CHANNELS:
        value, at = F.col(f"consent_{ch}"), F.col(f"consent_{ch}_at")
        ordering = F.struct(
            at.isNull().alias("untimed"),
            F.coalesce(-F.unix_micros(at), F.lit(MAX_LONG)).alias("at"),
            F.coalesce(-F.unix_micros(F.col("source_updated_at")), F.lit(MAX_LONG)).alias("updated"),
            F.coalesce(F.col("trust_rank"), F.lit(MAX_INT)).alias("trust"),
            F.col("record_key").alias("key"),
        )
        out.append(
            F.min_by(F.struct(value.alias("value"), at.alias("at")), F.when(value.isNotNull(), ordering)).alias(
                f"{TMP}consent_{ch}"
            )
        )
    return out


def _record_aggregates() -> list[Column]:
    stamps = [F.col("source_created_at"), F.col("source_updated_at"), F.col("ingested_at")]
    return [
        F.count(F.lit(1)).alias("record_count"),
        F.array_sort(F.collect_set("source")).alias("sources"),
        F.min(F.least(*stamps)).alias("first_seen_at"),
        F.max(F.greatest(*stamps)).alias("last_seen_at"),
    ]


def _events_in_reach(
    events: DataFrame, identifiers: DataFrame, imap: DataFrame, restricted: bool
) -> tuple[DataFrame, DataFrame]:
    """(events, identifiers) enough to attribute the events of the persons of ``imap``.

    Unrestricted: both as given. Restricted (some persons only): the events that can reach those
    persons (owned by one of their records, tied to one of their identifier values or record
    keys, or carrying one of their cookies: the ways of :func:`attribute_events`) and the
    identifier rows of the values those events name, so ownership is still judged on every
    record holding them. An event reaching one of these persons by one link and another person by
    an earlier one is in reach too, and attribute_events gives it to the other person.
    """
    if not restricted:
        return events, identifiers
    mine = identifiers.select("record_key", "id_type", "id_value").join(imap.select("record_key"), "record_key", "left_semi")
    values = mine.select("id_type", "id_value").distinct()
    cookies = values.where(F.col("id_type") == F.lit(ID_COOKIE)).select(F.col("id_value").alias(f"{TMP}cookie"))
    keys = imap.select(F.col("record_key").alias(f"{TMP}key")).distinct()
    owned = imap.select(F.col("record_key").alias(f"{TMP}owner")).distinct()
    by_id, by_key, by_cookie, by_owner = f"{TMP}by_id", f"{TMP}by_key", f"{TMP}by_cookie", f"{TMP}by_owner"
    reach = (
        events.join(values.withColumn(by_id, F.lit(True)), ["id_type", "id_value"], "left")
        .join(keys.withColumn(by_key, F.lit(True)), F.col("record_key") == F.col(f"{TMP}key"), "left")
        .join(owned.withColumn(by_owner, F.lit(True)), F.col("owner_record_key") == F.col(f"{TMP}owner"), "left")
        .join(cookies.withColumn(by_cookie, F.lit(True)), F.col("cookie_id") == F.col(f"{TMP}cookie"), "left")
        .where(
            F.col(by_id).isNotNull() | F.col(by_key).isNotNull() | F.col(by_owner).isNotNull() | F.col(by_cookie).isNotNull()
        )
        .select(*events.columns)
        .localCheckpoint()  # small, and read again below and by attribute_events: not joined again
    )
    named = reach.select("id_type", "id_value").unionByName(
        reach.select(F.lit(ID_COOKIE).alias("id_type"), F.col("cookie_id").alias("id_value"))
    ).where(F.col("id_value").isNotNull()).distinct()
    return reach, identifiers.join(named, ["id_type", "id_value"], "left_semi")


def build_profiles(
    records: DataFrame,
    identifiers: DataFrame,
    events: DataFrame,
    identity_map: DataFrame,
    cfg: GoldenConfig,
    run_id: str,
    run_at: datetime,
    run_date: date,
    persons: DataFrame | None = None,
) -> DataFrame:
    """SILVER_RECORDS, SILVER_IDENTIFIERS, SILVER_EVENTS and GOLDEN_IDENTITY_MAP -> GOLDEN_PROFILES.

    One row per person of the identity map that has at least one record, in exactly the table's
    columns and types. ``run_id``/``updated_at`` stamp every row; use :func:`changed_profiles` to
    keep the old stamp of unchanged profiles. ``persons`` (a person_id column) limits the output
    to those persons (incremental runs); identifier ownership is still judged on the whole map.
    """
    require_columns(["record_key", "person_id"], identity_map.columns, "build_profiles(identity_map)")
    require_columns(
        ["extensions", "ingested_at", *[f"consent_{c}{s}" for c in CONSENT_CHANNELS for s in ("", "_at")]],
        records.columns,
        "build_profiles(records)",
    )
    full_map = identity_map.select("record_key", "person_id")
    imap = full_map
    if persons is not None:
        # Materialised: with its real (small) size the planner broadcasts it into the joins with
        # records, identifiers and events; as a plan it is estimated at the whole map's size.
        imap = full_map.join(persons.select("person_id"), "person_id", "left_semi").localCheckpoint()
    recs = records.join(imap, "record_key")
    attributed = attribute_events(*_events_in_reach(events, identifiers, imap, persons is not None), full_map)
    per_person = (
        prepare_survivorship(recs, cfg)
        .groupBy("person_id")
        .agg(*survivorship_aggregates(cfg), *_record_aggregates(), *_consent_aggregates())
    )
    base = per_person.select(
        "person_id",
        *surviving_columns(cfg),
        "record_count",
        "sources",
        "first_seen_at",
        "last_seen_at",
        *[F.col(f"{TMP}consent_{ch}")[part].alias(f"consent_{ch}{suffix}")
          for ch in CONSENT_CHANNELS for part, suffix in (("value", ""), ("at", "_at"))],
    )
    joined = (
        base.join(person_identifiers(identifiers, imap), "person_id", "left")
        .join(event_aggregates(attributed), "person_id", "left")
        .join(merged_extensions(recs), "person_id", "left")
    )
    zero = F.lit(Decimal("0.00")).cast(MONEY)
    counts = ("orders_count", "receipts_count", "email_opens", "email_clicks", "page_views", "web_logins")
    filled = joined.withColumns(
        {
            **{c: F.coalesce(F.col(c), F.lit(0).cast("long")) for c in counts},
            "orders_revenue": F.coalesce(F.col("orders_revenue").cast(MONEY), zero),
            "receipts_revenue": F.coalesce(F.col("receipts_revenue").cast(MONEY), zero),
            "identifiers": F.coalesce(F.col("identifiers"), F.create_map().cast("map<string,array<string>>")),
            "extensions": F.coalesce(F.col("extensions"), F.create_map().cast(_MAP_SS)),
        }
    ).withColumn("total_revenue", (F.col("orders_revenue") + F.col("receipts_revenue")).cast(MONEY))
    scored = filled.withColumns(
        {
            **rfm_scores(
                F.col("last_order_at"),
                F.col("orders_count") + F.col("receipts_count"),
                F.col("total_revenue"),
                cfg.rfm,
                run_date,
            ),
            "household_id": F.lit(None).cast("string"),
            "run_id": F.lit(run_id),
            "updated_at": F.lit(run_at).cast("timestamp"),
        }
    )
    return scored.select(*[F.col(c.name).cast(c.dtype).alias(c.name) for c in GOLDEN_PROFILES.columns])


def _comparable(df: DataFrame, name: str) -> Column:
    """A column in a form whose JSON text is the same for equal values (maps sorted by key)."""
    dtype = df.schema[name].dataType.typeName()
    c = F.col(name)
    return F.array_sort(F.map_entries(c)).alias(name) if dtype == "map" else c


def profile_fingerprint(profiles: DataFrame) -> Column:
    """SHA-256 of every column but run_id/updated_at: equal fingerprints mean an unchanged profile."""
    cols = [_comparable(profiles, c) for c in profiles.columns if c not in UNVERSIONED_COLUMNS]
    return F.sha2(F.to_json(F.struct(*cols)), 256)


def changed_profiles(new: DataFrame, old: DataFrame) -> DataFrame:
    """(person_id) of profiles in ``new`` that are absent from ``old`` or differ from it.

    Compare after households are attached (household_id is part of the profile). Profiles in
    ``old`` without a row in ``new`` (merged, retired, erased) are :func:`removed_profiles`.
    """
    fp = f"{TMP}fp"
    n = new.select("person_id", profile_fingerprint(new).alias(fp))
    o = old.select("person_id", profile_fingerprint(old).alias(f"{fp}_old"))
    return (
        n.join(o, "person_id", "left")
        .where(F.col(f"{fp}_old").isNull() | (F.col(fp) != F.col(f"{fp}_old")))
        .select("person_id")
    )


def removed_profiles(new: DataFrame, old: DataFrame) -> DataFrame:
    """(person_id) of profiles in ``old`` that ``new`` no longer has."""
    return old.select("person_id").join(new.select("person_id"), "person_id", "left_anti")
