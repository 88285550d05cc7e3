"""Deterministic identifier links: records that share an identifier value are the same person.

Two kinds of edges (MATCH_EDGES, ``match_probability`` 1.0, ``match_weight`` null):

- ``identifier:<type>``: records sharing a value of a configured identifier type (customer number,
  loyalty card, e-mail by default). Each value group is linked as a star to its smallest record key,
  not as all O(n^2) pairs: the connected components are the same and the edge count stays linear.
- ``identifier:cookie_login``: a web cookie record is linked to the records carrying the customer
  number the cookie logged in with (silver.events, event_type ``login``).

Values shared by more than ``max_records_per_value`` records are generic (a family e-mail, a shop's
phone, ``info@``) and cookies that logged in as more than ``max_customers_per_cookie`` customers are
shared devices: neither links anything, both are reported as counts per identifier type. A value
whose records name different people (a type in ``conflict_check``, and records of more than one
given-name initial or more than one birth date hold it: a family e-mail address, a shared loyalty card)
links nothing either (reason ``conflicting_holders``): the probabilistic model, which weighs the
shared value against the different names, decides those pairs. The report never holds identifier
values (PII).
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common.errors import require_columns
from jobs.common.schemas import ID_COOKIE, ID_CUSTOMER_NUMBER, MATCH_EDGES, TMP
from jobs.match.config import DeterministicConfig

log = logging.getLogger(__name__)

# Source of the anonymous cookie records (conf/sources/web.yaml: records_source).
WEB_SOURCE = "web"
LOGIN_EVENT = "login"
EDGE_PREFIX = "identifier:"
COOKIE_LOGIN = "cookie_login"
REASON_GENERIC = "generic_value"
REASON_SHARED_DEVICE = "shared_device"
REASON_CONFLICT = "conflicting_holders"

_N = f"{TMP}n"
_ROOT = f"{TMP}root"
_L = f"{TMP}l"
_R = f"{TMP}r"
_TYPE = f"{TMP}type"


def _edges(pairs: DataFrame, run_id: str) -> DataFrame:
    """(_L, _R, _TYPE) -> MATCH_EDGES rows with the smaller key on the left."""
    cols = {
        "record_key_l": F.least(_L, _R),
        "record_key_r": F.greatest(_L, _R),
        "edge_type": F.concat(F.lit(EDGE_PREFIX), F.col(_TYPE)),
        "match_weight": F.lit(None),
        "match_probability": F.lit(1.0),
        "run_id": F.lit(run_id),
    }
    return pairs.where(F.col(_L) != F.col(_R)).select(
        *[cols[c.name].cast(c.dtype).alias(c.name) for c in MATCH_EDGES.columns]
    )


def _value_groups(identifiers: DataFrame) -> DataFrame:
    """(record_key, id_type, id_value) distinct, with the group's record count and smallest key."""
    ids = (
        identifiers.select("record_key", "id_type", "id_value")
        .where(F.col("record_key").isNotNull() & F.col("id_value").isNotNull() & (F.trim(F.col("id_value")) != ""))
        .distinct()
    )
    groups = ids.groupBy("id_type", "id_value").agg(
        F.count(F.lit(1)).alias(_N), F.min("record_key").alias(_ROOT)
    )
    return ids.join(groups, ["id_type", "id_value"])


def _type_counts(groups: DataFrame) -> list:
    """Per id_type (in order): distinct values and records of value-group rows, for the report."""
    return (
        groups.groupBy("id_type")
        .agg(F.countDistinct("id_value").alias("values"), F.countDistinct("record_key").alias("records"))
        .orderBy("id_type")
        .collect()
    )


def conflicting_values(groups: DataFrame, records: DataFrame) -> DataFrame:
    """(id_type, id_value) of the value groups whose records name different people.

    Different people: more than one given-name initial, or more than one birth date, among the
    group's records (blank values do not count; ``records`` has ``record_key``,
    ``given_name_match`` and ``birth_date``).
    """
    require_columns(["record_key", "given_name_match", "birth_date"], records.columns, "identifier_edges: records")
    initial = F.upper(F.substring(F.trim(F.col("given_name_match")), 1, 1))
    people = records.select(
        "record_key",
        F.when(initial != F.lit(""), initial).alias(f"{TMP}initial"),
        F.col("birth_date").alias(f"{TMP}birth"),
    )
    held = groups.select("id_type", "id_value", "record_key").join(people, "record_key", "left")
    counts = held.groupBy("id_type", "id_value").agg(
        F.countDistinct(f"{TMP}initial").alias(f"{TMP}initials"), F.countDistinct(f"{TMP}birth").alias(f"{TMP}births")
    )
    return counts.where((F.col(f"{TMP}initials") > 1) | (F.col(f"{TMP}births") > 1)).select("id_type", "id_value")


