"""The session a job runs in: which branch builds or joins it, and what it gets in each.

Local sessions are covered by every test (conftest builds one). The active-session branch runs
here on the test session; the spark-submit branch needs a process that spark-submit started, so
one test submits a small script with the venv's own spark-submit (one JVM, about 10 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from jobs.common.config import LakeConfig, LoadedConfig
from jobs.common.context import Context, build_context
from jobs.common.delta import DeltaSparkEngine, Lake
from jobs.common.errors import ConfigError
from jobs.common.settings import CdpConfig
from jobs.common.spark import ensure_checkpoint_dir, get_or_build_session, launcher_conf

REPO = Path(__file__).resolve().parents[2]


def test_active_session_is_joined_and_keeps_its_checkpoint_dir_and_shuffle_partitions(spark, tmp_path: Path) -> None:  # noqa: ANN001
    before = spark.sparkContext.getCheckpointDir()
    partitions = spark.conf.get("spark.sql.shuffle.partitions")
    assert before  # conftest gave the test session one
    got = get_or_build_session("cdp", "local[4]", 97, str(tmp_path / "cp"))
    assert got is spark
    assert spark.sparkContext.getCheckpointDir() == before
    # the session's own shuffle partitions (set when it was built) win over the config's 97
    assert spark.conf.get("spark.sql.shuffle.partitions") == partitions


def test_spark_connect_keeps_the_servers_checkpoint_dir() -> None:
    """A Connect client cannot see or set the server's checkpoint dir: nothing is tried."""
    connect_session = type("SparkSession", (), {"__module__": "pyspark.sql.connect.session"})()
    assert ensure_checkpoint_dir(connect_session, "/lake/_checkpoints") is None


def test_launcher_conf_fills_in_and_merges_jars() -> None:
    submitted = {"spark.master": "yarn", "spark.jars": "/j/delta.jar,/j/gf.jar", "spark.x": "submit"}
    config = {"spark.jars": "/j/pg.jar,/j/gf.jar", "spark.x": "config", "spark.y": "config"}
    assert launcher_conf(submitted, config) == {"spark.jars": "/j/delta.jar,/j/gf.jar,/j/pg.jar", "spark.y": "config"}
    assert launcher_conf({}, {"spark.jars": "/j/pg.jar"}) == {"spark.jars": "/j/pg.jar"}


SUBMITTED = """
import json, sys
from pyspark.sql import SparkSession
from jobs.common.spark import get_or_build_session

out, cp1, cp2, config_jar = sys.argv[1:5]
# 1. spark-submit started this process: its --master and --conf apply, the config adds the rest
s = get_or_build_session("cdp", "local[3]", 5, cp1, extra_conf={
    "spark.jars": config_jar, "spark.cdp.submitted": "config", "spark.cdp.only_config": "config"})
conf = s.sparkContext.getConf()
first = {
    "master": s.sparkContext.master,
    "app": s.sparkContext.appName,
    "checkpoint": s.sparkContext.getCheckpointDir(),
    "submitted": conf.get("spark.cdp.submitted"),
    "only_config": conf.get("spark.cdp.only_config"),
    "jars": conf.get("spark.jars"),
    "shuffle": s.conf.get("spark.sql.shuffle.partitions"),
    "tz": s.conf.get("spark.sql.session.timeZone"),
}
s.stop()
# 2. a session someone else made without a checkpoint dir (a Databricks cluster's): joined, given one
plain = SparkSession.builder.appName("platform").getOrCreate()
had = plain.sparkContext.getCheckpointDir()
joined = get_or_build_session("cdp", "local[3]", 5, cp2)
second = {"same": joined is plain, "had": had, "checkpoint": joined.sparkContext.getCheckpointDir()}
joined.stop()
json.dump({"submit": first, "active": second}, open(out, "w"))
"""


