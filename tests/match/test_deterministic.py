"""Deterministic identifier links (jobs/match/deterministic.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality

from jobs.common.errors import SchemaError
from jobs.common.schemas import MATCH_EDGES, SILVER_EVENTS, SILVER_IDENTIFIERS
from jobs.match.config import DeterministicConfig
from jobs.match.deterministic import identifier_edges

RUN = "run-1"


def ids(spark, rows):  # noqa: ANN001, ANN201
    return spark.createDataFrame(rows, SILVER_IDENTIFIERS.schema)


def events(spark, logins):  # noqa: ANN001, ANN201
    """logins: (cookie_id, login_customer_number[, event_type])."""
    at = dt.datetime(2026, 1, 1)
    rows = []
    for i, login in enumerate(logins):
        cookie, cn = login[0], login[1]
        etype = login[2] if len(login) > 2 else "login"
        rows.append((f"e{i}", "web", etype, at, None, None, "cookie_id", cookie, f"w{i}", None, cookie, cn if etype == "login" else None, None, None, "b1", "h"))
    return spark.createDataFrame(rows, SILVER_EVENTS.schema)


def no_events(spark):  # noqa: ANN001, ANN201
    return spark.createDataFrame([], SILVER_EVENTS.schema)


def edges(spark, rows):  # noqa: ANN001, ANN201
    return spark.createDataFrame([(l, r, t, None, 1.0, RUN) for l, r, t in rows], MATCH_EDGES.schema)


def test_shared_email_links_records_as_a_star(spark) -> None:  # noqa: ANN001
    identifiers = ids(
        spark,
        [
            ("k3", "email", "ann@x.nl", "crm"),
            ("k1", "email", "ann@x.nl", "webshop"),
            ("k2", "email", "ann@x.nl", "pos"),
            ("k4", "email", "bob@x.nl", "crm"),
            ("k5", "email", "carl@x.nl", "crm"),
            ("k6", "email", "carl@x.nl", "webshop"),
            ("k6", "email", "carl@x.nl", "webshop"),  # duplicate row
        ],
    )
    out, report = identifier_edges(identifiers, no_events(spark), DeterministicConfig(id_types=["email"]), RUN)
    expected = edges(spark, [("k1", "k2", "identifier:email"), ("k1", "k3", "identifier:email"), ("k5", "k6", "identifier:email")])
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
    assert report == []


def test_two_types_give_two_edge_types_and_no_duplicates(spark) -> None:  # noqa: ANN001
    identifiers = ids(
        spark,
        [
            ("b", "email", "a@x.nl", "crm"),
            ("a", "email", "a@x.nl", "webshop"),
            ("b", "email", "a2@x.nl", "crm"),
            ("a", "email", "a2@x.nl", "webshop"),
            ("a", "customer_number", "C1", "webshop"),
            ("b", "customer_number", "C1", "crm"),
        ],
    )
    cfg = DeterministicConfig(id_types=["email", "customer_number"], cookie_login=False)
    out, _ = identifier_edges(identifiers, no_events(spark), cfg, RUN)
    expected = edges(spark, [("a", "b", "identifier:email"), ("a", "b", "identifier:customer_number")])
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_generic_value_not_used_and_reported_with_counts(spark) -> None:  # noqa: ANN001
    rows = [(f"k{i:02d}", "email", "info@shop.nl", "pos") for i in range(4)]  # 4 records > cap 3
    rows += [(f"k{i:02d}", "email", "family@x.nl", "crm") for i in range(10, 13)]  # 3 records = cap: used
    rows += [(f"k{i:02d}", "email", "generic2@x.nl", "crm") for i in range(20, 25)]  # 5 records > cap
    rows += [(f"p{i}", "phone", "+31201234567", "crm") for i in range(5)]  # generic phone, phone not configured
    cfg = DeterministicConfig(id_types=["email"], max_records_per_value=3, cookie_login=False)
    out, report = identifier_edges(ids(spark, rows), no_events(spark), cfg, RUN)
    expected = edges(spark, [("k10", "k11", "identifier:email"), ("k10", "k12", "identifier:email")])
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
    assert report == [{"reason": "generic_value", "id_type": "email", "values": 2, "records": 9}]
    assert "info@shop.nl" not in repr(report)


def test_edges_only_within_configured_id_types(spark) -> None:  # noqa: ANN001
    identifiers = ids(
        spark,
        [
            ("a", "phone", "+31612345678", "crm"),
            ("b", "phone", "+31612345678", "pos"),
            ("c", "device_id", "D1", "web"),
            ("d", "device_id", "D1", "web"),
            ("e", "loyalty_card", "L1", "pos"),
            ("f", "loyalty_card", "L1", "crm"),
        ],
    )
    out, _ = identifier_edges(identifiers, no_events(spark), DeterministicConfig(id_types=["loyalty_card"]), RUN)
    assert [tuple(r) for r in out.collect()] == [("e", "f", "identifier:loyalty_card", None, 1.0, RUN)]
    out, _ = identifier_edges(identifiers, no_events(spark), DeterministicConfig(id_types=[], cookie_login=False), RUN)
    assert out.collect() == []


def test_cookie_login_links_cookie_record_to_customer_records(spark) -> None:  # noqa: ANN001
    identifiers = ids(
        spark,
        [
            ("w1", "cookie_id", "ck-1", "web"),
            ("w2", "cookie_id", "ck-2", "web"),  # never logged in
            ("s1", "cookie_id", "ck-1", "webshop"),  # not a web cookie record
            ("c1", "customer_number", "C100", "crm"),
            ("c2", "customer_number", "C100", "webshop"),
            ("c3", "customer_number", "C200", "crm"),
        ],
    )
    ev = events(spark, [("ck-1", "C100"), ("ck-1", "C100"), ("ck-2", "C200", "page_view")])
    cfg = DeterministicConfig(id_types=["email"], cookie_login=True)
    out, report = identifier_edges(identifiers, ev, cfg, RUN)
    expected = edges(spark, [("c1", "w1", "identifier:cookie_login"), ("c2", "w1", "identifier:cookie_login")])
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
    assert report == []
    off, _ = identifier_edges(identifiers, ev, cfg.model_copy(update={"cookie_login": False}), RUN)
    assert off.collect() == []


def test_shared_device_cookie_refused_and_reported(spark) -> None:  # noqa: ANN001
    identifiers = ids(
        spark,
        [
            ("w1", "cookie_id", "ck-shared", "web"),
            ("w2", "cookie_id", "ck-own", "web"),
            ("c1", "customer_number", "C1", "crm"),
            ("c2", "customer_number", "C2", "crm"),
            ("c3", "customer_number", "C3", "crm"),
        ],
    )
    ev = events(spark, [("ck-shared", "C1"), ("ck-shared", "C2"), ("ck-own", "C3")])
    out, report = identifier_edges(identifiers, ev, DeterministicConfig(id_types=[]), RUN)
    expected = edges(spark, [("c3", "w2", "identifier:cookie_login")])
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
    assert report == [{"reason": "shared_device", "id_type": "cookie_id", "values": 1, "records": 1}]
    # allowing two customers per cookie uses it
    out2, report2 = identifier_edges(identifiers, ev, DeterministicConfig(id_types=[], max_customers_per_cookie=2), RUN)
    assert sorted((r.record_key_l, r.record_key_r) for r in out2.collect()) == [("c1", "w1"), ("c2", "w1"), ("c3", "w2")]
    assert report2 == []


def test_disabled_and_missing_columns(spark) -> None:  # noqa: ANN001
    identifiers = ids(spark, [("a", "email", "x@y.nl", "crm"), ("b", "email", "x@y.nl", "crm")])
    out, report = identifier_edges(identifiers, no_events(spark), DeterministicConfig(enabled=False), RUN)
    assert out.collect() == [] and report == []
    assert out.schema == MATCH_EDGES.schema
    with pytest.raises(SchemaError, match="identifier_edges: identifiers: missing column.*source"):
        identifier_edges(identifiers.drop("source"), no_events(spark), DeterministicConfig(), RUN)


def test_values_held_by_different_people_link_nothing(spark) -> None:  # noqa: ANN001
    identifiers = ids(
        spark,
        [
            ("k1", "email", "fam@x.nl", "crm"),  # a family address: Jan and Marie
            ("k2", "email", "fam@x.nl", "webshop"),
            ("k3", "email", "jan@x.nl", "crm"),  # one person, initials and birth dates agree or are blank
            ("k4", "email", "jan@x.nl", "webshop"),
            ("k5", "email", "jan@x.nl", "pos"),
            ("k6", "email", "twin@x.nl", "crm"),  # same initial, two birth dates
            ("k7", "email", "twin@x.nl", "webshop"),
            ("k8", "customer_number", "C-1", "crm"),  # an account: links despite different people
            ("k9", "customer_number", "C-1", "webshop"),
        ],
    )
    people = spark.createDataFrame(
        [
            ("k1", "jan", dt.date(1970, 1, 1)),
            ("k2", "marie", None),
            ("k3", "jan", dt.date(1970, 1, 1)),
            ("k4", "j", None),
            ("k5", None, dt.date(1970, 1, 1)),
            ("k6", "tim", dt.date(2001, 5, 5)),
            ("k7", "tom", dt.date(2001, 5, 6)),
            ("k8", "jan", dt.date(1970, 1, 1)),
            ("k9", "marie", dt.date(1971, 2, 2)),
        ],
        "record_key string, given_name_match string, birth_date date",
    )
    cfg = DeterministicConfig(id_types=["email", "customer_number"])
    assert cfg.conflict_check == ["email", "loyalty_card"]
    out, report = identifier_edges(identifiers, no_events(spark), cfg, RUN, people)
    expected = edges(
        spark,
        [("k3", "k4", "identifier:email"), ("k3", "k5", "identifier:email"), ("k8", "k9", "identifier:customer_number")],
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
    assert report == [{"reason": "conflicting_holders", "id_type": "email", "values": 2, "records": 4}]

    # switched off, or without the records, every shared value links as before
    off, report_off = identifier_edges(identifiers, no_events(spark), cfg.model_copy(update={"conflict_check": []}), RUN, people)
    assert off.count() == 5 and report_off == []  # stars: fam 1, jan 2, twin 1, C-1 1
    assert identifier_edges(identifiers, no_events(spark), cfg, RUN)[0].count() == 5
