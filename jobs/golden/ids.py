"""Persistent person ids: carry the previous run's ids onto this run's clusters.

Clusters are recomputed from scratch every run, so their ids (the smallest record key) are not
stable and are no customer-facing id anyway. Person ids are opaque: ``"P"`` + 24 hex characters
(96 bits) of SHA-256 over hashed keys only (no PII); they never equal a record key (no "P"
prefix, 32 characters).

A new id is *anchored*: derived from the cluster's anchor record, its oldest record (earliest
``anchor_at``, the source's creation time, then the smallest record key). It depends only on the
cluster's records, not on the order runs saw them: a cluster gets the same id whether its records
arrived in one run or over many, as long as it never merged with or split from another person.
That is what makes an incremental run give the ids of a full run (tests/test_incremental.py).
An anchored id that was ever issued before (a split part whose anchor once anchored the whole
cluster, an erased record re-ingested) is salted with the ``epoch`` instead (the number of
identity-map versions before this run), so an id is never handed out twice.

Rules, as implemented (two ranking steps, no iteration; each order ends in a unique key):

1. Overlaps: for every (cluster, previous person id) the number ``n`` of the cluster's records
   that carried that id, and the smallest such record key.
2. Each previous id may be claimed by one cluster only: the one holding most of its records,
   ties to the part with the smallest record key. This is the split rule: the id stays with the
   largest part.
3. Among the ids a cluster may claim it keeps the one it holds most records of, then the oldest
   (earliest ``first_seen_run`` over the id's previous records; run ids start with a UTC time
   stamp, so they sort by age), then the smallest id. This is the merge rule: the larger, then
   older side keeps its id.
4. A cluster without an id to claim gets a new (anchored) id.

Where history and a fresh start disagree: when two persons merge, the larger side keeps its id
(rule 3) even when the other side holds the older record, and after a split the largest part
keeps it (rule 2) even without the anchor. A full run over the same records, which has no
history, anchors those clusters instead. Both are logged in GOLDEN_ID_CHANGES, so every id that
differs from a fresh assignment is explained by a ``merged`` or ``split`` row.

The change feed (GOLDEN_ID_CHANGES) says, per run:

- ``new``: exactly one row for every id issued in this run, whatever its origin: a cluster of
  only new records, or a part split off from ids that live on elsewhere (records = cluster size,
  related_person_id null). A consumer that follows ``change = 'new'`` sees every id born;
- ``merged``: a previous id whose largest part landed in a cluster that kept another id; it is
  retired, related_person_id = the id of that cluster (records = its records there);
- ``split``: records of an id that lives on (or of a merged id outside its largest part) now
  belong to another person: person_id = the id they belong to now (new or existing),
  related_person_id = the id they came from (records = how many moved);
- ``retired``: a previous id none of whose records is clustered any more (all erased or
  deleted); records = its records in the previous map.

A merged id gets no separate ``retired`` row: the ``merged`` row retires it. An id born from a
split has its ``new`` row and one ``split`` row per id it took records from.

The identity map keeps ``first_seen_run`` of records whose person id did not change; new and moved
records get this run's id. Records of the previous map that are not clustered (erased) drop out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.errors import require_columns
from jobs.common.keys import SEP
from jobs.common.schemas import GOLDEN_ID_CHANGES, GOLDEN_IDENTITY_MAP, TMP, TableSpec

log = logging.getLogger(__name__)

PERSON_ID_PREFIX = "P"
ID_HEX_CHARS = 24

CHANGE_NEW = "new"
CHANGE_MERGED = "merged"
CHANGE_SPLIT = "split"
CHANGE_RETIRED = "retired"

_PREV = f"{TMP}prev_pid"
_PREV_FIRST = f"{TMP}prev_first"
OVERLAP_N = f"{TMP}n"
OVERLAP_KEY = f"{TMP}part_key"
PART_RANK = f"{TMP}part_rank"
KEPT = f"{TMP}kept"
_CLUSTER_KEY = f"{TMP}cluster_key"
_SIZE = f"{TMP}size"
_SINCE = f"{TMP}since"
_PREV_RECORDS = f"{TMP}prev_records"


def opaque_id(prefix: str, namespace: str, *parts: Column) -> Column:
    """``prefix`` + 24 hex characters of SHA-256 over a namespace and non-null parts."""
    digest = F.sha2(F.concat_ws(SEP, F.lit(namespace), *parts), 256)
    return F.concat(F.lit(prefix), F.substring(digest, 1, ID_HEX_CHARS))


def anchored_person_id(anchor_record_key: Column) -> Column:
    """The new id of a cluster whose anchor record is ``anchor_record_key`` (module docstring)."""
    return opaque_id(PERSON_ID_PREFIX, "person", anchor_record_key)


def salted_person_id(epoch: int, anchor_record_key: Column) -> Column:
    """The new id when the anchored one was issued before: salted with the run's epoch."""
    return opaque_id(PERSON_ID_PREFIX, "person", F.lit(str(int(epoch))), anchor_record_key)


