"""The standardize job on generated data, and the source settings it applies.

The end-to-end tests assert on the session ``pipeline`` fixture's lake (generate -> ingest ->
standardize -> match -> golden, once for the suite, standardize in full) and, for a second
delivery standardised incrementally, on a copy of it. Expectations are computed from the bronze
tables, the landing files and the source config, not from what the job computes.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.keys import record_key
from jobs.ingest.config import SourceConfig
from jobs.ingest.generate import PLACEHOLDER_EMAILS as _EMAILS
from jobs.ingest.generate import PLACEHOLDER_PHONES as _PHONES
from jobs.ingest.job import bronze_column
from jobs.standardize.job import identifier_types_by_source

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from conftest import pipeline_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PERSON_SOURCES = ("crm", "webshop_customers", "pos_members", "email_subscribers")
PLACEHOLDER_EMAILS, PLACEHOLDER_PHONES = set(_EMAILS), set(_PHONES)
# What the generator writes as placeholders (jobs/ingest/generate.py), per canonical column.
GENERATED_PLACEHOLDERS = {
    "email": PLACEHOLDER_EMAILS,
    "phone": PLACEHOLDER_PHONES,
    "family_name": {"onbekend"},
    "street": {"onbekend"},
    "city": {"onbekend"},
    "birth_date": {"01-01-1900", "1900-01-01"},
}


def _src(**kw: object) -> SourceConfig:
    base = {"name": "s", "format": "csv", "location": "x", "primary_key": ["id"]}
    return SourceConfig.model_validate({**base, **kw})


def test_identifier_types_by_source_follow_the_source_config() -> None:
    sources = [
        _src(name="crm", identifiers=["email", "customer_number"]),
        _src(name="shop"),  # left out: all six
        _src(name="web_events", kind="events", records_from="cookie_id", records_source="web", identifiers=["cookie_id"]),
        _src(name="app_events", kind="events", records_from="device_id", records_source="web", identifiers=["device_id"]),
        _src(name="orders", kind="events", identifiers=["email"]),  # derives no records: nothing to apply it to
    ]
    assert identifier_types_by_source(sources) == {
        "crm": ("email", "customer_number"),
        "shop": ("email", "phone", "customer_number", "loyalty_card", "cookie_id", "device_id"),
        "web": ("cookie_id", "device_id"),
    }


# --- the pipeline's lake ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake(pipeline):  # noqa: ANN001, ANN201
    """The pipeline's tables, collected once (small: 250 generated persons)."""
    ctx = pipeline.ctx
    read = lambda address: ctx.lake.read(address).collect()  # noqa: E731
    return {
        "ctx": ctx,
        "records": read(S.SILVER_RECORDS.address),
        "identifiers": read(S.SILVER_IDENTIFIERS.address),
        "events": read(S.SILVER_EVENTS.address),
        "dq": read(S.SILVER_DQ_METRICS.address),
        "bronze": {s.name: read(f"bronze.{s.name}") for s in ctx.cfg.sources},
        "profiles": read(S.GOLDEN_PROFILES.address),
        "identity": {r.record_key: r.person_id for r in read(S.GOLDEN_IDENTITY_MAP.address)},
    }


def test_every_person_source_and_every_web_cookie_becomes_records(lake) -> None:  # noqa: ANN001
    by_source = defaultdict(set)
    for r in lake["records"]:
        by_source[r.source].add(r.record_key)
    assert set(by_source) == {*PERSON_SOURCES, "web"}
    for name in PERSON_SOURCES:  # one record per record key bronze holds
        assert by_source[name] == {r[S.RECORD_KEY] for r in lake["bronze"][name]}, name
    cookies = {r.cookie_id for r in lake["bronze"]["web_events"] if r.cookie_id}
    assert len(cookies) > 100
    assert by_source["web"] == {record_key("web", c) for c in cookies}
    web = {r.record_key: r for r in lake["records"] if r.source == "web"}
    assert all(web[record_key("web", c)].cookie_id == c for c in cookies)


