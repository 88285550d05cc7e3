"""Keys computed in Python (ingest) and in Spark (owner keys of events) must agree."""

from __future__ import annotations

import sys

from pyspark.sql import functions as F

from jobs.common.keys import record_key, record_key_col

# every character str.strip() removes
WHITESPACE = [chr(i) for i in range(sys.maxunicode + 1) if chr(i).isspace()]


def test_record_key_col_strips_what_python_strips(spark) -> None:  # noqa: ANN001
    values = ["K1", " K1 ", "K 1", "K1\u200b"]  # inner space and a zero-width space are kept
    values += [f"{ws}K1{ws}" for ws in WHITESPACE]
    values += ["\t\u00a0K1\u3000\n", "", "  "]
    rows = spark.createDataFrame([(i, v, "x") for i, v in enumerate(values)], "i int, v string, w string")
    got = {
        r.i: r.k
        for r in rows.select("i", record_key_col("crm", F.col("v")).alias("k")).collect()
    }
    assert got == {i: record_key("crm", v) for i, v in enumerate(values)}
    # a composite key too, and the padding really is stripped (not hashed)
    two = rows.select("i", record_key_col(F.lit("pos"), F.col("v"), F.col("w")).alias("k")).collect()
    assert {r.i: r.k for r in two} == {i: record_key("pos", v, "x") for i, v in enumerate(values)}
    assert len({got[i] for i in range(1, len(WHITESPACE) + 4) if values[i].strip() == "K1"}) == 1