def claim_previous_ids(
    overlaps: DataFrame, group: str, previous_id: str, age: str | None = None
) -> tuple[DataFrame, DataFrame]:
    """Who keeps which previous id: steps 2 and 3 of the module rules.

    ``overlaps`` has one row per (``group``, ``previous_id``) with ``OVERLAP_N`` (members of the
    group that carried the id) and ``OVERLAP_KEY`` (their smallest key). Each previous id may be
    claimed only by its first group by (n desc, key); each group keeps, among the ids it may claim,
    the first by (n desc, ``age`` asc nulls last when given, id). Returns the overlaps with
    ``PART_RANK`` (1 = the id's largest part) and the claims (group, ``KEPT``). Shared with
    household ids (jobs/golden/households.py).
    """
    by_id = Window.partitionBy(previous_id).orderBy(
        F.col(OVERLAP_N).desc(), F.col(OVERLAP_KEY).asc(), F.col(group).asc()
    )
    ranked = overlaps.withColumn(PART_RANK, F.row_number().over(by_id))
    order = [F.col(OVERLAP_N).desc()]
    if age is not None:
        order.append(F.col(age).asc_nulls_last())
    order.append(F.col(previous_id).asc())
    by_group = Window.partitionBy(group).orderBy(*order)
    claims = (
        ranked.where(F.col(PART_RANK) == 1)
        .withColumn(f"{TMP}group_rank", F.row_number().over(by_group))
        .where(F.col(f"{TMP}group_rank") == 1)
        .select(F.col(group), F.col(previous_id).alias(KEPT))
    )
    return ranked, claims