def test_all_six_identifier_types_from_the_sources_that_carry_them(lake) -> None:  # noqa: ANN001
    types = defaultdict(set)
    for r in lake["identifiers"]:
        types[r.id_type].add(r.source)
    assert set(types) == set(S.IDENTIFIER_TYPES)
    assert types["loyalty_card"] == {"pos_members"}
    assert types["cookie_id"] == {"web"} and types["device_id"] == {"web"}
    assert types["customer_number"] == {"crm", "webshop_customers"}
    assert set(PERSON_SOURCES) <= types["email"] and {"crm", "webshop_customers"} <= types["phone"]


def test_every_event_type_appears_and_is_tied(lake) -> None:  # noqa: ANN001
    events = lake["events"]
    by_type = Counter(e.event_type for e in events)
    assert set(by_type) == {"order", "receipt", "email_open", "email_click", "page_view", "login"}
    assert all(n > 0 for n in by_type.values())
    assert len(events) == sum(len(lake["bronze"][s]) for s in ("webshop_orders", "pos_receipts", "email_events", "web_events"))
    # Every event is tied: to an identifier, or (orders, e-mail events) to the record that owns it.
    untied = [e.event_key for e in events if e.id_value is None and e.owner_record_key is None]
    assert untied == []
    # Owner keys: the bronze key of the account or subscriber the event names, and that record exists.
    records = {r.record_key: r for r in lake["records"]}
    for source, owner, field in (("webshop_orders", "webshop_customers", "customer_id"), ("email_events", "email_subscribers", "subscriber_id")):
        bronze = {r[S.RECORD_KEY]: r[bronze_column(field)] for r in lake["bronze"][source]}
        mine = [e for e in events if e.source == source]
        assert mine and all(e.owner_record_key == record_key(owner, bronze[e.event_key]) for e in mine), source
        assert all(records[e.owner_record_key].source == owner for e in mine), source
    assert {e.source for e in events if e.owner_record_key} == {"webshop_orders", "email_events"}


def test_golden_counts_each_order_once_for_its_accounts_person(lake) -> None:  # noqa: ANN001
    """Orders reach the person of the account that placed them (the owner is tried first)."""
    identity, profiles = lake["identity"], {p.person_id: p for p in lake["profiles"]}
    orders = Counter(identity[e.owner_record_key] for e in lake["events"] if e.event_type == "order")
    assert sum(orders.values()) == sum(1 for e in lake["events"] if e.event_type == "order")
    assert {p: profiles[p].orders_count for p in orders} == dict(orders)


def test_dq_metrics_measure_every_delivered_row_with_the_generators_placeholders(lake) -> None:  # noqa: ANN001
    cfg = lake["ctx"].cfg
    dq = defaultdict(lambda: Counter())
    batches = defaultdict(set)
    for m in lake["dq"]:
        dq[(m.source, m.column)].update({"rows": m.rows, "placeholders": m.placeholders})
        batches[m.source].add(m.batch_id)
    assert set(batches) == set(PERSON_SOURCES)  # derived web records are no delivery
    for name in PERSON_SOURCES:
        bronze = lake["bronze"][name]
        assert batches[name] == {r[S.BATCH_ID] for r in bronze}, name
        mapping = cfg.source(name).mapping
        for column, values in GENERATED_PLACEHOLDERS.items():
            if column not in mapping:
                continue
            assert dq[(name, column)]["rows"] == len(bronze), (name, column)
            sent = sum(1 for r in bronze if r[bronze_column(mapping[column])] in values)
            assert dq[(name, column)]["placeholders"] == sent, (name, column)
    rates = {(m.source, m.column) for m in lake["dq"] if m.placeholder_rate and m.placeholder_rate > 0}
    # where this generated data (seed-fixed) holds placeholders: above 0 there, and only there
    assert rates == {("crm", "birth_date"), ("crm", "family_name"), ("email_subscribers", "email"), ("webshop_customers", "email")}


