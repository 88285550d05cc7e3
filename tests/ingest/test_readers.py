"""Readers without Spark: CSV over the whole text, NDJSON values as received, unreadable files,
format registry, bronze column clashes."""

from __future__ import annotations

import gzip
import io
from typing import get_args

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from jobs.common.errors import DataError, SchemaError
from jobs.ingest import job as ingest
from jobs.ingest.config import SourceConfig
from jobs.ingest.readers import FILE_READERS, parse_file

CSV = SourceConfig.model_validate(
    {
        "name": "crm",
        "format": "csv",
        "location": "crm",
        "encoding": "auto",
        "delimiter": ";",
        "primary_key": ["id"],
        "mapping": {"given_name": "naam", "street": "adres"},
    }
)
CSV_UTF8 = CSV.model_copy(update={"encoding": "utf-8"})
NDJSON = SourceConfig.model_validate(
    {"name": "shop", "format": "ndjson", "location": "shop", "primary_key": ["id"], "mapping": {"email": "total"}}
)
PARQUET = SourceConfig.model_validate({"name": "pos", "format": "parquet", "location": "pos", "primary_key": ["id"]})


def _quarantine(parsed):  # noqa: ANN001, ANN202
    return [(line, reason.split(":")[0], raw) for line, reason, raw in parsed.quarantine]


def test_csv_quoted_line_breaks_stay_in_one_record() -> None:
    text = (
        "id;naam;adres\n"  # 1
        'A1;Anna;"Dorpsstraat 1\nachterhuis"\n'  # 2-3: one record
        'A2;"Jan\r\nPiet";Kerkweg 2\r\n'  # 4-5: CRLF inside and after the record
        "\n"  # 6: blank, not a row
        'A3;"broken;Laan 3\n'  # 7: quote never closed: swallows to EOF, only line 7 is refused
        "A4;Els;Markt 4\n"  # 8
        'A5;"too;many";x;y\n'  # 9: wrong column count
        'A6;Bo;"Plein\n6";extra\n'  # 10-11: spans two lines, wrong width: only line 10 is refused
        "A7;Kees;Hof 7"  # 12: no final line feed
    )
    parsed = parse_file(text.encode("utf-8"), CSV, "crm.csv")
    assert parsed.values == {
        "id": ["A1", "A2", "A4", "A7"],
        "naam": ["Anna", "Jan\r\nPiet", "Els", "Kees"],
        "adres": ["Dorpsstraat 1\nachterhuis", "Kerkweg 2", "Markt 4", "Hof 7"],
    }
    assert parsed.lines == [2, 4, 8, 12]
    assert parsed.raws == ['A1;Anna;"Dorpsstraat 1\nachterhuis"', 'A2;"Jan\r\nPiet";Kerkweg 2', "A4;Els;Markt 4", "A7;Kees;Hof 7"]
    assert parsed.quarantine == [
        (7, "broken quoting: a quoted field is not closed", 'A3;"broken;Laan 3'),
        (9, "wrong column count: 4, expected 3", 'A5;"too;many";x;y'),
        (10, "broken quoting: a quoted field is not closed", 'A6;Bo;"Plein'),
        (11, "wrong column count: 2, expected 3", '6";extra'),
    ]
    # Rows read = records, not physical lines: 4 landed + 4 quarantined (the blank line is no row).
    assert parsed.rows_read == 8 and parsed.rows + len(parsed.quarantine) == parsed.rows_read


def test_csv_stray_quote_resumes_at_the_next_line_and_strict_quote_errors() -> None:
    text = 'id;naam;adres\nB1;"Ann"a;x\nB2;"open;y\nB3;Bas;"Weg ""9"""\nB4;"Z";"q"\n'
    parsed = parse_file(text.encode("utf-8"), CSV, "crm.csv")
    assert parsed.values["id"] == ["B3", "B4"] and parsed.values["adres"] == ['Weg "9"', "q"]
    assert parsed.lines == [4, 5]
    assert parsed.quarantine == [
        (2, "broken quoting: ';' expected after '\"'", 'B1;"Ann"a;x'),
        (3, "broken quoting: a quoted field is not closed", 'B2;"open;y'),  # it ran into line 4's quote
    ]


def test_csv_encodings_with_line_breaks_and_bad_bytes() -> None:
    latin = 'id;naam;adres\nL1;Renée;"Rue de l\'Église 1\nBruxelles"\nL2;Zoë;Gracht 2\n'.encode("latin-1")
    parsed = parse_file(latin, CSV, "latin.csv")
    assert parsed.encoding == "cp1252"
    assert parsed.values["naam"] == ["Renée", "Zoë"]
    assert parsed.values["adres"] == ["Rue de l'Église 1\nBruxelles", "Gracht 2"]
    utf8 = "id;naam;adres\nU1;José;Straße 1\n".encode() + b'U2;Piet;"Laan\n\xff 2"\n' + "U3;Chloë;Weg 3\n".encode()
    parsed = parse_file(utf8, CSV, "utf8.csv")
    assert parsed.encoding == "utf-8"
    assert parsed.values["id"] == ["U1", "U3"] and parsed.lines == [2, 5]
    # The bad byte is in the second line of a two-line record: the whole record is refused, once.
    assert parsed.quarantine == [(3, "invalid encoding: not valid utf-8", 'U2;Piet;"Laan\n\\xff 2"')]
    assert parsed.rows_read == 3
    fixed = SourceConfig.model_validate({**CSV.model_dump(), "encoding": "latin-1"})
    assert parse_file(utf8, fixed, "utf8.csv").values["naam"] == ["JosÃ©", "Piet", "ChloÃ«"]  # configured, not guessed


