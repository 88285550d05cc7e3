"""Stable keys and hashes, computed identically in Python and in Spark."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column

SEP = "\x1f"
KEY_LENGTH = 32  # hex characters (128 bits)


def record_key(source: str, *primary_key: str) -> str:
    """Stable record key: hash of the source name and its primary key values."""
    text = SEP.join([source, *(p.strip() for p in primary_key)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def record_key_col(source: str | "Column", *primary_key: "Column") -> "Column":
    from pyspark.sql import functions as F

    src = F.lit(source) if isinstance(source, str) else source
    return F.substring(F.sha2(F.concat_ws(SEP, src, *(F.trim(c) for c in primary_key)), 256), 1, KEY_LENGTH)


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
