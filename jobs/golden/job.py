"""Golden job: match.clusters + silver -> golden.identity_map, id_changes, profiles, households.

Reads the clusters of the match stage, carries the previous run's person ids onto them
(jobs/golden/ids.py), builds the profiles (jobs/golden/profiles.py) and households
(jobs/golden/households.py), and writes:

- golden.id_changes: appended (the change feed), written first, so a run killed halfway logs its
  changes again on the rerun rather than losing them;
- golden.identity_map: overwritten;
- golden.profiles: MERGE of the profiles that changed (fingerprint of every column but
  run_id/updated_at), then a delete of the profiles whose person id is gone; unchanged profiles
  keep their run_id and updated_at. A run that changes nothing adds no profile version;
- golden.households: overwritten.

``affected_record_keys`` (a ``record_key`` column; None = full run): person ids are always
assigned over all clusters (one pass of joins), but profiles are rebuilt only for the persons of
those records and of ids that changed this run; the other profiles are taken over from the table.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.errors import DataError, require_columns
from jobs.common.runlog import record_run

from .households import assign_households, attach_households, previous_households, relationships
from .ids import CHANGE_MERGED, CHANGE_NEW, CHANGE_RETIRED, CHANGE_SPLIT, assign_person_ids
from .profiles import build_profiles, changed_profiles, removed_profiles

if TYPE_CHECKING:
    from jobs.common.context import Context

log = logging.getLogger(__name__)

JOB = "golden"


def check_clusters(clusters: DataFrame) -> None:
    """Fail on clusters the id assignment cannot use: null keys, a record in two rows.

    Names the offending record keys (hashes, no PII) and how many there are.
    """
    require_columns(["record_key", "cluster_id"], clusters.columns, S.MATCH_CLUSTERS.address)
    nulls = clusters.where(F.col("record_key").isNull() | F.col("cluster_id").isNull()).count()
    if nulls:
        raise DataError(f"{S.MATCH_CLUSTERS.address}: {nulls} row(s) with a null record_key or cluster_id; expected none")
    dupes = (
        clusters.groupBy("record_key")
        .agg(F.count(F.lit(1)).alias("n"))
        .where(F.col("n") > 1)
        .orderBy("record_key")
        .limit(3)
        .collect()
    )
    if dupes:
        keys = ", ".join(r.record_key for r in dupes)
        raise DataError(
            f"{S.MATCH_CLUSTERS.address}: record(s) in more than one cluster (e.g. {keys}); "
            "expected one cluster per record"
        )


def identity_epoch(ctx: "Context") -> int:
    """Salt of this run's new ids (jobs/golden/ids.py): identity-map versions written so far."""
    address = S.GOLDEN_IDENTITY_MAP.address
    return ctx.lake.version(address) + 1 if ctx.lake.exists(address) else 0


def _read_required(ctx: "Context", address: str) -> DataFrame:
    if not ctx.lake.exists(address):
        raise DataError(f"{address} does not exist under {ctx.lake.root}; run the stage that writes it first")
    return ctx.lake.read(address)


def _scope(identity_map: DataFrame, changes: DataFrame, affected: DataFrame) -> DataFrame:
    """Persons whose profile must be rebuilt: those of affected records and of changed ids."""
    require_columns(["record_key"], affected.columns, "golden run(affected_record_keys)")
    of_records = identity_map.join(affected.select("record_key").distinct(), "record_key", "left_semi").select(
        "person_id"
    )
    of_changes = changes.select("person_id").unionByName(
        changes.select(F.col("related_person_id").alias("person_id"))
    )
    return of_records.unionByName(of_changes).where(F.col("person_id").isNotNull()).distinct()


