"""Reading one delivered file into columns of strings, sending unreadable rows to quarantine.

Files are parsed on the driver, which is what lets every bad row be caught with its line number,
raw text and reason (Spark's readers replace bad bytes silently and lose line numbers). CSV is
parsed over the whole text (quoted fields may hold line breaks); NDJSON line by line. Values are
kept as received, as strings (a JSON number keeps its text: 59.90 stays "59.90"). A file that
cannot be read at all (empty, not text, no decodable line, not Parquet) raises DataError: its
batch fails and no table changes. Readers are registered by format name (``FILE_READERS``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobs.common.errors import DataError
from jobs.common.registry import Registry

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


Reader = Callable[[bytes, SourceConfig, str], ParsedFile]
FILE_READERS: Registry[Reader] = Registry("file format")


def _scalar(value: Any) -> str | None:
    """A Parquet value as a string (Parquet is typed: there is no received text to keep)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# --- decoding ------------------------------------------------------------------------------------

_CODECS = {"latin-1": "latin-1", "cp1252": "cp1252", "utf-8": "utf-8"}
# Files that are not text in any of the configured encodings: refused whole, with what they are.
_NOT_TEXT = (
    (b"\xff\xfe\x00\x00", "UTF-32 text (byte order mark)"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (byte order mark)"),
    (b"\xff\xfe", "UTF-16 text (byte order mark)"),
    (b"\xfe\xff", "UTF-16 text (byte order mark)"),
    (b"\x1f\x8b", "gzip-compressed"),
    (b"PK\x03\x04", "a zip archive"),
)


@dataclass
class _Lines:
    """Physical lines of a text file: decoded text (without the line feed), raw bytes, and whether
    the line failed to decode (its bad bytes are then kept as surrogate escapes, so the structure
    of the line, which is ASCII, can still be parsed)."""

    texts: list[str]
    raw: list[bytes]
    bad: list[bool]
    encoding: str


def _decode_lines(data: bytes, encoding: str, where: str) -> _Lines:
    """Split into physical lines and decode each.

    ``auto``: UTF-8 unless most lines with non-ASCII bytes fail to decode as UTF-8, in which case
    the file is Windows-1252/Latin-1 (a genuinely UTF-8 file with one corrupt row stays UTF-8 and
    only that row goes to quarantine). A file in which no line decodes cannot be read at all.
    """
    kinds = [what for magic, what in _NOT_TEXT if data.startswith(magic)]
    if data.startswith(b"PAR1") and data.endswith(b"PAR1"):
        kinds.append("a Parquet file")
    if kinds:
        expected = "UTF-8 or Windows-1252/Latin-1" if encoding == "auto" else encoding
        raise DataError(f"{where}: cannot be read: the file is {kinds[0]}; expected {expected} text")
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
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
    codec = _CODECS[chosen]
    texts: list[str] = []
    bad: list[bool] = []
    for ln in raw_lines:
        try:
            texts.append(ln.decode(codec))
            bad.append(False)
        except UnicodeDecodeError:
            if codec == "cp1252":  # the five bytes cp1252 leaves undefined: latin-1 control characters
                texts.append(ln.decode("latin-1"))
                bad.append(False)
            else:
                texts.append(ln.decode(codec, errors="surrogateescape"))
                bad.append(True)
    content = [b for b, t in zip(bad, texts) if t.strip()]
    if content and all(content):
        raise DataError(f"{where}: cannot be read: no line is valid {chosen} text ({len(content)} lines)")
    return _Lines(texts, raw_lines, bad, chosen)


def _raw_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


def _strip_cr(text: str) -> str:
    return text[:-1] if text.endswith("\r") else text


# --- CSV -----------------------------------------------------------------------------------------


class _LineFeed:
    """Physical lines for ``csv.reader``; ``pos`` is the next line to hand out, so the caller knows
    on which line each record starts and can resume reading at any line."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.pos = 0

    def __iter__(self) -> "_LineFeed":
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.texts):
            raise StopIteration
        self.pos += 1
        return self.texts[self.pos - 1] + "\n"


def _csv_error(exc: csv.Error) -> str:
    text = str(exc)
    return "a quoted field is not closed" if text == "unexpected end of data" else text


@FILE_READERS.register("csv")
def parse_csv(data: bytes, src: SourceConfig, where: str) -> ParsedFile:
    """Parse the whole text with the csv module, so quoted fields may hold line breaks.

    Each record keeps the line it starts on and its raw text (all its physical lines). A record
    that spans several lines but does not parse, or has the wrong number of fields, is taken to
    be a broken quote that swallowed the lines after it: only its first line is quarantined and
    reading resumes on the next line, so the good rows after a stray quote still land.
    """
    lines = _decode_lines(data, src.encoding, where)
    chosen = lines.encoding
    if lines.texts:
        lines.texts[0] = lines.texts[0].lstrip("\ufeff")
    feed = _LineFeed(lines.texts)
    reader = csv.reader(feed, delimiter=src.delimiter, quotechar=src.quote, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{where}: file is empty; expected a header line") from None
    except csv.Error as exc:
        raise DataError(f"{where}: header cannot be parsed: {_csv_error(exc)}") from exc
    if any(lines.bad[: feed.pos]):
        raise DataError(f"{where}: line 1: header is not valid {chosen}")
    header = [h.strip() for h in header]
    if not any(header):
        raise DataError(f"{where}: line 1: header is empty; expected column names")
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{where}: duplicate column name(s) in the header: {', '.join(dupes)}")
    parsed = ParsedFile(header, {h: [] for h in header}, [], [], encoding=chosen)
    width = len(header)
    while True:
        start = feed.pos
        error: str | None = None
        try:
            fields: list[str] | None = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            fields, error = None, _csv_error(exc)
        end = feed.pos
        if end - start > 1 and (fields is None or len(fields) != width):
            end = feed.pos = start + 1  # resume on the next line
            try:
                fields = next(csv.reader([lines.texts[start] + "\n"], delimiter=src.delimiter, quotechar=src.quote, strict=True))
            except csv.Error as exc:
                fields, error = None, _csv_error(exc)
        if end - start == 1 and not lines.texts[start].strip():
            continue  # blank line
        parsed.rows_read += 1
        number = start + 1
        if any(lines.bad[start:end]):
            raw = _strip_cr("\n".join(_raw_text(r) for r in lines.raw[start:end]))
            parsed.quarantine.append((number, f"{INVALID_ENCODING}: not valid {chosen}", raw))
            continue
        text = _strip_cr("\n".join(lines.texts[start:end]))  # as received, line breaks inside included
        if fields is None:
            parsed.quarantine.append((number, f"{BROKEN_QUOTING}: {error}", text))
            continue
        if len(fields) != width:
            parsed.quarantine.append((number, f"{WRONG_COLUMN_COUNT}: {len(fields)}, expected {width}", text))
            continue
        for h, v in zip(header, fields):
            parsed.values[h].append(v if v != "" else None)
        parsed.lines.append(number)
        parsed.raws.append(text)
    return parsed


# --- NDJSON --------------------------------------------------------------------------------------


class _JsonNumber(str):
    """A JSON number as the text it was sent as ("59.90" stays "59.90", not 59.9)."""


def _load_json(text: str) -> Any:
    return json.loads(text, parse_float=_JsonNumber, parse_int=_JsonNumber, parse_constant=_JsonNumber)


def _json_text(value: Any) -> str:
    """Compact JSON of a parsed value with its numbers as received, keys in the order received."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, _JsonNumber):
        return str.__str__(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    return "{" + ",".join(json.dumps(str(k), ensure_ascii=False) + ":" + _json_text(v) for k, v in value.items()) + "}"


def _json_value(value: Any) -> str | None:
    """A top-level JSON value as a bronze string: strings and numbers as sent, objects as JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # also _JsonNumber
        return str.__str__(value)
    return _json_text(value)


@FILE_READERS.register("json")
@FILE_READERS.register("ndjson")
def parse_ndjson(data: bytes, src: SourceConfig, where: str) -> ParsedFile:
    lines = _decode_lines(data, "utf-8" if src.encoding == "auto" else src.encoding, where)
    chosen = lines.encoding
    mapped = set(src.fields)
    records: list[tuple[int, dict[str, str | None], str]] = []
    parsed = ParsedFile([], {}, [], [], encoding=chosen)
    seen: dict[str, None] = {}
    for index, (text, raw, bad) in enumerate(zip(lines.texts, lines.raw, lines.bad)):
        number = index + 1
        text = _strip_cr(text)
        if not text.strip():
            continue
        parsed.rows_read += 1
        if bad:
            parsed.quarantine.append((number, f"{INVALID_ENCODING}: not valid {chosen}", _raw_text(raw.rstrip(b"\r"))))
            continue
        try:
            obj = _load_json(text)
        except json.JSONDecodeError as exc:
            parsed.quarantine.append((number, f"{MALFORMED_JSON}: {exc.msg} at column {exc.colno}", text))
            continue
        if not isinstance(obj, dict):
            parsed.quarantine.append((number, NOT_AN_OBJECT, text))
            continue
        bad_fields = [k for k, v in obj.items() if k in mapped and isinstance(v, (dict, list))]
        if bad_fields:
            kind = "object" if isinstance(obj[bad_fields[0]], dict) else "array"
            parsed.quarantine.append((number, f"{WRONG_TYPE}: field {bad_fields[0]} is an {kind}, expected a value", text))
            continue
        row = {str(k): _json_value(v) for k, v in obj.items()}
        for k in row:
            seen.setdefault(k, None)
        records.append((number, row, text))
    parsed.columns = list(seen)
    parsed.values = {c: [r.get(c) for _, r, _ in records] for c in parsed.columns}
    parsed.lines = [n for n, _, _ in records]
    parsed.raws = [t for _, _, t in records]
    return parsed


@FILE_READERS.register("parquet")
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
    """Parse one delivered file with the reader registered for the source's format."""
    if src.format not in FILE_READERS:
        raise DataError(
            f"{where}: format {src.format!r} is not a file format; expected one of: {', '.join(FILE_READERS.names())}"
        )
    if not data or data.isspace():  # (isspace stops at the first other byte; strip would copy)
        if src.format in ("ndjson", "json"):
            # A delivery with no new records: JSON lines have no header to miss, so zero rows.
            return ParsedFile([], {}, [], [], rows_read=0)
        raise DataError(f"{where}: cannot be read: the file is empty ({len(data)} bytes)")
    return FILE_READERS.get(src.format)(data, src, where)


def check_required(parsed: ParsedFile, src: SourceConfig, where: str) -> None:
    """A file must carry the primary key and the required fields (JSON: at least once)."""
    needed = list(dict.fromkeys([*src.primary_key, *src.required]))
    missing = [c for c in needed if c not in parsed.columns]
    if missing and (src.format != "ndjson" and src.format != "json" or parsed.rows):
        raise DataError(
            f"{where}: missing required column(s) {', '.join(missing)}; "
            f"available: {', '.join(parsed.columns) or 'none'}"
        )
