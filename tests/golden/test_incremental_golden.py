"""Incremental golden + segments runs give what one full run over the final tables gives.

Four runs in incremental mode on hand-made silver and match tables, each on a later run date:

0. A {a1, w1 (cookie)}, B {b1}, C {c1}, D {d1, d2}; A at address X, C at address Y;
1. records added: a2 joins A (with an order on its new e-mail), E {e5} moves in with C and
   shares C's e-mail address fam@x.nl, so C's order tied to it is nobody's any more;
2. a merge: record bd links B and D (D, the larger side, keeps its id; B is retired);
3. a record changed: c1's e-mail becomes cor@x.nl (fam@x.nl is E's alone again, E gets the
   order), and a new receipt for C; A, whose data did not change, drops out of ``recent`` and
   gets a lower recency score because the run date moved on.

Then one full run over the final tables in a fresh lake must give the same person ids, profiles
(every column but run_id/updated_at), households (every column but run_id) and current segment
membership; a rerun with nothing changed must change no profile.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.delta import commit_metadata_of
from jobs.golden import job as golden
from jobs.golden.incremental import (
    affected_persons,
    changed_events,
    changed_identifiers,
    changed_record_keys,
    moved_records,
)
from jobs.golden.lookup import profiles_version_of_run
from jobs.segments import job as segments

from .conftest import anchored, household_anchored, rows_of

pytestmark = pytest.mark.slow  # seven golden runs and six segments runs, once for the module

SEGMENTS = {
    "segments": [
        {"name": "recent", "rule": "last_order_at > run_date - 90 days", "consent": "email"},
        {"name": "big", "rule": "total_revenue >= 100"},
        {"name": "engaged", "rule": "email_opens >= 1"},
    ],
    "rfm_micro_segments": True,
}
TRUST = {"crm": 1, "webshop": 2, "pos": 3, "web": 5}
X = {"street": "Dorpsstraat", "house_number": "1", "postcode": "1234 AB", "postcode_valid": True, "city": "Utrecht", "country": "NL"}
Y = {"street": "Kerkweg", "house_number": "2", "postcode": "5678 CD", "postcode_valid": True, "city": "Gouda", "country": "NL"}


def rec(key: str, source: str, created: dt.datetime, **kw: Any) -> dict[str, Any]:
    row = {"record_key": key, "source": source, "source_id": key.upper(), "trust_rank": TRUST[source],
           "batch_id": "b1", "row_hash": f"h-{key}", "source_created_at": created, "source_updated_at": created,
           "ingested_at": dt.datetime(2026, 10, 31), "extensions": {}}
    row.update(kw)
    if row.get("email"):
        row["email_valid"] = True
    return row


def ev(key: str, typ: str, at: dt.datetime, id_type: str, id_value: str, amount: str | None = None) -> dict[str, Any]:
    return {"event_key": key, "source": "shop", "event_type": typ, "event_at": at,
            "amount": Decimal(amount) if amount else None, "id_type": id_type, "id_value": id_value,
            "record_key": f"ev-{key}", "cookie_id": id_value if id_type == "cookie_id" else None,
            "batch_id": "b1", "row_hash": f"h-{key}"}


A1 = rec("a1", "crm", dt.datetime(2020, 1, 1), given_name="Anna", family_name="Jansen", email="anna@x.nl",
         consent_email=True, consent_email_at=dt.datetime(2025, 5, 1), **X)
W1 = rec("w1", "web", dt.datetime(2021, 1, 1), cookie_id="ck-a")
A2 = rec("a2", "webshop", dt.datetime(2023, 1, 1), given_name="Anna", family_name="Jansen", email="anna.j@x.nl")
B1 = rec("b1", "crm", dt.datetime(2020, 2, 1), given_name="Bob", family_name="Bakker", email="bob@x.nl",
         consent_email=True, consent_email_at=dt.datetime(2025, 1, 1))
BD = rec("bd", "crm", dt.datetime(2024, 1, 1), family_name="Bakker", email="bob@x.nl", customer_number="K-D")
C1 = rec("c1", "pos", dt.datetime(2020, 3, 1), given_name="Cor", family_name="Claes", email="fam@x.nl",
         loyalty_card="L-C", **Y)
C1_CHANGED = {**C1, "email": "cor@x.nl", "row_hash": "h-c1-2", "source_updated_at": dt.datetime(2027, 1, 1)}
D1 = rec("d1", "webshop", dt.datetime(2019, 1, 1), given_name="Dirk", family_name="Dekker", email="dirk@x.nl",
         customer_number="K-D")
D2 = rec("d2", "crm", dt.datetime(2021, 1, 1), family_name="Dekker", customer_number="K-D")
E5 = rec("e5", "crm", dt.datetime(2022, 1, 1), given_name="Eva", family_name="Claes", email="fam@x.nl", **Y)

EVENTS_0 = [
    ev("o1", "order", dt.datetime(2026, 10, 20), "email", "anna@x.nl", "100.00"),
    ev("o2", "order", dt.datetime(2026, 9, 1), "email", "fam@x.nl", "50.00"),
    ev("o3", "receipt", dt.datetime(2026, 6, 1), "loyalty_card", "L-C", "20.00"),
    ev("o4", "page_view", dt.datetime(2026, 10, 25), "cookie_id", "ck-a"),
    ev("o5", "order", dt.datetime(2026, 8, 1), "customer_number", "K-D", "300.00"),
    ev("o6", "email_open", dt.datetime(2026, 10, 1), "email", "bob@x.nl"),
]
O7 = ev("o7", "order", dt.datetime(2026, 11, 10), "email", "anna.j@x.nl", "40.00")
O8 = ev("o8", "receipt", dt.datetime(2027, 2, 1), "loyalty_card", "L-C", "25.00")

# (run date, records, events, clusters)
STEPS = [
    ("2026-11-01", [A1, W1, B1, C1, D1, D2], EVENTS_0, [["a1", "w1"], ["b1"], ["c1"], ["d1", "d2"]]),
    ("2026-11-15", [A1, W1, A2, B1, C1, D1, D2, E5], [*EVENTS_0, O7],
     [["a1", "w1", "a2"], ["b1"], ["c1"], ["d1", "d2"], ["e5"]]),
    ("2026-12-01", [A1, W1, A2, B1, BD, C1, D1, D2, E5], [*EVENTS_0, O7],
     [["a1", "w1", "a2"], ["b1", "bd", "d1", "d2"], ["c1"], ["e5"]]),
    ("2027-02-15", [A1, W1, A2, B1, BD, C1_CHANGED, D1, D2, E5], [*EVENTS_0, O7, O8],
     [["a1", "w1", "a2"], ["b1", "bd", "d1", "d2"], ["c1"], ["e5"]]),
]
PA, PB, PC, PD, PE = (anchored(k) for k in ("a1", "b1", "c1", "d1", "e5"))


def identifiers_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"record_key": r["record_key"], "id_type": t, "id_value": r[t], "source": r["source"]}
        for r in records
        for t in ("email", "customer_number", "loyalty_card", "cookie_id")
        if r.get(t)
    ]


def write_inputs(ctx, spark, records, events, groups) -> None:  # noqa: ANN001
    lake = ctx.lake
    lake.overwrite(S.SILVER_RECORDS.address, rows_of(spark, S.SILVER_RECORDS, records))
    lake.overwrite(S.SILVER_IDENTIFIERS.address, rows_of(spark, S.SILVER_IDENTIFIERS, identifiers_of(records)))
    lake.overwrite(S.SILVER_EVENTS.address, rows_of(spark, S.SILVER_EVENTS, events))
    clusters = [{"record_key": k, "cluster_id": min(g), "cluster_size": len(g), "run_id": "m"} for g in groups for k in g]
    lake.overwrite(S.MATCH_CLUSTERS.address, rows_of(spark, S.MATCH_CLUSTERS, clusters))


def profiles_of(ctx) -> dict[str, dict[str, Any]]:  # noqa: ANN001
    out = {}
    for r in ctx.lake.read(S.GOLDEN_PROFILES.address).collect():
        row = r.asDict(recursive=True)
        for c in ("run_id", "updated_at"):
            row.pop(c)
        out[row["person_id"]] = row
    return out


def households_of(ctx) -> set[tuple]:  # noqa: ANN001
    return {
        (r.person_id, r.relation, r.related_id, r.related_name, tuple(sorted((r.attributes or {}).items())))
        for r in ctx.lake.read(S.GOLDEN_HOUSEHOLDS.address).collect()
    }


def members_of(ctx) -> set[tuple[str, str]]:  # noqa: ANN001
    rows = ctx.lake.read(S.SEGMENT_MEMBERSHIP.address).where(F.col("exited_at").isNull()).collect()
    return {(r.person_id, r.segment) for r in rows}


@pytest.fixture(scope="module")
def lakes(spark, tmp_path_factory):  # noqa: ANN001, ANN201
    """The incremental sequence and the full run, once for the module's tests."""
    from jobs.common.config import LoadedConfig
    from jobs.common.context import build_context
    from jobs.common.settings import CdpConfig

    base = tmp_path_factory.mktemp("incremental_golden")

    def ctx_at(lake: Path, run_date: str):  # noqa: ANN202
        data = {"lake": {"root": str(lake)}, "data": {"root": str(base / "data")}, "run": {"date": run_date},
                "segments": SEGMENTS}
        return build_context(LoadedConfig(CdpConfig.model_validate(data), {}, str(base), data), spark=spark)

    inc, runs = base / "inc", []
    for run_date, records, events, groups in STEPS:
        ctx = ctx_at(inc, run_date)
        write_inputs(ctx, spark, records, events, groups)
        runs.append((golden.run(ctx, incremental=True), segments.run(ctx, incremental=True)))
    inc_ctx = ctx_at(inc, STEPS[-1][0])
    snapshot = (profiles_of(inc_ctx), households_of(inc_ctx), members_of(inc_ctx))
    profiles_version = inc_ctx.lake.version(S.GOLDEN_PROFILES.address)
    households_version = inc_ctx.lake.version(S.GOLDEN_HOUSEHOLDS.address)
    # nothing changed: same tables, same run date
    again = (golden.run(inc_ctx, incremental=True), segments.run(inc_ctx, incremental=True))

    full_ctx = ctx_at(base / "full", STEPS[-1][0])
    run_date, records, events, groups = STEPS[-1]
    write_inputs(full_ctx, spark, records, events, groups)
    full = (golden.run(full_ctx), segments.run(full_ctx))
    return {"inc": inc_ctx, "full": full_ctx, "runs": runs, "snapshot": snapshot, "again": again,
            "profiles_version": profiles_version, "households_version": households_version, "full_runs": full}


