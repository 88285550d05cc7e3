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
    jdbc_jar = "/usr/share/java/postgresql.jar"
    extra = {"spark.jars": jdbc_jar} if os.path.exists(jdbc_jar) else {}
    session = build_local_session(
        app_name="cdp-tests",
        master="local[2]",
        shuffle_partitions=2,
        checkpoint_dir=str(base / "checkpoints"),
        warehouse_dir=str(base / "warehouse"),
        extra_conf=extra,
    )
    yield session
    session.stop()


@pytest.fixture()
def lake_root(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    return root


@pytest.fixture()
def make_ctx(spark, tmp_path: Path):  # noqa: ANN001, ANN201
    """Build a job Context from a config dict (validated by the real CdpConfig) on the test session."""
    from jobs.common.config import LoadedConfig
    from jobs.common.context import build_context
    from jobs.common.settings import CdpConfig

    def factory(doc: dict | None = None, **sections: object):  # noqa: ANN202
        data = {"lake": {"root": str(tmp_path / "lake")}, "data": {"root": str(tmp_path / "data")}}
        data.update(doc or {})
        data.update(sections)
        model = CdpConfig.model_validate(data)
        return build_context(LoadedConfig(model, {}, str(tmp_path), data), spark=spark)

    return factory
