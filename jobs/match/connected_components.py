"""Connected components of the accepted edges: record_key -> cluster_id (smallest key of its component).

Three engines give identical labels (ARCHITECTURE.md, Engines):

- ``scipy``: small graphs are solved on the driver. Keys are hashed to 64-bit integers in Spark
  (``xxhash64``), the distinct keys with their hashes and the two integer edge columns are collected
  as Arrow, mapped to dense ids with numpy and solved with ``scipy.sparse.csgraph.connected_components``.
- ``star``: the distributed large-star/small-star algorithm of Kiveris, Lattanzi, Mirrokni, Rastogi and
  Vassilvitskii, "Connected Components in MapReduce and Beyond" (SoCC 2014), on DataFrames only (no RDD
  APIs, so Spark Connect keeps working). Rounds run on 64-bit hashes of the keys; the plan is cut with a
  checkpoint every ``checkpoint_every`` rounds (2 by default: each round reads its input once, so the
  uncut rounds are not computed twice, and a cut costs more than the round it saves; see
  ``ClusteringConfig.checkpoint_every`` for the measurement), and components that have become finished
  stars are set aside so later rounds only touch the rest.
- ``graphframes``: GraphFrames' own implementation, when its jar is on the classpath.

``auto`` takes scipy while the edge count is at most ``driver_edge_limit``, else star.
Whatever the engine, the label is the smallest record key of the component, so runs are deterministic.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs.common.errors import ConfigError, DataError, require_columns
from jobs.common.schemas import TMP
from jobs.common.spark import GRAPHFRAMES_CLASS, checkpoint_dir_of, class_loadable, is_connect
from jobs.match.config import ClusteringConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

CLUSTER_SCHEMA = StructType([StructField("record_key", StringType(), True), StructField("cluster_id", StringType(), True)])

_ID = f"{TMP}id"
_SRC = f"{TMP}src"
_DST = f"{TMP}dst"
_MIN = f"{TMP}min"
_N = f"{TMP}n"
_DONE = f"{TMP}done"
# Salts tried in turn when two distinct keys share a 64-bit hash (practically never).
_SALTS = ("", "\x1fcc1", "\x1fcc2", "\x1fcc3")


def connected_components(edges: DataFrame, nodes: DataFrame, cfg: ClusteringConfig, spark: "SparkSession") -> DataFrame:
    """Every record of ``nodes`` and every edge endpoint -> ``cluster_id``, the smallest key of its component.

    ``edges`` needs ``record_key_l`` and ``record_key_r`` (other columns are ignored; self-loops,
    duplicates and reversed duplicates are harmless); ``nodes`` needs ``record_key``.
    """
    require_columns(["record_key_l", "record_key_r"], edges.columns, "connected_components: edges")
    require_columns(["record_key"], nodes.columns, "connected_components: nodes")
    pairs = edges.select(F.col("record_key_l").alias(_SRC), F.col("record_key_r").alias(_DST)).where(
        F.col(_SRC).isNotNull() & F.col(_DST).isNotNull()
    )
    keys = (
        nodes.select(F.col("record_key"))
        .unionByName(pairs.select(F.col(_SRC).alias("record_key")))
        .unionByName(pairs.select(F.col(_DST).alias("record_key")))
        .where(F.col("record_key").isNotNull())
        .distinct()
    )
    engine = cfg.engine
    if engine == "auto":
        n_edges = pairs.count()
        engine = "scipy" if n_edges <= cfg.driver_edge_limit else "star"
        log.info("connected components: %d edges, engine %s (driver_edge_limit %d)", n_edges, engine, cfg.driver_edge_limit)
    if engine == "scipy":
        return _scipy_components(pairs, keys, cfg, spark)
    if engine == "star":
        return _star_components(pairs, keys, cfg)
    if engine == "graphframes":
        return _graphframes_components(pairs, keys, cfg, spark)
    raise ConfigError(f"match.clustering.engine: got {engine!r}; expected auto, scipy, star or graphframes")


# --- hashing keys to integers ----------------------------------------------------------------


def _hash(c: str, salt: str) -> F.Column:
    return F.xxhash64(F.concat(F.col(c), F.lit(salt))) if salt else F.xxhash64(F.col(c))


def _collision_free_salt(keys: DataFrame) -> str:
    """A salt under which no two distinct keys share a hash (checked, never assumed)."""
    for salt in _SALTS:
        clash = keys.groupBy(_hash("record_key", salt).alias(_ID)).count().where(F.col("count") > 1)
        if clash.isEmpty():
            return salt
        log.warning("connected components: 64-bit hash collision among record keys; trying another salt")
    raise DataError(f"connected_components: record keys collide under {len(_SALTS)} different 64-bit hashes; expected unique hashes")


# --- scipy on the driver ---------------------------------------------------------------------


def _scipy_components(pairs: DataFrame, keys: DataFrame, cfg: ClusteringConfig, spark: "SparkSession") -> DataFrame:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as csgraph_components

    t0 = time.monotonic()
    key_table = keys.select("record_key", F.xxhash64("record_key").alias(_ID)).toArrow()
    key_table = key_table.sort_by([("record_key", "ascending")])
    hashes = key_table.column(_ID).to_numpy()
    order = np.argsort(hashes, kind="stable")
    sorted_hashes = hashes[order]
    if len(sorted_hashes) > 1 and bool(np.any(sorted_hashes[1:] == sorted_hashes[:-1])):
        # Two distinct keys share a hash: fall back to the (slower, exact) distributed engine.
        log.warning("connected components: 64-bit hash collision among record keys; using the star engine")
        return _star_components(pairs, keys, cfg)
    if len(hashes) == 0:
        return spark.createDataFrame([], CLUSTER_SCHEMA)
    edge_table = pairs.select(F.xxhash64(_SRC).alias(_SRC), F.xxhash64(_DST).alias(_DST)).toArrow()
    n = len(hashes)
    # dense id = position of the key in sorted key order, so the smallest id is the smallest key
    src = order[np.searchsorted(sorted_hashes, edge_table.column(_SRC).to_numpy())]
    dst = order[np.searchsorted(sorted_hashes, edge_table.column(_DST).to_numpy())]
    t1 = time.monotonic()
    graph = coo_matrix((np.ones(len(src), dtype=np.int32), (src, dst)), shape=(n, n)).tocsr()
    _, labels = csgraph_components(graph, directed=False)
    # first occurrence of a label in key order is the component's smallest key
    _, first = np.unique(labels, return_index=True)
    root = first[labels]
    names = key_table.column("record_key")
    result = pa.table({"record_key": names, "cluster_id": names.take(pa.array(root))})
    t2 = time.monotonic()
    log.info(
        "connected components (scipy): %d nodes, %d edges, %d components; collect %.1fs, solve %.1fs",
        n,
        len(src),
        len(first),
        t1 - t0,
        t2 - t1,
    )
    return spark.createDataFrame(result, schema=CLUSTER_SCHEMA)


# --- large-star / small-star on DataFrames -------------------------------------------------


def _both_ways(pairs: list[tuple[str, str]]) -> F.Column:
    return F.explode(F.array(*[F.struct(F.col(x).alias(_SRC), F.col(y).alias(_DST)) for x, y in pairs]))


# Every step reads its input once (explode and windows instead of self-joins): the plan of a round
# grows linearly, not exponentially, between checkpoints.


def _large_star(e: DataFrame) -> DataFrame:
    """For each node u with neighbours N(u): link every neighbour v > u to m(u) = min(N(u) + u)."""
    sym = e.select(_both_ways([(_SRC, _DST), (_DST, _SRC)]).alias("x")).select("x.*")
    by_src = Window.partitionBy(_SRC)
    return (
        sym.withColumn(_MIN, F.least(F.min(_DST).over(by_src), F.col(_SRC)))
        .where(F.col(_DST) > F.col(_SRC))
        .select(F.col(_DST).alias(_SRC), F.col(_MIN).alias(_DST))
    )  # duplicates are removed by the small-star step that follows


def _small_star(e: DataFrame) -> DataFrame:
    """Edges as (larger, smaller). For each node u: link u and its smaller neighbours to their minimum."""
    by_src = Window.partitionBy(_SRC)
    return (
        e.withColumn(_MIN, F.min(_DST).over(by_src))
        .select(_both_ways([(_DST, _MIN), (_SRC, _MIN)]).alias("x"))
        .select("x.*")
        .where(F.col(_SRC) != F.col(_DST))
        .distinct()
    )


def _mark_done(e: DataFrame) -> DataFrame:
    """Flag the edges of finished stars, which large-star and small-star leave unchanged.

    A star centred on c is a whole component when c is no edge's source and every leaf pointing to c
    has no other edge (one target, no edge pointing to it). Such components are set aside.
    """
    role, node, other = f"{TMP}role", f"{TMP}node", f"{TMP}other"
    rows = e.select(
        F.explode(
            F.array(
                F.struct(F.lit("out").alias(role), F.col(_SRC).alias(node), F.col(_DST).alias(other)),
                F.struct(F.lit("in").alias(role), F.col(_DST).alias(node), F.col(_SRC).alias(other)),
            )
        ).alias("x")
    ).select("x.*")
    by_node = Window.partitionBy(node)
    out_deg = F.sum(F.when(F.col(role) == "out", 1).otherwise(0)).over(by_node)
    in_deg = F.sum(F.when(F.col(role) == "in", 1).otherwise(0)).over(by_node)
    # 'out' rows judge their leaf (one target, no incoming edge), 'in' rows their centre (no target)
    ok = F.when(F.col(role) == "out", (out_deg == 1) & (in_deg == 0)).otherwise(out_deg == 0)
    centre = F.when(F.col(role) == "out", F.col(other)).otherwise(F.col(node))
    by_centre = Window.partitionBy(_MIN)
    return (
        rows.select(F.col(role), F.col(node), F.col(other), ok.alias(_N), centre.alias(_MIN))
        .withColumn(_DONE, F.min(F.col(_N).cast("int")).over(by_centre) == 1)
        .where(F.col(role) == "out")
        .select(F.col(node).alias(_SRC), F.col(other).alias(_DST), F.col(_DONE))
    )


def _cut(df: DataFrame, cfg: ClusteringConfig) -> DataFrame:
    return df.checkpoint(eager=True) if cfg.checkpoint == "reliable" else df.localCheckpoint(eager=True)


def _star_components(pairs: DataFrame, keys: DataFrame, cfg: ClusteringConfig) -> DataFrame:
    t0 = time.monotonic()
    salt = _collision_free_salt(keys)
    ids = keys.select(F.col("record_key"), _hash("record_key", salt).alias(_ID))
    e = pairs.select(_hash(_SRC, salt).alias("a"), _hash(_DST, salt).alias("b")).where(F.col("a") != F.col("b"))
    e = _cut(e.select(F.greatest("a", "b").alias(_SRC), F.least("a", "b").alias(_DST)).distinct(), cfg)
    finished: list[DataFrame] = []
    converged = False
    rounds = 0
    for rounds in range(1, cfg.max_iterations + 1):
        e = _small_star(_large_star(e))
        if rounds % cfg.checkpoint_every == 0 or rounds == cfg.max_iterations:
            marked = _cut(_mark_done(e), cfg)
            finished.append(marked.where(F.col(_DONE)).select(_SRC, _DST))
            e = marked.where(~F.col(_DONE)).select(_SRC, _DST)
            if e.isEmpty():
                converged = True
                break
            log.debug("connected components (star): round %d", rounds)
    if not converged:
        raise DataError(
            f"connected_components (star engine): not converged after {cfg.max_iterations} rounds "
            "(match.clustering.max_iterations); expected convergence: raise max_iterations or use engine scipy"
        )
    log.info("connected components (star): converged after %d rounds in %.1fs", rounds, time.monotonic() - t0)
    stars = finished[0]
    for part in finished[1:]:
        stars = stars.unionByName(part)
    # each node -> hash of its star's centre; centres and isolated nodes label themselves
    labelled = ids.join(stars, ids[_ID] == stars[_SRC], "left").select(
        F.col("record_key"), F.coalesce(F.col(_DST), F.col(_ID)).alias(_MIN)
    )
    roots = labelled.groupBy(_MIN).agg(F.min("record_key").alias("cluster_id"))
    return labelled.join(roots, _MIN).select(
        F.col("record_key").cast("string").alias("record_key"), F.col("cluster_id").cast("string").alias("cluster_id")
    )


# --- GraphFrames ---------------------------------------------------------------------------


def graphframes_options(cfg: ClusteringConfig, connect: bool, checkpoint_dir: str | None) -> dict[str, object]:
    """The arguments of GraphFrame.connectedComponents (graphframes-py 0.12) for ``cfg``, or why it cannot run.

    GraphFrames checkpoints its rounds like the star engine: ``match.clustering.checkpoint: local``
    (the default) uses local checkpoints (executor disks, no checkpoint dir needed);
    ``reliable`` checkpoints to the session's checkpoint dir, which the jobs set under the lake
    root when they start or join a session (jobs.common.spark.ensure_checkpoint_dir).
    """
    if connect:
        raise ConfigError(
            "match.clustering.engine: got 'graphframes' in a Spark Connect session; GraphFrames runs through the "
            "JVM of a classic session (spark-submit, a Databricks job cluster). Expected engine auto, scipy or star "
            "over Spark Connect"
        )
    local = cfg.checkpoint == "local"
    if not local and not checkpoint_dir:
        raise ConfigError(
            "match.clustering.checkpoint: got 'reliable' with engine 'graphframes', but the session has no "
            "checkpoint dir; expected checkpoint 'local', or a session with a checkpoint dir "
            "(SparkContext.setCheckpointDir)"
        )
    # broadcastThreshold -1: AQE handles skewed joins (GraphFrames' own recommendation)
    return {"checkpointInterval": cfg.checkpoint_every, "broadcastThreshold": -1, "use_local_checkpoints": local}


def _graphframes_components(pairs: DataFrame, keys: DataFrame, cfg: ClusteringConfig, spark: "SparkSession") -> DataFrame:
    connect = is_connect(spark)
    options = graphframes_options(cfg, connect, None if connect else checkpoint_dir_of(spark))
    if not class_loadable(spark, GRAPHFRAMES_CLASS):
        raise ConfigError(
            f"match.clustering.engine: got 'graphframes', but the GraphFrames jar is not on the classpath "
            f"({GRAPHFRAMES_CLASS} is not loadable in this session); expected engine auto, scipy or star, "
            "or the graphframes jar added through spark.jars"
        )
    try:
        from graphframes import GraphFrame
    except ImportError as exc:  # pragma: no cover - the jar without the Python package
        raise ConfigError(
            "match.clustering.engine: got 'graphframes', but the graphframes Python package is not installed; "
            "expected engine auto, scipy or star, or `pip install graphframes-py`"
        ) from exc
    vertices = keys.select(F.col("record_key").alias("id"))
    g_edges = pairs.select(F.col(_SRC).alias("src"), F.col(_DST).alias("dst")).where(F.col("src") != F.col("dst"))
    comps = GraphFrame(vertices, g_edges).connectedComponents(**options)
    roots = comps.groupBy("component").agg(F.min("id").alias("cluster_id"))
    return comps.join(roots, "component").select(
        F.col("id").cast("string").alias("record_key"), F.col("cluster_id").cast("string").alias("cluster_id")
    )
