"""``python -m jobs.common.jvm``: build the JVM UDF jar and log its path (for ``spark-submit --jars``)."""

import logging

from jobs.common.jvm import build_jar, log

logging.basicConfig(level=logging.INFO, format="%(message)s")
built = build_jar()
if built is None:
    raise SystemExit("JVM UDF jar not built (see above)")
log.info("JVM UDF jar: %s", built)