def test_same_person_ids_as_the_full_run(lakes) -> None:  # noqa: ANN001
    def ids(ctx):  # noqa: ANN001, ANN202
        return {r.record_key: r.person_id for r in ctx.lake.read(S.GOLDEN_IDENTITY_MAP.address).collect()}

    expected = {"a1": PA, "w1": PA, "a2": PA, "b1": PD, "bd": PD, "d1": PD, "d2": PD, "c1": PC, "e5": PE}
    assert ids(lakes["inc"]) == expected
    assert ids(lakes["full"]) == expected


def test_each_incremental_run_rebuilt_only_the_affected_persons(lakes) -> None:  # noqa: ANN001
    got = [
        {k: g[k] for k in ("incremental", "persons_rebuilt", "profiles_changed", "profiles_removed", "merged", "persons")}
        for g, _ in lakes["runs"]
    ]
    assert got == [
        # first run: nothing to be incremental against, so a full one
        {"incremental": False, "persons_rebuilt": 4, "profiles_changed": 4, "profiles_removed": 0, "merged": 0, "persons": 4},
        # A (new record), E (new), C (its e-mail became ambiguous: its order moved away)
        {"incremental": True, "persons_rebuilt": 3, "profiles_changed": 3, "profiles_removed": 0, "merged": 0, "persons": 5},
        # D (merge); B removed; C's recency moved with the date (not rebuilt, but changed)
        {"incremental": True, "persons_rebuilt": 1, "profiles_changed": 2, "profiles_removed": 1, "merged": 1, "persons": 4},
        # C (changed record, new receipt), E (fam@x.nl is E's alone again); A and D: recency only
        {"incremental": True, "persons_rebuilt": 2, "profiles_changed": 4, "profiles_removed": 0, "merged": 0, "persons": 4},
    ]


