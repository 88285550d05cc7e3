"""Connected components: scipy on the driver vs large-star/small-star on DataFrames.

    .venv/bin/python bench/cc_bench.py [--nodes 1000000] [--edges 1500000] [--star-nodes 100000] [--repeat 3]
    .venv/bin/python bench/cc_bench.py --checkpoint-every 1,2 [--star-nodes 200000 --star-edges 150000]

Random graph (seeded), record-key-like 16-character hex keys generated in Spark. Times include
the transfer to and from the driver and materialising the result (``count`` of a checkpointed
DataFrame). Prints one line per engine: median, all runs, component count. ``--checkpoint-every``
times only the star engine, once per value of ``match.clustering.checkpoint_every`` (on the random
graph and on a set of long chains, which need the most rounds), taking turns between the values.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common.spark import build_local_session
from jobs.match.config import ClusteringConfig
from jobs.match.connected_components import connected_components


def random_graph(spark: SparkSession, n_nodes: int, n_edges: int, seed: int) -> tuple[DataFrame, DataFrame]:
    def key(c: F.Column) -> F.Column:
        return F.substring(F.sha2(c.cast("string"), 256), 1, 16)

    nodes = spark.range(n_nodes).select(key(F.col("id")).alias("record_key"))
    edges = spark.range(n_edges).select(
        key((F.rand(seed) * n_nodes).cast("long")).alias("record_key_l"),
        key((F.rand(seed + 1) * n_nodes).cast("long")).alias("record_key_r"),
    )
    return nodes.localCheckpoint(), edges.localCheckpoint()


def chains(spark: SparkSession, n_chains: int, length: int) -> tuple[DataFrame, DataFrame]:
    """``n_chains`` paths of ``length`` nodes each, linked in an order unrelated to the keys."""
    def key(c: F.Column) -> F.Column:
        return F.substring(F.sha2(c.cast("string"), 256), 1, 16)

    ids = spark.range(n_chains * length)
    nodes = ids.select(key(F.col("id")).alias("record_key"))
    edges = ids.where(F.col("id") % length != length - 1).select(
        key(F.col("id")).alias("record_key_l"), key(F.col("id") + 1).alias("record_key_r")
    )
    return nodes.localCheckpoint(), edges.localCheckpoint()


def time_engine(
    spark: SparkSession, nodes: DataFrame, edges: DataFrame, engine: str, repeat: int, **cfg: object
) -> tuple[list[float], int]:
    runs, comps = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        out = connected_components(edges, nodes, ClusteringConfig(engine=engine, **cfg), spark).localCheckpoint()
        runs.append(time.perf_counter() - t)
        comps = out.select("cluster_id").distinct().count()
    return runs, comps


def compare_checkpoints(spark: SparkSession, graphs: dict[str, tuple[DataFrame, DataFrame]], values: list[int], repeat: int) -> None:
    """The star engine at each checkpoint_every, runs interleaved so machine load hits all alike."""
    for name, (nodes, edges) in graphs.items():
        runs: dict[int, list[float]] = {v: [] for v in values}
        comps: dict[int, int] = {}
        for _ in range(repeat):
            for v in values:
                r, comps[v] = time_engine(spark, nodes, edges, "star", 1, checkpoint_every=v)
                runs[v] += r
        for v in values:
            print(f"star checkpoint_every={v} on {name}: median {statistics.median(runs[v]):.2f}s "
                  f"runs {', '.join(f'{r:.2f}' for r in runs[v])} components {comps[v]}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1_000_000)
    ap.add_argument("--edges", type=int, default=1_500_000)
    ap.add_argument("--star-nodes", type=int, default=100_000)
    ap.add_argument("--star-edges", type=int, default=150_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--star-repeat", type=int, default=1)
    ap.add_argument("--driver-memory", default="3g")
    ap.add_argument("--checkpoint-every", default="", help="e.g. 1,2: compare the star engine's checkpoint_every")
    ap.add_argument("--chains", type=int, default=2_000, help="chains of --chain-length nodes (--checkpoint-every)")
    ap.add_argument("--chain-length", type=int, default=50)
    args = ap.parse_args()
    spark = build_local_session(
        app_name="cc-bench",
        shuffle_partitions=4,
        checkpoint_dir=tempfile.mkdtemp(prefix="cc-bench-"),
        driver_memory=args.driver_memory,
    )
    if args.checkpoint_every:
        values = [int(v) for v in args.checkpoint_every.split(",") if v]
        graphs = {
            f"random {args.star_nodes} nodes, {args.star_edges} edges": random_graph(spark, args.star_nodes, args.star_edges, 8),
            f"{args.chains} chains of {args.chain_length}": chains(spark, args.chains, args.chain_length),
        }
        compare_checkpoints(spark, graphs, values, args.star_repeat)
        spark.stop()
        return
    nodes, edges = random_graph(spark, args.nodes, args.edges, 7)
    runs, comps = time_engine(spark, nodes, edges, "scipy", args.repeat)
    print(f"scipy: {args.nodes} nodes, {args.edges} edges: median {statistics.median(runs):.2f}s runs "
          f"{', '.join(f'{r:.2f}' for r in runs)} components {comps}")
    nodes, edges = random_graph(spark, args.star_nodes, args.star_edges, 8)
    for engine in ("scipy", "star"):
        runs, comps = time_engine(spark, nodes, edges, engine, args.star_repeat)
        print(f"{engine}: {args.star_nodes} nodes, {args.star_edges} edges: median {statistics.median(runs):.2f}s "
              f"runs {', '.join(f'{r:.2f}' for r in runs)} components {comps}")
    spark.stop()


if __name__ == "__main__":
    main()
