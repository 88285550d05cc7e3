"""Building (or joining) the SparkSession, and finding out what its JVM can do.

One session is built in the entry point and passed in (STYLE.md 4). Local mode is the embedded
default, tuned for small machines. A session that already exists (a notebook, Databricks) or a
Spark Connect endpoint (``SPARK_REMOTE``) is used as it is; under spark-submit the session takes
the launcher's master and settings (see :func:`get_or_build_session`).

Capabilities (Delta Lake, GraphFrames) are detected by asking the running JVM whether a class is
loadable. We never call ``configure_spark_with_delta_pip`` or set ``spark.jars.packages`` on our
own: without network that kills the gateway after a few seconds, and a network that accepts but
never answers makes it hang.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
GRAPHFRAMES_CLASS = "org.graphframes.GraphFrame"

# Settings every session of ours needs, whatever the deployment.
BASE_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    # delta-rs and every Delta reader expect microsecond timestamps in Parquet.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
}


@dataclass(frozen=True)
class Capabilities:
    """What the session's JVM offers; decides the Delta and graph engines."""

    is_connect: bool
    delta_classes: bool
    delta_extensions: bool
    graphframes: bool

    @property
    def delta_spark(self) -> bool:
        """delta-spark is usable only with its classes and SQL extensions in the session."""
        return self.delta_classes and self.delta_extensions


def _local_conf(
    shuffle_partitions: int,
    checkpoint_dir: str | None,
    warehouse_dir: str | None,
    driver_memory: str | None,
    extra: dict[str, str] | None,
) -> dict[str, str]:
    conf = dict(BASE_CONF)
    conf.update(
        {
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": str(shuffle_partitions),
            "spark.default.parallelism": str(max(shuffle_partitions, 2)),
            "spark.sql.adaptive.enabled": "true",
            "spark.sql.adaptive.coalescePartitions.enabled": "true",
            "spark.sql.autoBroadcastJoinThreshold": str(32 * 1024 * 1024),
            # C1 only: Spark generates and compiles code for every plan, and on a small machine C2
            # re-optimising it took more CPU than the jobs themselves (measured on FEBRL4 train +
            # score: JIT threads 51 CPU-s with C2, 5 with C1; total CPU 95 vs 69 s). Override
            # with spark.conf.spark.driver.extraJavaOptions for long jobs on big data.
            # -Xss: C1 frames are larger, and serialising a task with a deep expression tree
            # (interpreted evaluation) overflowed the default 1 MiB thread stack in CI.
            # -XX:ReservedCodeCacheSize: with C1 only the JVM reserves 48 MiB for compiled code,
            # not 240. The plans' generated classes filled it in a long session (an erasure test
            # module): "CodeCache is full. Compiler has been disabled", then "Out of space in
            # CodeCache for adapters" killed the listener thread, and with it the SparkContext.
            "spark.driver.extraJavaOptions": (
                "-Dderby.system.home=/tmp -XX:+UseG1GC -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m -Xss16m"
            ),
            # The UI is off, but the status store still keeps the last jobs, stages, tasks and SQL
            # executions (with their plan descriptions, some of them megabytes): at Spark's defaults
            # (1,000 / 1,000 / 100,000 / 1,000) a long-lived session (the test suite, a notebook)
            # filled a 1 GiB driver heap until a task could not be serialised any more (CI).
            "spark.ui.retainedJobs": "100",
            "spark.ui.retainedStages": "100",
            "spark.ui.retainedTasks": "10000",
            "spark.sql.ui.retainedExecutions": "50",
            "spark.ui.dagGraph.retainedRootRDDs": "100",
            "spark.sql.sources.partitionOverwriteMode": "dynamic",
            "spark.python.worker.reuse": "true",
            # PySpark 4 records the Python call site of every Column function for error messages
            # (a stack walk, a conf lookup and a JVM call each time). The match job builds tens of
            # thousands of Column expressions: on FEBRL4 that was seconds of planning per run.
            # Our errors name the place themselves; set it to true to get the call sites back.
            "spark.python.sql.dataFrameDebugging.enabled": "false",
        }
    )
    if driver_memory:
        conf["spark.driver.memory"] = driver_memory
    if warehouse_dir:
        conf["spark.sql.warehouse.dir"] = warehouse_dir
    if checkpoint_dir:
        conf["spark.checkpoint.dir"] = checkpoint_dir
    if extra:
        conf.update(extra)
    return conf