def test_extensions_carry_pet_and_company_from_the_source_config_to_golden_profiles(lake) -> None:  # noqa: ANN001
    cfg = lake["ctx"].cfg
    records = {r.record_key: r for r in lake["records"]}
    seen = Counter()
    for name in ("crm", "webshop_customers"):
        extensions = cfg.source(name).extensions
        for row in lake["bronze"][name]:
            expected = {k: row[bronze_column(f)] for k, f in extensions.items() if row[bronze_column(f)] is not None}
            assert (records[row[S.RECORD_KEY]].extensions or {}) == expected, row[S.RECORD_KEY]
            seen.update(expected.keys())
    assert {"pet_name", "pet_species", "company", "job_title"} <= set(seen)
    # golden: every key a person's records carry, with one of their values
    values = defaultdict(lambda: defaultdict(set))
    for key, pid in lake["identity"].items():
        for k, v in (records[key].extensions or {}).items():
            values[pid][k].add(v)
    profiles = {p.person_id: p.extensions for p in lake["profiles"]}
    assert values
    for pid, wanted in values.items():
        assert set(profiles[pid]) == set(wanted), pid
        assert all(profiles[pid][k] in wanted[k] for k in wanted), pid
    assert sum(1 for e in profiles.values() if "pet_name" in e) >= 10
    assert sum(1 for e in profiles.values() if "company" in e) >= 3


# --- a second delivery, incrementally, then the same lake in full ----------------------------------


def _crm_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8")), delimiter=";"))
    return rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]


def _dq_snapshot(ctx) -> dict[tuple[str, str, str], tuple]:  # noqa: ANN001
    return {
        (m.source, m.batch_id, m.column): (m.rows, m.filled, m.valid, m.placeholders, m.completeness, m.validity, m.placeholder_rate)
        for m in ctx.lake.read(S.SILVER_DQ_METRICS.address).collect()
    }


@pytest.fixture(scope="module")
def second_delivery(pipeline, tmp_path_factory, spark):  # noqa: ANN001, ANN201
    """A copy of the pipeline's lake, a second CRM file, ingest and an incremental standardize.

    The file re-sends one CRM row unchanged and one with a new e-mail address, and adds a new
    customer with a placeholder e-mail. This run's config gives CRM no phone identifiers.
    """
    import shutil

    from jobs.common.context import build_context
    from jobs.ingest import job as ingest
    from jobs.standardize import job as standardize

    base = tmp_path_factory.mktemp("second_delivery")
    shutil.copytree(pipeline.data, base / "data")
    shutil.copytree(pipeline.lake, base / "lake")
    ctx = build_context(
        pipeline_config(base / "data", base / "lake", ["sources.crm.identifiers=[email,customer_number,loyalty_card]"]),
        spark=spark,
    )
    header, rows = _crm_rows(base / "data" / "crm" / "crm_export_utf8.csv")
    col = {c: i for i, c in enumerate(header)}
    phoned = [  # a phone, an e-mail address and a family name that are no placeholders
        r for r in rows
        if r[col["telefoon"]] and r[col["telefoon"]] not in PLACEHOLDER_PHONES
        and "@" in r[col["email"]] and r[col["email"]].lower() not in PLACEHOLDER_EMAILS
        and r[col["achternaam"]] not in ("", "onbekend")
    ]
    unchanged, changed = phoned[0], list(phoned[1])
    changed[col["email"]] = "nieuw.adres@ziggo.nl"
    new = [""] * len(header)
    new[col["klantnummer"]], new[col["voornaam"]], new[col["achternaam"]] = "9900001", "Nieuwe", "Klant"
    new[col["email"]], new[col["telefoon"]] = "test@test.nl", "06-23456789"
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\n").writerows([header, unchanged, changed, new])
    (base / "data" / "crm" / "crm_export_zz_second.csv").write_text(out.getvalue(), encoding="utf-8")

    before = _dq_snapshot(ctx)
    old_records = {r.record_key: r for r in ctx.lake.read(S.SILVER_RECORDS.address).collect()}
    assert ingest.run(ctx, sources=["crm"])["crm"]["landed"] == 3
    summary = standardize.run(ctx, incremental=True)
    after_incremental = {
        "dq": _dq_snapshot(ctx),
        "records": {r.record_key: r for r in ctx.lake.read(S.SILVER_RECORDS.address).collect()},
        "identifiers": ctx.lake.read(S.SILVER_IDENTIFIERS.address).collect(),
        "changed_keys": {r.record_key for r in ctx.state["changed_record_keys"].collect()},
        "batch": ctx.lake.read(S.OPS_BATCHES.address).where(F.col("path").endswith("crm_export_zz_second.csv")).collect()[0].batch_id,
    }
    full = standardize.run(ctx)
    return {
        "full_records": {r.record_key: r for r in ctx.lake.read(S.SILVER_RECORDS.address).collect()},
        "ctx": ctx, "before": before, "old_records": old_records, "summary": summary, "inc": after_incremental,
        "full_summary": full, "full_dq": _dq_snapshot(ctx), "full_identifiers": ctx.lake.read(S.SILVER_IDENTIFIERS.address).collect(),
        "keys": {name: record_key("crm", r[col["klantnummer"]]) for name, r in (("unchanged", unchanged), ("changed", changed), ("new", new))},
    }