def test_profiles_equal_the_full_run(lakes) -> None:  # noqa: ANN001
    inc, full = profiles_of(lakes["inc"]), profiles_of(lakes["full"])
    assert sorted(inc) == sorted(full) == sorted([PA, PC, PD, PE])
    for pid in full:
        assert inc[pid] == full[pid], pid
    # the values the sequence had to get right
    a, c, d, e = inc[PA], inc[PC], inc[PD], inc[PE]
    assert (a["orders_count"], a["total_revenue"], a["page_views"], a["rfm_recency"], a["rfm_cell"]) == (
        2, Decimal("140.00"), 1, 3, "3-3-2")
    assert (c["orders_count"], c["receipts_count"], c["email"], c["last_order_at"]) == (
        0, 2, "cor@x.nl", dt.datetime(2027, 2, 1))
    assert (e["orders_count"], e["total_revenue"]) == (1, Decimal("50.00"))
    assert (d["record_count"], d["orders_count"], d["email_opens"], d["consent_email"], d["rfm_recency"]) == (
        4, 1, 1, True, 2)


def test_households_equal_the_full_run(lakes, household_of) -> None:  # noqa: ANN001
    inc, full = households_of(lakes["inc"]), households_of(lakes["full"])
    assert inc == full
    assert {(p, h) for p, rel, h, _, _ in inc if rel == "household_member"} == {
        (PA, household_of(PA)), (PC, household_of(PC)), (PE, household_of(PC))}
    assert PC < PE  # so the full run anchors Y's household where the sequence founded it
    ids = {r.household_id for r in lakes["inc"].lake.read(S.GOLDEN_HOUSEHOLD_IDS.address).collect()}
    assert ids == {household_anchored(PA), household_anchored(PC)}


