"""Person-id stability between two golden runs when the second adds 10% new records.

Synthetic clusters (no PII): ``--records`` records in clusters of 1-4 records. Run 1 assigns
person ids from scratch; run 2 gets the same records plus 10% new ones:

- ``--join`` share of the new records joins one existing cluster (id must be kept);
- ``--bridge`` share links two existing clusters into one (a merge: the larger side keeps its id,
  the other is logged 'merged');
- the rest form new clusters of one or two records (new ids).

Reported: share of run-1 person ids still live after run 2, share of run-1 records whose person id
is unchanged, and the change feed counts. Uses jobs.golden.ids.assign_person_ids on local Spark.

    .venv/bin/python bench/golden_id_stability.py --records 100000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def synthetic_clusters(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """(record_key, cluster) with cluster sizes 1-4 (weights 40/30/20/10%)."""
    sizes = rng.choice([1, 2, 3, 4], size=n, p=[0.4, 0.3, 0.2, 0.1])
    cluster = np.repeat(np.arange(len(sizes)), sizes)[:n]
    keys = [f"k{i:09d}" for i in rng.permutation(n)]  # keys unrelated to cluster order
    return pd.DataFrame({"record_key": keys, "cluster": cluster})


def second_batch(first: pd.DataFrame, share: float, join: float, bridge: float, rng: np.random.Generator) -> pd.DataFrame:
    n_new = int(len(first) * share)
    n_join, n_bridge = int(n_new * join), int(n_new * bridge)
    n_fresh = n_new - n_join - n_bridge
    n_clusters = int(first["cluster"].max()) + 1
    keys = [f"n{i:09d}" for i in range(n_new)]
    parent = np.arange(n_clusters + n_fresh)  # union-find over clusters (bridges merge two)
    rows = []
    joined = rng.integers(0, n_clusters, size=n_join)
    rows += [(keys[i], int(c)) for i, c in enumerate(joined)]
    pairs = rng.integers(0, n_clusters, size=(n_bridge, 2))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for j, (a, b) in enumerate(pairs):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
        rows.append((keys[n_join + j], int(a)))
    fresh = n_clusters + rng.integers(0, max(n_fresh // 2, 1), size=n_fresh)  # singletons and pairs
    rows += [(keys[n_join + n_bridge + j], int(c)) for j, c in enumerate(fresh)]
    both = pd.concat([first, pd.DataFrame(rows, columns=["record_key", "cluster"])], ignore_index=True)
    both["cluster"] = [find(int(c)) for c in both["cluster"]]
    return both


def to_clusters(spark, df: pd.DataFrame):  # noqa: ANN001, ANN201
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    sdf = spark.createDataFrame(df.astype({"cluster": "int64"}))
    w = Window.partitionBy("cluster")
    return sdf.select("record_key", F.min("record_key").over(w).alias("cluster_id"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--share", type=float, default=0.10, help="new records in run 2, as a share of run 1")
    ap.add_argument("--join", type=float, default=0.40, help="share of new records joining one cluster")
    ap.add_argument("--bridge", type=float, default=0.10, help="share of new records merging two clusters")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from pyspark.sql import functions as F

    from jobs.common.spark import build_local_session
    from jobs.golden.ids import assign_person_ids

    rng = np.random.default_rng(args.seed)
    first = synthetic_clusters(args.records, rng)
    second = second_batch(first, args.share, args.join, args.bridge, rng)
    tmp = tempfile.mkdtemp(prefix="golden-bench-")
    spark = build_local_session("golden-id-bench", "local[2]", 4, os.path.join(tmp, "ck"), os.path.join(tmp, "wh"))
    t0 = time.monotonic()
    now = datetime.now(timezone.utc)
    map1, _ = assign_person_ids(to_clusters(spark, first), None, "golden-20260101T000000-run1", now, epoch=0)
    map1 = map1.localCheckpoint()
    map2, changes = assign_person_ids(to_clusters(spark, second), map1, "golden-20260102T000000-run2", now, epoch=1)
    map2, changes = map2.localCheckpoint(), changes.localCheckpoint()
    ids1 = map1.select("person_id").distinct()
    ids2 = map2.select("person_id").distinct()
    n_ids1 = ids1.count()
    kept_ids = ids1.join(ids2, "person_id", "left_semi").count()
    same = (
        map1.alias("a").join(map2.alias("b"), "record_key")
        .where(F.col("a.person_id") == F.col("b.person_id")).count()
    )
    counts = {r["change"]: r["count"] for r in changes.groupBy("change").count().collect()}
    result = {
        "records_run1": len(first),
        "records_run2": len(second),
        "persons_run1": n_ids1,
        "persons_run2": ids2.count(),
        "person_ids_kept_share": round(kept_ids / n_ids1, 4),
        "records_same_person_id_share": round(same / len(first), 4),
        "changes": counts,
        "seconds": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(result, indent=2, sort_keys=True))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
