"""Reading one delivered file into columns of strings, sending unreadable rows to quarantine.

Files are parsed line by line on the driver, which is what lets every bad row be caught with its
line number, raw text and reason (Spark's readers replace bad bytes silently and lose line
numbers). Values are kept as received, as strings. A file that cannot be read at all raises
DataError: its batch fails and no table changes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from jobs.common.errors import DataError

from .config import SourceConfig

log = logging.getLogger(__name__)

# Quarantine reasons (stable strings: tests and dashboards rely on them).
WRONG_COLUMN_COUNT = "wrong column count"
BROKEN_QUOTING = "broken quoting"
INVALID_ENCODING = "invalid encoding"
MALFORMED_JSON = "malformed JSON"
NOT_AN_OBJECT = "JSON line is not an object"
WRONG_TYPE = "wrong type"
MISSING_KEY = "missing primary key"
SUPPRESSED = "suppressed"


@dataclass
class ParsedFile:
    """Columns of strings (by source field name) plus what could not be read."""

    columns: list[str]
    values: dict[str, list[str | None]]
    lines: list[int]
    raws: list[str]
    quarantine: list[tuple[int, str, str]] = field(default_factory=list)  # line, reason, raw
    rows_read: int = 0
    encoding: str = "utf-8"

    @property
    def rows(self) -> int:
        return len(self.lines)


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _decode_lines(data: bytes, encoding: str) -> tuple[list[tuple[int, str | None, bytes]], str]:
    """Split into physical lines and decode each; a line that does not decode is None.

    ``auto``: UTF-8 unless most lines with non-ASCII bytes fail to decode as UTF-8, in which case
    the file is Windows-1252/Latin-1 (a genuinely UTF-8 file with one corrupt row stays UTF-8 and
    only that row goes to quarantine).
    """
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    raw_lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in raw_lines]
    chosen = encoding
    if encoding == "auto":
        non_ascii = [ln for ln in raw_lines if any(b >= 0x80 for b in ln)]
        failed = 0
        for ln in non_ascii:
            try:
                ln.decode("utf-8")
            except UnicodeDecodeError:
                failed += 1
        chosen = "cp1252" if non_ascii and failed > len(non_ascii) / 2 else "utf-8"
    codec = {"latin-1": "latin-1", "cp1252": "cp1252", "utf-8": "utf-8"}[chosen]
    out: list[tuple[int, str | None, bytes]] = []
    for number, ln in enumerate(raw_lines, start=1):
        try:
            text: str | None = ln.decode(codec)
        except UnicodeDecodeError:
            if codec == "cp1252":
                text = ln.decode("latin-1")
            else:
                text = None
        out.append((number, text, ln))
    return out, chosen


def _raw_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


def parse_csv(data: bytes, src: SourceConfig, where: str) -> ParsedFile:
    decoded, chosen = _decode_lines(data, src.encoding)
    if not decoded:
        raise DataError(f"{where}: file is empty; expected a header line")
    first_no, header_text, _ = decoded[0]
    if header_text is None:
        raise DataError(f"{where}: line {first_no}: header is not valid {chosen}")
    header_text = header_text.lstrip("\ufeff")
    try:
        header = next(csv.reader([header_text], delimiter=src.delimiter, quotechar=src.quote, strict=True))
    except csv.Error as exc:
        raise DataError(f"{where}: header cannot be parsed: {exc}") from exc
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{where}: duplicate column name(s) in the header: {', '.join(dupes)}")
    parsed = ParsedFile(header, {h: [] for h in header}, [], [], encoding=chosen)
    width = len(header)
    for number, text, raw in decoded[1:]:
        if text is None:
            parsed.rows_read += 1
            parsed.quarantine.append((number, f"{INVALID_ENCODING}: not valid {chosen}", _raw_text(raw)))
            continue
        if not text.strip():
            continue
        parsed.rows_read += 1
        try:
            fields = next(csv.reader([text], delimiter=src.delimiter, quotechar=src.quote, strict=True))
        except csv.Error as exc:
            parsed.quarantine.append((number, f"{BROKEN_QUOTING}: {exc}", text))
            continue
        if len(fields) != width:
            parsed.quarantine.append((number, f"{WRONG_COLUMN_COUNT}: {len(fields)}, expected {width}", text))
            continue
        for h, v in zip(header, fields):
            parsed.values[h].append(v if v != "" else None)
        parsed.lines.append(number)
        parsed.raws.append(text)
    return parsed


def parse_ndjson(data: bytes, src: SourceConfig, where: str) -> ParsedFile:
    decoded, chosen = _decode_lines(data, "utf-8" if src.encoding == "auto" else src.encoding)
    mapped = set(src.fields)
    records: list[tuple[int, dict[str, str | None], str]] = []
    parsed = ParsedFile([], {}, [], [], encoding=chosen)
    seen: dict[str, None] = {}
    for number, text, raw in decoded:
        if text is None:
            parsed.rows_read += 1
            parsed.quarantine.append((number, f"{INVALID_ENCODING}: not valid {chosen}", _raw_text(raw)))
            continue
        if not text.strip():
            continue
        parsed.rows_read += 1
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            parsed.quarantine.append((number, f"{MALFORMED_JSON}: {exc.msg} at column {exc.colno}", text))
            continue
        if not isinstance(obj, dict):
            parsed.quarantine.append((number, NOT_AN_OBJECT, text))
            continue
        bad = [k for k, v in obj.items() if k in mapped and isinstance(v, (dict, list))]
        if bad:
            kind = "object" if isinstance(obj[bad[0]], dict) else "array"
            parsed.quarantine.append((number, f"{WRONG_TYPE}: field {bad[0]} is an {kind}, expected a value", text))
            continue
        row = {str(k): _scalar(v) for k, v in obj.items()}
        for k in row:
            seen.setdefault(k, None)
        records.append((number, row, text))
    parsed.columns = list(seen)
    parsed.values = {c: [r.get(c) for _, r, _ in records] for c in parsed.columns}
    parsed.lines = [n for n, _, _ in records]
    parsed.raws = [t for _, _, t in records]
    return parsed


def parse_parquet(data: bytes, src: SourceConfig, where: str) -> ParsedFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for broken files
        raise DataError(f"{where}: cannot be read as Parquet: {exc}") from exc
    values: dict[str, list[str | None]] = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            values[name] = col.to_pylist()
        elif pa.types.is_nested(col.type):
            values[name] = [_scalar(v) for v in col.to_pylist()]
        else:
            try:
                values[name] = col.cast(pa.string()).to_pylist()
            except pa.ArrowInvalid:
                values[name] = [_scalar(v) for v in col.to_pylist()]
    n = table.num_rows
    lines = list(range(1, n + 1))
    names = table.column_names
    raws = [json.dumps({c: values[c][i] for c in names}, ensure_ascii=False) for i in range(n)]
    return ParsedFile(list(names), values, lines, raws, rows_read=n, encoding="parquet")


def parse_file(data: bytes, src: SourceConfig, where: str) -> ParsedFile:
    if src.format == "csv":
        return parse_csv(data, src, where)
    if src.format in ("json", "ndjson"):
        return parse_ndjson(data, src, where)
    if src.format == "parquet":
        return parse_parquet(data, src, where)
    raise DataError(f"{where}: format {src.format!r} is not a file format")


def check_required(parsed: ParsedFile, src: SourceConfig, where: str) -> None:
    """A file must carry the primary key and the required fields (JSON: at least once)."""
    needed = list(dict.fromkeys([*src.primary_key, *src.required]))
    missing = [c for c in needed if c not in parsed.columns]
    if missing and (src.format != "ndjson" and src.format != "json" or parsed.rows):
        raise DataError(
            f"{where}: missing required column(s) {', '.join(missing)}; "
            f"available: {', '.join(parsed.columns) or 'none'}"
        )