def test_current_segment_membership_equals_the_full_run(lakes) -> None:  # noqa: ANN001
    inc, full = members_of(lakes["inc"]), members_of(lakes["full"])
    assert inc == full
    assert {s for p, s in inc if p == PA} == {"big", "rfm_need_attention"}
    assert (PD, "engaged") in inc and (PB, "engaged") not in inc
    # A left 'recent' in the last run although A's data did not change: the run date moved on
    (row,) = lakes["inc"].lake.read(S.SEGMENT_MEMBERSHIP.address).where(
        (F.col("person_id") == PA) & (F.col("segment") == "recent")).collect()
    assert row.exited_run == lakes["runs"][3][1]["run_id"]


def test_a_rerun_with_nothing_changed_changes_no_profile(lakes) -> None:  # noqa: ANN001
    g, s = lakes["again"]
    assert (g["incremental"], g["persons_rebuilt"], g["profiles_changed"], g["profiles_removed"], g["relations_replaced"]) == (
        True, 0, 0, 0, 0)
    assert (s["entered"], s["exited"]) == (0, 0)
    ctx = lakes["inc"]
    assert (profiles_of(ctx), households_of(ctx), members_of(ctx)) == lakes["snapshot"]
    # one empty version of golden.profiles that carries the run id, no households version
    assert ctx.lake.version(S.GOLDEN_PROFILES.address) == lakes["profiles_version"] + 1
    (last,) = ctx.lake.history(S.GOLDEN_PROFILES.address)[:1]
    assert commit_metadata_of(last) == {"job": "golden", "run_id": g["run_id"]}
    assert (last["operation"], last.get("operationMetrics", {}).get("num_added_files", 0)) == ("WRITE", 0)
    assert ctx.lake.version(S.GOLDEN_HOUSEHOLDS.address) == lakes["households_version"]


