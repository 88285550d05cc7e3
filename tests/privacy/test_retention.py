"""Retention end to end on a copy of the generated lake: expired records and events go everywhere.

Config for the copy: loyalty members expire 2000 days after registration, till receipts 365 days
after the purchase (an events source's own retention), CRM records 3000 days after their last
change, webshop accounts 1500 days after their last activity (a change or an order they placed). Expected results are computed here from the tables, independently of the job:

* expired records leave every layer, and so do the events tied to identifiers only they held
  (the receipts of an expired loyalty card), in silver and bronze;
* receipts older than 365 days leave silver, bronze and the landing Parquet file;
* everything else stays; a person who keeps a record keeps their profile;
* a copy of an expired member's card number left in a scanned folder makes the verification
  fail: the command raises PrivacyError and records the failure (audit, request, run).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta

import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.errors import PrivacyError
from jobs.ingest.job import bronze_column
from jobs.privacy import job as privacy
from jobs.privacy.scan import scan_for_values

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from conftest import GOLDEN_UNCHANGED, PIPELINE_RUN_DATE, copy_pipeline, full_golden_rerun, golden_runs, pipeline_config  # noqa: E402

# Webshop accounts 1500 days after their last activity: at the pipeline's seed about 180 accounts
# last changed before the cutoff, and most of them still ordered after it (they stay).
WEBSHOP_DAYS = 1500
RETENTION = {"pos_members": 2000, "pos_receipts": 365, "crm": 3000, "webshop_customers": WEBSHOP_DAYS}
RECORD_RETENTION = ("pos_members", "crm", "webshop_customers")  # persons sources


def _cutoff(days: int) -> datetime:
    return datetime.fromisoformat(PIPELINE_RUN_DATE) - timedelta(days=days)


def _expected(ctx) -> dict:  # noqa: ANN001
    """What retention must remove, computed from the tables (plain Python over collected rows)."""
    records = ctx.lake.read(S.SILVER_RECORDS.address).select("record_key", "source", "source_updated_at", "source_created_at", "ingested_at").collect()
    events = ctx.lake.read(S.SILVER_EVENTS.address).select(
        "event_key", "source", "event_at", "id_type", "id_value", "cookie_id", "owner_record_key").collect()
    last_owned: dict[str, datetime] = {}  # record -> its last owned event (an order, an opened mailing)
    for e in events:
        if e.owner_record_key and e.event_at and (e.owner_record_key not in last_owned or e.event_at > last_owned[e.owner_record_key]):
            last_owned[e.owner_record_key] = e.event_at

    def last_activity(r) -> datetime:  # noqa: ANN001
        changed = r.source_updated_at or r.source_created_at or r.ingested_at
        return max(changed, last_owned.get(r.record_key, changed))

    expired = {r.record_key for r in records if r.source in RECORD_RETENTION and last_activity(r) < _cutoff(RETENTION[r.source])}
    # Accounts that changed before the cutoff but ordered after it: active, so they stay.
    active = {
        r.record_key: r.source for r in records
        if r.source in RECORD_RETENTION and r.record_key not in expired
        and (r.source_updated_at or r.source_created_at or r.ingested_at) < _cutoff(RETENTION[r.source])
    }
    ids = ctx.lake.read(S.SILVER_IDENTIFIERS.address).collect()
    held_by_live = {(r.id_type, r.id_value) for r in ids if r.record_key not in expired}
    own = {(r.id_type, r.id_value) for r in ids if r.record_key in expired} - held_by_live
    cookies = {v for t, v in own if t == S.ID_COOKIE}
    tied = {
        e.event_key for e in events
        if (e.id_type, e.id_value) in own or (e.cookie_id and e.cookie_id in cookies) or e.owner_record_key in expired
    }
    old_receipts = {
        e.event_key for e in events if e.source == "pos_receipts" and e.event_at is not None and e.event_at < _cutoff(RETENTION["pos_receipts"])
    }
    identity = ctx.lake.read(S.GOLDEN_IDENTITY_MAP.address).collect()
    live_persons = {r.person_id for r in identity if r.record_key not in expired}
    gone_persons = {r.person_id for r in identity if r.record_key in expired} - live_persons
    receipts = {r[0]: r[1] for r in ctx.lake.read("bronze.pos_receipts").select(S.RECORD_KEY, bronze_column("receipt_id")).collect()}
    cards = sorted(v for t, v in own if t == S.ID_LOYALTY_CARD)
    return {
        "records": {r.record_key for r in records} - expired,
        "expired": expired,
        "active": active,
        "events": {e.event_key for e in events} - tied - old_receipts,
        "tied": tied,
        "old_receipts": old_receipts,
        "gone_persons": gone_persons,
        "live_persons": live_persons,
        "bronze_receipts": set(receipts) - tied - old_receipts,
        "receipt_ids": {receipts[k] for k in receipts if k not in tied | old_receipts},
        "cards": cards,
    }


@pytest.fixture(scope="module")
def retained(pipeline, tmp_path_factory, spark):  # noqa: ANN001, ANN201
    from jobs.common.context import build_context

    base = tmp_path_factory.mktemp("retention")
    copy_pipeline(pipeline, base, spark)
    leftovers = base / "old_copies"
    leftovers.mkdir()
    overrides = [f"sources.{name}.retention_days={days}" for name, days in RETENTION.items()]
    overrides.append(f"privacy.scan_extra_paths=[{leftovers}]")
    ctx = build_context(pipeline_config(base / "data", base / "lake", overrides), spark=spark)
    expected = _expected(ctx)
    # An old copy of an expired member's card that retention does not know about.
    (leftovers / "members_2019.csv").write_text(f"card_number\n{expected['cards'][0]}\n", encoding="utf-8")
    with pytest.raises(PrivacyError) as failure:
        privacy.retention(ctx)
    return {"ctx": ctx, "expected": expected, "error": str(failure.value), "leftovers": leftovers}


def test_the_generated_data_has_something_of_each_kind_to_expire(retained) -> None:  # noqa: ANN001
    e = retained["expected"]
    assert len(e["expired"]) >= 5 and e["records"]
    assert len(e["tied"]) >= 5 and len(e["old_receipts"]) >= 5 and e["cards"]
    assert e["events"] and e["gone_persons"] and e["live_persons"]
    assert "webshop_customers" in e["active"].values()  # an old account that still orders


def test_expired_records_and_their_events_are_gone_and_the_rest_stays(retained) -> None:  # noqa: ANN001
    ctx, e = retained["ctx"], retained["expected"]
    assert {r.record_key for r in ctx.lake.read(S.SILVER_RECORDS.address).select("record_key").collect()} == e["records"]
    assert {r.event_key for r in ctx.lake.read(S.SILVER_EVENTS.address).select("event_key").collect()} == e["events"]
    for address, column in (
        (S.SILVER_IDENTIFIERS.address, "record_key"),
        (S.GOLDEN_IDENTITY_MAP.address, "record_key"),
        (S.MATCH_CLUSTERS.address, "record_key"),
        (S.MATCH_EDGES.address, "record_key_l"),
        (S.MATCH_EDGES.address, "record_key_r"),
        ("bronze.pos_members", S.RECORD_KEY),
        ("bronze.crm", S.RECORD_KEY),
    ):
        assert ctx.lake.read(address).where(F.col(column).isin(*e["expired"])).count() == 0, address
    # Bronze of the events source: exactly the receipts that stay.
    bronze_receipts = {r[S.RECORD_KEY] for r in ctx.lake.read("bronze.pos_receipts").select(S.RECORD_KEY).collect()}
    assert bronze_receipts == e["bronze_receipts"]


def test_landing_file_keeps_only_the_receipts_that_stay(retained) -> None:  # noqa: ANN001
    ctx, e = retained["ctx"], retained["expected"]
    landed = set(pq.read_table(os.path.join(ctx.data_root, "pos", "receipts.parquet")).column("receipt_id").to_pylist())
    assert landed == e["receipt_ids"]


def test_persons_keep_their_profile_while_they_keep_a_record(retained) -> None:  # noqa: ANN001
    ctx, e = retained["ctx"], retained["expected"]
    profiles = {r.person_id for r in ctx.lake.read(S.GOLDEN_PROFILES.address).select("person_id").collect()}
    assert not profiles & e["gone_persons"]
    # A live person keeps its profile, or merged into a person that has one: with an expired
    # record gone, a value its records shared may stop being held by different people (a family
    # e-mail, match.deterministic.conflict_check) and link them; the change feed says so.
    missing = e["live_persons"] - profiles
    merged = {
        r.person_id: r.related_person_id
        for r in ctx.lake.read(S.GOLDEN_ID_CHANGES.address).where(F.col("change") == "merged").collect()
    }
    assert len(missing) <= 0.05 * len(e["live_persons"]), (len(missing), len(e["live_persons"]))
    for person in missing:
        assert merged.get(person) in profiles, (person, merged.get(person))


def test_golden_reresolved_incrementally_as_a_full_run_would(retained, tmp_path, spark) -> None:  # noqa: ANN001
    ctx = retained["ctx"]
    run = golden_runs(ctx)[-1]
    assert run.metrics["mode"] == "incremental", run.metrics.get("full_reason")
    assert 0 < int(run.metrics["persons_rebuilt"]) < int(run.metrics["persons"])
    summary = full_golden_rerun(ctx, tmp_path, spark)
    assert {k: summary[k] for k in GOLDEN_UNCHANGED} == dict.fromkeys(GOLDEN_UNCHANGED, 0)


def test_no_value_of_the_expired_cards_remains_in_lake_or_landing_data(retained) -> None:  # noqa: ANN001
    ctx, e = retained["ctx"], retained["expected"]
    result = scan_for_values([ctx.lake_root, ctx.data_root], [(c,) for c in e["cards"]])
    assert result.files > 50 and result.hits == 0, result.hit_files


def test_failed_verification_fails_the_command_and_is_recorded(retained) -> None:  # noqa: ANN001
    ctx, e = retained["ctx"], retained["expected"]
    assert retained["error"].startswith(f"retention of {len(e['expired'])} record(s) and {len(e['tied'] | e['old_receipts'])} event(s) could not be verified")
    assert "members_2019.csv" in retained["error"] and retained["error"].endswith("expected none")
    assert e["cards"][0] not in retained["error"]
    audit = ctx.lake.read(S.PRIVACY_AUDIT.address).where("kind = 'retention'").collect()
    assert [(a.outcome, a.scan_hits > 0, a.subject_hash) for a in audit] == [("failed", True, None)]
    assert audit[0].tables[S.SILVER_RECORDS.address] == len(e["expired"])
    run = ctx.lake.read(S.OPS_RUNS.address).where("job = 'privacy_retention'").collect()
    assert [(r.status, r.error.split(":")[0]) for r in run] == [("failed", "PrivacyError")]
    requests = ctx.lake.read(S.PRIVACY_REQUESTS.address).where("kind = 'retention'").collect()
    assert [(r.state, r.run_id) for r in requests] == [("failed", run[0].run_id)]
    # Retention is no erasure request: nothing is suppressed.
    assert not ctx.lake.exists(S.PRIVACY_SUPPRESSION.address) or ctx.lake.read(S.PRIVACY_SUPPRESSION.address).count() == 0


def test_a_second_run_finds_nothing_left_to_expire(retained) -> None:  # noqa: ANN001
    ctx = retained["ctx"]
    for f in retained["leftovers"].iterdir():
        f.unlink()
    assert privacy.retention(ctx) == {"records": 0, "events": 0, "rows_removed": 0, "outcome": "nothing expired"}