def identifier_edges(
    identifiers: DataFrame,
    events: DataFrame | None,
    cfg: DeterministicConfig,
    run_id: str,
    records: DataFrame | None = None,
) -> tuple[DataFrame, list[dict]]:
    """silver.identifiers (+ silver.events logins) -> (MATCH_EDGES rows, report).

    Report rows: ``{reason, id_type, values, records}``: ``generic_value`` rows count the values of a
    type shared by more than ``max_records_per_value`` records and the records holding them;
    ``shared_device`` rows (id_type ``cookie_id``) count the cookies that logged in as more than
    ``max_customers_per_cookie`` customers and the web cookie records holding them;
    ``conflicting_holders`` rows count the values of a type whose records name different people
    (:func:`conflicting_values`; with ``records``, for the types in ``cfg.conflict_check``).
    """
    require_columns(["record_key", "id_type", "id_value", "source"], identifiers.columns, "identifier_edges: identifiers")
    empty = identifiers.sparkSession.createDataFrame([], MATCH_EDGES.schema)
    if not cfg.enabled or (not cfg.id_types and not cfg.cookie_login):
        return empty, []  # no identifier links, and no type whose generic values would be reported
    report: list[dict] = []
    # which values are generic, counted over every identifier type (cookie login needs customer numbers)
    grouped = _value_groups(identifiers)
    for row in _type_counts(grouped.where(F.col(_N) > cfg.max_records_per_value)):
        if row.id_type in cfg.id_types or (cfg.cookie_login and row.id_type == ID_CUSTOMER_NUMBER):
            report.append({"reason": REASON_GENERIC, "id_type": row.id_type, "values": int(row["values"]), "records": int(row.records)})
    usable = grouped.where(F.col(_N) <= cfg.max_records_per_value)

    parts: list[DataFrame] = []
    if cfg.id_types:
        shared = usable.where(F.col("id_type").isin(*cfg.id_types) & (F.col(_N) >= 2))
        checked = [t for t in cfg.conflict_check if t in cfg.id_types]
        if records is not None and checked:
            conflicts = conflicting_values(shared.where(F.col("id_type").isin(*checked)), records).localCheckpoint()
            for row in _type_counts(shared.join(conflicts, ["id_type", "id_value"], "left_semi")):
                report.append({"reason": REASON_CONFLICT, "id_type": row.id_type, "values": int(row["values"]), "records": int(row.records)})
            shared = shared.join(conflicts, ["id_type", "id_value"], "left_anti")
        parts.append(shared.select(F.col(_ROOT).alias(_L), F.col("record_key").alias(_R), F.col("id_type").alias(_TYPE)))

    if cfg.cookie_login and events is not None:
        require_columns(
            ["event_type", "cookie_id", "login_customer_number"], events.columns, "identifier_edges: events"
        )
        logins = (
            events.where(
                (F.col("event_type") == LOGIN_EVENT)
                & F.col("cookie_id").isNotNull()
                & F.col("login_customer_number").isNotNull()
            )
            .select(F.col("cookie_id").alias("id_value"), F.col("login_customer_number").alias(f"{TMP}cn"))
            .distinct()
        )
        per_cookie = logins.groupBy("id_value").agg(F.count(F.lit(1)).alias(f"{TMP}customers"))
        shared_devices = per_cookie.where(F.col(f"{TMP}customers") > cfg.max_customers_per_cookie)
        cookies = identifiers.where((F.col("id_type") == ID_COOKIE) & (F.col("source") == WEB_SOURCE)).select(
            F.col("record_key").alias(_L), F.col("id_value")
        )
        counts = (
            shared_devices.join(cookies, "id_value", "left")
            .agg(F.countDistinct("id_value").alias("values"), F.countDistinct(_L).alias("records"))
            .collect()[0]
        )
        if counts["values"]:
            report.append(
                {"reason": REASON_SHARED_DEVICE, "id_type": ID_COOKIE, "values": int(counts["values"]), "records": int(counts.records)}
            )
        customers = usable.where(F.col("id_type") == ID_CUSTOMER_NUMBER).select(
            F.col("record_key").alias(_R), F.col("id_value").alias(f"{TMP}cn")
        )
        links = (
            logins.join(shared_devices.select("id_value"), "id_value", "left_anti")
            .join(cookies, "id_value")
            .join(customers, f"{TMP}cn")
            .select(F.col(_L), F.col(_R), F.lit(COOKIE_LOGIN).alias(_TYPE))
        )
        parts.append(links)

    for row in report:
        log.info("identifier links: %s %s: %d values, %d records not used", row["reason"], row["id_type"], row["values"], row["records"])
    if not parts:
        return empty, report
    pairs = parts[0]
    for p in parts[1:]:
        pairs = pairs.unionByName(p)
    edges = _edges(pairs, run_id).dropDuplicates(["record_key_l", "record_key_r", "edge_type"])
    return edges, report
