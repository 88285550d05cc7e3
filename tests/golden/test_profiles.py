"""Golden profiles: identifiers, event attribution and aggregates, RFM, consent, extensions."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from jobs.golden.config import GoldenConfig
from jobs.golden.profiles import attribute_events, build_profiles, changed_profiles, removed_profiles

RUN_AT = datetime(2026, 11, 1, 12, 0)
RUN_DATE = date(2026, 11, 1)
ING = datetime(2026, 10, 30)


@pytest.fixture()
def inputs(make_records, make_identifiers, make_events, make_map):
    records = make_records([
        {"record_key": "r1", "source": "crm", "trust_rank": 1, "source_created_at": datetime(2020, 1, 1),
         "source_updated_at": datetime(2025, 1, 1), "ingested_at": ING, "family_name": "Jansen",
         "consent_email": True, "consent_email_at": datetime(2026, 1, 1), "consent_sms": True,
         "extensions": {"pet_name": "Bello"}},
        {"record_key": "r2", "source": "webshop", "trust_rank": 2, "source_created_at": datetime(2021, 1, 1),
         "source_updated_at": datetime(2026, 2, 1), "ingested_at": ING, "family_name": "Janssen",
         "consent_email": False, "consent_email_at": datetime(2026, 3, 1),
         "extensions": {"pet_name": "Max", "company": "Acme"}},
        {"record_key": "r3", "source": "web", "trust_rank": 5, "ingested_at": ING, "cookie_id": "ck1",
         "consent_email": True, "extensions": {}},
        {"record_key": "r4", "source": "pos", "trust_rank": 3, "ingested_at": ING, "family_name": "Smit",
         "extensions": {}},
    ])
    ids = [("r1", "email", "jan@x.nl"), ("r1", "customer_number", "C1"), ("r2", "email", "jan@x.nl"),
           ("r2", "email", "shared@x.nl"), ("r3", "cookie_id", "ck1"), ("r4", "loyalty_card", "L9"),
           ("r4", "email", "shared@x.nl")]
    identifiers = make_identifiers([{"record_key": k, "id_type": t, "id_value": v, "source": "s"} for k, t, v in ids])

    def ev(key, typ, at, id_type=None, id_value=None, amount=None, record_key=None, cookie=None):
        return {"event_key": key, "source": "s", "event_type": typ, "event_at": at,
                "amount": Decimal(amount) if amount else None, "id_type": id_type, "id_value": id_value,
                "record_key": record_key or f"ev-{key}", "cookie_id": cookie}

    events = make_events([
        ev("e1", "order", datetime(2026, 10, 20), "customer_number", "C1", "100.00"),
        ev("e2", "order", datetime(2026, 6, 1), "email", "jan@x.nl", "50.50"),
        ev("e3", "receipt", datetime(2026, 9, 1), "loyalty_card", "L9", "30.00"),
        ev("e4", "email_open", datetime(2026, 10, 1), "email", "jan@x.nl"),
        ev("e5", "email_click", datetime(2026, 10, 2), "email", "jan@x.nl"),
        ev("e6", "email_open", datetime(2026, 10, 3), "email", "shared@x.nl"),  # ambiguous: nobody
        ev("e7", "page_view", datetime(2026, 10, 25), "cookie_id", "ck1", cookie="ck1"),
        ev("e8", "page_view", datetime(2026, 10, 26), record_key="r3"),  # the event row is a record
        ev("e9", "login", datetime(2026, 10, 27), "customer_number", "C1", cookie="ck1"),
        ev("e10", "page_view", datetime(2026, 10, 28), cookie="ck1"),  # only its cookie
        ev("e11", "order", datetime(2026, 10, 28), "email", "nobody@x.nl", "9.99"),  # unknown: nobody
    ])
    imap = make_map({"r1": "P1", "r2": "P1", "r3": "P1", "r4": "P2"})
    return records, identifiers, events, imap


def _build(inputs, cfg=None):
    records, identifiers, events, imap = inputs
    df = build_profiles(records, identifiers, events, imap, cfg or GoldenConfig(), "run-1", RUN_AT, RUN_DATE)
    return {r.person_id: r.asDict(recursive=True) for r in df.collect()}, df


def test_profiles_aggregate_events_consent_and_identifiers(inputs):
    p, df = _build(inputs)
    assert set(p) == {"P1", "P2"}
    p1, p2 = p["P1"], p["P2"]
    agg = ("orders_count", "orders_revenue", "receipts_count", "receipts_revenue", "total_revenue",
           "first_order_at", "last_order_at", "rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_cell",
           "email_opens", "email_clicks", "last_email_engagement_at", "page_views", "web_logins", "last_web_visit_at")
    assert tuple(p1[c] for c in agg) == (
        2, Decimal("150.50"), 0, Decimal("0.00"), Decimal("150.50"), datetime(2026, 6, 1), datetime(2026, 10, 20),
        5, 3, 3, "5-3-3", 1, 1, datetime(2026, 10, 2), 3, 1, datetime(2026, 10, 28))
    assert tuple(p2[c] for c in agg) == (
        0, Decimal("0.00"), 1, Decimal("30.00"), Decimal("30.00"), datetime(2026, 9, 1), datetime(2026, 9, 1),
        4, 2, 1, "4-2-1", 0, 0, None, 0, 0, None)
    # consent: latest timed statement wins over older ones and over an untimed one
    assert (p1["consent_email"], p1["consent_email_at"]) == (False, datetime(2026, 3, 1))
    assert (p1["consent_sms"], p1["consent_sms_at"]) == (True, None)
    assert (p2["consent_email"], p2["consent_email_at"], p2["consent_post"]) == (None, None, None)
    assert p1["identifiers"] == {"customer_number": ["C1"], "cookie_id": ["ck1"], "email": ["jan@x.nl", "shared@x.nl"]}
    assert p2["identifiers"] == {"email": ["shared@x.nl"], "loyalty_card": ["L9"]}
    assert (p1["record_count"], p1["sources"], p1["first_seen_at"], p1["last_seen_at"]) == (
        3, ["crm", "web", "webshop"], datetime(2020, 1, 1), ING)
    assert p1["extensions"] == {"company": "Acme", "pet_name": "Bello"}
    assert (p1["family_name"], p1["provenance"]["family_name"]["record_key"]) == ("Jansen", "r1")
    assert (p1["run_id"], p1["updated_at"], p1["household_id"]) == ("run-1", RUN_AT, None)


def test_events_reach_the_person_of_their_owner_record_once(inputs, make_events):
    records, identifiers, events, imap = inputs

    def order(key, amount, owner, id_type=None, id_value=None):
        return {"event_key": key, "source": "webshop_orders", "event_type": "order", "event_at": datetime(2026, 10, 10),
                "amount": Decimal(amount), "id_type": id_type, "id_value": id_value, "record_key": f"ev-{key}",
                "owner_record_key": owner}

    owned = make_events([
        order("w1", "11.00", "r2"),  # no usable identifier (blank customer number, placeholder e-mail): its account
        order("w2", "12.00", "r1", "customer_number", "C1"),  # owner and identifier both lead to P1: once
        order("w3", "13.00", "r4", "email", "shared@x.nl"),  # a shared e-mail reaches nobody; its account is P2's
        order("w4", "14.00", "r4", "customer_number", "C1"),  # the identifier says P1, the account P2: the account wins
        order("w5", "15.00", "gone"),  # an owner the identity map no longer holds, no identifier: nobody
        order("w6", "16.00", "gone", "customer_number", "C1"),  # ... with an identifier: through it, P1
    ])
    everything = events.unionByName(owned)
    attributed = {r.event_key: r.person_id for r in attribute_events(everything, identifiers, imap).collect()}
    assert attribute_events(everything, identifiers, imap).count() == len(attributed)  # one row per event
    assert {k: v for k, v in attributed.items() if k.startswith("w")} == {"w1": "P1", "w2": "P1", "w3": "P2", "w4": "P2", "w6": "P1"}
    p, _ = _build((records, identifiers, everything, imap))
    # P1: e1 and e2 (test above) + w1, w2, w6; P2: w3, w4
    assert (p["P1"]["orders_count"], p["P1"]["orders_revenue"]) == (5, Decimal("189.50"))
    assert (p["P2"]["orders_count"], p["P2"]["orders_revenue"]) == (2, Decimal("27.00"))
    # only the persons it builds, with the events of their records in reach: the same numbers
    only_p2 = build_profiles(records, identifiers, everything, imap, GoldenConfig(), "run-1", RUN_AT, RUN_DATE,
                             persons=imap.where("person_id = 'P2'").select("person_id"))
    (row,) = only_p2.collect()
    assert (row.person_id, row.orders_count, row.orders_revenue) == ("P2", 2, Decimal("27.00"))


def test_rfm_thresholds_follow_config(inputs):
    cfg = GoldenConfig(rfm={"recency_days": [5, 10, 20, 30], "frequency_orders": [1, 2, 3, 4],
                            "monetary_eur": [10, 20, 100, 150]})
    p, _ = _build(inputs, cfg)
    assert p["P1"]["rfm_cell"] == "3-3-5"  # 12 days, 2 purchases, 150.50
    assert p["P2"]["rfm_cell"] == "1-2-3"  # 61 days, 1 purchase, 30.00


def test_changed_and_removed_profiles(inputs, spark):
    _, df = _build(inputs)
    old = df.where("person_id = 'P1'").unionByName(df.where("person_id = 'P2'").withColumn("orders_count", df.orders_count + 1))
    old = old.unionByName(df.where("person_id = 'P1'").withColumn("person_id", old.person_id.substr(1, 1)))  # 'P'
    restamped = df.withColumn("run_id", df.run_id.substr(1, 3))
    assert sorted(r.person_id for r in changed_profiles(restamped, old).collect()) == ["P2"]
    assert [r.person_id for r in removed_profiles(df, old).collect()] == ["P"]
