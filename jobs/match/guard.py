"""Over-merge guard: split clusters that are too large or hang on one weak link.

Transitive closure is where entity resolution goes wrong: one false link between two people merges
everything either of them is linked to. Two signals are checked:

- size: a cluster with more than ``max_cluster_size`` records is re-clustered with the strong edges
  only (identifier links and probabilistic edges at or above ``strict_threshold_probability``).
- bridge: a cluster held together by a weak edge (probabilistic, below the strict threshold) that is
  a bridge in the graph-theory sense, with at least ``bridge_min_side`` records on each side, loses
  that edge (every such bridge of the cluster); its other edges stay.

Only suspicious clusters go to the driver (at most ``max_inspected_edges`` edges) and are solved
there with networkx (``networkx.bridges``, Tarjan's linear-time bridge finding). Untouched clusters keep
their id and get ``guard`` null; split parts are labelled with their smallest record key and
``guard`` 'size:<n>' (n = the size before) or 'bridge'. Same input, same output.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import networkx as nx
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs.common.errors import DataError, require_columns
from jobs.common.schemas import TMP
from jobs.match.config import GuardConfig

log = logging.getLogger(__name__)

DETERMINISTIC_PREFIX = "identifier:"
REASON_SIZE = "size"
REASON_BRIDGE = "bridge"

_SIZE = f"{TMP}size"
_STRONG = f"{TMP}strong"
_WEAK = f"{TMP}weak"
_NEW = f"{TMP}new_cluster"
_GUARD = f"{TMP}guard"

_OVERRIDE_SCHEMA = StructType(
    [
        StructField("record_key", StringType()),
        StructField(_NEW, StringType()),
        StructField(_GUARD, StringType()),
    ]
)


def _finish(clusters: DataFrame) -> DataFrame:
    """(record_key, cluster_id, guard) -> + cluster_size, in the output column order."""
    size = F.count(F.lit(1)).over(Window.partitionBy("cluster_id")).cast("long")
    return clusters.select(
        F.col("record_key").cast("string").alias("record_key"),
        F.col("cluster_id").cast("string").alias("cluster_id"),
        size.alias("cluster_size"),
        F.col("guard").cast("string").alias("guard"),
    )


def _split(
    cluster_id: str, records: list[str], links: dict[tuple[str, str], bool], reason: str, cfg: GuardConfig
) -> tuple[dict[str, str], int]:
    """One suspicious cluster -> (record -> new cluster id, number of parts)."""
    g = nx.Graph()
    g.add_nodes_from(sorted(records))
    if reason == REASON_SIZE:
        g.add_edges_from(sorted(pair for pair, strong in links.items() if strong))
    else:
        g.add_edges_from(sorted(links))
        cut = []
        for u, v in nx.bridges(g):
            pair = (u, v) if u < v else (v, u)
            if links.get(pair, True):
                continue  # a strong bridge holds
            g.remove_edge(u, v)
            side = len(nx.node_connected_component(g, u))
            g.add_edge(u, v)
            if min(side, g.number_of_nodes() - side) >= cfg.bridge_min_side:
                cut.append(pair)
        g.remove_edges_from(cut)
    parts = [sorted(c) for c in nx.connected_components(g)]
    mapping = {k: part[0] for part in parts for k in part}
    return mapping, len(parts)


def apply_guard(
    clusters: DataFrame, edges: DataFrame, cfg: GuardConfig, threshold: float
) -> tuple[DataFrame, list[dict]]:
    """(record_key, cluster_id) + MATCH_EDGES -> (record_key, cluster_id, cluster_size, guard), report.

    ``threshold`` is the acceptance threshold: probabilistic edges below it are not links. Report rows:
    ``{cluster_id_before, size_before, reason, parts}`` for every inspected cluster that was split, and
    for clusters over the size limit that strong edges still hold together (``parts`` 1).
    """
    require_columns(["record_key", "cluster_id"], clusters.columns, "apply_guard: clusters")
    require_columns(
        ["record_key_l", "record_key_r", "edge_type", "match_probability"], edges.columns, "apply_guard: edges"
    )
    base = clusters.select("record_key", "cluster_id")
    if not cfg.enabled:
        return _finish(base.withColumn("guard", F.lit(None).cast("string"))), []

    deterministic = F.col("edge_type").startswith(DETERMINISTIC_PREFIX)
    links = (
        edges.where(F.col("record_key_l") != F.col("record_key_r"))
        .where(deterministic | (F.col("match_probability") >= threshold))
        .select(
            F.least("record_key_l", "record_key_r").alias("l"),
            F.greatest("record_key_l", "record_key_r").alias("r"),
            (deterministic | (F.col("match_probability") >= cfg.strict_threshold_probability)).alias(_STRONG),
        )
        .groupBy("l", "r")
        .agg(F.max(F.col(_STRONG).cast("int")).alias(_STRONG))  # a pair is strong when any of its edges is
        .join(base.withColumnRenamed("record_key", "l"), "l")
    )
    sizes = base.groupBy("cluster_id").agg(F.count(F.lit(1)).alias(_SIZE))
    weak = links.groupBy("cluster_id").agg(F.min(_STRONG).alias(_WEAK))
    suspicious = sizes.join(weak, "cluster_id", "left").where(
        (F.col(_SIZE) > cfg.max_cluster_size)
        | (
            F.lit(cfg.bridge_detection)
            & (F.col(_WEAK) == 0)
            & (F.col(_SIZE) >= 2 * cfg.bridge_min_side)
        )
    )
    # computed once: usually empty, and else read twice below
    suspicious = suspicious.select("cluster_id", _SIZE).localCheckpoint()
    if suspicious.isEmpty():
        return _finish(base.withColumn("guard", F.lit(None).cast("string"))), []
    inspected = (
        links.join(suspicious, "cluster_id")
        .select("cluster_id", _SIZE, "l", "r", _STRONG)
        .limit(cfg.max_inspected_edges + 1)
        .toArrow()
    )
    if inspected.num_rows > cfg.max_inspected_edges:
        raise DataError(
            f"apply_guard: suspicious clusters have more than {cfg.max_inspected_edges} edges "
            "(match.guard.max_inspected_edges); expected at most that many on the driver: raise the limit, "
            "lower match.guard.max_cluster_size or raise match.threshold_probability"
        )
    members = base.join(suspicious.select("cluster_id"), "cluster_id").select("cluster_id", "record_key").toArrow()

    records: dict[str, list[str]] = defaultdict(list)
    for cid, key in zip(members.column("cluster_id").to_pylist(), members.column("record_key").to_pylist()):
        records[cid].append(key)
    cluster_links: dict[str, dict[tuple[str, str], bool]] = defaultdict(dict)
    for cid, l, r, strong in zip(*(inspected.column(c).to_pylist() for c in ("cluster_id", "l", "r", _STRONG))):
        cluster_links[cid][(l, r)] = bool(strong)

    overrides: list[tuple[str, str, str]] = []
    report: list[dict] = []
    for cid in sorted(records):
        size = len(records[cid])
        reason = REASON_SIZE if size > cfg.max_cluster_size else REASON_BRIDGE
        mapping, parts = _split(cid, records[cid], cluster_links.get(cid, {}), reason, cfg)
        if parts == 1 and reason == REASON_BRIDGE:
            continue
        report.append({"cluster_id_before": cid, "size_before": size, "reason": reason, "parts": parts})
        if parts > 1:
            label = f"{REASON_SIZE}:{size}" if reason == REASON_SIZE else REASON_BRIDGE
            overrides.extend((k, new, label) for k, new in sorted(mapping.items()))
    for row in report:
        outcome = f"split into {row['parts']} parts" if row["parts"] > 1 else "kept whole (no weak link to cut)"
        log.debug("over-merge guard: a cluster of %d records (%s): %s", row["size_before"], row["reason"], outcome)
    if report:
        by_reason = {r: sum(1 for row in report if row["reason"] == r) for r in (REASON_SIZE, REASON_BRIDGE)}
        log.info(
            "over-merge guard: %d suspicious clusters inspected, %d reported (%d over the size limit, "
            "%d held by a weak bridge), %d split into %d parts; the largest had %d records (each at DEBUG)",
            len(records),
            len(report),
            by_reason[REASON_SIZE],
            by_reason[REASON_BRIDGE],
            sum(1 for row in report if row["parts"] > 1),
            sum(row["parts"] for row in report if row["parts"] > 1),
            max(row["size_before"] for row in report),
        )

    if not overrides:
        return _finish(base.withColumn("guard", F.lit(None).cast("string"))), report
    spark = clusters.sparkSession
    changed = spark.createDataFrame(overrides, _OVERRIDE_SCHEMA)
    out = base.join(changed, "record_key", "left").select(
        F.col("record_key"),
        F.coalesce(F.col(_NEW), F.col("cluster_id")).alias("cluster_id"),
        F.col(_GUARD).alias("guard"),
    )
    return _finish(out), report