def test_incremental_standardize_processes_exactly_the_new_and_changed_rows(second_delivery) -> None:  # noqa: ANN001
    d = second_delivery
    keys, inc, old = d["keys"], d["inc"], d["old_records"]
    assert (d["summary"]["records"], d["summary"]["dq_rows"], d["summary"].get("events", 0)) == (2, 3, 0)
    assert inc["changed_keys"] == {keys["changed"], keys["new"]}
    records = inc["records"]
    assert set(records) == set(old) | {keys["new"]}
    assert records[keys["changed"]].email == "nieuw.adres@ziggo.nl" and records[keys["changed"]].batch_id == inc["batch"]
    assert old[keys["changed"]].email != "nieuw.adres@ziggo.nl"
    assert records[keys["new"]].email is None and "placeholder:email" in records[keys["new"]].dq_flags
    assert records[keys["unchanged"]] == old[keys["unchanged"]]  # not processed: same row, same batch
    changed = {k for k in old if records[k] != old[k]}
    assert changed == {keys["changed"]}


def test_full_and_incremental_runs_give_the_same_records_lineage_included(second_delivery) -> None:  # noqa: ANN001
    """A re-sent unchanged row adds nothing: both runs take a version from the delivery that
    brought it (the full run too, though the later delivery holds the same row)."""
    d = second_delivery
    full, inc, keys = d["full_records"], d["inc"]["records"], d["keys"]
    assert full[keys["unchanged"]].batch_id == d["old_records"][keys["unchanged"]].batch_id != d["inc"]["batch"]
    assert full[keys["changed"]].batch_id == d["inc"]["batch"]
    assert full == inc


def test_a_batch_is_measured_by_the_rows_it_delivered(second_delivery) -> None:  # noqa: ANN001
    d = second_delivery
    dq, before, batch = d["inc"]["dq"], d["before"], d["inc"]["batch"]
    assert {k: v for k, v in dq.items() if k[1] != batch} == before  # earlier batches as they were
    mine = {k[2]: v for k, v in dq.items() if k[1] == batch}
    assert set(mine) and all(k[0] == "crm" for k in dq if k[1] == batch)
    rows, filled, valid, placeholders = mine["email"][:4]
    assert (rows, filled, valid, placeholders) == (3, 2, 2, 1)  # the unchanged re-sent row counts too
    assert mine["family_name"][:2] == (3, 3)


def test_full_and_incremental_runs_give_the_same_dq_metrics(second_delivery) -> None:  # noqa: ANN001
    d = second_delivery
    assert d["full_dq"] == d["inc"]["dq"]
    assert d["full_summary"]["dq_rows"] == sum(v[0] for k, v in d["full_dq"].items() if k[2] == "email")


def test_a_sources_identifier_list_is_applied(second_delivery) -> None:  # noqa: ANN001
    """This run's config gives CRM no phone identifiers: records standardised under it add none."""
    d = second_delivery
    records, keys = d["inc"]["records"], d["keys"]
    assert records[keys["changed"]].phone_valid  # a phone it has ...
    inc = {(r.record_key, r.id_type) for r in d["inc"]["identifiers"]}
    assert (keys["changed"], "phone") not in inc and (keys["changed"], "email") in inc  # ... but contributes not
    assert (keys["unchanged"], "phone") in inc  # not re-standardised by the incremental run
    full = Counter((r.source, r.id_type) for r in d["full_identifiers"])
    assert full[("crm", "phone")] == 0 and full[("crm", "email")] > 0
    assert full[("webshop_customers", "phone")] > 0  # other sources keep all six