def run(
    ctx: "Context", affected_record_keys: DataFrame | None = None, incremental: bool = False
) -> dict[str, Any]:
    """One golden run; returns the summary that is also stored as metrics in ops.runs.

    ``incremental`` is accepted for the CLI (`cdp golden --incremental`, `cdp run`); without
    ``affected_record_keys`` a run is always full.
    """
    lake = ctx.lake
    cfg = ctx.cfg.golden
    with record_run(lake, JOB, ctx.config_hash, ctx.parent_run_id) as r:
        run_at = r.started_at
        clusters = _read_required(ctx, S.MATCH_CLUSTERS.address)
        check_clusters(clusters)
        records = _read_required(ctx, S.SILVER_RECORDS.address)
        identifiers = lake.read_or_empty(S.SILVER_IDENTIFIERS.address, S.SILVER_IDENTIFIERS.schema)
        events = lake.read_or_empty(S.SILVER_EVENTS.address, S.SILVER_EVENTS.schema)
        has_previous = lake.exists(S.GOLDEN_IDENTITY_MAP.address)
        previous = lake.read(S.GOLDEN_IDENTITY_MAP.address) if has_previous else None
        epoch = identity_epoch(ctx)

        anchors = records.select(
            "record_key", F.coalesce("source_created_at", "source_updated_at").alias("anchor_at")
        )
        known = lake.read(S.GOLDEN_ID_CHANGES.address).select("person_id") if lake.exists(S.GOLDEN_ID_CHANGES.address) else None
        identity_map, changes = assign_person_ids(clusters, previous, r.run_id, run_at, epoch, anchors, known)
        identity_map = identity_map.localCheckpoint()
        changes = changes.localCheckpoint()
        n_records = identity_map.count()
        r.rows_in += n_records
        r.stage("person ids assigned", n_records)
        change_counts = {row["change"]: row["n"] for row in changes.groupBy("change").agg(F.count(F.lit(1)).alias("n")).collect()}

        old = lake.read_or_empty(S.GOLDEN_PROFILES.address, S.GOLDEN_PROFILES.schema)
        if affected_record_keys is None:
            profiles = build_profiles(records, identifiers, events, identity_map, cfg, r.run_id, run_at, ctx.run_date)
        else:
            scope = _scope(identity_map, changes, affected_record_keys).localCheckpoint()
            fresh = build_profiles(
                records, identifiers, events, identity_map, cfg, r.run_id, run_at, ctx.run_date, persons=scope
            )
            live = identity_map.select("person_id").distinct()
            kept = old.join(live, "person_id", "left_semi").join(scope, "person_id", "left_anti")
            profiles = kept.unionByName(fresh)
            r.metric("persons_rebuilt", scope.count())

        prev_households = (
            previous_households(lake.read(S.GOLDEN_HOUSEHOLDS.address))
            if lake.exists(S.GOLDEN_HOUSEHOLDS.address)
            else None
        )
        households = assign_households(profiles, cfg, prev_households, epoch)
        profiles = attach_households(profiles, households).localCheckpoint()
        n_profiles = profiles.count()
        r.stage("profiles built", n_profiles)

        changed = profiles.join(changed_profiles(profiles, old), "person_id", "left_semi").localCheckpoint()
        removed = removed_profiles(profiles, old).localCheckpoint()
        n_changed, n_removed = changed.count(), removed.count()
        relations = relationships(profiles, records, identity_map, households, r.run_id).localCheckpoint()

        # --- writes (change feed first: a rerun after a crash repeats it rather than losing it)
        if changes.count() or not lake.exists(S.GOLDEN_ID_CHANGES.address):
            lake.append(S.GOLDEN_ID_CHANGES.address, changes)
        lake.overwrite(S.GOLDEN_IDENTITY_MAP.address, identity_map)
        if not lake.exists(S.GOLDEN_PROFILES.address):
            lake.create(S.GOLDEN_PROFILES.address, S.GOLDEN_PROFILES.schema)
        if n_changed:
            lake.merge(S.GOLDEN_PROFILES.address, changed, ["person_id"])
        if n_removed:
            lake.delete_keys(S.GOLDEN_PROFILES.address, "person_id", removed)
        lake.overwrite(S.GOLDEN_HOUSEHOLDS.address, relations)
        r.stage("golden tables written", n_profiles)

        n_households = households.where(F.col("household_id").isNotNull()).select("household_id").distinct().count()
        summary: dict[str, Any] = {
            "run_id": r.run_id,
            "records": n_records,
            "persons": n_profiles,
            "new": change_counts.get(CHANGE_NEW, 0),
            "merged": change_counts.get(CHANGE_MERGED, 0),
            "split": change_counts.get(CHANGE_SPLIT, 0),
            "retired": change_counts.get(CHANGE_RETIRED, 0),
            "households": n_households,
            "profiles_changed": n_changed,
            "profiles_removed": n_removed,
            "epoch": epoch,
        }
        r.rows_out += n_profiles
        for key, value in summary.items():
            if key != "run_id":
                r.metric(key, value)
    return summary