def test_every_golden_run_is_a_profiles_version_carrying_its_run_id(lakes) -> None:  # noqa: ANN001
    ctx = lakes["inc"]
    run_ids = [g["run_id"] for g, _ in lakes["runs"]] + [lakes["again"][0]["run_id"]]
    versions = [profiles_version_of_run(ctx.lake, rid) for rid in run_ids]
    assert None not in versions and versions == sorted(versions) and len(set(versions)) == len(versions)
    # the version of run 1 holds A, B, C, D, E as that run left them
    at_run_1 = ctx.lake.read(S.GOLDEN_PROFILES.address, version=versions[1])
    assert sorted(r.person_id for r in at_run_1.collect()) == sorted([PA, PB, PC, PD, PE])
    assert profiles_version_of_run(ctx.lake, "golden-no-such-run") is None


def test_a_changed_golden_config_makes_the_next_run_full(lakes, spark, tmp_path) -> None:  # noqa: ANN001
    import shutil

    from jobs.common.config import LoadedConfig
    from jobs.common.context import build_context
    from jobs.common.settings import CdpConfig

    lake = tmp_path / "lake"
    shutil.copytree(lakes["inc"].lake.root, lake)
    data = {"lake": {"root": str(lake)}, "data": {"root": str(tmp_path / "data")}, "run": {"date": STEPS[-1][0]},
            "golden": {"rfm": {"recency_days": [10, 20, 30, 40]}}}
    ctx = build_context(LoadedConfig(CdpConfig.model_validate(data), {}, str(tmp_path), data), spark=spark)
    summary = golden.run(ctx, incremental=True)
    assert (summary["incremental"], summary["persons_rebuilt"]) == (False, 4)
    (run,) = ctx.lake.read(S.OPS_RUNS.address).where(F.col("run_id") == summary["run_id"]).collect()
    assert run.metrics["full_reason"] == "the golden config changed since the last golden run"
    assert {r.person_id: r.rfm_recency for r in ctx.lake.read(S.GOLDEN_PROFILES.address).collect()}[PA] == 1


# --- the change detection on its own ---------------------------------------------------------------


def test_a_shared_identifier_affects_the_person_who_loses_its_events(spark) -> None:  # noqa: ANN001
    records = rows_of(spark, S.SILVER_RECORDS, [C1, E5])
    ids = rows_of(spark, S.SILVER_IDENTIFIERS, identifiers_of([C1, E5]))
    old_ids = rows_of(spark, S.SILVER_IDENTIFIERS, identifiers_of([C1]))
    events = rows_of(spark, S.SILVER_EVENTS, EVENTS_0)
    old_map = rows_of(spark, S.GOLDEN_IDENTITY_MAP, [{"record_key": "c1", "person_id": "PC"}])
    new_map = rows_of(spark, S.GOLDEN_IDENTITY_MAP, [{"record_key": "c1", "person_id": "PC"}, {"record_key": "e5", "person_id": "PE"}])
    old_records = rows_of(spark, S.SILVER_RECORDS, [C1])
    keys = changed_record_keys(old_records, records)
    moved = moved_records(old_map, new_map)
    assert [r.record_key for r in keys.collect()] == ["e5"]
    assert [(r.record_key, r.old_person_id, r.new_person_id) for r in moved.collect()] == [("e5", None, "PE")]
    changed_ids = changed_identifiers(old_ids, ids)
    assert {(r.record_key, r.id_type, r.id_value) for r in changed_ids.collect()} == {("e5", "email", "fam@x.nl")}
    no_events = changed_events(events, events)
    assert no_events.count() == 0
    got = affected_persons(new_map, ids, events, keys, moved, changed_ids, no_events)
    # C's records did not change, but its order tied to fam@x.nl now reaches nobody
    assert sorted(r.person_id for r in got.collect()) == ["PC", "PE"]


