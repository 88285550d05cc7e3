"""Standardize rate: canonical person rows per second through ``standardize_records``.

Builds N canonical person rows (default 200,000) in pandas with numpy (a varied set of realistic
Dutch/Belgian/German rows, with per-row numbers so that values are not all alike), hands them to
Spark through Arrow, and times ``standardize_records(...).write.format("noop")`` — an action that
computes every output column without writing anything. One warm-up run on a small frame compiles
the code and starts the Python workers; then ``--runs`` timed runs; the median is reported.

    .venv/bin/python bench/standardize_rate.py [--rows 200000] [--runs 3] [--master local[2]]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from jobs.common.schemas import BATCH_ID, CANONICAL_FIELDS, RECORD_KEY, ROW_HASH, SOURCE  # noqa: E402

NAMES = ["Dhr. Jan van der Berg", "J. v.d. Berg", "Berg, Jan van der", "VAN DER BERG", "Mevr. A.M. de Vries-ter Horst",
         "mw. dr. Anna in 't Veld", "José Müller", "Johann von Goethe", "Piet ter Horst", "Kees 't Hart", "onbekend",
         "  jan   JANSEN ", "Ir. K. ten Brink MSc", "Sophie Dubois", "Mr. Piet Jansen"]
EMAILS = ["jan{n}@gmial.com", "Piet.{n}@Hotmial.com", "a{n}@ziggo.nl", "test@test.nl", "geen", "b{n}@kpnmail.nl",
          "x{n}@gmail.con", "broken{n}.gmail.com", "c{n}@telenet.be", "d{n}@web.de"]
PHONES = ["06-{d8}", "+31 (0)6 {d8}", "020-{d7}", "0000000000", "0471 {d6}", "030 {d7}", "12345", "", "+49 30 {d7}"]
POSTCODES = [("{p4} AB", "NL"), ("{p4}ab", "Nederland"), ("{p4}", "België"), ("1{d4}", "DE"), ("SW1A 1AA", "UK"),
             ("1234 SA", "NL"), ("n/a", None)]
HOUSES = ["12-A", "12a", "12 bis", "12 hs", "{n3}", "7-2", "abc", "1"]
DATES = ["1980-02-01", "01-02-1980", "31/12/85", "19800201", "31-02-1980", "2030-01-01", "1900-01-01", ""]
CITIES = ["Amsterdam", "'S-GRAVENHAGE", "Brussel", "Berlin", "London", "onbekend", "Alphen aan den Rijn"]


def make_rows(n: int, seed: int = 7) -> pd.DataFrame:
    """n canonical person rows as strings: templates picked at random, numbers filled per row."""
    rng = np.random.default_rng(seed)
    idx = np.arange(n)

    def pick(values: list) -> np.ndarray:
        return np.asarray(values, dtype=object)[rng.integers(0, len(values), n)]

    d8 = rng.integers(20_000_000, 99_999_999, n)
    nums = rng.integers(1, 999, n)
    p4 = rng.integers(1000, 9999, n)

    def fill(templates: np.ndarray) -> list[str]:
        return [
            t.format(n=i, d8=a, d7=a % 10_000_000, d6=a % 1_000_000, d4=a % 10_000, p4=p, n3=k)
            for t, i, a, p, k in zip(templates, idx, d8, p4, nums)
        ]

    pc = pick(POSTCODES)
    df = pd.DataFrame(
        {
            RECORD_KEY: [f"k{i}" for i in idx],
            SOURCE: "crm",
            BATCH_ID: np.where(idx % 2 == 0, "b1", "b2"),
            ROW_HASH: [f"h{i}" for i in idx],
            "source_id": [f"C{i}" for i in idx],
            "full_name": pick(NAMES),
            "email": fill(pick(EMAILS)),
            "phone": fill(pick(PHONES)),
            "postcode": fill(np.asarray([p for p, _ in pc], dtype=object)),
            "country": [c for _, c in pc],
            "house_number": fill(pick(HOUSES)),
            "street": pick(["Kerkstraat", "LAAN VAN MEERDERVOORT", "Hoofdstraat 12a", "Unter den Linden"]),
            "city": pick(CITIES),
            "birth_date": pick(DATES),
            "customer_number": [f" c {i:06d} " for i in idx],
            "consent_email": pick(["ja", "nee", "1", "0", "misschien"]),
            "updated_at": "2024-01-05 10:00:00",
        }
    )
    for f in CANONICAL_FIELDS:
        if f not in df.columns:
            df[f] = None
    return df.replace({"": None})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()

    from pyspark.sql.types import StringType, StructField, StructType

    from jobs.common.spark import build_local_session
    from jobs.standardize.config import StandardizeConfig
    from jobs.standardize.transforms import standardize_records

    tmp = tempfile.mkdtemp(prefix="std-rate-")
    spark = build_local_session(app_name="standardize-rate", master=args.master, shuffle_partitions=2,
                                checkpoint_dir=f"{tmp}/ck", warehouse_dir=f"{tmp}/wh")
    cfg = StandardizeConfig(reference_date=date(2025, 1, 1))
    pdf = make_rows(args.rows)
    schema = StructType([StructField(c, StringType()) for c in pdf.columns])
    df = spark.createDataFrame(pdf, schema)
    df = df.selectExpr("*", "1 AS trust_rank", "map('pet_name', 'Bello') AS extensions")
    df = df.repartition(2).cache()
    df.count()  # the input is materialised before timing

    def run(frame) -> float:  # noqa: ANN001
        t0 = time.perf_counter()
        standardize_records(frame, cfg, "NL").write.format("noop").mode("overwrite").save()
        return time.perf_counter() - t0

    warm = run(df.limit(1000))
    times = [run(df) for _ in range(args.runs)]
    med = statistics.median(times)
    print(f"rows={args.rows} master={args.master} warmup={warm:.1f}s runs={[round(t, 1) for t in times]}")
    print(f"median {med:.1f}s -> {args.rows / med:,.0f} records/s; load average {os.getloadavg()}")
    spark.stop()


if __name__ == "__main__":
    main()
