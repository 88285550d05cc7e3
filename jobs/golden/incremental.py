"""Incremental golden runs: what changed since the last golden run, and whose profile it touches.

A profile is a function of the person's records (which records, and their content), those
records' identifiers, the events attributed to the person, the golden config, the household
(jobs/golden/households.py) and the run date (jobs/golden/profiles.py, ``RUN_DATE_COLUMNS``).
The job diffs the silver tables against the versions the last golden run read and the identity
map against the one it wrote, and rebuilds the profiles of :func:`affected_persons`:

- K: record keys whose content changed (:func:`changed_record_keys`, plus the keys standardize
  reports in one pipeline), whose identifier rows changed (:func:`changed_identifiers`), or
  whose person changed: new, moved to another person, gone (:func:`moved_records`);
- V: the identifier values of K's records, and every identifier row added or removed;
- T: the events added, removed or changed, both versions (:func:`changed_events`), and the
  events tied to a value in V, to a record key in K (as their own key or as their owner's,
  ``owner_record_key``), or carrying a cookie in V;
- affected: the persons of K before and after, and for each event of T every person now holding
  its identifier or its cookie, and the persons of its record key and of its owner record.

Why T and its holders: event attribution is not a function of one person. An identifier held by
two persons attributes its events to neither (``identifier_owners``) and such an event falls back
to its record key or cookie, so a new record sharing an e-mail address with B takes B's orders
away from B although none of B's records changed. An attribution moves only when the event
changes (in T), its record key's person changes (K), or the holders of its identifier or cookie
change, which needs an identifier row added or removed or a holding record moved (value in V, so
the event is in T). The persons it moves between are then in the list: the new owner holds the
value now; the old owner either still holds it (a holder now) or lost the record holding it (K).
An event's owner record (tried first) moves it when that record moves person or appears or goes
(K, so the event is in T), and both persons are K's persons before and after.

Every function is a DataFrame transform (no reads or writes); the results are small (changes),
joined against the big tables as the small side.
"""

from __future__ import annotations

import logging

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common.errors import require_columns
from jobs.common.schemas import ID_COOKIE, TMP

log = logging.getLogger(__name__)

# The event columns a profile uses (jobs/golden/profiles.py): a change elsewhere (campaign, url)
# touches no profile.
EVENT_PROFILE_COLUMNS = (
    "event_type", "event_at", "amount", "id_type", "id_value", "record_key", "owner_record_key", "cookie_id",
)
EVENT_LINKS = ("id_type", "id_value", "record_key", "owner_record_key", "cookie_id")

_H = f"{TMP}row_hash"


def content_hash(df: DataFrame, columns: list[str] | tuple[str, ...] | None = None) -> Column:
    """SHA-256 of a row's columns (all when None) as JSON; maps compared with sorted entries."""
    names = list(columns) if columns is not None else df.columns
    cols = []
    for name in names:
        c = F.col(name)
        cols.append(F.array_sort(F.map_entries(c)).alias(name) if df.schema[name].dataType.typeName() == "map" else c)
    return F.sha2(F.to_json(F.struct(*cols)), 256)


def _differing(old: DataFrame, new: DataFrame, key: str, columns: list[str] | tuple[str, ...] | None) -> DataFrame:
    """(key) of rows present on one side only or with different content."""
    o = old.select(F.col(key), content_hash(old, columns).alias(f"{_H}_old"))
    n = new.select(F.col(key), content_hash(new, columns).alias(_H))
    return (
        o.join(n, key, "full_outer")
        .where(F.col(_H).isNull() | F.col(f"{_H}_old").isNull() | (F.col(_H) != F.col(f"{_H}_old")))
        .select(key)
    )


def changed_record_keys(old_records: DataFrame, new_records: DataFrame) -> DataFrame:
    """(record_key) of SILVER_RECORDS rows added, removed or changed in any column.

    Content rather than ``row_hash`` alone: re-standardising with another config changes silver
    without changing the bronze row's hash.
    """
    require_columns(["record_key"], new_records.columns, "changed_record_keys(new_records)")
    columns = [c for c in new_records.columns if c in old_records.columns]
    return _differing(old_records.select(*columns), new_records.select(*columns), "record_key", None)


def changed_identifiers(old_identifiers: DataFrame, new_identifiers: DataFrame) -> DataFrame:
    """(record_key, id_type, id_value) of identifier rows in exactly one of the two versions."""
    cols = ["record_key", "id_type", "id_value"]
    o = old_identifiers.select(*cols).distinct()
    n = new_identifiers.select(*cols).distinct()
    return o.join(n, cols, "left_anti").unionByName(n.join(o, cols, "left_anti"))


