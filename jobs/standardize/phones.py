"""Phone numbers to E.164 with Google's libphonenumber (the ``phonenumbers`` port).

Phone validity depends on per-country numbering plans that no regex captures, so this is the one
place the stage runs Python: a vectorised pandas UDF over Arrow batches. Each distinct
(number, region) pair of a batch is parsed once, and a per-worker LRU cache keeps the results
across batches (the same shop phone number, the same placeholder, repeats a lot). Invalid numbers
come back as (null, false): they are flagged, never guessed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache

import pandas as pd
import phonenumbers
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, StringType, StructField, StructType

log = logging.getLogger(__name__)

PHONE_RESULT = StructType([StructField("e164", StringType()), StructField("valid", BooleanType())])
_TRUNK_IN_INTERNATIONAL = re.compile(r"^(\+|00)(\d{1,3})\s*\(0\)\s*")
CACHE_SIZE = 200_000


@lru_cache(maxsize=CACHE_SIZE)
def format_e164(raw: str | None, region: str | None) -> tuple[str | None, bool | None]:
    """(E.164, valid) of one number; (None, None) when nothing was sent.

    ``region`` is the ISO-2 region national numbers are read in ('0612345678' in NL). An
    international '+31 (0)6 ...' has its redundant trunk zero removed first, as people write it.
    """
    if raw is None or not str(raw).strip():
        return None, None
    text = _TRUNK_IN_INTERNATIONAL.sub(r"\1\2 ", str(raw).strip())
    try:
        number = phonenumbers.parse(text, (region or "ZZ").upper())
    except phonenumbers.NumberParseException:
        return None, False
    if not phonenumbers.is_valid_number(number):
        return None, False
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), True


_SEP = "\x1f"


def _format_batch(raw: pd.Series, region: pd.Series) -> pd.DataFrame:
    """The pandas UDF body: each distinct (number, region) of the batch parsed once.

    ``pd.factorize`` finds the distinct pairs and gives every row its pair's code; the results
    are spread back with one ``take``.
    """
    key = raw.fillna("\x00").astype(str) + _SEP + region.fillna("").astype(str)
    codes, uniq = pd.factorize(key, sort=False)
    parsed = [format_e164(*_unkey(u)) for u in uniq]
    e164 = pd.array([p[0] for p in parsed], dtype="string").take(codes)
    valid = pd.array([p[1] for p in parsed], dtype="boolean").take(codes)
    return pd.DataFrame({"e164": e164, "valid": valid})


def _unkey(key: str) -> tuple[str | None, str | None]:
    raw, _, region = key.partition(_SEP)
    return (None if raw == "\x00" else raw), (region or None)


def phone_e164(raw: Column, region: Column) -> Column:
    """struct<e164, valid> of a raw phone column read in ``region`` (ISO-2 column).

    The UDF is created when the plan is built, not at import, so that it binds to the right Spark
    flavour (classic or Connect).
    """
    from pyspark.sql.functions import pandas_udf

    udf = pandas_udf(_format_batch, returnType=PHONE_RESULT)  # type: ignore[call-overload]
    return udf(raw, region)


def phone_digits(c: Column) -> Column:
    """Digits only ('+31 (0)6-1234 5678' -> '310612345678'), for placeholder checks."""
    return F.regexp_replace(c, r"[^0-9]", "")


def placeholder_e164(values: Iterable[str], regions: Iterable[str]) -> set[str]:
    """E.164 forms of placeholder numbers in the given regions ('0612345678' -> '+31612345678').

    Computed once on the driver, so that '+31 6 12345678' is known as the placeholder it is.
    """
    out: set[str] = set()
    for value in values:
        for region in sorted(set(regions)):
            e164, valid = format_e164(value, region)
            if valid and e164:
                out.add(e164)
    return out
