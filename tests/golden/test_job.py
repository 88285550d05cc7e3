"""The golden job end to end on tiny tables in a tmp lake, and profile lookup."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.errors import ConfigError, DataError
from jobs.golden import job
from jobs.common.delta import commit_metadata_of
from jobs.golden.lookup import find_profile, profiles_version_of_run

ADDR = {"street": "Dorpsstraat", "house_number": "1", "postcode": "1234 AB", "postcode_valid": True,
        "city": "Utrecht", "country": "NL"}


def test_golden_job_end_to_end_and_lookup(make_ctx, make_records, make_identifiers, make_events,
                                          make_clusters, anchored_of, household_of):
    ctx = make_ctx(run={"date": "2026-11-01"})
    lake = ctx.lake
    lake.overwrite(S.SILVER_RECORDS.address, make_records([
        {"record_key": "r1", "source": "crm", "trust_rank": 1, "family_name": "Jansen", "given_name": "Jan",
         "email": "jan@voorbeeld.nl", "email_valid": True, "source_updated_at": datetime(2026, 1, 1),
         "extensions": {"pet_name": "Bello"}, **ADDR},
        {"record_key": "r2", "source": "webshop", "trust_rank": 2, "family_name": "Janssen",
         "email": "jan@voorbeeld.nl", "email_valid": True, "source_updated_at": datetime(2025, 1, 1), "extensions": {}},
        {"record_key": "r3", "source": "pos", "trust_rank": 3, "family_name": "Jansen", "given_name": "Piet",
         "extensions": {}, **ADDR},
    ]))
    lake.overwrite(S.SILVER_IDENTIFIERS.address, make_identifiers([
        {"record_key": "r1", "id_type": "email", "id_value": "jan@voorbeeld.nl", "source": "crm"},
        {"record_key": "r2", "id_type": "email", "id_value": "jan@voorbeeld.nl", "source": "webshop"},
        {"record_key": "r3", "id_type": "loyalty_card", "id_value": "L1", "source": "pos"},
    ]))
    lake.overwrite(S.SILVER_EVENTS.address, make_events([
        {"event_key": "e1", "source": "webshop", "event_type": "order", "event_at": datetime(2026, 10, 1),
         "amount": __import__("decimal").Decimal("20.00"), "id_type": "email", "id_value": "jan@voorbeeld.nl",
         "record_key": "ev1"},
    ]))
    lake.overwrite(S.MATCH_CLUSTERS.address, make_clusters([["r1", "r2"], ["r3"]]))

    # {r1, r2} is anchored at r2, its older record (source_updated_at 2025 before r1's 2026)
    p1, p3 = anchored_of("r2"), anchored_of("r3")
    h = household_of(min(p1, p3))
    s1 = job.run(ctx)
    assert {k: s1[k] for k in ("records", "persons", "new", "merged", "split", "retired", "households",
                                "profiles_changed", "profiles_removed", "epoch")} == {
        "records": 3, "persons": 2, "new": 2, "merged": 0, "split": 0, "retired": 0, "households": 1,
        "profiles_changed": 2, "profiles_removed": 0, "epoch": 0}
    imap = {r.record_key: r.person_id for r in lake.read(S.GOLDEN_IDENTITY_MAP.address).collect()}
    assert imap == {"r1": p1, "r2": p1, "r3": p3}
    prof = {r.person_id: r for r in lake.read(S.GOLDEN_PROFILES.address).collect()}
    assert (prof[p1].given_name, prof[p1].orders_count, prof[p1].household_id, prof[p1].run_id) == (
        "Jan", 1, h, s1["run_id"])
    assert prof[p3].household_id == h
    rel = sorted((r.person_id, r.relation, r.related_name) for r in lake.read(S.GOLDEN_HOUSEHOLDS.address).collect())
    assert rel == sorted([(p1, "household_member", None), (p3, "household_member", None), (p1, "pet_owner", "Bello")])
    runs = lake.read(S.OPS_RUNS.address).where(F.col("run_id") == s1["run_id"]).collect()
    assert [(r.job, r.status, r.rows_in, r.rows_out, r.metrics["new"], r.metrics["persons"]) for r in runs] == [
        ("golden", "succeeded", 3, 2, "2", "2")]

    # the same input again: same ids, no changes; the profiles get an empty version with the run id
    version = lake.version(S.GOLDEN_PROFILES.address)
    s2 = job.run(ctx)
    assert (s2["new"], s2["merged"], s2["split"], s2["retired"], s2["profiles_changed"]) == (0, 0, 0, 0, 0)
    assert s2["epoch"] > s1["epoch"]  # identity-map versions so far: every run salts new ids differently
    assert {r.record_key: r.person_id for r in lake.read(S.GOLDEN_IDENTITY_MAP.address).collect()} == imap
    assert lake.version(S.GOLDEN_PROFILES.address) == version + 1
    assert commit_metadata_of(lake.history(S.GOLDEN_PROFILES.address)[0]) == {"job": "golden", "run_id": s2["run_id"]}
    assert profiles_version_of_run(lake, s1["run_id"]) == version
    assert profiles_version_of_run(lake, s2["run_id"]) == version + 1
    assert {r.run_id for r in lake.read(S.GOLDEN_PROFILES.address).collect()} == {s1["run_id"]}
    time.sleep(1.5)
    before_merge = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")
    time.sleep(1.5)

    # r3 joins r1/r2: the larger side keeps its id, the other is logged as merged
    lake.overwrite(S.MATCH_CLUSTERS.address, make_clusters([["r1", "r2", "r3"]]))
    s3 = job.run(ctx)
    assert (s3["persons"], s3["merged"], s3["profiles_changed"], s3["profiles_removed"]) == (1, 1, 1, 1)
    changes = [(r.change, r.person_id, r.related_person_id, r.records, r.run_id)
               for r in lake.read(S.GOLDEN_ID_CHANGES.address).where(F.col("change") == "merged").collect()]
    assert changes == [("merged", p3, p1, 1, s3["run_id"])]
    assert [r.person_id for r in lake.read(S.GOLDEN_PROFILES.address).collect()] == [p1]

    # lookup: by e-mail (normalised), with provenance; unknown; time travel before the merge
    found = find_profile(ctx, "email: Jan@Voorbeeld.NL ")
    assert (found["person_id"], found["record_count"]) == (p1, 3)
    assert (found["provenance"]["email"]["record_key"], found["provenance"]["email"]["rule"]) == ("r1", "most_recent")
    assert find_profile(ctx, "loyalty_card:L1")["person_id"] == p1
    with pytest.raises(DataError, match=r"^no person has this email \(the value is not shown\); expected a known email$"):
        find_profile(ctx, "email:nobody@voorbeeld.nl")
    with pytest.raises(DataError, match=rf"^person_id {p3} has no golden profile: it was merged into {p1} in run {s3['run_id']}; "):
        find_profile(ctx, f"person_id:{p3}")
    old = find_profile(ctx, f"person_id:{p3}", as_of=before_merge)
    assert (old["person_id"], old["given_name"], old["run_id"]) == (p3, "Piet", s1["run_id"])
    with pytest.raises(ConfigError, match="expected TYPE:VALUE"):
        find_profile(ctx, "shoe_size:42")


def test_job_refuses_a_record_in_two_clusters(make_ctx, make_records, make_clusters):
    ctx = make_ctx()
    ctx.lake.overwrite(S.SILVER_RECORDS.address, make_records([{"record_key": "r1", "extensions": {}}]))
    ctx.lake.overwrite(S.MATCH_CLUSTERS.address, make_clusters([["r1"], ["r1", "r2"]]))
    with pytest.raises(DataError, match=r"match.clusters: record\(s\) in more than one cluster \(e.g. r1\)"):
        job.run(ctx)
    (run,) = ctx.lake.read(S.OPS_RUNS.address).collect()
    assert (run.job, run.status) == ("golden", "failed")