def build_local_session(
    app_name: str = "cdp",
    master: str = "local[2]",
    shuffle_partitions: int = 4,
    checkpoint_dir: str | None = None,
    warehouse_dir: str | None = None,
    driver_memory: str | None = None,
    extra_conf: dict[str, str] | None = None,
) -> "SparkSession":
    """A local-mode session tuned for a small machine (UI off, few shuffle partitions, UTC)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from .jvm import build_jar

    builder = SparkSession.builder.master(master).appName(app_name)
    conf = _local_conf(shuffle_partitions, checkpoint_dir, warehouse_dir, driver_memory, extra_conf)
    udf_jar = build_jar()  # our own UDFs, compiled from source (jobs/common/jvm); never downloaded
    if udf_jar:
        conf["spark.jars"] = ",".join(j for j in (conf.get("spark.jars"), udf_jar) if j)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if checkpoint_dir:
        spark.sparkContext.setCheckpointDir(checkpoint_dir)
    return spark


def get_or_build_session(
    app_name: str,
    master: str,
    shuffle_partitions: int,
    checkpoint_dir: str,
    driver_memory: str | None = None,
    extra_conf: dict[str, str] | None = None,
    want_delta_spark: bool = False,
) -> "SparkSession":
    """The session a job runs in.

    Order: Spark Connect when ``SPARK_REMOTE`` is set; the active session when one exists
    (notebooks, a Databricks task that made one); a session of the launcher's application when
    started by spark-submit or on Databricks (:func:`cluster_launcher`: its master and settings
    are used, ``master`` and ``driver_memory`` are not); otherwise a new local session.
    ``want_delta_spark`` adds the Delta SQL extensions to a new local session; the jars themselves
    must already be on the classpath (``spark.jars`` in config), they are never downloaded here.

    Every session but a Spark Connect one gets ``checkpoint_dir`` (under the lake root) as its
    checkpoint dir when it has none, so reliable checkpoints (GraphFrames, the star algorithm
    with ``match.clustering.checkpoint: reliable``) work wherever the job runs. Over Spark Connect
    the server's ``spark.checkpoint.dir`` applies; the client cannot set it.
    """
    from pyspark.sql import SparkSession

    remote = os.environ.get("SPARK_REMOTE")
    if remote:
        log.info("using Spark Connect at %s", remote)
        spark = SparkSession.builder.remote(remote).appName(app_name).getOrCreate()
        _apply_runtime_conf(spark, shuffle_partitions)
        return spark
    active = SparkSession.getActiveSession()
    if active is not None:
        log.info("using the active Spark session (%s)", active.sparkContext.master)
        _apply_runtime_conf(active, shuffle_partitions)
        ensure_checkpoint_dir(active, checkpoint_dir)
        return active
    launcher = cluster_launcher()
    if launcher:
        # No master here: one set in code would override spark-submit's --master. The config's
        # spark.conf fills in what the launcher did not set (its --conf wins); spark.jars adds to
        # its --jars / --packages instead of replacing them.
        log.info("started by %s: using its master and settings", launcher)
        submitted = _submitted_conf()
        builder = SparkSession.builder
        if "spark.app.name" not in submitted:  # spark-submit's --name (default: the script's name) wins
            builder = builder.appName(app_name)
        for key, value in launcher_conf(submitted, extra_conf or {}).items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        _apply_runtime_conf(spark, shuffle_partitions)
        ensure_checkpoint_dir(spark, checkpoint_dir)
        return spark
    extra = dict(extra_conf or {})
    if want_delta_spark:
        extra.setdefault("spark.sql.extensions", DELTA_EXTENSION)
        extra.setdefault("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
    if "spark.jars.packages" in extra:
        from .errors import ConfigError

        raise ConfigError(
            "spark.conf.spark.jars.packages: got "
            f"{extra['spark.jars.packages']!r}; expected jars already on the classpath "
            "(spark.jars or --jars): package downloads can hang a run and are refused"
        )
    return build_local_session(
        app_name=app_name,
        master=master,
        shuffle_partitions=shuffle_partitions,
        checkpoint_dir=checkpoint_dir,
        warehouse_dir=os.path.join(os.path.dirname(checkpoint_dir), "_warehouse"),
        driver_memory=driver_memory,
        extra_conf=extra,
    )


def cluster_launcher() -> str | None:
    """Who started this process with a Spark application of its own, or None (a local run).

    spark-submit (and the pyspark shell) hand the driver its gateway (``PYSPARK_GATEWAY_PORT``)
    and load spark-env.sh (``SPARK_ENV_LOADED``); Databricks sets ``DATABRICKS_RUNTIME_VERSION``
    on its clusters, where a wheel task may run before anything made a session active.
    """
    if os.environ.get("PYSPARK_GATEWAY_PORT") or os.environ.get("SPARK_ENV_LOADED"):
        return "spark-submit"
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return "Databricks"
    return None


def _submitted_conf() -> dict[str, str]:
    """The settings the launcher gave the application (spark-submit's --master, --conf, --jars)."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # type: ignore[attr-defined]  # joins the launcher's JVM gateway
    return dict(SparkConf().getAll())


def launcher_conf(submitted: dict[str, str], config: dict[str, str]) -> dict[str, str]:
    """What the jobs add to a launcher's settings: the config's keys it did not set, and its jars.

    ``spark.jars`` is merged (the launcher's first, without repeats): replacing it would drop the
    Delta and GraphFrames jars that ``--jars`` or ``--packages`` put there.
    """
    out: dict[str, str] = {}
    for key, value in config.items():
        if key == "spark.jars":
            jars = [j for j in (submitted.get(key) or "").split(",") + value.split(",") if j]
            out[key] = ",".join(dict.fromkeys(jars))
        elif key in submitted:
            if submitted[key] != value:
                log.info("spark.conf.%s: the launcher's value is used, not the config's", key)
        else:
            out[key] = value
    return out


def ensure_checkpoint_dir(spark: "SparkSession", default_dir: str) -> str | None:
    """The session's checkpoint dir, set to ``default_dir`` first when it has none.

    None over Spark Connect (the server's ``spark.checkpoint.dir`` applies) and where the platform
    does not let a job reach the SparkContext.
    """
    if is_connect(spark):
        return None
    try:
        sc = spark.sparkContext
        current = sc.getCheckpointDir()
        if current:
            return current
        sc.setCheckpointDir(default_dir)
        log.info("checkpoint dir %s", default_dir)
        return sc.getCheckpointDir()
    except Exception:  # noqa: BLE001 - e.g. a shared Databricks cluster hides the SparkContext
        log.warning("could not set the checkpoint dir %s on this session; reliable checkpoints will fail", default_dir)
        return None


def checkpoint_dir_of(spark: "SparkSession") -> str | None:
    """The session's checkpoint dir (None when unset, or over Spark Connect where the client cannot see it)."""
    if is_connect(spark):
        return None
    try:
        return spark.sparkContext.getCheckpointDir()
    except Exception:  # noqa: BLE001
        return None


def _apply_runtime_conf(spark: "SparkSession", shuffle_partitions: int) -> None:
    """Our SQL settings on a session we did not build; shuffle partitions only where its launcher set none.

    A cluster sizes ``spark.sql.shuffle.partitions`` for itself (spark-submit ``--conf``, a
    Databricks cluster's Spark config): that value stays, the config's applies otherwise.
    """
    for key, value in BASE_CONF.items():
        try:
            spark.conf.set(key, value)
        except Exception:  # noqa: BLE001 - some platforms pin a setting; keep theirs
            log.debug("could not set %s on the existing session", key)
    key = "spark.sql.shuffle.partitions"
    try:
        launched = None if is_connect(spark) else spark.sparkContext.getConf().get(key)
    except Exception:  # noqa: BLE001 - the SparkContext may be hidden (shared clusters)
        launched = None
    if launched is not None:
        log.info("%s: keeping the session's %s (spark.shuffle_partitions %s not applied)", key, launched, shuffle_partitions)
        return
    try:
        spark.conf.set(key, str(shuffle_partitions))
    except Exception:  # noqa: BLE001
        log.debug("could not set shuffle partitions on the existing session")


def is_connect(spark: "SparkSession") -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


def class_loadable(spark: "SparkSession", class_name: str) -> bool:
    """Whether the session's JVM can load ``class_name`` (never downloads anything)."""
    if is_connect(spark):
        return False
    try:
        jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(class_name, False, loader)
        return True
    except Exception:  # noqa: BLE001 - py4j raises its own error types
        return False


def detect_capabilities(spark: "SparkSession") -> Capabilities:
    """What this session can run: Delta through the JVM, GraphFrames."""
    connect = is_connect(spark)
    try:
        extensions = spark.conf.get("spark.sql.extensions", "") or ""
    except Exception:  # noqa: BLE001
        extensions = ""
    delta_ext = DELTA_EXTENSION in extensions
    if connect:
        # Over Spark Connect the server's classpath is not visible; trust its extensions.
        return Capabilities(True, delta_ext, delta_ext, False)
    return Capabilities(
        is_connect=False,
        delta_classes=class_loadable(spark, DELTA_EXTENSION),
        delta_extensions=delta_ext,
        graphframes=class_loadable(spark, GRAPHFRAMES_CLASS),
    )
