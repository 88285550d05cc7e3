"""One session-scoped local SparkSession for the whole suite (STYLE.md 10)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)  # type: ignore[attr-defined]
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator["SparkSession"]:  # noqa: F821
    from jobs.common.spark import build_local_session

    base = tmp_path_factory.mktemp("spark")
    session = build_local_session(
        app_name="cdp-tests",
        master="local[2]",
        shuffle_partitions=2,
        checkpoint_dir=str(base / "checkpoints"),
        warehouse_dir=str(base / "warehouse"),
    )
    yield session
    session.stop()


@pytest.fixture()
def lake_root(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    return root
