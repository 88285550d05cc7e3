"""Helpers for the segments tests: inline golden profiles with the real schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from jobs.common.schemas import GOLDEN_PROFILES


def profile_rows(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    """A GOLDEN_PROFILES DataFrame; columns a row does not name are None."""
    names = GOLDEN_PROFILES.column_names
    unknown = sorted({k for r in rows for k in r} - set(names))
    if unknown:
        raise KeyError(f"not golden profile columns: {', '.join(unknown)}")
    return spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], GOLDEN_PROFILES.schema)


@pytest.fixture()
def make_profiles(spark: SparkSession) -> Callable[[list[dict[str, Any]]], DataFrame]:
    return lambda rows: profile_rows(spark, rows)
