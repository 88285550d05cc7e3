"""Helpers for the golden tests: inline silver, match and golden rows with the real schemas."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from jobs.common.schemas import (
    GOLDEN_IDENTITY_MAP,
    MATCH_CLUSTERS,
    SILVER_EVENTS,
    SILVER_IDENTIFIERS,
    SILVER_RECORDS,
    TableSpec,
)

RUN_AT = datetime(2026, 11, 1, 12, 0, 0)


def rows_of(spark: SparkSession, table: TableSpec, rows: list[dict[str, Any]]) -> DataFrame:
    """A DataFrame of ``table``'s schema; columns a row does not name are None."""
    names = table.column_names
    unknown = sorted({k for r in rows for k in r} - set(names))
    if unknown:
        raise KeyError(f"not {table.address} columns: {', '.join(unknown)}")
    return spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], table.schema)


def anchored(anchor_key: str) -> str:
    """The person id jobs.golden.ids hands a new cluster anchored at ``anchor_key`` (computed here)."""
    return "P" + hashlib.sha256(f"person\x1f{anchor_key}".encode()).hexdigest()[:24]


def salted(epoch: int, anchor_key: str) -> str:
    """The new id when the anchored one was issued before: salted with the run's epoch."""
    return "P" + hashlib.sha256(f"person\x1f{epoch}\x1f{anchor_key}".encode()).hexdigest()[:24]


def hid(epoch: int, smallest_person: str) -> str:
    """The salted household id (the anchored one was issued before), computed independently."""
    return "H" + hashlib.sha256(f"household\x1f{epoch}\x1f{smallest_person}".encode()).hexdigest()[:24]


def household_anchored(smallest_person: str) -> str:
    """The household id jobs.golden.households hands a new group anchored at its smallest person."""
    return "H" + hashlib.sha256(f"household\x1f{smallest_person}".encode()).hexdigest()[:24]


def clusters_of(spark: SparkSession, groups: list[list[str]], run_id: str = "m1") -> DataFrame:
    """MATCH_CLUSTERS rows from lists of record keys (cluster id = the smallest key)."""
    rows = [
        {"record_key": k, "cluster_id": min(g), "cluster_size": len(g), "guard": None, "run_id": run_id}
        for g in groups
        for k in g
    ]
    return rows_of(spark, MATCH_CLUSTERS, rows)


def map_of(spark: SparkSession, mapping: dict[str, str], first_seen: dict[str, str] | None = None, run_id: str = "r0") -> DataFrame:
    """GOLDEN_IDENTITY_MAP rows from record_key -> person_id."""
    first_seen = first_seen or {}
    rows = [
        {"record_key": k, "person_id": p, "first_seen_run": first_seen.get(p, run_id), "run_id": run_id}
        for k, p in mapping.items()
    ]
    return rows_of(spark, GOLDEN_IDENTITY_MAP, rows)


@pytest.fixture()
def make_clusters(spark: SparkSession) -> Callable[..., DataFrame]:
    return lambda groups, **kw: clusters_of(spark, groups, **kw)


@pytest.fixture()
def make_map(spark: SparkSession) -> Callable[..., DataFrame]:
    return lambda mapping, **kw: map_of(spark, mapping, **kw)


@pytest.fixture()
def make_records(spark: SparkSession) -> Callable[[list[dict[str, Any]]], DataFrame]:
    return lambda rows: rows_of(spark, SILVER_RECORDS, rows)


@pytest.fixture()
def make_identifiers(spark: SparkSession) -> Callable[[list[dict[str, Any]]], DataFrame]:
    return lambda rows: rows_of(spark, SILVER_IDENTIFIERS, rows)


@pytest.fixture()
def make_events(spark: SparkSession) -> Callable[[list[dict[str, Any]]], DataFrame]:
    return lambda rows: rows_of(spark, SILVER_EVENTS, rows)


@pytest.fixture()
def anchored_of() -> Callable[[str], str]:
    return anchored


@pytest.fixture()
def salted_of() -> Callable[[int, str], str]:
    return salted


@pytest.fixture()
def hid_of() -> Callable[[int, str], str]:
    return hid


@pytest.fixture()
def household_of() -> Callable[[str], str]:
    return household_anchored