def with_event_links(events: DataFrame) -> DataFrame:
    """SILVER_EVENTS with every column of :data:`EVENT_PROFILE_COLUMNS`: a version written before
    ``owner_record_key`` existed reads it as null (no owner), as the stage that adds it does."""
    missing = {c: F.lit(None).cast("string") for c in EVENT_PROFILE_COLUMNS if c not in events.columns}
    return events.withColumns(missing) if missing else events


def changed_events(old_events: DataFrame, new_events: DataFrame) -> DataFrame:
    """(id_type, id_value, record_key, owner_record_key, cookie_id) of both versions of every
    event added, removed or changed in a column a profile uses (:data:`EVENT_PROFILE_COLUMNS`)."""
    old_events, new_events = with_event_links(old_events), with_event_links(new_events)
    keys = _differing(old_events, new_events, "event_key", EVENT_PROFILE_COLUMNS)
    both = old_events.select("event_key", *EVENT_LINKS).unionByName(new_events.select("event_key", *EVENT_LINKS))
    return both.join(keys, "event_key", "left_semi").select(*EVENT_LINKS)


def moved_records(previous_map: DataFrame, identity_map: DataFrame) -> DataFrame:
    """(record_key, old_person_id, new_person_id) of records that are new, gone or moved person."""
    o = previous_map.select("record_key", F.col("person_id").alias("old_person_id"))
    n = identity_map.select("record_key", F.col("person_id").alias("new_person_id"))
    return o.join(n, "record_key", "full_outer").where(
        ~F.col("old_person_id").eqNullSafe(F.col("new_person_id"))
    )


def affected_persons(
    identity_map: DataFrame,
    identifiers: DataFrame,
    events: DataFrame,
    changed_keys: DataFrame,
    moved: DataFrame,
    changed_ids: DataFrame,
    changed_evts: DataFrame,
) -> DataFrame:
    """(person_id) whose profile may differ from the last run's; rules in the module docstring.

    ``identity_map``, ``identifiers`` and ``events`` are this run's; the others come from
    :func:`changed_record_keys` (plus any keys reported as changed), :func:`moved_records`,
    :func:`changed_identifiers` and :func:`changed_events`. Holds old ids too (merged, retired):
    the job rebuilds the live ones and deletes the others.

    The changed keys, the identifier values they name and the event links they touch are
    materialised: small, and each is read several times below, which as a plan would scan and
    join the events again for every use.
    """
    imap = identity_map.select("record_key", "person_id")
    ids = identifiers.select("record_key", "id_type", "id_value")
    keys = (
        changed_keys.select("record_key")
        .unionByName(moved.select("record_key"))
        .unionByName(changed_ids.select("record_key"))
        .distinct()
        .localCheckpoint()
    )
    of_keys = (
        imap.join(keys, "record_key", "left_semi").select("person_id")
        .unionByName(moved.select(F.col("old_person_id").alias("person_id")))
        .unionByName(moved.select(F.col("new_person_id").alias("person_id")))
    )
    values = (
        ids.join(keys, "record_key", "left_semi").select("id_type", "id_value")
        .unionByName(changed_ids.select("id_type", "id_value"))
        .distinct()
        .localCheckpoint()
    )
    cookies = values.where(F.col("id_type") == F.lit(ID_COOKIE)).select(F.col("id_value").alias("cookie_id"))
    links = with_event_links(events).select(*EVENT_LINKS)
    owner_keys = keys.select(F.col("record_key").alias("owner_record_key"))
    touched = (
        changed_evts.select(*EVENT_LINKS)
        .unionByName(links.join(values, ["id_type", "id_value"], "left_semi"))
        .unionByName(links.join(keys, "record_key", "left_semi"))
        .unionByName(links.join(owner_keys, "owner_record_key", "left_semi"))
        .unionByName(links.join(cookies, "cookie_id", "left_semi"))
        .distinct()
        .localCheckpoint()
    )
    named = (
        touched.select("id_type", "id_value")
        .unionByName(touched.select(F.lit(ID_COOKIE).alias("id_type"), F.col("cookie_id").alias("id_value")))
        .where(F.col("id_type").isNotNull() & F.col("id_value").isNotNull())
        .distinct()
    )
    holders = ids.join(named, ["id_type", "id_value"], "left_semi").join(imap, "record_key").select("person_id")
    event_keys = touched.select("record_key").unionByName(touched.select(F.col("owner_record_key").alias("record_key")))
    by_key = imap.join(event_keys.where(F.col("record_key").isNotNull()).distinct(), "record_key", "left_semi").select("person_id")
    return (
        of_keys.unionByName(holders)
        .unionByName(by_key)
        .where(F.col("person_id").isNotNull())
        .distinct()
    )