def test_a_records_current_version_comes_from_the_delivery_that_brought_it(spark) -> None:  # noqa: ANN001
    """Landing order: ingest time, then batch and line. A, A -> the first A; A, B, A -> the last A."""
    from datetime import datetime

    from jobs.standardize.job import latest_rows

    t = [datetime(2026, 1, d) for d in range(1, 6)]
    rows = [  # key, hash, batch, line, ingested
        ("k1", "A", "b1", 1, t[0]), ("k1", "A", "b2", 7, t[1]), ("k1", "A", "b3", 2, t[2]),
        ("k2", "A", "b1", 2, t[0]), ("k2", "B", "b2", 1, t[1]), ("k2", "A", "b3", 1, t[2]), ("k2", "A", "b4", 1, t[3]),
        ("k3", "A", "b1", 3, t[0]), ("k3", "B", "b1", 4, t[0]),  # one batch: the later line wins
        ("k4", "A", "b9", 1, t[1]), ("k4", "A", "b1", 1, t[1]),  # same ingest time: batch order decides
    ]
    df = spark.createDataFrame(rows, f"{S.RECORD_KEY} string, {S.ROW_HASH} string, {S.BATCH_ID} string, {S.LINE} int, {S.INGESTED_AT} timestamp")
    got = {r[S.RECORD_KEY]: (r[S.ROW_HASH], r[S.BATCH_ID]) for r in latest_rows(df).collect()}
    assert got == {"k1": ("A", "b1"), "k2": ("A", "b3"), "k3": ("B", "b1"), "k4": ("A", "b1")}


def test_a_cookie_record_changes_with_every_value_it_carries_and_keeps_its_latest_events_lineage(spark) -> None:  # noqa: ANN001
    """A late event (older time: created_at moves) and a new device change the derived record's
    row hash, so an incremental run derives it again; lineage is the latest event's by event time;
    an event delivered twice counts once, from the delivery that brought it."""
    from datetime import datetime

    import yaml

    from jobs.standardize.job import derived_person_rows

    src = SourceConfig.model_validate(yaml.safe_load((ROOT / "conf" / "sources" / "web.yaml").read_text(encoding="utf-8")))
    cols = {f: bronze_column(src.mapping[f]) for f in ("cookie_id", "device_id", "event_at")}
    schema = (
        f"{cols['cookie_id']} string, {cols['device_id']} string, {cols['event_at']} string, {S.RECORD_KEY} string, "
        f"{S.ROW_HASH} string, {S.BATCH_ID} string, {S.LINE} int, {S.INGESTED_AT} timestamp"
    )

    def derive(rows: list[tuple]) -> dict:
        df = spark.createDataFrame([(c, d, at, key, f"h-{key}-{d}-{at}", b, 1, t) for c, d, at, key, b, t in rows], schema)
        return {r.cookie_id: r.asDict() for r in derived_person_rows(df, src).collect()}

    t1, t2, t3 = datetime(2026, 1, 1), datetime(2026, 1, 2), datetime(2026, 1, 3)
    base = [("c1", "d1", "2026-01-05T10:00:00", "e1", "b1", t1), ("c1", "d1", "2026-01-06T10:00:00", "e2", "b2", t2)]
    first = derive(base)["c1"]
    assert (first["created_at"], first["updated_at"], first["device_id"], first[S.BATCH_ID]) == (
        "2026-01-05T10:00:00", "2026-01-06T10:00:00", "d1", "b2")
    late = derive([*base, ("c1", "d1", "2026-01-04T09:00:00", "e3", "b3", t3)])["c1"]  # delivered last, happened first
    assert late["created_at"] == "2026-01-04T09:00:00" and late[S.ROW_HASH] != first[S.ROW_HASH]
    assert (late[S.BATCH_ID], late[S.INGESTED_AT]) == ("b2", t2)  # still the latest event's
    same_time_new_device = derive([*base, ("c1", "d9", "2026-01-06T10:00:00", "e9", "b3", t3)])["c1"]
    assert same_time_new_device["device_id"] == "d9" and same_time_new_device[S.ROW_HASH] != first[S.ROW_HASH]
    assert derive(list(reversed(base)))["c1"] == first  # the order rows come in changes nothing
    # the same event delivered again (an overlapping export): nothing changes, lineage included
    assert derive([*base, ("c1", "d1", "2026-01-06T10:00:00", "e2", "b3", t3)])["c1"] == first
