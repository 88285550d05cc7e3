"""Households (address grouping, persistence) and pet / company relationships."""

from __future__ import annotations

import hashlib

from pyspark.sql import functions as F

from jobs.golden.config import GoldenConfig
from jobs.golden.households import assign_households, relationships


def _h(prefix, *parts):
    return prefix + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def _profiles(make_profiles_rows):
    return make_profiles_rows([
        {"person_id": "P1", "postcode": "1234 AB", "house_number": "1", "country": "NL", "family_name": "Jansen"},
        {"person_id": "P2", "postcode": "1234ab", "house_number": "1", "country": "NL", "family_name": "jansen"},
        {"person_id": "P3", "postcode": "1234-AB", "house_number": "1", "country": "NL", "family_name": "de Vries"},
        {"person_id": "P4", "postcode": "1234 AB", "house_number": "1", "house_number_suffix": "A", "country": "NL",
         "family_name": "Jansen"},
        {"person_id": "P5", "postcode": None, "house_number": "1", "country": "NL", "family_name": "Jansen"},
    ])


def _assign(profiles, cfg, previous=None, epoch=0):
    return {r.person_id: r.household_id for r in assign_households(profiles, cfg, previous, epoch).collect()}


def test_households_by_address(spark, hid_of):
    from jobs.common.schemas import GOLDEN_PROFILES

    rows = lambda rs: spark.createDataFrame(  # noqa: E731
        [tuple(r.get(n) for n in GOLDEN_PROFILES.column_names) for r in rs], GOLDEN_PROFILES.schema)
    profiles = _profiles(rows)
    h1, h4 = hid_of(0, "P1"), hid_of(0, "P4")
    assert _assign(profiles, GoldenConfig()) == {"P1": h1, "P2": h1, "P3": h1, "P4": h4, "P5": None}
    same_family = GoldenConfig(households={"same_family_name": True})
    assert _assign(profiles, same_family) == {"P1": h1, "P2": h1, "P3": hid_of(0, "P3"), "P4": h4, "P5": None}
    small = GoldenConfig(households={"max_size": 2})
    assert _assign(profiles, small) == {"P1": None, "P2": None, "P3": None, "P4": h4, "P5": None}
    off = GoldenConfig(households={"enabled": False})
    assert set(_assign(profiles, off).values()) == {None}
    # persistence: the group holding most of an old household keeps its id; others get epoch-1 ids
    previous = spark.createDataFrame([("P1", "H-old"), ("P2", "H-old"), ("P4", "H-old")], "person_id string, household_id string")
    assert _assign(profiles, GoldenConfig(), previous, epoch=1) == {
        "P1": "H-old", "P2": "H-old", "P3": "H-old", "P4": hid_of(1, "P4"), "P5": None}


def test_pet_and_company_relationships(make_records, make_map, spark):
    records = make_records([
        {"record_key": "r1", "source": "crm", "trust_rank": 1, "extensions": {"pet_name": "Bello", "pet_species": "dog"}},
        {"record_key": "r2", "source": "webshop", "trust_rank": 2, "extensions": {"pet_name": "bello"}},
        {"record_key": "r3", "source": "pos", "trust_rank": 3,
         "extensions": {"pet_name": "Minoes", "pet_species": "cat", "company": "Acme B.V.", "job_title": "Engineer"}},
        {"record_key": "r4", "source": "crm", "trust_rank": 1, "extensions": {"company": "ACME bv"}},
    ])
    imap = make_map({"r1": "P1", "r2": "P1", "r3": "P1", "r4": "P2"})
    profiles = spark.createDataFrame([("P1",), ("P2",)], "person_id string")
    households = spark.createDataFrame([("P1", "H1"), ("P2", None)], "person_id string, household_id string")
    out = relationships(profiles, records, imap, households, "run-1")
    got = sorted((r.person_id, r.relation, r.related_id, r.related_name, r.attributes, r.run_id) for r in out.collect())
    acme = _h("C", "company", "acme")
    assert got == sorted([
        ("P1", "household_member", "H1", None, {}, "run-1"),
        ("P1", "pet_owner", _h("A", "pet", "P1", "bello"), "Bello", {"species": "dog"}, "run-1"),
        ("P1", "pet_owner", _h("A", "pet", "P1", "minoes"), "Minoes", {"species": "cat"}, "run-1"),
        ("P1", "works_at", acme, "Acme B.V.", {"job_title": "Engineer"}, "run-1"),
        ("P2", "works_at", acme, "ACME bv", {}, "run-1"),
    ])
    assert out.columns == ["person_id", "relation", "related_id", "related_name", "attributes", "run_id"]
    assert out.where(F.col("relation") == "household_member").count() == 1
