"""The segments job end to end on a small lake: history across runs, incremental runs, exports."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import SparkSession

from jobs.common.keys import salted_hash
from jobs.common.schemas import GOLDEN_PROFILES, OPS_RUNS, PRIVACY_SUPPRESSION, SEGMENT_EXPORTS, SEGMENT_MEMBERSHIP
from jobs.segments import job

from .conftest import profile_rows

SALT = "test-salt-1234"
SEGMENTS = {
    "segments": [
        {"name": "recent", "rule": "last_order_at > run_date - 90 days", "consent": "email",
         "exports": ["email_csv", "hashed_audience"]},
        {"name": "big", "rule": "total_revenue >= 100"},
    ],
    "rfm_micro_segments": False,
    "hashed_audience_consent": "sms",  # the channel covering ad-platform matching in these tests
}
RECENT = dt.datetime(2024, 6, 1, 12, 0)
OLD = dt.datetime(2023, 1, 1, 12, 0)


def person(pid: str, **kw: Any) -> dict[str, Any]:
    base = dict(person_id=pid, email=f"{pid}@example.nl", phone=None, given_name=pid.upper(), family_name="Test",
                consent_email=True, consent_sms=True, total_revenue=Decimal("10"), last_order_at=OLD)
    base.update(kw)
    return base


def write_profiles(ctx, spark: SparkSession, rows: list[dict[str, Any]]) -> None:  # noqa: ANN001
    ctx.lake.overwrite(GOLDEN_PROFILES.address, profile_rows(spark, rows))


def history(ctx) -> set[tuple]:  # noqa: ANN001
    rows = ctx.lake.read(SEGMENT_MEMBERSHIP.address).collect()
    return {(r.person_id, r.segment, r.entered_run, r.exited_run, r.exited_at is None) for r in rows}


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture()
def ctx(make_ctx):  # noqa: ANN001, ANN201
    return make_ctx(segments=SEGMENTS, run={"date": "2024-06-15"}, privacy={"salt": SALT})


def test_history_across_runs_enter_stay_exit_reenter(ctx, spark: SparkSession) -> None:  # noqa: ANN001
    write_profiles(ctx, spark, [
        person("a", last_order_at=RECENT, total_revenue=Decimal("500")),
        person("b", last_order_at=RECENT),
        person("c", consent_email=False, last_order_at=RECENT),  # no consent: never in 'recent'
    ])
    r1 = job.run(ctx)
    assert (r1["entered"], r1["exited"], r1["members"]) == (3, 0, {"big": 1, "recent": 2})

    # b stops ordering (leaves 'recent'), a stays; c gets consent and enters
    write_profiles(ctx, spark, [
        person("a", last_order_at=RECENT, total_revenue=Decimal("500")),
        person("b", last_order_at=OLD),
        person("c", consent_email=True, last_order_at=RECENT),
    ])
    r2 = job.run(ctx)
    assert (r2["entered"], r2["exited"], r2["members"]) == (1, 1, {"big": 1, "recent": 2})

    # b orders again: a second row for b in 'recent'; a leaves 'big'
    write_profiles(ctx, spark, [
        person("a", last_order_at=RECENT),
        person("b", last_order_at=RECENT),
        person("c", consent_email=True, last_order_at=RECENT),
    ])
    r3 = job.run(ctx)
    assert (r3["entered"], r3["exited"]) == (1, 1)
    id1, id2, id3 = r1["run_id"], r2["run_id"], r3["run_id"]
    assert history(ctx) == {
        ("a", "recent", id1, None, True),
        ("a", "big", id1, id3, False),
        ("b", "recent", id1, id2, False),
        ("b", "recent", id3, None, True),
        ("c", "recent", id2, None, True),
    }
    rows = ctx.lake.read(SEGMENT_MEMBERSHIP.address).where("person_id = 'b'").orderBy("entered_at").collect()
    assert rows[0].exited_at is not None and rows[0].exited_at <= rows[1].entered_at

    # a rerun with unchanged profiles changes nothing (the merge adds nothing twice)
    r4 = job.run(ctx)
    assert (r4["entered"], r4["exited"]) == (0, 0)
    assert ctx.lake.read(SEGMENT_MEMBERSHIP.address).count() == 5

    runs = {r.run_id: r for r in ctx.lake.read(OPS_RUNS.address).where("job = 'segments'").collect()}
    m3 = runs[id3].metrics
    assert runs[id3].status == "succeeded"
    assert (m3["members.recent"], m3["members.big"], m3["entered"], m3["exited"]) == ("3", "0", "1", "1")
    assert (m3["entered.recent"], m3["exited.big"], m3["export_rows"]) == ("1", "1", "6")
    assert (runs[id3].rows_in, runs[id3].rows_out) == (3, 2)


def test_incremental_run_evaluates_everyone_and_writes_only_changed_rows(make_ctx, spark: SparkSession) -> None:  # noqa: ANN001
    first_ctx = make_ctx(segments=SEGMENTS, run={"date": "2024-06-15"}, privacy={"salt": SALT})
    write_profiles(first_ctx, spark, [person("a", last_order_at=RECENT), person("b", last_order_at=RECENT),
                                      person("c", last_order_at=dt.datetime(2024, 3, 20, 12, 0))])
    first = job.run(first_ctx, incremental=True)
    assert first["entered"] == 3
    before = {(r.person_id, r.segment, r.entered_run) for r in first_ctx.lake.read(SEGMENT_MEMBERSHIP.address).collect()}
    # a month later: a's profile changed (no order any more); b and c did not change, but c's
    # last order is now more than 90 days before the run date. b's row is not rewritten.
    later = make_ctx(segments=SEGMENTS, run={"date": "2024-07-15"}, privacy={"salt": SALT})
    write_profiles(later, spark, [person("a", last_order_at=None), person("b", last_order_at=RECENT),
                                  person("c", last_order_at=dt.datetime(2024, 3, 20, 12, 0))])
    version = later.lake.version(SEGMENT_MEMBERSHIP.address)
    second = job.run(later, incremental=True)
    assert (second["evaluated"], second["entered"], second["exited"]) == (3, 0, 2)
    assert history(later) == {
        ("a", "recent", first["run_id"], second["run_id"], False),
        ("b", "recent", first["run_id"], None, True),
        ("c", "recent", first["run_id"], second["run_id"], False),  # the run date moved, not the profile
    }
    # one merge commit that touched only a's and c's rows; the same as a full run would give
    assert later.lake.version(SEGMENT_MEMBERSHIP.address) == version + 1
    assert {(r.person_id, r.segment, r.entered_run) for r in later.lake.read(SEGMENT_MEMBERSHIP.address).collect()} == before
    third = job.run(later, incremental=True)
    assert (third["entered"], third["exited"]) == (0, 0)
    assert later.lake.version(SEGMENT_MEMBERSHIP.address) == version + 1


def test_exports_consent_suppression_hashes_and_manifests(ctx, spark: SparkSession) -> None:  # noqa: ANN001
    write_profiles(ctx, spark, [
        person("p1", email=" Jan@Example.NL ", phone="+31612345678", given_name="Jan", name_particle="van der",
               family_name="Berg", full_name="Jan van der Berg", last_order_at=RECENT),
        person("p2", email="test@example.com", phone=None, given_name="Test", full_name="Test Test",
               last_order_at=RECENT),
        person("p3", consent_email=False, last_order_at=RECENT),  # no consent for the segment's channel
        person("p4", email="erased@example.nl", last_order_at=RECENT),  # suppressed by e-mail hash
        person("p5", email=None, phone="+31699999999", consent_email=True, last_order_at=RECENT),  # suppressed phone
        person("p6", last_order_at=OLD),  # not in the segment
        person("p7", consent_sms=False, phone="+31677777777", last_order_at=RECENT),  # e-mail yes, ad matching no
    ])
    suppression = [
        {"id_type": "email", "id_hash": salted_hash(SALT, "email", "erased@example.nl"), "request_id": "r1",
         "added_at": dt.datetime(2024, 6, 1)},
        {"id_type": "phone", "id_hash": salted_hash(SALT, "phone", "+31699999999"), "request_id": "r2",
         "added_at": dt.datetime(2024, 6, 1)},
    ]
    ctx.lake.append_rows(PRIVACY_SUPPRESSION.address, suppression, PRIVACY_SUPPRESSION.schema)
    result = job.run(ctx)
    run_id = result["run_id"]
    assert result["members"] == {"recent": 3}  # p1, p2, p7: consented to e-mail, not suppressed
    # p7 has no consent for ad matching (consent_sms, the configured channel): in the e-mail file only
    assert result["exports"] == {"recent.email_csv": 3, "recent.hashed_audience": 2}

    folder = os.path.join(ctx.lake_root, "exports", "recent", run_id)
    emails = read_csv(os.path.join(folder, "email_csv.csv"))
    assert emails == [
        {"person_id": "p1", "email": "jan@example.nl", "given_name": "Jan", "family_name": "van der Berg",
         "full_name": "Jan van der Berg"},
        {"person_id": "p2", "email": "test@example.com", "given_name": "Test", "family_name": "Test",
         "full_name": "Test Test"},
        {"person_id": "p7", "email": "p7@example.nl", "given_name": "P7", "family_name": "Test",
         "full_name": "P7 Test"},
    ]
    hashed = read_csv(os.path.join(folder, "hashed_audience.csv"))
    jan = hashlib.sha256(b"jan@example.nl").hexdigest()
    assert hashed == sorted(
        [
            {"email_sha256": jan,
             "phone_sha256": "fab7be8a931d1088a82f6acf9e468aaf6a3accc07d5112ee5d6fca93281e1583"},
            {"email_sha256": "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b", "phone_sha256": ""},
        ],
        key=lambda r: r["email_sha256"],
    )
    assert hashlib.sha256(b"+31612345678").hexdigest() == hashed[[r["email_sha256"] for r in hashed].index(jan)][
        "phone_sha256"]

    with open(os.path.join(folder, "hashed_audience.manifest.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    created = manifest.pop("created_at")
    assert dt.datetime.fromisoformat(created).tzinfo is not None
    assert manifest == {
        "export_id": hashlib.sha256(f"recent\x1fhashed_audience\x1f{run_id}".encode()).hexdigest()[:32],
        "segment": "recent",
        "target": "hashed_audience",
        "path": os.path.join(folder, "hashed_audience.csv"),
        "rows": 2,
        "hash_method": "sha256-hex; email=trim+lower; phone=e164",
        "run_id": run_id,
    }
    table = {r.target: r for r in ctx.lake.read(SEGMENT_EXPORTS.address).collect()}
    assert sorted(table) == ["email_csv", "hashed_audience"]
    assert (table["email_csv"].rows, table["email_csv"].hash_method, table["email_csv"].run_id) == (3, "none", run_id)
    assert (table["hashed_audience"].export_id, table["hashed_audience"].rows) == (manifest["export_id"], 2)
    runs = {r.run_id: r for r in ctx.lake.read(OPS_RUNS.address).where("job = 'segments'").collect()}
    assert runs[run_id].metrics["export_rows.recent.hashed_audience"] == "2"
    with open(os.path.join(folder, "hashed_audience.csv"), encoding="utf-8") as fh:
        hashed_text = fh.read()
    for value in ("p7@example.nl", "+31677777777", "31677777777"):
        assert hashlib.sha256(value.encode()).hexdigest() not in hashed_text

    # no value of a suppressed or non-consenting person in any file
    text = "".join(open(os.path.join(folder, f), encoding="utf-8").read() for f in os.listdir(folder))
    for value in ("erased@example.nl", "p3@example.nl", "p4", "p5", "p6",
                  hashlib.sha256(b"+31699999999").hexdigest(), hashlib.sha256(b"erased@example.nl").hexdigest()):
        assert value not in text


def _failed_runs(ctx) -> list:  # noqa: ANN001
    return [(r.status, r.error, r.ended_at is not None)
            for r in ctx.lake.read(OPS_RUNS.address).where("job = 'segments'").collect()]


def test_missing_profiles_fail_clearly_and_leave_a_failed_run(ctx) -> None:  # noqa: ANN001
    from jobs.common.errors import DataError

    with pytest.raises(DataError) as err:
        job.run(ctx)
    expected = (f"segments: table golden.profiles does not exist under {ctx.lake_root}; expected the golden stage "
                "to have run first")
    assert str(err.value) == expected
    assert _failed_runs(ctx) == [("failed", f"DataError: {expected}", True)]
    assert not ctx.lake.exists(SEGMENT_MEMBERSHIP.address)


def test_hashed_audience_without_ad_consent_is_refused_before_anything_is_written(make_ctx, spark) -> None:  # noqa: ANN001
    """A config built in code skips the load-time checks; the job refuses it as a failed run."""
    from jobs.common.errors import ConfigError

    no_ad_consent = {k: v for k, v in SEGMENTS.items() if k != "hashed_audience_consent"}
    ctx = make_ctx(segments=no_ad_consent, run={"date": "2024-06-15"}, privacy={"salt": SALT})
    write_profiles(ctx, spark, [person("a", last_order_at=RECENT)])
    with pytest.raises(ConfigError) as err:
        job.run(ctx)
    assert err.value.problems == [
        "segments.segments[0].exports: got ['email_csv', 'hashed_audience']; expected "
        "segments.hashed_audience_consent to be set before segment 'recent' can export hashed_audience: the consent "
        "channel (email, sms, post or phone) whose statement covers matching with ad platforms; it has no default, "
        "because golden.profiles has no advertising consent channel"
    ]
    assert _failed_runs(ctx) == [("failed", f"ConfigError: {err.value}", True)]
    assert err.value.problems[0] in _failed_runs(ctx)[0][1]
    assert not ctx.lake.exists(SEGMENT_MEMBERSHIP.address)
    assert not os.path.exists(os.path.join(ctx.lake_root, "exports"))
