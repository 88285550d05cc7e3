"""Our own JVM UDFs (jobs/common/jvm/cdp/udf/*.java): built from source, never downloaded.

Splink's Spark backend ships a jar of string-similarity UDFs for the same reason: a Python UDF
pays an Arrow round trip and a Python string per value, a JVM UDF pays neither (measured here:
Jaro-Winkler on 1M pairs, see ``jobs/match/comparisons.py``). The jar is compiled with the
JDK's ``javac`` against the pyspark jars into a cache folder the first time a local session is
built (about 2 s), keyed by the source and Spark version. Without a JDK, or where the session is
not ours (spark-submit, Databricks, Spark Connect) and nobody put the jar on the classpath, the
class is simply not loadable and the comparisons use the vectorised pandas UDF instead.

``python -m jobs.common.jvm`` builds the jar and logs its path (for ``spark-submit --jars``).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

HERE = os.path.dirname(os.path.abspath(__file__))
# SQL function name -> (class, return type DDL)
UDFS: dict[str, tuple[str, str]] = {"cdp_jaro_winkler": ("cdp.udf.JaroWinkler", "double")}
_registered: dict[int, bool] = {}


def _sources() -> list[str]:
    return sorted(glob.glob(os.path.join(HERE, "cdp", "**", "*.java"), recursive=True))


def _spark_jars() -> str | None:
    try:
        import pyspark
    except ImportError:
        return None
    folder = os.path.join(os.path.dirname(pyspark.__file__), "jars")
    return folder if os.path.isdir(folder) else None


def _tool(name: str) -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", name)):
        return os.path.join(home, "bin", name)
    return shutil.which(name)


def jar_path() -> str:
    """Where the jar for these sources and this pyspark lives (it may not exist yet)."""
    import pyspark

    h = hashlib.sha256(pyspark.__version__.encode())
    for src in _sources():
        with open(src, "rb") as fh:
            h.update(fh.read())
    cache = os.environ.get("CDP_JAR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cdp-jobs")
    return os.path.join(cache, f"cdp-udf-{h.hexdigest()[:16]}.jar")


def build_jar() -> str | None:
    """The UDF jar, compiled now if needed; None (logged) when no JDK or no pyspark jars."""
    if os.environ.get("CDP_JVM_UDFS", "1") == "0":
        return None
    target = jar_path()
    if os.path.exists(target):
        return target
    javac, jar, jars = _tool("javac"), _tool("jar"), _spark_jars()
    if not (javac and jar and jars and _sources()):
        log.info("JVM UDFs not built (javac, jar or the pyspark jars missing): comparisons use the pandas UDF")
        return None
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cdp-udf-") as tmp:
        classes = os.path.join(tmp, "classes")
        os.makedirs(classes)
        cmd = [javac, "--release", "17", "-nowarn", "-cp", os.path.join(jars, "*"), "-d", classes, *_sources()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log.warning("JVM UDFs not built: javac failed: %s", done.stderr.strip().splitlines()[:3])
            return None
        staged = os.path.join(tmp, "cdp-udf.jar")
        done = subprocess.run([jar, "cf", staged, "-C", classes, "."], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log.warning("JVM UDFs not built: jar failed: %s", done.stderr.strip()[:200])
            return None
        os.replace(staged, target)  # atomic: a concurrent build writes the same bytes
    log.info("built JVM UDFs: %s", target)
    return target


def register_udfs(spark: "SparkSession") -> bool:
    """Register our JVM UDFs when their classes are loadable; whether they are usable now."""
    from jobs.common.spark import class_loadable

    key = id(spark)
    if key in _registered:
        return _registered[key]
    ok = False
    try:
        if all(class_loadable(spark, cls) for cls, _ in UDFS.values()):
            for name, (cls, ddl) in UDFS.items():
                spark.udf.registerJavaFunction(name, cls, ddl)
            ok = True
    except Exception as exc:  # noqa: BLE001 - fall back to the Python implementations
        log.info("JVM UDFs not registered (%s): comparisons use the pandas UDF", type(exc).__name__)
    _registered[key] = ok
    return ok


def jvm_udfs_available() -> bool:
    """Whether the active session has our JVM UDFs (registering them on first use)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    return spark is not None and register_udfs(spark)