def _jar(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    return path


def test_spark_submit_and_a_joined_session_get_their_master_settings_and_a_checkpoint_dir(tmp_path: Path) -> None:
    submit = Path(sys.executable).parent / "spark-submit"
    if not submit.exists():
        pytest.skip(f"no spark-submit beside {sys.executable}")
    script = tmp_path / "app.py"
    script.write_text(SUBMITTED, encoding="utf-8")
    out, cp1, cp2 = tmp_path / "out.json", tmp_path / "lake1" / "_checkpoints", tmp_path / "lake2" / "_checkpoints"
    submit_jar, config_jar = _jar(tmp_path / "submitted.jar"), _jar(tmp_path / "config.jar")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("SPARK_REMOTE", None)
    cmd = [
        str(submit), "--master", "local[1]", "--name", "cdp-ingest", "--conf", "spark.ui.enabled=false",
        "--conf", "spark.cdp.submitted=submit", "--conf", "spark.sql.shuffle.partitions=3",
        "--jars", str(submit_jar), str(script), str(out), str(cp1), str(cp2), str(config_jar),
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(out.read_text(encoding="utf-8"))
    first = got["submit"]
    assert first["master"] == "local[1]"  # spark-submit's --master, not the config's local[3]
    assert first["app"] == "cdp-ingest"  # its --name (the Airflow DAG names each task's application)
    assert first["submitted"] == "submit" and first["only_config"] == "config"
    jars = first["jars"].split(",")
    assert [Path(j.removeprefix("file:")).name for j in jars] == ["submitted.jar", "config.jar"]
    assert first["shuffle"] == "3"  # --conf's, not the config's 5
    assert first["tz"] == "UTC"
    # a checkpoint dir under the lake root (Spark adds a folder per application)
    assert first["checkpoint"].removeprefix("file:").startswith(str(cp1) + "/")
    second = got["active"]
    assert second["same"] is True and second["had"] is None
    assert second["checkpoint"].removeprefix("file:").startswith(str(cp2) + "/")


def _config(tmp_path: Path, **lake: str) -> LoadedConfig:
    data = {"lake": lake, "data": {"root": str(tmp_path / "data")}}
    return LoadedConfig(CdpConfig.model_validate(data), {}, str(tmp_path), data)


def test_delta_rs_refuses_a_lake_on_an_object_store(spark, tmp_path: Path) -> None:  # noqa: ANN001
    expected = (
        "a local path or a mount for lake.root with the delta-rs engine: on s3a: every write would go through "
        "the driver as one Arrow table, and Spark's Parquet files cannot be committed there. Use lake.engine: "
        "delta-spark (the Delta jars and SQL extensions in the session) for a lake on an object store"
    )
    # named in the config: refused before Spark starts
    with pytest.raises(ValueError) as info:
        LakeConfig(root="s3a://bucket/lake", engine="delta-rs")
    assert f"root: got 's3a://bucket/lake'; expected {expected}" in str(info.value)
    # chosen by auto because the session has no Delta extensions: refused when the context is built
    with pytest.raises(ConfigError) as info:
        build_context(_config(tmp_path, root="s3a://bucket/lake"), spark=spark)
    assert info.value.problems == [
        f"lake.root: got 's3a://bucket/lake'; expected {expected} (lake.engine: auto chose delta-rs: the session "
        "has no Delta SQL extensions)"
    ]
    assert not Path("s3a:").exists()  # nothing made locally for a URI (abspath would have made ./s3a:)
    # abfss too; a mount or file: URI is local and fine
    with pytest.raises(ValueError, match=r"on abfss: every write"):
        LakeConfig(root="abfss://lake@account.dfs.core.windows.net/cdp", engine="delta-rs")
    # a URI without '//' is a URI too (it was taken for the relative path ./dbfs:/mnt/lake)
    with pytest.raises(ValueError, match=r"on dbfs: every write"):
        LakeConfig(root="dbfs:/mnt/lake", engine="delta-rs")
    with pytest.raises(ConfigError):
        build_context(_config(tmp_path, root="dbfs:/mnt/lake"), spark=spark)
    assert not Path("dbfs:").exists()
    assert LakeConfig(root=f"file://{tmp_path}/lake", engine="delta-rs").root.startswith("file://")
    ctx = build_context(_config(tmp_path, root=f"file://{tmp_path}/lake", engine="delta-rs"), spark=spark)
    assert ctx.lake_root == str(tmp_path / "lake") and (tmp_path / "lake").is_dir()


def test_a_lake_on_an_object_store_needs_an_mlflow_server(spark, tmp_path: Path) -> None:  # noqa: ANN001
    loaded = _config(tmp_path, root="s3a://bucket/lake", engine="delta-spark")
    ctx = Context(loaded, spark, Lake(spark, "s3a://bucket/lake", DeltaSparkEngine(spark)), None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        _ = ctx.mlflow_uri
    assert info.value.problems == [
        "mlflow.tracking_uri: got nothing with lake.root 's3a://bucket/lake'; expected a tracking server "
        "(e.g. databricks, http://mlflow:5000): the default SQLite store lives under a local lake.root"
    ]
    assert not Path("s3a:").exists()
