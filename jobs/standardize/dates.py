"""Dates and timestamps in the formats sources send, parsed without ever failing on bad input.

Spark 4 runs in ANSI mode, where ``to_date`` raises on bad input; ``try_to_date`` returns null
instead, and parsing is strict (31-02-1980 is null, not 03-03-1980). The accepted formats are tried
in config order and the first that parses wins (``coalesce``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.standardize.config import StandardizeConfig
from jobs.standardize.text import in_values

_ISO_DATE_TIME = r"^(\d{4}-\d{2}-\d{2})[T ]\d{1,2}:\d{2}.*$"


def reference_date(value: date | None) -> Column:
    """'Today' for date checks: fixed by config (reproducible runs, tests) or the current date."""
    return F.lit(value) if value is not None else F.current_date()


def _two_digit(fmt: str) -> bool:
    return "yy" in fmt and "yyy" not in fmt


def parse_date(c: Column, formats: Sequence[str], pivot: int | None, today: Column) -> Column:
    """A string column to a date, trying ``formats`` in order; null when none fits.

    Pass a column reference (it is used once per format); values are expected trimmed.
    Two-digit years ('01/02/85') are read by Java as 2000-2099; years after the pivot are moved a
    century back. With ``pivot=None`` the pivot is the reference year, so no birth year comes out
    in the future ('85' -> 1985, '05' -> 2005).
    """
    s = F.regexp_replace(c, _ISO_DATE_TIME, "$1")  # "1985-02-01T00:00:00" exports from databases
    cutoff = F.lit(2000 + pivot) if pivot is not None else F.year(today)
    candidates = []
    for fmt in formats:
        d = F.try_to_date(s, fmt)
        if _two_digit(fmt):
            d = F.when(F.year(d) > cutoff, F.add_months(d, -1200)).otherwise(d)
        candidates.append(d)
    return F.coalesce(*candidates)


def parse_timestamp(c: Column, formats: Sequence[str] = ()) -> Column:
    """A string column to a UTC timestamp.

    Accepted: ISO 8601 with or without zone ('2024-01-05T10:00:00+01:00', '2024-01-05 10:00:00',
    '2024-01-05'), epoch seconds (10 digits) and milliseconds (13 digits), and ``formats``. A value
    without a zone is UTC whatever the session time zone: a 'Z' (or '+0000') is appended before
    parsing rather than relying on ``spark.sql.session.timeZone``.
    """
    s = F.trim(c)
    iso = F.regexp_replace(s, r"^(\d{4}-\d{2}-\d{2}) (?=\d)", "$1T")
    is_iso = iso.rlike(r"^\d{4}-\d{2}-\d{2}")
    date_only = iso.rlike(r"^\d{4}-\d{2}-\d{2}$")
    has_zone = iso.rlike(r"(?i)T.*(z|[+-]\d{2}(:?\d{2})?|utc)$")
    iso_text = (
        F.when(date_only, F.concat(iso, F.lit("T00:00:00Z")))
        .when(has_zone, F.regexp_replace(iso, r"(?i)\s*utc$", "Z"))
        .otherwise(F.concat(iso, F.lit("Z")))
    )
    candidates = [
        F.when(is_iso, F.try_to_timestamp(iso_text)),
        F.when(s.rlike(r"^\d{10}$"), F.timestamp_seconds(s.try_cast("long"))),
        F.when(s.rlike(r"^\d{13}$"), F.timestamp_millis(s.try_cast("long"))),
    ]
    for fmt in formats:
        candidates.append(F.try_to_timestamp(F.concat(s, F.lit(" +0000")), F.lit(fmt + " Z")))
    return F.coalesce(*candidates).cast("timestamp")


def birth_date_checks(raw: Column, parsed: Column, cfg: StandardizeConfig) -> tuple[Column, Column, Column]:
    """(valid, placeholder, invalid) of a birth date as sent (``raw``) and parsed (``parsed``).

    Invalid: present but unparseable or impossible (31-02-1980), before ``min_birth_year``, in the
    future, or younger than ``min_age_years`` on the reference date. Placeholders (1900-01-01,
    00-00-0000, ...) are matched as sent and as the parsed ISO date. Pass column references:
    each is used several times.
    """
    today = reference_date(cfg.reference_date)
    ph_values = {v.lower() for v in cfg.placeholders.birth_date}
    placeholder = F.coalesce(
        in_values(F.lower(F.trim(raw)), ph_values) | in_values(F.date_format(parsed, "yyyy-MM-dd"), ph_values),
        F.lit(False),
    )
    latest = F.add_months(today, -12 * cfg.min_age_years)
    plausible = (F.year(parsed) >= cfg.min_birth_year) & (parsed <= latest)
    valid = F.coalesce(~placeholder & plausible, F.lit(False))
    invalid = raw.isNotNull() & ~placeholder & ~valid
    return valid, placeholder & raw.isNotNull(), invalid
