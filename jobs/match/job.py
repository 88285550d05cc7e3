"""Match job: silver.records -> match.pairs, match.edges, match.clusters (and model training).

``train``: fit the Fellegi-Sunter model as an MLflow run and register a version (training.py).
``analyse``: per blocking rule, how many pairs it makes and which blocks it skips (counts only).
``run``: score the candidate pairs with the registered model the config names (trained first when
none is registered), accept pairs at or above ``threshold_probability`` plus the deterministic
identifier links as edges, take connected components and apply the over-merge guard.
Incremental runs score only pairs with a new record (new x existing and new x new), merge them
into match.pairs, and rebuild edges and clusters from the whole pairs table.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.errors import DataError
from jobs.common.runlog import record_run
from jobs.match import training
from jobs.match.blocking import analyse_blocking, format_analysis, generate_candidate_pairs
from jobs.match.comparisons import term_frequencies
from jobs.match.model import needed_columns, score_pairs

if TYPE_CHECKING:
    from jobs.common.context import Context

log = logging.getLogger(__name__)

EDGE_PROBABILISTIC = "probabilistic"


def _records(ctx: "Context") -> DataFrame:
    if not ctx.lake.exists(S.SILVER_RECORDS.address):
        raise DataError(f"match: table {S.SILVER_RECORDS.address} does not exist; run standardize first")
    return ctx.lake.read(S.SILVER_RECORDS.address)


def train(ctx: "Context") -> dict[str, Any]:
    """Train and register a model version; returns its metrics (counts and parameters only)."""
    with record_run(ctx.lake, "match.train", ctx.config_hash, ctx.parent_run_id) as r:
        result = training.train(ctx, _records(ctx))
        for k in ("records", "candidate_pairs", "em_iterations", "prior", "model_version"):
            r.metric(k, result.metrics.get(k))
        r.metric("mlflow_run_id", result.run_id)
        r.rows_in = int(result.metrics.get("records", 0))
    return {**result.metrics, "mlflow_run_id": result.run_id}


def analyse(ctx: "Context") -> dict[str, Any]:
    """analyse_blocking on silver.records, as rows and as a printable table."""
    rows = analyse_blocking(_records(ctx), ctx.cfg.match)
    table = format_analysis(rows)
    log.info("blocking analysis:\n%s", table)
    return {"rules": rows, "table": table}


def probabilistic_edges(pairs: DataFrame, threshold: float, run_id: str) -> DataFrame:
    """Scored pairs at or above the threshold, as MATCH_EDGES rows."""
    return pairs.where(F.col("match_probability") >= F.lit(threshold)).select(
        "record_key_l",
        "record_key_r",
        F.lit(EDGE_PROBABILISTIC).alias("edge_type"),
        F.col("match_weight").cast("double"),
        F.col("match_probability").cast("double"),
        F.lit(run_id).alias("run_id"),
    )


def _new_keys(ctx: "Context", records: DataFrame) -> DataFrame | None:
    """Records no earlier run clustered (None when there is no earlier run: a full run)."""
    if not ctx.lake.exists(S.MATCH_CLUSTERS.address) or not ctx.lake.exists(S.MATCH_PAIRS.address):
        return None
    seen = ctx.lake.read(S.MATCH_CLUSTERS.address).select("record_key")
    return records.select("record_key").join(seen, "record_key", "left_anti")


def _model(ctx: "Context", records: DataFrame) -> tuple[Any, str]:
    if training.resolve_version(ctx) is None:
        log.info("no version of model %s is registered: training one first", ctx.cfg.match.model.name)
        result = training.train(ctx, records)
        return result.model, result.version
    return training.load_model(ctx)


def run(ctx: "Context", incremental: bool = False, new_keys: DataFrame | None = None) -> dict[str, Any]:
    """Score pairs, accept edges, cluster; returns the counts recorded in ops.runs."""
    from jobs.match.connected_components import connected_components
    from jobs.match.deterministic import identifier_edges
    from jobs.match.guard import apply_guard

    cfg = ctx.cfg.match
    lake = ctx.lake
    with record_run(lake, "match", ctx.config_hash, ctx.parent_run_id) as r:
        records = _records(ctx).localCheckpoint()
        n_records = records.count()
        r.rows_in = n_records
        r.stage("records read", n_records)
        identifiers = lake.read_or_empty(S.SILVER_IDENTIFIERS.address, S.SILVER_IDENTIFIERS.schema)
        events = lake.read(S.SILVER_EVENTS.address) if lake.exists(S.SILVER_EVENTS.address) else None
        model, version = _model(ctx, records)
        comps = cfg.comparison_defs()
        model.check_comparisons(comps)
        if incremental and new_keys is None:
            new_keys = ctx.state.get("changed_record_keys")
        if incremental and new_keys is None:
            new_keys = _new_keys(ctx, records)
        merge = incremental and new_keys is not None and lake.exists(S.MATCH_PAIRS.address)
        candidates = generate_candidate_pairs(records, cfg, new_keys if merge else None, carry=needed_columns(comps))
        tf = term_frequencies(records, comps)
        tf = tf.localCheckpoint() if tf is not None else None  # joined once per adjusted comparison
        scored = score_pairs(candidates, model, records, comps, tf).select(
            *[c for c in S.MATCH_PAIRS.column_names if c not in ("model_version", "run_id")],
            F.lit(version).alias("model_version"),
            F.lit(r.run_id).alias("run_id"),
        )
        scored = scored.localCheckpoint()
        n_pairs = scored.count()
        r.stage("pairs scored", n_pairs)
        if merge:
            # A changed record's old pairs may no longer block together: drop them, then add the new scores.
            lake.delete_keys(S.MATCH_PAIRS.address, "record_key_l", new_keys.withColumnRenamed("record_key", "record_key_l"))
            lake.delete_keys(S.MATCH_PAIRS.address, "record_key_r", new_keys.withColumnRenamed("record_key", "record_key_r"))
            lake.merge(S.MATCH_PAIRS.address, scored, list(S.MATCH_PAIRS.key))
            all_pairs = lake.read(S.MATCH_PAIRS.address)
        else:
            lake.overwrite(S.MATCH_PAIRS.address, scored)
            all_pairs = scored
        det_edges, det_report = identifier_edges(identifiers, events, cfg.deterministic, r.run_id)
        edges = (
            probabilistic_edges(all_pairs, cfg.threshold_probability, r.run_id)
            .unionByName(det_edges.select(*S.MATCH_EDGES.column_names))
            .localCheckpoint()
        )
        lake.overwrite(S.MATCH_EDGES.address, edges)
        edge_counts = {row["edge_type"]: int(row["n"]) for row in edges.groupBy("edge_type").agg(F.count(F.lit(1)).alias("n")).collect()}
        r.stage("edges accepted", sum(edge_counts.values()))
        nodes = records.select("record_key")
        clusters = connected_components(
            edges.select("record_key_l", "record_key_r"), nodes, cfg.clustering, ctx.spark
        )
        guarded, guard_report = apply_guard(clusters, edges, cfg.guard, cfg.threshold_probability)
        out = guarded.select(
            *[c for c in S.MATCH_CLUSTERS.column_names if c != "run_id"], F.lit(r.run_id).alias("run_id")
        ).localCheckpoint()
        lake.overwrite(S.MATCH_CLUSTERS.address, out)
        stats = out.agg(F.count(F.lit(1)).alias("n"), F.countDistinct("cluster_id").alias("c")).collect()[0]
        r.rows_out = int(stats["n"])
        r.stage("clusters written", int(stats["n"]))
        skipped = _skipped_blocks(records, cfg)
        summary: dict[str, Any] = {
            "records": n_records,
            "pairs": n_pairs,
            "edges": sum(edge_counts.values()),
            **{f"edges_{k.replace(':', '_')}": v for k, v in sorted(edge_counts.items())},
            "clusters": int(stats["c"]),
            "model_version": version,
            "skipped_blocks": skipped,
            "generic_identifier_values": sum(int(x.get("values", 0)) for x in det_report),
            "guard_splits": sum(1 for x in guard_report if int(x.get("parts", 1)) > 1),
            "incremental": bool(merge),
        }
        for k, v in summary.items():
            r.metric(k, v)
    return summary


def _skipped_blocks(records: DataFrame, cfg: Any) -> int:
    """Blocks larger than max_block_size over all rules (counts only)."""
    from jobs.match.blocking import _key_col, rule_key

    keyed = records.select(*[rule_key(rule).alias(_key_col(i)) for i, rule in enumerate(cfg.blocking_rules)])
    total = 0
    parts = [
        keyed.where(F.col(_key_col(i)).isNotNull()).groupBy(_key_col(i)).count().where(F.col("count") > cfg.max_block_size)
        .select(F.lit(i).alias("rule"))
        for i in range(len(cfg.blocking_rules))
    ]
    df = parts[0]
    for p in parts[1:]:
        df = df.unionByName(p)
    total = df.count()
    return int(total)
