"""Stable keys and hashes, computed identically in Python and in Spark."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column

SEP = "\x1f"
KEY_LENGTH = 32  # hex characters (128 bits)

# What Python's str.strip() removes (every character whose str.isspace() is true), as a Java regex
# class, so that a key value padded with a tab or a no-break space gives the same record key in
# Python (ingest) and in Spark (an event's owner key).
_SPACE = "[\\t\\n\\x0B\\f\\r\\x1C-\\x1F \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"


def record_key(source: str, *primary_key: str) -> str:
    """Stable record key: hash of the source name and its primary key values."""
    text = SEP.join([source, *(p.strip() for p in primary_key)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def strip_col(c: "Column") -> "Column":
    """``str.strip()`` in Spark: leading and trailing whitespace as Python counts it."""
    from pyspark.sql import functions as F

    return F.regexp_replace(c, f"^{_SPACE}+|{_SPACE}+$", "")


def record_key_col(source: str | "Column", *primary_key: "Column") -> "Column":
    """:func:`record_key` as a Column (the same key for the same values, whitespace included)."""
    from pyspark.sql import functions as F

    src = F.lit(source) if isinstance(source, str) else source
    return F.substring(F.sha2(F.concat_ws(SEP, src, *(strip_col(c) for c in primary_key)), 256), 1, KEY_LENGTH)


def row_hash(values: Iterable[str | None]) -> str:
    text = SEP.join("\x00" if v is None else v for v in values)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def salted_hash(salt: str, kind: str, value: str) -> str:
    """Salted SHA-256 of a normalised identifier: suppression lists and audit subject references."""
    return hashlib.sha256(f"{salt}{SEP}{kind}{SEP}{value}".encode()).hexdigest()


def salted_hash_col(salt: str, kind: "Column | str", value: "Column") -> "Column":
    from pyspark.sql import functions as F

    k = F.lit(kind) if isinstance(kind, str) else kind
    return F.sha2(F.concat_ws(SEP, F.lit(salt), k, value), 256)
