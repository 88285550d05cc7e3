"""Birth dates: ISO, dd-mm-yyyy, dd/mm/yy, yyyymmdd; impossible, future and implausible flagged."""

from __future__ import annotations

from datetime import date

import pytest

from tests.standardize.conftest import make_cfg, standardized

# reference date (today) is 2025-01-01
CASES: dict[str, tuple[str, date | None, list[str]]] = {
    "iso": ("1980-02-01", date(1980, 2, 1), []),
    "iso_time": ("1980-02-01T00:00:00", date(1980, 2, 1), []),
    "dmy_dash": ("01-02-1980", date(1980, 2, 1), []),
    "dmy_slash": ("01/02/1980", date(1980, 2, 1), []),
    "dmy_short": ("1-2-1980", date(1980, 2, 1), []),
    "dmy_dot": ("1.2.1980", date(1980, 2, 1), []),
    "compact": ("19800201", date(1980, 2, 1), []),
    "yy_past": ("31/12/85", date(1985, 12, 31), []),
    "yy_recent": ("01/02/05", date(2005, 2, 1), []),
    "impossible_day": ("31-02-1980", None, ["birth_date_invalid"]),
    "impossible_month": ("1980-13-01", None, ["birth_date_invalid"]),
    "future": ("2030-05-01", None, ["birth_date_invalid"]),
    "too_old": ("1850-01-01", None, ["birth_date_invalid"]),
    "text": ("gisteren", None, ["birth_date_invalid"]),
    "placeholder_iso": ("1900-01-01", None, ["placeholder:birth_date"]),
    "placeholder_zeros": ("00-00-0000", None, ["placeholder:birth_date"]),
}


@pytest.fixture(scope="module")
def results(spark):  # noqa: ANN001, ANN201
    cases = {k: {"birth_date": raw} for k, (raw, _, _) in CASES.items()}
    cases["missing"] = {}
    return standardized(spark, cases, make_cfg(steps=["placeholders", "birth_dates"]))


@pytest.mark.parametrize("key", list(CASES))
def test_birth_date(results, key: str) -> None:  # noqa: ANN001
    _, expected, flags = CASES[key]
    r = results[key]
    assert (r["birth_date"], r["birth_date_valid"], r["dq_flags"]) == (expected, expected is not None, flags), key


def test_missing_birth_date_is_not_flagged(results) -> None:  # noqa: ANN001
    r = results["missing"]
    assert (r["birth_date"], r["birth_date_valid"], r["dq_flags"]) == (None, False, [])