def test_changed_events_gives_both_versions_and_ignores_unused_columns(spark) -> None:  # noqa: ANN001
    old = rows_of(spark, S.SILVER_EVENTS, [
        ev("o1", "order", dt.datetime(2026, 1, 1), "email", "a@x.nl", "10.00"),
        ev("o2", "order", dt.datetime(2026, 1, 1), "email", "b@x.nl", "10.00"),
        {**ev("o3", "page_view", dt.datetime(2026, 1, 1), "email", "c@x.nl"), "url": "/old"},
        ev("o4", "order", dt.datetime(2026, 1, 1), "email", "d@x.nl", "10.00"),
    ])
    new = rows_of(spark, S.SILVER_EVENTS, [
        ev("o1", "order", dt.datetime(2026, 1, 1), "email", "a@x.nl", "10.00"),
        ev("o2", "order", dt.datetime(2026, 1, 1), "email", "b2@x.nl", "10.00"),  # re-tied to another address
        {**ev("o3", "page_view", dt.datetime(2026, 1, 1), "email", "c@x.nl"), "url": "/new"},  # no profile uses url
        ev("o5", "order", dt.datetime(2026, 1, 2), "email", "e@x.nl", "5.00"),  # o4 gone, o5 new
    ])
    got = {(r.id_type, r.id_value) for r in changed_events(old, new).collect()}
    assert got == {("email", "b@x.nl"), ("email", "b2@x.nl"), ("email", "d@x.nl"), ("email", "e@x.nl")}


def test_an_event_tied_only_to_its_owner_record_affects_that_records_person(spark) -> None:  # noqa: ANN001
    """A new order with no identifier, owned by d1: D's profile changes although no record or identifier did."""
    imap = rows_of(spark, S.GOLDEN_IDENTITY_MAP, [{"record_key": "c1", "person_id": "PC"}, {"record_key": "d1", "person_id": "PD"}])
    ids = rows_of(spark, S.SILVER_IDENTIFIERS, identifiers_of([C1, D1]))
    owned = {**ev("o9", "order", dt.datetime(2026, 10, 1), "email", "x", "9.00"), "id_type": None, "id_value": None,
             "owner_record_key": "d1"}
    old, new = rows_of(spark, S.SILVER_EVENTS, EVENTS_0), rows_of(spark, S.SILVER_EVENTS, [*EVENTS_0, owned])
    changed = changed_events(old, new)
    assert [(r.id_type, r.record_key, r.owner_record_key) for r in changed.collect()] == [(None, "ev-o9", "d1")]
    none = spark.createDataFrame([], "record_key string")
    no_moves = moved_records(imap, imap)
    no_ids = changed_identifiers(ids, ids)
    assert [r.person_id for r in affected_persons(imap, ids, new, none, no_moves, no_ids, changed).collect()] == ["PD"]
    # the owner record itself changed (K): its owned events are in T, and their owner's person too
    moved = moved_records(imap, rows_of(spark, S.GOLDEN_IDENTITY_MAP, [{"record_key": "c1", "person_id": "PC"}, {"record_key": "d1", "person_id": "PX"}]))
    unchanged = changed_events(new, new)
    got = affected_persons(imap, ids, new, none, moved, no_ids, unchanged)
    assert sorted(r.person_id for r in got.collect()) == ["PD", "PX"]
    # a version of silver.events written before owner_record_key existed reads as having no owners
    assert changed_events(old.drop("owner_record_key"), new).count() == 1
