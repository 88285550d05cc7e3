"""Golden job: match.clusters + silver -> golden.identity_map, id_changes, profiles, households.

Reads the clusters of the match stage, carries the previous run's person ids onto them
(jobs/golden/ids.py), builds the profiles (jobs/golden/profiles.py) and households
(jobs/golden/households.py), and writes:

- golden.id_changes: appended (the change feed), written first, so a run killed halfway logs its
  changes again on the rerun rather than losing them;
- golden.identity_map: overwritten;
- golden.profiles: MERGE of the profiles that changed (fingerprint of every column but
  run_id/updated_at), then a delete of the profiles whose person id is gone; unchanged profiles
  keep their run_id and updated_at. Every commit of a run carries its run id in the commit
  metadata (``userMetadata``, jobs/common/delta.py); a run that changes no profile commits an
  empty version, so every run has a version of golden.profiles (jobs/golden/lookup.py
  ``profiles_version_of_run``);
- golden.households: the rows of persons whose relations changed are replaced (delete by person
  id, append); golden.household_ids: ids issued for the first time are appended.

Full and incremental runs (``incremental=True``, as `cdp run --incremental` passes it) give the
same tables. A full run rebuilds every profile and regroups every address. An incremental run
rebuilds only the profiles of the persons jobs/golden/incremental.py finds affected: it diffs
silver.records, silver.identifiers and silver.events against the versions the last golden run
read, and the identity map against the one it wrote (plus the record keys standardize reports
in ``ctx.state["changed_record_keys"]`` within one pipeline, and ``affected_record_keys`` when a
caller passes them). Other profiles are taken over from the table, with the run-date columns
recomputed for everyone (profiles.py, ``refresh_run_date_columns``) and household ids only for
the addresses an affected person left or joined (households.py, ``households_to_recompute``).

The state an incremental run needs is recorded as ``state.*`` metrics of the run in ops.runs:
the Delta versions of the silver tables read, of the golden tables written, and a fingerprint of
the golden config. An incremental run falls back to a full run (metric ``full_reason``) when
there is no such earlier run, the golden config changed, a golden table was changed since by
anything else (a run that failed halfway, a manual write) or an old silver version can no longer
be read (vacuumed). An erasure's deletes are the exception: the erasure passes the versions
before and after them (``changed_outputs``) and the records whose persons they touch, and after
its history purge (versions that change no row and make the older ones unreadable) it moves the
recorded state onto the purged versions (:func:`rebase_state`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.errors import DataError, require_columns
from jobs.common.runlog import record_run
from jobs.common.schemas import TMP

from .config import GoldenConfig
from .households import (
    RELATION_HOUSEHOLD,
    assign_households,
    attach_households,
    changed_relation_persons,
    household_members,
    households_to_recompute,
    person_relations,
    previous_households,
)
from .ids import CHANGE_MERGED, CHANGE_NEW, CHANGE_RETIRED, CHANGE_SPLIT, assign_person_ids
from .incremental import (
    affected_persons,
    changed_events,
    changed_identifiers,
    changed_record_keys,
    moved_records,
    with_event_links,
)
from .profiles import (
    build_profiles,
    changed_profiles,
    refresh_run_date_columns,
    removed_profiles,
)

if TYPE_CHECKING:
    from jobs.common.context import Context

log = logging.getLogger(__name__)

JOB = "golden"

STATE = "state."
STATE_CONFIG = f"{STATE}config"
# silver tables a profile is built from: diffed against the versions the last run read
INPUTS = (S.SILVER_RECORDS, S.SILVER_IDENTIFIERS, S.SILVER_EVENTS)
# golden tables this job writes: an incremental run needs them as the last run left them
OUTPUTS = (S.GOLDEN_IDENTITY_MAP, S.GOLDEN_PROFILES, S.GOLDEN_HOUSEHOLDS, S.GOLDEN_HOUSEHOLD_IDS)


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


def config_fingerprint(cfg: GoldenConfig) -> str:
    """What the profiles depend on in config: a change makes the next incremental run full."""
    return hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def _read_required(ctx: "Context", address: str, version: int | None = None) -> DataFrame:
    if not ctx.lake.exists(address):
        raise DataError(f"{address} does not exist under {ctx.lake.root}; run the stage that writes it first")
    return ctx.lake.read(address, version=version)


def _version(ctx: "Context", address: str) -> int:
    return ctx.lake.version(address) if ctx.lake.exists(address) else -1


def _last_run(ctx: "Context") -> dict[str, Any] | None:
    """The ops.runs row of the last succeeded golden run, or None."""
    if not ctx.lake.exists(S.OPS_RUNS.address):
        return None
    rows = (
        ctx.lake.read(S.OPS_RUNS.address)
        .where((F.col("job") == F.lit(JOB)) & (F.col("status") == F.lit("succeeded")))
        .orderBy(F.col("ended_at").desc(), F.col("run_id").desc())
        .limit(1)
        .collect()
    )
    return rows[0].asDict() if rows else None


def last_state(ctx: "Context") -> dict[str, str] | None:
    """The ``state.*`` metrics of the last succeeded golden run (module docstring), or None."""
    row = _last_run(ctx)
    state = {k: v for k, v in ((row or {}).get("metrics") or {}).items() if k.startswith(STATE)}
    return state or None


def rebase_state(ctx: "Context", moved: Mapping[str, tuple[int, int]]) -> list[str]:
    """Move the last golden run's state onto later versions that hold the same rows.

    ``moved``: table -> (version, a later version with the same rows). An erasure's history purge
    commits such versions (table properties, vacuum start and end) and removes the log of the
    older ones, which can then no longer be read. A state entry at the earlier version moves to
    the later one, so the next incremental run neither falls back to a full run nor diffs
    against a version that is gone. Returns the tables whose entry moved (the run's ops.runs row
    is updated in place; nothing else in it changes).
    """
    row = _last_run(ctx)
    if row is None:
        return []
    metrics = dict(row.get("metrics") or {})
    rebased = []
    for address, (before, after) in sorted(moved.items()):
        key = STATE + address
        if key in metrics and int(metrics[key]) == before and after != before:
            metrics[key] = str(after)
            rebased.append(address)
    if rebased:
        ctx.lake.upsert_rows(S.OPS_RUNS.address, [{**row, "metrics": metrics}], S.OPS_RUNS.schema, ["run_id"])
    return rebased


def output_versions(ctx: "Context") -> dict[str, int]:
    """The Delta version of each table this job writes (-1: not there yet)."""
    return {t.address: _version(ctx, t.address) for t in OUTPUTS}


def _full_reason(
    ctx: "Context",
    prior: dict[str, str] | None,
    fingerprint: str,
    versions: dict[str, int],
    changed_outputs: Mapping[str, tuple[int, int]] | None = None,
) -> str | None:
    """Why this run cannot be incremental, or None when it can (before reading old versions).

    ``changed_outputs``: see :func:`run`; a table there counts as the last run left it when the
    caller's change started from that version and the table is still at the version it ended at.
    """
    if prior is None:
        return "no earlier golden run recorded its state"
    if prior.get(STATE_CONFIG) != fingerprint:
        return "the golden config changed since the last golden run"
    for table in OUTPUTS:
        want, have = prior.get(STATE + table.address), _version(ctx, table.address)
        before, after = (changed_outputs or {}).get(table.address, (None, None))
        if want is not None and int(want) == before:
            want = str(after)
        if want is None or int(want) != have:
            return f"{table.address} is at version {have}; the last golden run left it at {want}"
    for table in INPUTS:
        want = prior.get(STATE + table.address)
        if want is None or int(want) > versions[table.address]:
            return f"{table.address} is at version {versions[table.address]}; the last golden run read {want}"
    return None


def _diffs(
    ctx: "Context", prior: dict[str, str], versions: dict[str, int], now: dict[str, DataFrame]
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(changed record keys, changed identifier rows, changed event links) since the last run.

    A table at the version the last run read has no changes (nothing is read twice); otherwise
    only the rows of the data files one of the two versions does not share with the other are
    diffed (``Lake.read_difference``): a batch's merge adds and rewrites a few files.
    """
    spark = ctx.spark
    out: dict[str, DataFrame] = {}
    diff = {
        S.SILVER_RECORDS.address: (changed_record_keys, "record_key string"),
        S.SILVER_IDENTIFIERS.address: (changed_identifiers, "record_key string, id_type string, id_value string"),
        S.SILVER_EVENTS.address: (
            changed_events, "id_type string, id_value string, record_key string, owner_record_key string, cookie_id string"
        ),
    }
    for table in INPUTS:
        fn, empty = diff[table.address]
        then = int(prior[STATE + table.address])
        if then == versions[table.address]:
            out[table.address] = spark.createDataFrame([], empty)
            continue
        if then >= 0:  # only the rows of the data files a version does not share with the other
            old, new = ctx.lake.read_difference(table.address, then, versions[table.address])
        else:
            old, new = spark.createDataFrame([], table.schema), now[table.address]
        out[table.address] = fn(old, new).localCheckpoint()  # fails here when vacuumed
    return out[S.SILVER_RECORDS.address], out[S.SILVER_IDENTIFIERS.address], out[S.SILVER_EVENTS.address]