def test_ndjson_numbers_and_objects_keep_their_received_text() -> None:
    line = (
        '{"id": 7, "total": 59.90, "big": 12345678901234567890, "exp": 1E5, "neg": -0.0, "nan": NaN,'
        ' "flag": true, "none": null, "text": "59.90", "meta": {"z": 1.50, "a": [1, 2.0, "é\\"q", null, false]}}'
    )
    parsed = parse_file((line + "\n").encode("utf-8"), NDJSON, "shop.ndjson")
    row = {c: v[0] for c, v in parsed.values.items()}
    assert row == {
        "id": "7",
        "total": "59.90",
        "big": "12345678901234567890",
        "exp": "1E5",
        "neg": "-0.0",
        "nan": "NaN",
        "flag": "true",
        "none": None,
        "text": "59.90",
        "meta": '{"z":1.50,"a":[1,2.0,"é\\"q",null,false]}',
    }
    assert all(type(v) is str for v in row.values() if v is not None)  # plain strings, for Arrow


@pytest.mark.parametrize(
    ("src", "data", "message"),
    [
        (CSV, b"", "f: cannot be read: the file is empty (0 bytes)"),
        (PARQUET, b"", "f: cannot be read: the file is empty (0 bytes)"),
        (CSV, "id;naam\n".encode("utf-16"), "f: cannot be read: the file is UTF-16 text (byte order mark); expected UTF-8 or Windows-1252/Latin-1 text"),
        (NDJSON, gzip.compress(b'{"id": 1}\n'), "f: cannot be read: the file is gzip-compressed; expected utf-8 text"),
        (NDJSON, b'{"id": "\xc3\x28"}\n\xa0\xa1\n', "f: cannot be read: no line is valid utf-8 text (2 lines)"),
        (CSV_UTF8, b"id;n\xe9am\xff\nA;b\n", "f: line 1: header is not valid utf-8"),
        (CSV, b'id;"naam\n', "f: header cannot be parsed: a quoted field is not closed"),
        (PARQUET, b"PAR1 not really parquet PAR1", "f: cannot be read as Parquet:"),
    ],
)
def test_a_file_that_cannot_be_read_at_all_raises(src: SourceConfig, data: bytes, message: str) -> None:
    with pytest.raises(DataError) as info:
        parse_file(data, src, "f")
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("data", [b"", b"\n  \n"])
def test_an_empty_json_lines_delivery_has_no_rows(data: bytes) -> None:
    # JSON lines have no header to miss: an empty nightly delivery is zero records, not an error.
    parsed = parse_file(data, NDJSON, "f")
    assert (parsed.rows, parsed.rows_read, parsed.quarantine, parsed.columns) == (0, 0, [], [])


def test_parquet_in_a_csv_source_is_refused_as_parquet() -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": ["1"]}), buf)
    with pytest.raises(DataError, match=r"^f: cannot be read: the file is a Parquet file; expected UTF-8"):
        parse_file(buf.getvalue(), CSV, "f")


def test_every_configured_format_has_a_reader_and_a_connector() -> None:
    formats = get_args(SourceConfig.model_fields["format"].annotation)
    assert sorted(formats) == ingest.CONNECTORS.names()
    assert sorted(f for f in formats if f != "jdbc") == FILE_READERS.names()
    xml = SourceConfig.model_construct(name="x", format="xml", fields=[])
    with pytest.raises(DataError, match=r"^f: format 'xml' is not a file format; expected one of: csv, json, ndjson, parquet$"):
        parse_file(b"<a/>", xml, "f")


@pytest.mark.parametrize(
    ("mapping", "config_error", "schema_error"),
    [
        (
            {"given_name": "first name", "family_name": "first_name"},
            "mapping.family_name: got 'first_name'; expected a field with a bronze column of its own, "
            "but source field 'first name' maps to bronze column 'first_name' too",
            "source fields 'first name' and 'first_name' both map to bronze column 'first_name'; "
            "expected one column per field (rename one of them in the mapping)",
        ),
        (
            {"email": "Email", "phone": "email"},
            "mapping.phone: got 'email'; expected a field with a bronze column of its own, "
            "but source field 'Email' maps to bronze column 'email' too",
            "source fields 'Email' and 'email' both map to bronze column 'email'; "
            "expected one column per field (rename one of them in the mapping)",
        ),
        (
            {"given_name": "_Source"},
            "mapping.given_name: got '_Source'; expected a field whose bronze column is not the lineage column '_source'",
            "source field '_Source' maps to bronze column '_Source', which is the lineage column '_source'",
        ),
    ],
)
def test_fields_that_would_share_a_bronze_column_fail(mapping: dict[str, str], config_error: str, schema_error: str) -> None:
    doc = {"name": "crm", "format": "csv", "location": "crm", "primary_key": ["id"], "mapping": mapping}
    with pytest.raises(ValidationError) as info:  # at config load (a ConfigError with the YAML path)
        SourceConfig.model_validate(doc)
    assert config_error in str(info.value)
    unchecked = SourceConfig.model_construct(**{**CSV.model_dump(), "mapping": mapping})
    with pytest.raises(SchemaError) as schema_info:  # and again where the bronze schema is made
        ingest.bronze_schema(unchecked)
    assert str(schema_info.value) == f"source crm: {schema_error}"
    assert ingest.bronze_columns(CSV) == {"id": "id", "naam": "naam", "adres": "adres"}
