"""The public transforms end to end on a few inline rows: records, identifiers, events, dq metrics."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs.common.errors import SchemaError
from jobs.common.schemas import (
    BATCH_ID, EVENT_FIELDS, RECORD_KEY, ROW_HASH, SILVER_DQ_METRICS, SILVER_EVENTS, SILVER_IDENTIFIERS,
    SILVER_RECORDS, SOURCE,
)
from jobs.common.keys import record_key
from jobs.standardize.transforms import (
    compute_dq_metrics, extract_identifiers, owner_record_key, standardize_events, standardize_records,
)
from tests.standardize.conftest import make_cfg, person_frame

CASES = {
    "r1": {
        "source_id": "C1", "full_name": "Dhr. J. v.d. Berg", "email": "Jan@Gmial.com", "phone": "06-23456789",
        "street": "Kerkstraat", "house_number": "12-A", "postcode": "1234ab", "city": "AMSTERDAM",
        "birth_date": "01-02-1980", "customer_number": " c 001 ", "loyalty_card": "1234-5678",
        "consent_email": "ja", "updated_at": "2024-01-05 10:00:00",
    },
    "r2": {
        "source_id": "C2", "given_name": "Anna", "family_name": "de Vries", "email": "test@test.nl",
        "phone": "0000000000", "postcode": "B-1000", "country": "België", "birth_date": "2030-01-01",
        "city": "onbekend", "consent_email": "misschien",
    },
}


@pytest.fixture(scope="module")
def records(spark):  # noqa: ANN001, ANN201
    df = person_frame(spark, CASES)
    df = df.withColumn(
        "extensions", F.when(F.col(RECORD_KEY) == "r1", F.create_map(F.lit("pet_name"), F.lit("Bello")))
    )
    return standardize_records(df, make_cfg(), "NL").cache()


@pytest.fixture(scope="module")
def rows(records):  # noqa: ANN001, ANN201
    return {r["record_key"]: r.asDict() for r in records.collect()}


def _columns(schema: StructType) -> list[tuple]:
    """Names and types in order (Spark decides nullability from the expressions)."""
    return [(f.name, f.dataType) for f in schema.fields]


def test_records_have_exactly_the_silver_schema(records) -> None:  # noqa: ANN001
    assert _columns(records.schema) == _columns(SILVER_RECORDS.schema)


def test_record_values(rows) -> None:  # noqa: ANN001
    r1 = rows["r1"]
    got = {k: r1[k] for k in (
        "source", "source_id", "trust_rank", "batch_id", "row_hash", "title", "gender", "initials",
        "name_particle", "family_name", "full_name", "full_name_match", "email", "phone", "street",
        "house_number", "house_number_suffix", "postcode", "city", "country", "birth_date",
        "customer_number", "loyalty_card", "consent_email", "source_updated_at", "email_valid",
        "phone_valid", "postcode_valid", "birth_date_valid", "name_valid", "dq_flags", "extensions",
    )}
    assert got == {
        "source": "crm", "source_id": "C1", "trust_rank": 1, "batch_id": "b1", "row_hash": "h-r1",
        "title": "dhr", "gender": "m", "initials": "J", "name_particle": "van der", "family_name": "Berg",
        "full_name": "J. van der Berg", "full_name_match": "j van der berg", "email": "jan@gmail.com",
        "phone": "+31623456789", "street": "Kerkstraat", "house_number": "12", "house_number_suffix": "A",
        "postcode": "1234 AB", "city": "Amsterdam", "country": "NL", "birth_date": date(1980, 2, 1),
        "customer_number": "C001", "loyalty_card": "12345678", "consent_email": True,
        "source_updated_at": datetime(2024, 1, 5, 10, 0), "email_valid": True, "phone_valid": True,
        "postcode_valid": True, "birth_date_valid": True, "name_valid": True,
        "dq_flags": ["email_domain_corrected"], "extensions": {"pet_name": "Bello"},
    }


def test_record_with_placeholders_and_invalid_values(rows) -> None:  # noqa: ANN001
    r2 = rows["r2"]
    got = {k: r2[k] for k in ("given_name", "name_particle", "family_name", "email", "phone", "postcode",
                              "country", "city", "birth_date", "consent_email", "extensions")}
    assert got == {
        "given_name": "Anna", "name_particle": "de", "family_name": "Vries", "email": None, "phone": None,
        "postcode": "1000", "country": "BE", "city": None, "birth_date": None, "consent_email": None,
        "extensions": None,
    }
    assert sorted(r2["dq_flags"]) == sorted([
        "placeholder:city", "placeholder:email", "placeholder:phone", "birth_date_invalid",
        "consent_email_invalid",
    ])


def test_missing_lineage_is_a_schema_error(spark) -> None:  # noqa: ANN001
    df = spark.createDataFrame([("x",)], "full_name string")
    with pytest.raises(SchemaError, match="standardize_records: missing column.*_record_key"):
        standardize_records(df, make_cfg(), "NL")


def test_extract_identifiers(spark, records) -> None:  # noqa: ANN001
    expected = spark.createDataFrame(
        [
            ("r1", "email", "jan@gmail.com", "crm"),
            ("r1", "phone", "+31623456789", "crm"),
            ("r1", "customer_number", "C001", "crm"),
            ("r1", "loyalty_card", "12345678", "crm"),
        ],
        SILVER_IDENTIFIERS.schema,
    )
    assert_df_equality(extract_identifiers(records), expected, ignore_row_order=True, ignore_nullable=True)


def test_extract_identifiers_keeps_only_the_types_a_source_contributes(spark, records) -> None:  # noqa: ANN001
    both = records.unionByName(
        records.where(F.col("record_key") == "r1").withColumns({"record_key": F.lit("r1s"), "source": F.lit("shop")})
    )
    got = extract_identifiers(both, {"crm": ["email", "customer_number"], "pos": []})
    expected = spark.createDataFrame(
        [
            ("r1", "email", "jan@gmail.com", "crm"),
            ("r1", "customer_number", "C001", "crm"),
            # a source the mapping does not name contributes every type
            ("r1s", "email", "jan@gmail.com", "shop"),
            ("r1s", "phone", "+31623456789", "shop"),
            ("r1s", "customer_number", "C001", "shop"),
            ("r1s", "loyalty_card", "12345678", "shop"),
        ],
        SILVER_IDENTIFIERS.schema,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    assert extract_identifiers(both, {"crm": [], "shop": []}).count() == 0


def test_compute_dq_metrics(records) -> None:  # noqa: ANN001
    dq = compute_dq_metrics(records, "run-1")
    assert _columns(dq.schema) == _columns(SILVER_DQ_METRICS.schema)
    got = {r["column"]: r.asDict() for r in dq.collect()}
    assert len(got) == 14
    pick = ("rows", "filled", "valid", "placeholders", "completeness", "validity", "placeholder_rate")
    assert {k: got["email"][k] for k in pick} == {
        "rows": 2, "filled": 1, "valid": 1, "placeholders": 1, "completeness": 0.5, "validity": 1.0,
        "placeholder_rate": 0.5,
    }
    assert {k: got["birth_date"][k] for k in pick} == {
        "rows": 2, "filled": 2, "valid": 1, "placeholders": 0, "completeness": 1.0, "validity": 0.5,
        "placeholder_rate": 0.0,
    }
    assert {k: got["city"][k] for k in pick} == {
        "rows": 2, "filled": 1, "valid": None, "placeholders": 1, "completeness": 0.5, "validity": None,
        "placeholder_rate": 0.5,
    }
    assert {(r["source"], r["batch_id"], r["run_id"]) for r in got.values()} == {("crm", "b1", "run-1")}


def test_owner_record_key_is_the_owning_records_bronze_key(spark) -> None:  # noqa: ANN001
    df = spark.createDataFrame(
        [("WS0000001", "A"), (" WS0000002 ", "B"), ("", "C"), (None, "D"), ("WS0000003", None)], "id string, part string"
    )
    one = owner_record_key("webshop_customers", [F.col("id")])
    two = owner_record_key("shop", [F.col("id"), F.col("part")])
    got = [(r[0], r[1]) for r in df.select(one, two).collect()]
    assert got == [
        (record_key("webshop_customers", "WS0000001"), record_key("shop", "WS0000001", "A")),
        (record_key("webshop_customers", "WS0000002"), record_key("shop", "WS0000002", "B")),  # trimmed as ingest does
        (None, None),  # blank key: ingest would never have landed such a record
        (None, None),
        (record_key("webshop_customers", "WS0000003"), None),
    ]


def test_standardize_events(spark) -> None:  # noqa: ANN001
    schema = StructType(
        [StructField(c, StringType()) for c in (RECORD_KEY, SOURCE, BATCH_ID, ROW_HASH, *EVENT_FIELDS, "owner_record_key")]
    )
    blank = dict.fromkeys(schema.fieldNames())
    rows = [
        {**blank, RECORD_KEY: "e1", SOURCE: "shop", BATCH_ID: "b1", ROW_HASH: "h1", "event_type": "Bestelling",
         "event_at": "2024-03-01 12:00:00", "amount": "€ 1.234,56", "customer_number": " c 001 ",
         "email": "Jan@gmial.com", "owner_record_key": "k-account-1"},
        {**blank, RECORD_KEY: "e2", SOURCE: "web", BATCH_ID: "b1", ROW_HASH: "h2", "event_type": "login",
         "event_at": "1709294400", "cookie_id": "ck 1", "customer_number": "c001"},
        {**blank, RECORD_KEY: "e3", SOURCE: "mail", BATCH_ID: "b1", ROW_HASH: "h3", "event_type": "email_opened",
         "event_at": "01-03-2024 12:00", "email": "test@test.nl", "campaign": "NL-24"},
    ]
    df = spark.createDataFrame([tuple(r[c] for c in schema.fieldNames()) for r in rows], schema)
    out = standardize_events(df, make_cfg(), "NL")
    assert _columns(out.schema) == _columns(SILVER_EVENTS.schema)
    assert standardize_events(df.drop("owner_record_key"), make_cfg(), "NL").where("owner_record_key is not null").count() == 0
    expected = spark.createDataFrame(
        [
            ("e1", "shop", "order", datetime(2024, 3, 1, 12), Decimal("1234.56"), "EUR", "customer_number", "C001",
             "e1", "k-account-1", None, None, None, None, "b1", "h1"),
            ("e2", "web", "login", datetime(2024, 3, 1, 12), None, None, "customer_number", "C001",
             "e2", None, "ck1", "C001", None, None, "b1", "h2"),
            ("e3", "mail", "email_open", datetime(2024, 3, 1, 12), None, None, None, None,
             "e3", None, None, None, "NL-24", None, "b1", "h3"),
        ],
        SILVER_EVENTS.schema,
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_silver_identifier_forms_are_what_silver_identifiers_holds(spark) -> None:  # noqa: ANN001
    """Single values on the driver get the form silver.identifiers holds (ingest's suppression
    check, erasure subjects, lookups): silver's own transform, placeholders and invalid values
    None, a phone read in its row's country as silver reads it (a placeholder country -> default)."""
    from jobs.standardize.transforms import silver_identifier_forms

    items = [
        ("email", " Jan.Jansen@GMIAL.con ", None),
        ("email", "test@test.nl", None),
        ("email", "geen-adres", None),
        ("phone", "06-23456789", None),
        ("phone", "0470 12 34 56", "België"),
        ("phone", "0470 12 34 56", "na"),  # 'na' is a placeholder: the default country's reading
        ("phone", "0000000000", None),
        ("customer_number", " c 001 ", "NL"),
        ("customer_number", "onbekend", None),
        ("loyalty_card", "2000 1234", None),
        ("cookie_id", "ck 1", None),
        ("device_id", "-", None),
    ]
    got = silver_identifier_forms(spark, items, make_cfg(), "NL")
    assert got == {
        ("email", " Jan.Jansen@GMIAL.con ", None): "jan.jansen@gmail.com",
        ("email", "test@test.nl", None): None,
        ("email", "geen-adres", None): None,
        ("phone", "06-23456789", None): "+31623456789",
        ("phone", "0470 12 34 56", "België"): "+32470123456",
        ("phone", "0470 12 34 56", "na"): None,  # not a valid Dutch number
        ("phone", "0000000000", None): None,
        ("customer_number", " c 001 ", "NL"): "C001",
        ("customer_number", "onbekend", None): None,
        ("loyalty_card", "2000 1234", None): "20001234",
        ("cookie_id", "ck 1", None): "ck1",
        ("device_id", "-", None): None,
    }
    # The oracle: the same values as whole records through the standardize transforms.
    cases = {str(i): {t: v, "country": c} for i, (t, v, c) in enumerate(items)}
    held = {
        (r.record_key, r.id_type): r.id_value
        for r in extract_identifiers(standardize_records(person_frame(spark, cases), make_cfg(), "NL")).collect()
    }
    assert {item: held.get((str(i), item[0])) for i, item in enumerate(items)} == got
    with pytest.raises(ValueError, match=r"got identifier type\(s\) \['person_id'\]"):
        silver_identifier_forms(spark, [("person_id", "P1", None)], make_cfg())
