"""Survivorship rules, one per test, with the provenance of each surviving value."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from pyspark.sql import functions as F

from jobs.golden.config import GoldenConfig
from jobs.golden.survivorship import survive

T1, T2, T3 = datetime(2024, 1, 1), datetime(2025, 1, 1), datetime(2026, 1, 1)


def _rec(key, source, trust, created=None, updated=None, **values):
    return {"record_key": key, "source": source, "trust_rank": trust, "source_created_at": created,
            "source_updated_at": updated, **values}


def _survive(make_records, rows, **rules):
    cfg = GoldenConfig(survivorship=rules) if rules else GoldenConfig()
    recs = make_records(rows).withColumn("person_id", F.lit("P1"))
    (row,) = survive(recs, cfg).collect()
    return row.asDict(recursive=True)


def _prov(p):
    return (p["source"], p["record_key"], p["rule"], p["updated_at"])


def test_source_trust_keeps_the_name_of_the_most_trusted_source(make_records):
    out = _survive(make_records, [
        _rec("r1", "webshop", 2, updated=T3, given_name="Jan", family_name="Jansen", full_name="Jan Jansen"),
        _rec("r2", "crm", 1, updated=T1, given_name="Johannes", family_name="Jansen", full_name="Johannes Jansen"),
    ])
    assert (out["given_name"], out["family_name"], out["full_name"]) == ("Johannes", "Jansen", "Johannes Jansen")
    assert _prov(out["provenance"]["given_name"]) == ("crm", "r2", "source_trust", T1)
    assert _prov(out["provenance"]["family_name"]) == ("crm", "r2", "source_trust", T1)


def test_most_recent_email_wins_and_invalid_values_never_survive(make_records):
    out = _survive(make_records, [
        _rec("r1", "crm", 1, updated=T1, email="old@example.nl", email_valid=True),
        _rec("r2", "webshop", 2, updated=T2, email="new@example.nl", email_valid=True),
        _rec("r3", "pos", 3, updated=T3, email="broken@", email_valid=False),
    ])
    assert out["email"] == "new@example.nl"
    assert _prov(out["provenance"]["email"]) == ("webshop", "r2", "most_recent", T2)
    assert "phone" not in out["provenance"] and out["phone"] is None


def test_most_frequent_birth_date_beats_a_trusted_typo(make_records):
    out = _survive(make_records, [
        _rec("r1", "crm", 1, updated=T3, birth_date=date(1981, 1, 1), birth_date_valid=True),
        _rec("r2", "webshop", 2, updated=T1, birth_date=date(1980, 1, 1), birth_date_valid=True),
        _rec("r3", "pos", 3, updated=T2, birth_date=date(1980, 1, 1), birth_date_valid=True),
    ])
    assert out["birth_date"] == date(1980, 1, 1)
    # among the agreeing records the most trusted one is cited
    assert _prov(out["provenance"]["birth_date"]) == ("webshop", "r2", "most_frequent", T1)


def test_most_complete_name_group(make_records):
    out = _survive(make_records, [
        _rec("r1", "crm", 1, updated=T3, initials="J", family_name="Berg", full_name="J. Berg"),
        _rec("r2", "webshop", 2, updated=T1, given_name="Jan Pieter", name_particle="van den",
             family_name="Berg", full_name="Jan Pieter van den Berg"),
    ], family_name="most_complete")
    assert (out["full_name"], out["given_name"], out["name_particle"], out["initials"]) == (
        "Jan Pieter van den Berg", "Jan Pieter", "van den", None)
    assert _prov(out["provenance"]["full_name"]) == ("webshop", "r2", "most_complete", T1)
    assert "initials" not in out["provenance"]


def test_first_non_null_takes_the_oldest_statement(make_records):
    out = _survive(make_records, [
        _rec("r1", "crm", 1, created=T1, updated=T3, phone=None),
        _rec("r2", "webshop", 2, created=T2, updated=T2, phone="+31612345678", phone_valid=True),
        _rec("r3", "pos", 3, created=T3, updated=T3, phone="+31687654321", phone_valid=True),
    ], phone="first_non_null")
    assert out["phone"] == "+31612345678"
    assert _prov(out["provenance"]["phone"]) == ("webshop", "r2", "first_non_null", T2)


def test_address_survives_as_a_whole(make_records):
    out = _survive(make_records, [
        _rec("r1", "crm", 1, updated=T1, street="Dorpsstraat", house_number="1", postcode="1234 AB",
             postcode_valid=True, city="Utrecht", country="NL"),
        _rec("r2", "webshop", 2, updated=T2, street="Kerkweg", house_number="7", postcode=None, city="Zeist",
             country="NL"),
    ])
    # r2 is newer but has no postcode: the complete address of r1 wins, never a mix
    assert (out["street"], out["house_number"], out["postcode"], out["city"]) == ("Dorpsstraat", "1", "1234 AB", "Utrecht")
    assert {_prov(out["provenance"][a])[1] for a in ("street", "house_number", "postcode", "city", "country")} == {"r1"}


def test_config_rejects_unknown_rule_and_group_conflict():
    with pytest.raises(Exception, match="most_famous"):
        GoldenConfig(survivorship={"email": "most_famous"})
    cfg = GoldenConfig(survivorship={"postcode": "most_recent", "street": "most_complete", "nickname": "most_recent"})
    problems = cfg.semantic_problems(None)
    assert [(p[0], p[1]) for p in problems] == [
        ("golden.survivorship.nickname", "nickname"),
        ("golden.survivorship.street", "most_complete"),
    ]
    assert "'most_recent' (the rule of postcode) or no entry" in problems[1][2]
