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
        # Spark's 1 GiB default is tight for a session that runs the whole suite (CI's 2-core,
        # 24 GiB machines); the demo's conf/local.yaml asks for 6g.
        driver_memory="3g",
        extra_conf=extra,
    )
    yield session
    session.stop()


@pytest.fixture()
def restore_logging() -> Iterator[None]:
    """The CLI configures the root logger and the progress display; put both back afterwards."""
    import logging

    from jobs.common.runlog import configure_progress

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    configure_progress(None)


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


PIPELINE_PERSONS = 250
PIPELINE_SEED = 11
PIPELINE_RUN_DATE = "2026-11-25"


REPO = Path(__file__).resolve().parent.parent


def pipeline_overrides(data: Path, lake: Path) -> list[str]:
    """What points conf/local.yaml at a data and a lake folder, with a fixed run date and demo seed."""
    return [f"data.root={data}", f"lake.root={lake}", f"run.date={PIPELINE_RUN_DATE}", f"run.demo_seed={PIPELINE_SEED}"]


def pipeline_config(data: Path, lake: Path, extra: list[str] | None = None):  # noqa: ANN201
    """conf/local.yaml pointed at a data and a lake folder, with a fixed run date."""
    from jobs.common.config import load_config

    return load_config(str(REPO / "conf" / "local.yaml"), [*pipeline_overrides(data, lake), *(extra or [])])


@pytest.fixture(scope="session")
def pipeline(spark, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    """The whole pipeline, once, on generated data, for every end-to-end test: ``cdp demo`` run
    in-process through the CLI's entry point (it joins the active test session), so the demo, the
    stages' printed results and the summary are what the tests see (tests/test_demo.py).

    Tests that change the lake work on a copy (:func:`copy_pipeline`).
    """
    import contextlib
    import io
    import logging
    from types import SimpleNamespace

    from jobs.cli import main
    from jobs.common.context import build_context
    from jobs.common.runlog import configure_progress

    base = tmp_path_factory.mktemp("pipeline")
    data, lake = base / "data", base / "lake"
    argv = ["demo", "--config", str(REPO / "conf" / "local.yaml"), "--persons", str(PIPELINE_PERSONS)]
    for assignment in pipeline_overrides(data, lake):
        argv += ["--set", assignment]
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:  # the CLI configures logging for the process; give pytest its handlers back
        root.handlers[:] = handlers
        root.setLevel(level)
        configure_progress(None)
    errors = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    assert code == 0 and not errors, f"cdp {' '.join(argv)} exited {code}: {errors}"
    ctx = build_context(pipeline_config(data, lake), spark=spark)
    return SimpleNamespace(base=base, data=data, lake=lake, ctx=ctx, exit_code=code, output=out.getvalue(), log=err.getvalue())


def copy_pipeline(pipeline, target: Path, spark, extra: list[str] | None = None):  # noqa: ANN001, ANN201
    """A private copy of the pipeline's data and lake, with a context on it (``extra``: config
    overrides for that context)."""
    import shutil

    from jobs.common.context import build_context

    shutil.copytree(pipeline.data, target / "data")
    shutil.copytree(pipeline.lake, target / "lake")
    return build_context(pipeline_config(target / "data", target / "lake", extra), spark=spark)


def golden_runs(ctx) -> list:  # noqa: ANN001, ANN201
    """ops.runs rows of the golden job, oldest first."""
    return sorted(ctx.lake.read("ops.runs").where("job = 'golden'").collect(), key=lambda r: (r.started_at, r.run_id))


# Counts of a golden run's summary that are 0 when it finds nothing to change.
GOLDEN_UNCHANGED = ("profiles_changed", "profiles_removed", "relations_replaced", "new", "merged", "split", "retired")


def full_golden_rerun(ctx, target: Path, spark) -> dict:  # noqa: ANN001
    """A full golden run on a copy of ``ctx``'s lake: its summary.

    After an incremental golden run (an erasure's, a retention's) a full run over the same
    clusters and silver tables must find nothing to change: no profile, relation or person id.
    """
    import shutil

    from jobs.common.context import build_context
    from jobs.golden import job as golden

    shutil.copytree(ctx.lake_root, target / "lake")
    copy = build_context(pipeline_config(Path(ctx.data_root), target / "lake"), spark=spark)
    return golden.run(copy)