def assign_person_ids(
    clusters: DataFrame,
    previous: DataFrame | None,
    run_id: str,
    run_at: datetime,
    epoch: int = 0,
    anchors: DataFrame | None = None,
    known_ids: DataFrame | None = None,
    materialize: Callable[[DataFrame], DataFrame] | None = None,
) -> tuple[DataFrame, DataFrame]:
    """(MATCH_CLUSTERS-like (record_key, cluster_id), previous GOLDEN_IDENTITY_MAP or None)
    -> (GOLDEN_IDENTITY_MAP, GOLDEN_ID_CHANGES) of this run. See the module docstring for rules.

    ``anchors``: ``(record_key, anchor_at)``, the time that makes a record the anchor of its
    cluster (none given: the smallest record key anchors). ``known_ids``: ``person_id`` of every
    id ever issued (golden.id_changes), so an anchored id is never issued twice; ``epoch`` then
    salts it (module docstring): a number no earlier run used, derived from the input (the job
    uses the identity map's Delta version + 1).

    ``previous`` may be empty or None (first run). Pure DataFrame joins, aggregations and
    windows: nothing is collected, so it scales with the cluster.

    ``materialize`` (e.g. ``DataFrame.localCheckpoint``) is applied to the intermediate frames
    both results read (the records joined to their previous ids, the overlaps, the assigned
    ids), so that computing the two results does that work once, not twice: at 316,000 records
    the change feed alone took 16 s after the identity map.
    """
    keep = materialize or (lambda df: df)
    require_columns(["record_key", "cluster_id"], clusters.columns, "assign_person_ids(clusters)")
    if previous is None:
        previous = clusters.sparkSession.createDataFrame([], GOLDEN_IDENTITY_MAP.schema)
    require_columns(["record_key", "person_id", "first_seen_run"], previous.columns, "assign_person_ids(previous)")

    current = clusters.select("record_key", "cluster_id")
    prev = previous.where(F.col("person_id").isNotNull()).select(
        "record_key", F.col("person_id").alias(_PREV), F.col("first_seen_run").alias(_PREV_FIRST)
    )
    joined = keep(current.join(prev, "record_key", "left"))

    sizes = current.groupBy("cluster_id").agg(
        F.count(F.lit(1)).alias(_SIZE), F.min("record_key").alias(_CLUSTER_KEY)
    )
    overlaps = (
        joined.where(F.col(_PREV).isNotNull())
        .groupBy("cluster_id", _PREV)
        .agg(F.count(F.lit(1)).alias(OVERLAP_N), F.min("record_key").alias(OVERLAP_KEY))
    )
    overlaps = keep(overlaps)
    ages = keep(prev.groupBy(_PREV).agg(F.min(_PREV_FIRST).alias(_SINCE), F.count(F.lit(1)).alias(_PREV_RECORDS)))
    ranked, claims = claim_previous_ids(overlaps.join(ages, _PREV), "cluster_id", _PREV, _SINCE)
    ranked = keep(ranked)

    # New ids from the cluster's anchor: its oldest record (anchor_at asc nulls last, then key).
    if anchors is None:
        anchors = current.select("record_key", F.lit(None).cast("timestamp").alias("anchor_at"))
    require_columns(["record_key", "anchor_at"], anchors.columns, "assign_person_ids(anchors)")
    first = Window.partitionBy("cluster_id").orderBy(F.col("anchor_at").asc_nulls_last(), F.col("record_key").asc())
    anchor = (
        current.join(anchors.select("record_key", "anchor_at"), "record_key", "left")
        .withColumn(f"{TMP}rn", F.row_number().over(first))
        .where(F.col(f"{TMP}rn") == 1)
        .select("cluster_id", F.col("record_key").alias(f"{TMP}anchor"))
    )
    candidate = sizes.join(claims, "cluster_id", "left").join(anchor, "cluster_id").withColumn(
        f"{TMP}anchored", anchored_person_id(F.col(f"{TMP}anchor"))
    )
    used = prev.select(F.col(_PREV).alias(f"{TMP}anchored"))
    if known_ids is not None:
        used = used.unionByName(known_ids.select(F.col("person_id").alias(f"{TMP}anchored")))
    used = used.distinct().withColumn(f"{TMP}used", F.lit(True))
    fresh = F.when(F.col(f"{TMP}used").isNull(), F.col(f"{TMP}anchored")).otherwise(
        salted_person_id(epoch, F.col(f"{TMP}anchor"))
    )
    assigned = keep(
        candidate.join(used, f"{TMP}anchored", "left")
        .withColumn("person_id", F.coalesce(F.col(KEPT), fresh))
        .drop(f"{TMP}anchored", f"{TMP}used", f"{TMP}anchor")
    )

    identity_map = joined.join(assigned.select("cluster_id", "person_id"), "cluster_id").select(
        F.col("record_key"),
        F.col("person_id"),
        F.when(F.col(_PREV) == F.col("person_id"), F.coalesce(F.col(_PREV_FIRST), F.lit(run_id)))
        .otherwise(F.lit(run_id))
        .alias("first_seen_run"),
        F.lit(run_id).alias("run_id"),
    )

    claimed = claims.select(F.col(KEPT).alias(_PREV), F.lit(True).alias(f"{TMP}claimed"))
    moved = (
        ranked.join(assigned.select("cluster_id", "person_id"), "cluster_id")
        .where(F.col("person_id") != F.col(_PREV))
        .join(claimed, _PREV, "left")
    )
    is_merge = F.col(f"{TMP}claimed").isNull() & (F.col(PART_RANK) == 1)
    moves = moved.select(
        F.when(is_merge, F.lit(CHANGE_MERGED)).otherwise(F.lit(CHANGE_SPLIT)).alias("change"),
        F.when(is_merge, F.col(_PREV)).otherwise(F.col("person_id")).alias("person_id"),
        F.when(is_merge, F.col("person_id")).otherwise(F.col(_PREV)).alias("related_person_id"),
        F.col(OVERLAP_N).alias("records"),
    )
    new = assigned.where(F.col(KEPT).isNull()).select(
        F.lit(CHANGE_NEW).alias("change"),
        F.col("person_id"),
        F.lit(None).cast("string").alias("related_person_id"),
        F.col(_SIZE).alias("records"),
    )
    retired = ages.join(overlaps.select(_PREV).distinct(), _PREV, "left_anti").select(
        F.lit(CHANGE_RETIRED).alias("change"),
        F.col(_PREV).alias("person_id"),
        F.lit(None).cast("string").alias("related_person_id"),
        F.col(_PREV_RECORDS).alias("records"),
    )
    changes = (
        moves.unionByName(new)
        .unionByName(retired)
        .withColumns({"run_id": F.lit(run_id), "changed_at": F.lit(run_at).cast("timestamp")})
    )
    log.debug("person id assignment planned for run %s", run_id)
    return (
        _conform(identity_map, GOLDEN_IDENTITY_MAP),
        _conform(changes, GOLDEN_ID_CHANGES),
    )


def _conform(df: DataFrame, table: TableSpec) -> DataFrame:
    """Exactly the table's columns, in order, with its types."""
    return df.select(*[F.col(c.name).cast(c.dtype).alias(c.name) for c in table.columns])
