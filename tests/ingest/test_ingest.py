"""Ingest: every format, idempotency, quarantine, reconciliation, crash recovery, suppression, JDBC."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.common import schemas as S
from jobs.common.errors import DataError
from jobs.common.keys import record_key, salted_hash
from jobs.ingest import job as ingest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from pg import pg_bin, postgres_server  # noqa: E402

CRM = {
    "name": "crm",
    "format": "csv",
    "location": "crm",
    "pattern": "*.csv",
    "encoding": "auto",
    "delimiter": ";",
    "primary_key": ["klantnummer"],
    "required": ["achternaam"],
    "mapping": {"given_name": "voornaam", "family_name": "achternaam", "email": "email", "phone": "telefoon"},
}
SHOP = {
    "name": "shop",
    "format": "ndjson",
    "location": "shop",
    "primary_key": ["customer_id"],
    "mapping": {"full_name": "name", "email": "email"},
    "extensions": {"pet_name": "pet"},
}
POS = {
    "name": "pos",
    "format": "parquet",
    "location": "pos",
    "primary_key": ["card"],
    "mapping": {"loyalty_card": "card", "family_name": "last"},
}

CRM_UTF8 = (
    "klantnummer;voornaam;achternaam;email;telefoon;extra_veld\n"
    "K1;José;van der Berg;jose@voorbeeld.nl;0623456789;x\n"
    "K2;Anna;de Vries;;;\n"
    "K3;te veel;kolommen;a;b;c;d\n"  # wrong column count
    'K4;"broken;quote;a;b;c\n'  # broken quoting
)
CRM_BAD_BYTES = b"K5;Piet;Jansen\xff\xfe;piet@example.nl;;\n"


def write_sources(root: Path) -> None:
    (root / "crm").mkdir(parents=True)
    (root / "crm" / "a_utf8.csv").write_bytes(CRM_UTF8.encode("utf-8") + CRM_BAD_BYTES)
    latin = "klantnummer;voornaam;achternaam;email;telefoon;extra_veld\nK6;Renée;Müller;r@example.be;;\nK7;Chloë;Dubois;;;\nK8;Zoë;Smit;;;\n"
    (root / "crm" / "b_latin1.csv").write_bytes(latin.encode("latin-1"))
    (root / "shop").mkdir()
    lines = [
        json.dumps({"customer_id": "W1", "name": "Jan van der Berg", "email": "jan@example.nl", "pet": "Bello", "utm": "x"}),
        "{not json",
        json.dumps({"customer_id": "W2", "name": {"nested": True}}),
        json.dumps(["a list"]),
        json.dumps({"customer_id": "W3", "name": "Berg, Jan van der", "email": None, "age": 42}),
        json.dumps({"name": "no key"}),
    ]
    (root / "shop" / "customers.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "pos").mkdir()
    pq.write_table(pa.table({"card": ["1", "2"], "last": ["Smit", None], "points": [10, 20]}), root / "pos" / "m.parquet")


@pytest.fixture()
def ctx(make_ctx, tmp_path: Path):  # noqa: ANN001, ANN201
    write_sources(tmp_path / "data")
    return make_ctx(sources=[CRM, SHOP, POS])


def bronze(ctx, name):  # noqa: ANN001, ANN201
    return {r[S.RECORD_KEY]: r.asDict() for r in ctx.lake.read(f"bronze.{name}").collect()}


def test_each_format_lands_with_lineage_and_extra(ctx) -> None:  # noqa: ANN001
    summary = ingest.run(ctx)
    assert summary["crm"] == {"read": 8, "landed": 5, "quarantined": 3, "batches": 2}
    assert summary["shop"] == {"read": 6, "landed": 2, "quarantined": 4, "batches": 1}
    assert summary["pos"] == {"read": 2, "landed": 2, "quarantined": 0, "batches": 1}

    crm = bronze(ctx, "crm")
    k1 = crm[record_key("crm", "K1")]
    assert (k1["voornaam"], k1["achternaam"], k1["email"]) == ("José", "van der Berg", "jose@voorbeeld.nl")
    assert k1[S.EXTRA] == {"extra_veld": "x"}
    assert k1[S.LINE] == 2 and k1[S.SOURCE] == "crm" and k1[S.FILE].endswith("a_utf8.csv")
    assert crm[record_key("crm", "K2")]["email"] is None  # empty CSV field -> null
    latin = crm[record_key("crm", "K6")]
    assert (latin["voornaam"], latin["achternaam"]) == ("Renée", "Müller")  # decoded as latin-1
    assert crm[record_key("crm", "K7")]["voornaam"] == "Chloë"

    shop = bronze(ctx, "shop")
    w1 = shop[record_key("shop", "W1")]
    assert w1["name"] == "Jan van der Berg" and w1["pet"] == "Bello" and w1[S.EXTRA] == {"utm": "x"}
    w3 = shop[record_key("shop", "W3")]
    assert w3["email"] is None and w3[S.EXTRA] == {"age": "42"}

    pos = bronze(ctx, "pos")
    assert pos[record_key("pos", "2")]["last"] is None
    assert pos[record_key("pos", "1")][S.EXTRA] == {"points": "10"}


def test_quarantine_reasons_lines_and_raw_text(ctx) -> None:  # noqa: ANN001
    ingest.run(ctx)
    rows = sorted(
        (r[S.SOURCE], r[S.LINE], r.reason.split(":")[0], r.raw)
        for r in ctx.lake.read(S.BRONZE_QUARANTINE.address).collect()
    )
    assert rows == [
        ("crm", 4, "wrong column count", "K3;te veel;kolommen;a;b;c;d"),
        ("crm", 5, "broken quoting", 'K4;"broken;quote;a;b;c'),
        ("crm", 6, "invalid encoding", "K5;Piet;Jansen\\xff\\xfe;piet@example.nl;;"),
        ("shop", 2, "malformed JSON", "{not json"),
        ("shop", 3, "wrong type", json.dumps({"customer_id": "W2", "name": {"nested": True}})),
        ("shop", 4, "JSON line is not an object", json.dumps(["a list"])),
        ("shop", 6, "missing primary key", json.dumps({"name": "no key"})),
    ]


def test_reconciliation_recorded_in_ops(ctx) -> None:  # noqa: ANN001
    ingest.run(ctx)
    runs = ctx.lake.read(S.OPS_RUNS.address).collect()
    assert len(runs) == 1
    run = runs[0]
    assert (run.job, run.status, run.rows_in, run.rows_out, run.rows_quarantined) == ("ingest", "succeeded", 16, 9, 7)
    batches = ctx.lake.read(S.OPS_BATCHES.address).collect()
    assert len(batches) == 4
    for b in batches:
        assert b.status == "landed"
        assert b.rows_read == b.rows_landed + b.rows_quarantined
    # Per source in the run's metrics: read = landed + quarantined, and the batches' sums.
    per_source = {
        name: tuple(int(run.metrics[f"{name}.rows_{k}"]) for k in ("read", "landed", "quarantined"))
        for name in ("crm", "shop", "pos")
    }
    assert per_source == {"crm": (8, 5, 3), "shop": (6, 2, 4), "pos": (2, 2, 0)}
    for name, (read, landed, quarantined) in per_source.items():
        assert read == landed + quarantined
        mine = [b for b in batches if b.source == name]
        assert (read, landed, quarantined) == (
            sum(b.rows_read for b in mine), sum(b.rows_landed for b in mine), sum(b.rows_quarantined for b in mine))
    assert tuple(map(sum, zip(*per_source.values()))) == (run.rows_in, run.rows_out, run.rows_quarantined)
    # A rerun lands nothing and says so per source.
    ingest.run(ctx)
    again = max(ctx.lake.read(S.OPS_RUNS.address).collect(), key=lambda r: r.started_at)
    assert [again.metrics[f"crm.rows_{k}"] for k in ("read", "landed", "quarantined")] == ["0", "0", "0"]


def test_a_field_mapped_later_gets_a_bronze_column_and_older_rows_keep_it_in_extra(make_ctx, tmp_path: Path) -> None:  # noqa: ANN001
    from jobs.ingest.config import SourceConfig
    from jobs.standardize.job import canonical_person_rows

    write_sources(tmp_path / "data")
    ingest.run(make_ctx(sources=[SHOP]))
    shop = {**SHOP, "extensions": {**SHOP["extensions"], "utm_source": "utm"}}  # 'utm' was unmapped
    ctx = make_ctx(sources=[shop])
    (tmp_path / "data" / "shop" / "more.ndjson").write_text(json.dumps({"customer_id": "W7", "name": "Els", "utm": "y"}) + "\n", encoding="utf-8")
    assert ingest.run(ctx)["shop"]["landed"] == 1
    rows = bronze(ctx, "shop")
    w1, w7 = rows[record_key("shop", "W1")], rows[record_key("shop", "W7")]
    assert (w7["utm"], w7[S.EXTRA]) == ("y", {})  # a column of its own now, not dropped
    assert (w1["utm"], w1[S.EXTRA]) == (None, {"utm": "x"})  # landed before: kept where it was
    # standardize reads the field from either place
    canonical = canonical_person_rows(ctx.lake.read("bronze.shop"), SourceConfig.model_validate(shop))
    got = {r[S.RECORD_KEY]: r.extensions for r in canonical.collect()}
    assert got[record_key("shop", "W1")] == {"pet_name": "Bello", "utm_source": "x"}
    assert got[record_key("shop", "W7")] == {"utm_source": "y"}


def test_idempotent_and_changed_file_is_a_new_batch(ctx, tmp_path: Path) -> None:  # noqa: ANN001
    ingest.run(ctx)
    version = ctx.lake.version("bronze.crm")
    again = ingest.run(ctx)
    assert again["crm"] == {"read": 0, "landed": 0, "quarantined": 0, "batches": 2}
    assert ctx.lake.version("bronze.crm") == version
    assert ctx.lake.read("bronze.crm").count() == 5
    path = tmp_path / "data" / "crm" / "b_latin1.csv"
    path.write_bytes(path.read_bytes() + "K9;Nieuw;Klant;;;\n".encode("latin-1"))
    third = ingest.run(ctx)
    assert third["crm"]["landed"] == 4  # the changed file is landed again as a new batch
    assert ctx.lake.read(S.OPS_BATCHES.address).count() == 5


def test_missing_required_column_fails_the_batch_and_changes_nothing(ctx, tmp_path: Path) -> None:  # noqa: ANN001
    ingest.run(ctx, sources=["pos"])
    (tmp_path / "data" / "crm" / "c_bad.csv").write_text("klantnummer;voornaam\nK9;Piet\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        ingest.run(ctx, sources=["crm"])
    assert "c_bad.csv: missing required column(s) achternaam; available: klantnummer, voornaam" in str(info.value)
    # The two good files landed; the bad one left nothing behind.
    assert ctx.lake.read("bronze.crm").where(f"{S.FILE} like '%c_bad.csv'").count() == 0
    assert ctx.lake.read(S.OPS_BATCHES.address).where("path like '%c_bad.csv'").count() == 0
    failed = [r for r in ctx.lake.read(S.OPS_RUNS.address).collect() if r.status == "failed"]
    assert len(failed) == 1 and "missing required column(s) achternaam" in failed[0].error


def test_crash_between_writes_is_completed_without_duplicates(ctx) -> None:  # noqa: ANN001
    def fault(point: str) -> None:
        if point == "after_bronze":
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        ingest.run(ctx, sources=["crm"], fault=fault)
    assert ctx.lake.read("bronze.crm").count() == 2  # first file (2 good rows) landed in bronze, not recorded as landed
    states = {r.status for r in ctx.lake.read(S.OPS_BATCHES.address).collect()}
    assert states == {"started"}
    summary = ingest.run(ctx, sources=["crm"])
    assert summary["crm"]["landed"] == 5
    assert ctx.lake.read("bronze.crm").count() == 5
    assert ctx.lake.read("bronze.crm").select(S.RECORD_KEY).distinct().count() == 5
    assert ctx.lake.read(S.BRONZE_QUARANTINE.address).count() == 3


def test_suppressed_rows_are_quarantined_without_raw_text(ctx) -> None:  # noqa: ANN001
    salt = ctx.cfg.privacy.salt
    ctx.lake.append_rows(
        S.PRIVACY_SUPPRESSION.address,
        [
            {"id_type": "email", "id_hash": salted_hash(salt, "email", "jose@voorbeeld.nl"), "request_id": "r1"},
            {"id_type": "phone", "id_hash": salted_hash(salt, "phone", "+31623456789"), "request_id": "r1"},
            {"id_type": "record_key", "id_hash": salted_hash(salt, "record_key", record_key("pos", "2")), "request_id": "r2"},
        ],
        S.PRIVACY_SUPPRESSION.schema,
    )
    ingest.run(ctx)
    assert record_key("crm", "K1") not in bronze(ctx, "crm")
    assert record_key("pos", "2") not in bronze(ctx, "pos")
    suppressed = [r for r in ctx.lake.read(S.BRONZE_QUARANTINE.address).collect() if r.reason == "suppressed"]
    assert sorted(r[S.RECORD_KEY] for r in suppressed) == sorted([record_key("crm", "K1"), record_key("pos", "2")])
    assert all(r.raw is None for r in suppressed)


def test_a_resent_email_with_a_typo_in_its_domain_is_suppressed(make_ctx, tmp_path: Path) -> None:  # noqa: ANN001
    """Privacy writes the suppression hash of the address silver keeps (domain typos corrected);
    ingest checks a row's address in that same form, through silver's own transform."""
    from jobs.standardize.transforms import silver_identifier_forms

    (tmp_path / "data" / "crm").mkdir(parents=True)
    (tmp_path / "data" / "crm" / "resend.csv").write_text(
        "klantnummer;voornaam;achternaam;email;telefoon\n"
        "K20;Iemand;Anders; Jan.Jansen@GMIAL.con ;\n"  # a new key, the erased address mistyped
        "K21;Piet;Jansen;piet.jansen@gmial.com;\n",
        encoding="utf-8",
    )
    ctx = make_ctx(sources=[CRM])
    sent = [("email", " Jan.Jansen@GMIAL.con ", None), ("email", "geen@email.nl", None)]
    assert silver_identifier_forms(ctx.spark, sent, ctx.cfg.standardize) == {
        ("email", " Jan.Jansen@GMIAL.con ", None): "jan.jansen@gmail.com",
        ("email", "geen@email.nl", None): None,  # a placeholder: silver keeps no address
    }
    salt = ctx.cfg.privacy.salt
    ctx.lake.append_rows(
        S.PRIVACY_SUPPRESSION.address,
        [{"id_type": "email", "id_hash": salted_hash(salt, "email", "jan.jansen@gmail.com"), "request_id": "r1"}],
        S.PRIVACY_SUPPRESSION.schema,
    )
    summary = ingest.run(ctx)
    assert summary["crm"] == {"read": 2, "landed": 1, "quarantined": 1, "batches": 1}
    assert list(bronze(ctx, "crm")) == [record_key("crm", "K21")]
    suppressed = ctx.lake.read(S.BRONZE_QUARANTINE.address).collect()
    assert [(r[S.RECORD_KEY], r.reason, r.raw) for r in suppressed] == [(record_key("crm", "K20"), "suppressed", None)]


def test_a_resent_phone_is_suppressed_in_the_region_silver_reads_it_in(make_ctx, tmp_path: Path) -> None:  # noqa: ANN001
    """A Belgian national number on a row whose country is written out ('België') is +32... in
    silver; ingest must read it so too (before: only a two-letter country counted, so the
    source's NL default made it an invalid Dutch number and the suppressed subject came back)."""
    (tmp_path / "data" / "crm").mkdir(parents=True)
    (tmp_path / "data" / "crm" / "resend.csv").write_text(
        "klantnummer;voornaam;achternaam;telefoon;land\n"
        "K30;Iemand;Anders;0470 12 34 56;België\n"  # a new key, the erased Belgian mobile
        "K31;Piet;Jansen;0470 12 34 56;\n"  # the same digits in the source's country (NL): another number
        "K32;Els;Bakker;+31 (0)6 23456789;Nederland\n",  # the erased Dutch mobile, as people write it
        encoding="utf-8",
    )
    crm = {**CRM, "mapping": {**CRM["mapping"], "country": "land"}}
    ctx = make_ctx(sources=[crm])
    salt = ctx.cfg.privacy.salt
    ctx.lake.append_rows(
        S.PRIVACY_SUPPRESSION.address,
        [{"id_type": "phone", "id_hash": salted_hash(salt, "phone", p), "request_id": "r1"} for p in ("+32470123456", "+31623456789")],
        S.PRIVACY_SUPPRESSION.schema,
    )
    summary = ingest.run(ctx)
    assert summary["crm"] == {"read": 3, "landed": 1, "quarantined": 2, "batches": 1}
    assert list(bronze(ctx, "crm")) == [record_key("crm", "K31")]
    suppressed = sorted((r[S.RECORD_KEY], r.reason) for r in ctx.lake.read(S.BRONZE_QUARANTINE.address).collect())
    assert suppressed == sorted([(record_key("crm", "K30"), "suppressed"), (record_key("crm", "K32"), "suppressed")])


def test_a_resent_customer_number_or_card_is_suppressed_in_silvers_form(make_ctx, tmp_path: Path) -> None:  # noqa: ANN001
    """Privacy suppresses the customer number and loyalty card as silver.identifiers holds them
    (K40, 20001234); a resend written otherwise ('k 40', '2000-1234') is caught in that form.
    A value silver keeps for no one (a placeholder) is never a suppression hit."""
    (tmp_path / "data" / "crm").mkdir(parents=True)
    (tmp_path / "data" / "crm" / "resend.csv").write_text(
        "klantnummer;achternaam;klantnr;kaart\n"
        "A1;Anders;k 40;\n"  # a new record key, the erased customer number
        "A2;Jansen;k 41;2000-1234\n"  # another customer number, the erased card
        "A3;Bakker;onbekend;\n",  # a placeholder customer number: silver holds none
        encoding="utf-8",
    )
    crm = {**CRM, "mapping": {"family_name": "achternaam", "customer_number": "klantnr", "loyalty_card": "kaart"}}
    ctx = make_ctx(sources=[crm])
    salt = ctx.cfg.privacy.salt
    ctx.lake.append_rows(
        S.PRIVACY_SUPPRESSION.address,
        [
            {"id_type": "customer_number", "id_hash": salted_hash(salt, "customer_number", "K40"), "request_id": "r1"},
            {"id_type": "loyalty_card", "id_hash": salted_hash(salt, "loyalty_card", "20001234"), "request_id": "r2"},
            {"id_type": "customer_number", "id_hash": salted_hash(salt, "customer_number", "onbekend"), "request_id": "r3"},
        ],
        S.PRIVACY_SUPPRESSION.schema,
    )
    summary = ingest.run(ctx)
    assert summary["crm"] == {"read": 3, "landed": 1, "quarantined": 2, "batches": 1}
    assert list(bronze(ctx, "crm")) == [record_key("crm", "A3")]


@pytest.mark.postgres
@pytest.mark.skipif(pg_bin() is None or not os.path.exists("/usr/share/java/postgresql.jar"), reason="needs Debian postgresql and libpostgresql-jdbc-java (.ci/install-services.sh)")
def test_jdbc_incremental_by_watermark(make_ctx, tmp_path: Path) -> None:  # noqa: ANN001
    with postgres_server(str(tmp_path / "pg")) as pg:
        pg.execute(
            "CREATE TABLE klanten (id text primary key, naam text, email text, punten int, updated_at timestamp)"
        )
        t0 = dt.datetime(2026, 1, 1, 12, 0, 0)
        for i, (naam, email) in enumerate([("Jan de Vries", "jan@example.nl"), ("Els Bakker", None)]):
            pg.execute("INSERT INTO klanten VALUES (%s, %s, %s, %s, %s)", (f"C{i}", naam, email, i * 10, t0 + dt.timedelta(minutes=i)))
        src = {
            "name": "erp",
            "format": "jdbc",
            "primary_key": ["id"],
            "mapping": {"full_name": "naam", "email": "email", "updated_at": "updated_at"},
            "jdbc": {"url": pg.jdbc_url, "table": "klanten", "user": pg.user},
        }
        ctx = make_ctx(sources=[src])
        first = ingest.run(ctx)
        assert first["erp"] == {"read": 2, "landed": 2, "quarantined": 0, "batches": 1}
        rows = bronze(ctx, "erp")
        assert rows[record_key("erp", "C0")]["naam"] == "Jan de Vries"
        assert rows[record_key("erp", "C0")][S.EXTRA] == {"punten": "0"}
        assert ingest.run(ctx)["erp"]["read"] == 0  # nothing changed since the watermark
        pg.execute("UPDATE klanten SET email = 'els@example.nl', updated_at = %s WHERE id = 'C1'", (t0 + dt.timedelta(hours=1),))
        pg.execute("INSERT INTO klanten VALUES ('C2', 'Piet Smit', NULL, 5, %s)", (t0 + dt.timedelta(hours=2),))
        third = ingest.run(ctx)
        assert third["erp"] == {"read": 2, "landed": 2, "quarantined": 0, "batches": 1}
        history = ctx.lake.read("bronze.erp").where(f"{S.RECORD_KEY} = '{record_key('erp', 'C1')}'").collect()
        assert sorted(r.email or "" for r in history) == ["", "els@example.nl"]
        marks = sorted(r.watermark for r in ctx.lake.read(S.OPS_BATCHES.address).collect())
        assert marks == ["2026-01-01T12:01:00+00:00", "2026-01-01T14:00:00+00:00"]

        # A row committed after that pull but stamped with the watermark's own time is not missed,
        # and C2 (re-read at the watermark) is not landed twice.
        pg.execute("INSERT INTO klanten VALUES ('C3', 'Late Row', 'late@example.nl', 7, %s)", (t0 + dt.timedelta(hours=2),))
        fourth = ingest.run(ctx)
        assert fourth["erp"] == {"read": 1, "landed": 1, "quarantined": 0, "batches": 1}
        counts = {r[S.RECORD_KEY]: r["count"] for r in ctx.lake.read("bronze.erp").groupBy(S.RECORD_KEY).count().collect()}
        assert counts == {record_key("erp", "C0"): 1, record_key("erp", "C1"): 2, record_key("erp", "C2"): 1, record_key("erp", "C3"): 1}
        version = ctx.lake.version("bronze.erp")
        assert ingest.run(ctx)["erp"]["read"] == 0  # C2 and C3 re-read at the watermark, both held already
        assert ctx.lake.version("bronze.erp") == version
        runs = sorted(ctx.lake.read(S.OPS_RUNS.address).collect(), key=lambda r: r.started_at)
        assert runs[-1].metrics["erp.already_landed"] == "2"
        # Same timestamp, other values: a new row hash, so a new version of C3 lands.
        pg.execute("UPDATE klanten SET email = 'late2@example.nl' WHERE id = 'C3'")
        assert ingest.run(ctx)["erp"] == {"read": 1, "landed": 1, "quarantined": 0, "batches": 1}
        c3 = ctx.lake.read("bronze.erp").where(f"{S.RECORD_KEY} = '{record_key('erp', 'C3')}'").collect()
        assert sorted(r.email for r in c3) == ["late2@example.nl", "late@example.nl"]
        batches = ctx.lake.read(S.OPS_BATCHES.address).collect()
        assert len(batches) == 4 and len({b.batch_id for b in batches}) == 4
        assert all(b.status == "landed" and b.rows_read == b.rows_landed + b.rows_quarantined for b in batches)


def test_csv_line_breaks_and_json_numbers_land_as_received(ctx, tmp_path: Path) -> None:  # noqa: ANN001
    data = tmp_path / "data"
    (data / "crm" / "c_multiline.csv").write_bytes(
        b'klantnummer;voornaam;achternaam;email;telefoon;extra_veld\n'
        b'K20;"Anne\nMarie";Jansen;;;"regel 1\r\nregel 2"\n'
        b"K21;Bram;Bos;;;\n"
    )
    (data / "shop" / "more.ndjson").write_text(
        '{"customer_id": 1007, "name": "Els", "pet": 59.90, "total": 12.50, "meta": {"score": 1.0, "tags": ["a", 2]}}\n',
        encoding="utf-8",
    )
    summary = ingest.run(ctx, sources=["crm", "shop"])
    assert summary["crm"] == {"read": 10, "landed": 7, "quarantined": 3, "batches": 3}
    assert summary["shop"] == {"read": 7, "landed": 3, "quarantined": 4, "batches": 2}
    crm = bronze(ctx, "crm")
    k20 = crm[record_key("crm", "K20")]
    assert (k20["voornaam"], k20[S.LINE], k20[S.EXTRA]) == ("Anne\nMarie", 2, {"extra_veld": "regel 1\r\nregel 2"})
    assert crm[record_key("crm", "K21")][S.LINE] == 5  # the line it is on, after a record of three lines
    batch = ctx.lake.read(S.OPS_BATCHES.address).where("path like '%c_multiline.csv'").collect()[0]
    assert (batch.rows_read, batch.rows_landed, batch.rows_quarantined) == (2, 2, 0)
    els = bronze(ctx, "shop")[record_key("shop", "1007")]
    assert (els["customer_id"], els["pet"]) == ("1007", "59.90")
    assert els[S.EXTRA] == {"total": "12.50", "meta": '{"score":1.0,"tags":["a",2]}'}


def _kill_at(point: str):  # noqa: ANN202
    def fault(at: str) -> None:
        if at == point:
            raise RuntimeError(f"killed at {point}")

    return fault


def _orphans(ctx) -> dict[str, int]:  # noqa: ANN001
    """Rows in bronze.crm and quarantine whose batch is not 'landed'."""
    landed = {r.batch_id for r in ctx.lake.read(S.OPS_BATCHES.address).collect() if r.status == "landed"}
    out = {}
    for address in ("bronze.crm", S.BRONZE_QUARANTINE.address):
        rows = ctx.lake.read(address).collect() if ctx.lake.exists(address) else []
        out[address] = sum(1 for r in rows if r[S.BATCH_ID] not in landed)
    return out


@pytest.mark.parametrize("point", ["after_started", "after_bronze", "after_quarantine"])
def test_rows_of_a_killed_batch_are_removed_even_when_the_file_changed(ctx, tmp_path: Path, point: str) -> None:  # noqa: ANN001
    with pytest.raises(RuntimeError, match=f"killed at {point}"):
        ingest.run(ctx, sources=["crm"], fault=_kill_at(point))
    killed = ctx.lake.read(S.OPS_BATCHES.address).collect()
    assert [(r.path, r.status) for r in killed] == [("crm/a_utf8.csv", "started")]
    # The file is re-delivered with one more row before the rerun: a new batch id.
    path = tmp_path / "data" / "crm" / "a_utf8.csv"
    path.write_bytes(path.read_bytes() + b"K10;Nieuw;Klant;;;\n")
    summary = ingest.run(ctx, sources=["crm"])
    assert summary["crm"] == {"read": 9, "landed": 6, "quarantined": 3, "batches": 2}
    keys = [r[S.RECORD_KEY] for r in ctx.lake.read("bronze.crm").collect()]
    assert sorted(keys) == sorted(record_key("crm", k) for k in ("K1", "K2", "K10", "K6", "K7", "K8"))
    assert ctx.lake.read(S.BRONZE_QUARANTINE.address).count() == 3
    assert _orphans(ctx) == {"bronze.crm": 0, S.BRONZE_QUARANTINE.address: 0}
    states = sorted((r.batch_id == killed[0].batch_id, r.path, r.status) for r in ctx.lake.read(S.OPS_BATCHES.address).collect())
    assert states == [(False, "crm/a_utf8.csv", "landed"), (False, "crm/b_latin1.csv", "landed"), (True, "crm/a_utf8.csv", "rolled_back")]
    run = [r for r in ctx.lake.read(S.OPS_RUNS.address).collect() if r.status == "succeeded"][0]
    assert run.metrics["crm.rolled_back"] == "1"
    assert ingest.run(ctx, sources=["crm"])["crm"]["read"] == 0  # and nothing more on the next run


def test_a_run_killed_during_rollback_is_completed_by_the_next(ctx, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(RuntimeError):
        ingest.run(ctx, sources=["crm"], fault=_kill_at("after_quarantine"))
    assert _orphans(ctx) == {"bronze.crm": 2, S.BRONZE_QUARANTINE.address: 3}
    path = tmp_path / "data" / "crm" / "a_utf8.csv"
    path.write_bytes(path.read_bytes() + b"K10;Nieuw;Klant;;;\n")
    with pytest.raises(RuntimeError, match="killed at during_rollback"):
        ingest.run(ctx, sources=["crm"], fault=_kill_at("during_rollback"))
    assert _orphans(ctx) == {"bronze.crm": 0, S.BRONZE_QUARANTINE.address: 0}  # rows gone, batch still 'started'
    assert {r.status for r in ctx.lake.read(S.OPS_BATCHES.address).collect()} == {"started"}
    assert ingest.run(ctx, sources=["crm"])["crm"] == {"read": 9, "landed": 6, "quarantined": 3, "batches": 2}
    assert ctx.lake.read("bronze.crm").count() == 6 and _orphans(ctx) == {"bronze.crm": 0, S.BRONZE_QUARANTINE.address: 0}


def test_files_that_cannot_be_read_fail_alone_and_change_nothing(ctx, tmp_path: Path) -> None:  # noqa: ANN001
    data = tmp_path / "data"
    (data / "crm" / "c_empty.csv").write_bytes(b"")
    (data / "shop" / "z_utf16.ndjson").write_bytes('{"customer_id": "W9"}\n'.encode("utf-16"))
    (data / "pos" / "n_corrupt.parquet").write_bytes(b"PAR1\x15\x04garbage, not a footerPAR1")
    with pytest.raises(DataError) as info:
        ingest.run(ctx)
    message = str(info.value)
    assert info.value.exit_code == 1
    assert message.startswith("ingest failed (3): ")
    assert f"source crm, file {data / 'crm' / 'c_empty.csv'}: cannot be read: the file is empty (0 bytes)" in message
    assert f"source shop, file {data / 'shop' / 'z_utf16.ndjson'}: cannot be read: the file is UTF-16 text (byte order mark); expected utf-8 text" in message
    assert f"source pos, file {data / 'pos' / 'n_corrupt.parquet'}: cannot be read as Parquet: " in message
    # The good files of the same run landed; the bad ones left no row, batch or quarantine entry.
    assert {n: ctx.lake.read(f"bronze.{n}").count() for n in ("crm", "shop", "pos")} == {"crm": 5, "shop": 2, "pos": 2}
    batches = ctx.lake.read(S.OPS_BATCHES.address).collect()
    assert sorted(b.path for b in batches) == ["crm/a_utf8.csv", "crm/b_latin1.csv", "pos/m.parquet", "shop/customers.ndjson"]
    assert all(b.status == "landed" and b.rows_read == b.rows_landed + b.rows_quarantined for b in batches)
    bad = ("c_empty.csv", "z_utf16.ndjson", "n_corrupt.parquet")
    assert not [r for r in ctx.lake.read(S.BRONZE_QUARANTINE.address).collect() if r[S.FILE].endswith(bad)]
    run = ctx.lake.read(S.OPS_RUNS.address).collect()[0]
    assert (run.status, run.rows_in, run.rows_out, run.rows_quarantined) == ("failed", 16, 9, 7)
    assert [run.metrics[f"shop.rows_{k}"] for k in ("read", "landed", "quarantined")] == ["6", "2", "4"]
    assert "c_empty.csv: cannot be read: the file is empty" in run.error and "n_corrupt.parquet" in run.error
    for name in bad:
        next((data).rglob(name)).unlink()
    assert ingest.run(ctx)["crm"] == {"read": 0, "landed": 0, "quarantined": 0, "batches": 2}


def test_jdbc_without_a_jdbc_section_is_a_config_error(make_ctx) -> None:  # noqa: ANN001
    from jobs.common.errors import ConfigError
    from jobs.common.runlog import Run
    from jobs.ingest.config import SourceConfig

    src = SourceConfig.model_construct(name="erp", format="jdbc", jdbc=None, primary_key=["id"], mapping={})
    with pytest.raises(ConfigError) as info:
        ingest.ingest_jdbc(make_ctx(), src, Run("r", "ingest", "h"), set())
    assert info.value.problems == ["sources.erp.jdbc: got none; expected a jdbc section (url, table, user) for format jdbc"]


def test_generated_sample_data_lands_every_source_and_reconciles(spark, tmp_path: Path) -> None:  # noqa: ANN001
    from jobs.common.context import build_context
    from jobs.ingest.generate import generate_sample_data

    from conftest import pipeline_config

    data, lake = tmp_path / "data", tmp_path / "lake"
    generated = generate_sample_data(60, 5, str(data))
    ctx = build_context(pipeline_config(data, lake), spark=spark)
    summary = ingest.run(ctx)
    names = {"crm", "webshop_customers", "webshop_orders", "pos_members", "pos_receipts", "email_subscribers", "email_events", "web_events"}
    assert set(summary) == names
    batches = ctx.lake.read(S.OPS_BATCHES.address).collect()
    assert {b.source for b in batches} == names  # all five systems, eight configured sources
    for b in batches:
        assert b.status == "landed" and b.rows_landed > 0, b.path
        assert b.rows_read == b.rows_landed + b.rows_quarantined, b.path
        assert b.rows_read == generated["files"][b.path], b.path  # one row per generated line or Parquet row
    assert sorted(b.path for b in batches) == sorted(f for f in generated["files"] if not f.startswith("ground_truth/"))
    for name in names:
        assert ctx.lake.read(f"bronze.{name}").count() == sum(b.rows_landed for b in batches if b.source == name)
    assert ctx.lake.read(S.BRONZE_QUARANTINE.address).count() == sum(b.rows_quarantined for b in batches)
    assert sum(b.rows_quarantined for b in batches if b.path == "web/events_broken.ndjson") == 3
    run = ctx.lake.read(S.OPS_RUNS.address).collect()[0]
    assert run.status == "succeeded"
    assert run.rows_in == sum(b.rows_read for b in batches) == run.rows_out + run.rows_quarantined
    assert (run.rows_out, run.rows_quarantined) == (sum(b.rows_landed for b in batches), sum(b.rows_quarantined for b in batches))