def run(
    ctx: "Context",
    affected_record_keys: DataFrame | None = None,
    incremental: bool = False,
    changed_outputs: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """One golden run; returns the summary that is also stored as metrics in ops.runs.

    ``incremental``: rebuild only the affected persons (module docstring), falling back to a
    full run when it cannot. ``affected_record_keys`` (a ``record_key`` column): records to treat
    as changed on top of what the run finds itself; implies ``incremental``.
    ``changed_outputs``: golden tables the caller changed since the last golden run, as
    (version before, version after) each, and whose changes ``affected_record_keys`` covers: an
    erasure deletes the rows of the persons it removes and names the remaining records of
    everyone whose profile or household those deletes touch (jobs/privacy/job.py).
    """
    lake = ctx.lake
    cfg = ctx.cfg.golden
    incremental = incremental or affected_record_keys is not None
    with record_run(lake, JOB, ctx.config_hash, ctx.parent_run_id) as r, lake.commit_metadata(job=JOB, run_id=r.run_id):
        run_at = r.started_at
        versions = {t.address: _version(ctx, t.address) for t in INPUTS}
        clusters = _read_required(ctx, S.MATCH_CLUSTERS.address)
        check_clusters(clusters)
        records = _read_required(ctx, S.SILVER_RECORDS.address, versions[S.SILVER_RECORDS.address])
        pinned = {
            t.address: lake.read(t.address, version=versions[t.address]) if versions[t.address] >= 0 else ctx.spark.createDataFrame([], t.schema)
            for t in (S.SILVER_IDENTIFIERS, S.SILVER_EVENTS)
        }
        identifiers, events = pinned[S.SILVER_IDENTIFIERS.address], with_event_links(pinned[S.SILVER_EVENTS.address])
        has_previous = lake.exists(S.GOLDEN_IDENTITY_MAP.address)
        previous = lake.read(S.GOLDEN_IDENTITY_MAP.address) if has_previous else None
        epoch = identity_epoch(ctx)
        fingerprint = config_fingerprint(cfg)

        prior = last_state(ctx) if incremental else None
        reason = _full_reason(ctx, prior, fingerprint, versions, changed_outputs) if incremental else "full run requested"
        if reason is not None:
            prior = None

        anchors = records.select(
            "record_key", F.coalesce("source_created_at", "source_updated_at").alias("anchor_at")
        )
        known = lake.read(S.GOLDEN_ID_CHANGES.address).select("person_id") if lake.exists(S.GOLDEN_ID_CHANGES.address) else None
        identity_map, changes = assign_person_ids(
            clusters, previous, r.run_id, run_at, epoch, anchors, known, materialize=lambda df: df.localCheckpoint()
        )
        identity_map = identity_map.localCheckpoint()
        changes = changes.localCheckpoint()
        n_records = identity_map.count()
        r.rows_in += n_records
        r.stage("person ids assigned", n_records)
        change_counts = {row["change"]: row["n"] for row in changes.groupBy("change").agg(F.count(F.lit(1)).alias("n")).collect()}

        affected: DataFrame | None = None
        if prior is not None:
            try:
                keys, changed_ids, changed_evts = _diffs(ctx, prior, versions, {
                    S.SILVER_RECORDS.address: records,
                    S.SILVER_IDENTIFIERS.address: identifiers,
                    S.SILVER_EVENTS.address: events,
                })
            except Exception as exc:  # noqa: BLE001 - an old version that cannot be read: run full
                reason = f"an earlier silver version cannot be read any more ({type(exc).__name__})"
                log.warning("golden: %s; running full", reason)
            else:
                r.stage("silver changes since the last golden run read")
                for extra in (ctx.state.get("changed_record_keys"), affected_record_keys):
                    if extra is not None:
                        keys = keys.unionByName(extra.select("record_key"))
                # materialised, as the diffs are: small, and joined against the big tables
                moved = moved_records(previous if previous is not None else identity_map.limit(0), identity_map).localCheckpoint()
                affected = (
                    affected_persons(identity_map, identifiers, events, keys, moved, changed_ids, changed_evts)
                    .unionByName(changes.select("person_id"))
                    .unionByName(changes.select(F.col("related_person_id").alias("person_id")))
                    .where(F.col("person_id").isNotNull())
                    .distinct()
                    .localCheckpoint()
                )
                r.stage("affected persons found", affected.count())
        r.metric("mode", "full" if affected is None else "incremental")
        if affected is None and incremental:
            r.metric("full_reason", reason)
            log.info("golden: full run (%s)", reason)

        stored = lake.read_or_empty(S.GOLDEN_PROFILES.address, S.GOLDEN_PROFILES.schema)
        live = identity_map.select("person_id").distinct()
        if affected is None:
            profiles = build_profiles(records, identifiers, events, identity_map, cfg, r.run_id, run_at, ctx.run_date)
            profiles = profiles.localCheckpoint()
            rebuilt = profiles.select("person_id")
            regroup = None
            date_moved = None
        else:
            rebuilt = affected.join(live, "person_id", "left_semi").localCheckpoint()
            fresh = build_profiles(
                records, identifiers, events, identity_map, cfg, r.run_id, run_at, ctx.run_date, persons=rebuilt
            )
            old_r, old_c = f"{TMP}old_recency", f"{TMP}old_cell"
            kept = (
                stored.join(live, "person_id", "left_semi")
                .join(affected, "person_id", "left_anti")
                .withColumns({old_r: F.col("rfm_recency"), old_c: F.col("rfm_cell")})
            )
            kept = refresh_run_date_columns(kept, cfg.rfm, ctx.run_date)
            date_moved = kept.where(
                ~F.col("rfm_recency").eqNullSafe(F.col(old_r)) | ~F.col("rfm_cell").eqNullSafe(F.col(old_c))
            ).select("person_id")
            profiles = fresh.unionByName(kept.drop(old_r, old_c)).localCheckpoint()
            regroup = households_to_recompute(profiles, stored, affected, cfg).localCheckpoint()
        n_rebuilt = rebuilt.count()
        r.metric("persons_rebuilt", n_rebuilt)
        r.stage("profiles rebuilt" + ("" if affected is None else " (incremental)"), n_rebuilt)

        hh_table = lake.read_or_empty(S.GOLDEN_HOUSEHOLDS.address, S.GOLDEN_HOUSEHOLDS.schema)
        prev_households = previous_households(hh_table)
        issued = (
            lake.read(S.GOLDEN_HOUSEHOLD_IDS.address).select("household_id")
            if lake.exists(S.GOLDEN_HOUSEHOLD_IDS.address)
            else None
        )
        if regroup is None:
            regrouped = assign_households(profiles, cfg, prev_households, epoch, issued)
            households = regrouped
        else:
            regrouped = assign_households(profiles.join(regroup, "person_id", "left_semi"), cfg, prev_households, epoch, issued)
            households = regrouped.unionByName(
                profiles.join(regroup, "person_id", "left_anti").select("person_id", "household_id")
            )
        regrouped = regrouped.localCheckpoint()
        profiles = attach_households(profiles, households).localCheckpoint()
        n_profiles = profiles.count()
        r.stage("profiles built", n_profiles)

        # --- what to write
        if regroup is None:
            candidates, old = profiles, stored
            rel_persons = None
        else:
            touched = rebuilt.unionByName(regroup).unionByName(date_moved).distinct()
            candidates = profiles.join(touched, "person_id", "left_semi")
            old = stored.join(touched, "person_id", "left_semi")
            rel_persons = rebuilt.unionByName(regroup).distinct()
        changed = candidates.join(changed_profiles(candidates, old), "person_id", "left_semi").localCheckpoint()
        removed = removed_profiles(profiles, stored).localCheckpoint()
        n_changed, n_removed = changed.count(), removed.count()

        members_of = profiles.select("person_id") if rel_persons is None else rel_persons
        others_of = profiles.select("person_id") if rel_persons is None else rebuilt
        new_relations = household_members(regrouped, members_of, r.run_id).unionByName(
            person_relations(others_of, records, identity_map, r.run_id)
        )
        if rel_persons is None:
            old_relations = hh_table
        else:
            kept_relations = (
                hh_table.where(F.col("relation") != F.lit(RELATION_HOUSEHOLD))
                .join(rel_persons, "person_id", "left_semi")
                .join(rebuilt, "person_id", "left_anti")
            )
            new_relations = new_relations.unionByName(kept_relations)
            old_relations = hh_table.join(rel_persons.unionByName(affected).distinct(), "person_id", "left_semi")
        relation_persons = changed_relation_persons(new_relations, old_relations).localCheckpoint()
        new_relations = new_relations.join(relation_persons, "person_id", "left_semi").localCheckpoint()
        n_relation_persons = relation_persons.count()
        new_household_ids = regrouped.where(F.col("household_id").isNotNull()).select("household_id").distinct()
        if issued is not None:
            new_household_ids = new_household_ids.join(issued, "household_id", "left_anti")
        new_household_ids = new_household_ids.withColumns(
            {"run_id": F.lit(r.run_id), "issued_at": F.lit(run_at).cast("timestamp")}
        ).localCheckpoint()
        n_new_households = new_household_ids.count()

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
        if not n_changed and not n_removed:
            lake.commit_empty(S.GOLDEN_PROFILES.address)  # every run is a version carrying its run id
        if not lake.exists(S.GOLDEN_HOUSEHOLDS.address):
            lake.create(S.GOLDEN_HOUSEHOLDS.address, S.GOLDEN_HOUSEHOLDS.schema)
        if n_relation_persons:
            lake.delete_keys(S.GOLDEN_HOUSEHOLDS.address, "person_id", relation_persons)
            lake.append(S.GOLDEN_HOUSEHOLDS.address, new_relations)
        if n_new_households or not lake.exists(S.GOLDEN_HOUSEHOLD_IDS.address):
            lake.append(S.GOLDEN_HOUSEHOLD_IDS.address, new_household_ids.select(*S.GOLDEN_HOUSEHOLD_IDS.column_names))
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
            "persons_rebuilt": n_rebuilt,
            "relations_replaced": n_relation_persons,
            "incremental": affected is not None,
            "epoch": epoch,
        }
        r.rows_out += n_profiles
        for key, value in summary.items():
            if key != "run_id":
                r.metric(key, value)
        r.metric(STATE_CONFIG, fingerprint)
        for address, version in versions.items():
            r.metric(STATE + address, version)
        for address, version in output_versions(ctx).items():
            r.metric(STATE + address, version)
    return summary


__all__ = ["JOB", "check_clusters", "config_fingerprint", "identity_epoch", "last_state", "output_versions", "rebase_state", "run"]
