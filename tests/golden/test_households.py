"""Households (address grouping, persistence) and pet / company relationships."""

from __future__ import annotations

import hashlib

from pyspark.sql import functions as F

from jobs.golden.config import GoldenConfig
from jobs.golden.households import (
    assign_households,
    changed_relation_persons,
    households_to_recompute,
    relationships,
)


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


def _assign(profiles, cfg, previous=None, epoch=0, issued=None):
    out = assign_households(profiles, cfg, previous, epoch, issued)
    return {r.person_id: r.household_id for r in out.collect()}


def _rows(spark):
    from jobs.common.schemas import GOLDEN_PROFILES

    return lambda rs: spark.createDataFrame(
        [tuple(r.get(n) for n in GOLDEN_PROFILES.column_names) for r in rs], GOLDEN_PROFILES.schema)


def _ids(spark, *ids):
    return spark.createDataFrame([(i,) for i in ids], "household_id string")


def _previous(spark, pairs):
    return spark.createDataFrame(list(pairs.items()), "person_id string, household_id string")


def test_households_by_address(spark, household_of, hid_of):
    profiles = _profiles(_rows(spark))
    h1, h4 = household_of("P1"), household_of("P4")
    # anchored at the group's smallest person id, whatever the run (no epoch in a fresh id)
    assert h1 == _h("H", "household", "P1")
    assert _assign(profiles, GoldenConfig()) == {"P1": h1, "P2": h1, "P3": h1, "P4": h4, "P5": None}
    assert _assign(profiles, GoldenConfig(), epoch=7) == {"P1": h1, "P2": h1, "P3": h1, "P4": h4, "P5": None}
    same_family = GoldenConfig(households={"same_family_name": True})
    assert _assign(profiles, same_family) == {"P1": h1, "P2": h1, "P3": household_of("P3"), "P4": h4, "P5": None}
    small = GoldenConfig(households={"max_size": 2})
    assert _assign(profiles, small) == {"P1": None, "P2": None, "P3": None, "P4": h4, "P5": None}
    off = GoldenConfig(households={"enabled": False})
    assert set(_assign(profiles, off).values()) == {None}
    # persistence: the group holding most of an old household keeps its id; others get a new one
    previous = _previous(spark, {"P1": "H-old", "P2": "H-old", "P4": "H-old"})
    assert _assign(profiles, GoldenConfig(), previous, epoch=1) == {
        "P1": "H-old", "P2": "H-old", "P3": "H-old", "P4": h4, "P5": None}
    # an anchored id issued before (golden.household_ids) is salted with the epoch instead
    assert _assign(profiles, GoldenConfig(), previous, epoch=1, issued=_ids(spark, h4)) == {
        "P1": "H-old", "P2": "H-old", "P3": "H-old", "P4": hid_of(1, "P4"), "P5": None}


def test_household_ids_are_never_issued_twice(spark, household_of, hid_of):
    rows = _rows(spark)
    addr = {"house_number": "1", "country": "NL"}
    first = rows([{"person_id": p, "postcode": "1111 AA", **addr} for p in ("P1", "P2", "P3")])
    h1 = household_of("P1")
    assert set(_assign(first, GoldenConfig()).values()) == {h1}
    # P1 moves out alone: the two who stay keep h1 (most members); P1's own group would be
    # anchored at P1 again, whose id h1 is live, so it gets the epoch-salted id
    moved = rows([{"person_id": "P1", "postcode": "2222 BB", **addr},
                  *[{"person_id": p, "postcode": "1111 AA", **addr} for p in ("P2", "P3")]])
    previous = _previous(spark, {"P1": h1, "P2": h1, "P3": h1})
    assert _assign(moved, GoldenConfig(), previous, epoch=4) == {"P1": hid_of(4, "P1"), "P2": h1, "P3": h1}
    # a household that dissolved (its id only in golden.household_ids) does not come back as it was
    alone = rows([{"person_id": "P9", "postcode": "3333 CC", **addr}])
    assert _assign(alone, GoldenConfig(), None, epoch=5, issued=_ids(spark, household_of("P9"))) == {
        "P9": hid_of(5, "P9")}


def test_households_to_recompute_only_touched_addresses(spark):
    rows = _rows(spark)
    addr = {"house_number": "1", "country": "NL"}
    old = rows([
        {"person_id": "A", "postcode": "1111 AA", **addr}, {"person_id": "B", "postcode": "1111 AA", **addr},
        {"person_id": "C", "postcode": "2222 BB", **addr}, {"person_id": "D", "postcode": "3333 CC", **addr},
        {"person_id": "E", "postcode": "4444 DD", **addr}, {"person_id": "G", "postcode": "5555 EE", **addr},
    ])
    # A moves from 1111 to 2222 (joins C); E is gone (merged away); F is new without an address
    new = rows([
        {"person_id": "A", "postcode": "2222 BB", **addr}, {"person_id": "B", "postcode": "1111 AA", **addr},
        {"person_id": "C", "postcode": "2222 BB", **addr}, {"person_id": "D", "postcode": "3333 CC", **addr},
        {"person_id": "F"}, {"person_id": "G", "postcode": "5555 EE", **addr},
    ])
    scope = spark.createDataFrame([("A",), ("E",), ("F",)], "person_id string")
    got = {r.person_id for r in households_to_recompute(new, old, scope, GoldenConfig()).collect()}
    # A's old and new address (B, C), E's old address (nobody left), F itself; D and G untouched
    assert got == {"A", "B", "C", "F"}


def test_changed_relation_persons_compares_whole_row_sets(spark):
    from jobs.common.schemas import GOLDEN_HOUSEHOLDS

    def rel(rows):
        return spark.createDataFrame(rows, GOLDEN_HOUSEHOLDS.schema)

    old = rel([("P1", "household_member", "H1", None, {}, "r1"), ("P1", "pet_owner", "A1", "Bello", {"species": "dog"}, "r1"),
               ("P2", "household_member", "H1", None, {}, "r1"), ("P3", "works_at", "C1", "Acme", {}, "r1"),
               ("P4", "household_member", "H2", None, {}, "r1")])
    new = rel([("P1", "pet_owner", "A1", "Bello", {"species": "dog"}, "r2"), ("P1", "household_member", "H1", None, {}, "r2"),
               ("P2", "household_member", "H3", None, {}, "r2"), ("P3", "works_at", "C1", "Acme", {"job_title": "CEO"}, "r2"),
               ("P5", "household_member", "H2", None, {}, "r2")])
    # P1 only got a new run id; P2 moved household; P3's attributes changed; P4 gone, P5 new
    assert sorted(r.person_id for r in changed_relation_persons(new, old).collect()) == ["P2", "P3", "P4", "P5"]


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
