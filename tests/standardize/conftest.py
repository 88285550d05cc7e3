"""Helpers for the standardize tests: canonical person rows in, collected silver rows out.

Each test module builds ONE small frame holding all its table-driven cases and standardises it
once (module-scoped fixtures), so that the suite plans and compiles few Spark jobs.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pyspark.sql.types import IntegerType, MapType, StringType, StructField, StructType

from jobs.common.schemas import BATCH_ID, CANONICAL_FIELDS, RECORD_KEY, ROW_HASH, SOURCE
from jobs.standardize.config import StandardizeConfig

# A fixed 'today' so that future-date checks do not depend on the day the suite runs.
REFERENCE_DATE = date(2025, 1, 1)

PERSON_SCHEMA = StructType(
    [
        StructField(RECORD_KEY, StringType()),
        StructField(SOURCE, StringType()),
        StructField(BATCH_ID, StringType()),
        StructField(ROW_HASH, StringType()),
        StructField("trust_rank", IntegerType()),
        StructField("extensions", MapType(StringType(), StringType())),
        *[StructField(f, StringType()) for f in CANONICAL_FIELDS],
    ]
)


def make_cfg(**overrides: Any) -> StandardizeConfig:
    """Test config: fixed reference date; ``steps=[...]`` limits the plan to what a test needs."""
    return StandardizeConfig(reference_date=REFERENCE_DATE, **overrides)


def person_frame(spark, cases: dict[str, dict[str, Any]], source: str = "crm", batch: str = "b1"):  # noqa: ANN001, ANN201
    """One row per case: key -> canonical fields as sent (others null)."""
    rows = []
    for key, fields in cases.items():
        unknown = set(fields) - set(PERSON_SCHEMA.fieldNames())
        if unknown:
            raise KeyError(f"case {key}: unknown fields {sorted(unknown)}")
        row = {f.name: None for f in PERSON_SCHEMA.fields}
        row.update({RECORD_KEY: key, SOURCE: source, BATCH_ID: batch, ROW_HASH: f"h-{key}", "trust_rank": 1})
        row.update(fields)
        rows.append(tuple(row[f.name] for f in PERSON_SCHEMA.fields))
    return spark.createDataFrame(rows, PERSON_SCHEMA)


def standardized(spark, cases: dict[str, dict[str, Any]], cfg: StandardizeConfig | None = None,  # noqa: ANN001
                 default_country: str = "NL") -> dict[str, dict[str, Any]]:
    """record_key -> silver row (as a dict) for every case."""
    from jobs.standardize.transforms import standardize_records

    out = standardize_records(person_frame(spark, cases), cfg or make_cfg(), default_country)
    return {r["record_key"]: r.asDict() for r in out.collect()}


def check(result: dict[str, Any], expected: dict[str, Any], key: str) -> None:
    """Compare the expected fields of one case, naming every field that differs."""
    got = {k: result[k] for k in expected}
    assert got == expected, f"case {key}: got {got}, expected {expected}"
