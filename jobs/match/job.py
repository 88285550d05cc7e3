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
import time
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.errors import DataError
from jobs.common.runlog import record_run
from jobs.match import training
from jobs.match.blocking import analyse_blocking, block_members, format_analysis, generate_candidate_pairs, oversized_blocks
from jobs.match.comparisons import (
    TF_COMPARISON, TF_COUNT, TF_VALUE, frequencies_from_counts, prepare_records, term_counts,
)
from jobs.match.model import needed_columns, reweigh_pairs, score_levels, score_pairs

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


def _model(ctx: "Context", records: DataFrame, retrain: bool = False) -> tuple[Any, str, "training.TrainResult | None"]:
    """(model, version, the training result when this run trained the model).

    A run that trains scores every pair with the new version, so training keeps its candidates'
    levels for the scoring when its candidates are the scoring's (:func:`training.shares_candidates`),
    and logs its charts in the background (the run waits for them before it ends).
    """
    if retrain:
        log.info("retraining model %s: the new version scores this run", ctx.cfg.match.model.name)
    elif training.resolve_version(ctx) is None:
        log.info("no version of model %s is registered: training one first", ctx.cfg.match.model.name)
    else:
        model, version = training.load_model(ctx)
        return model, version, None
    result = training.train(ctx, records, keep_levels=training.shares_candidates(ctx.cfg.match), defer_charts=True)
    return result.model, result.version, result


_NO_PAIRS = object()


def _pairs_version(ctx: "Context") -> Any:
    """Model version of the stored pairs (all share one: a new version rescores every pair);
    None without a pairs table, ``_NO_PAIRS`` when it is empty (nothing to rescore)."""
    if not ctx.lake.exists(S.MATCH_PAIRS.address) or not ctx.lake.exists(S.MATCH_CLUSTERS.address):
        return None
    row = ctx.lake.read(S.MATCH_PAIRS.address).select("model_version").limit(1).collect()
    return row[0]["model_version"] if row else _NO_PAIRS


def _not_touching(pairs: DataFrame, keys: DataFrame) -> DataFrame:
    k = keys.select("record_key").distinct()
    return pairs.join(k.withColumnRenamed("record_key", "record_key_l"), "record_key_l", "left_anti").join(
        k.withColumnRenamed("record_key", "record_key_r"), "record_key_r", "left_anti"
    )


def run(ctx: "Context", incremental: bool = False, new_keys: DataFrame | None = None, retrain: bool = False) -> dict[str, Any]:
    """Score pairs, accept edges, cluster; returns the counts recorded in ops.runs.

    An incremental run gives the pairs a full run over the same records gives, scoring only what
    changed: pairs with a new or changed record (``new_keys``, default the records standardize
    just changed, else the records no run clustered yet) and pairs of records whose block crossed
    ``max_block_size`` (either way) are made and scored; every other stored pair is weighed again
    from its stored levels with today's term frequencies (:func:`~jobs.match.model.reweigh_pairs`:
    the model fixes the denominators, so only the counts a batch moves change a score). A model
    version other than the stored pairs' rescores every pair. Edges and clusters are then rebuilt
    from all pairs and identifiers (cheap, and exactly what a full run does).

    ``retrain``: train and register a new model version first and score with it (``cdp match
    --retrain``), in the same session. Person ids then persist through the golden rules and the
    id changes the new scores cause are logged there.
    """
    from jobs.match.connected_components import connected_components
    from jobs.match.deterministic import REASON_CONFLICT, identifier_edges
    from jobs.match.guard import apply_guard

    cfg = ctx.cfg.match
    lake = ctx.lake
    salt = ctx.cfg.privacy.salt
    with record_run(lake, "match", ctx.config_hash, ctx.parent_run_id) as r:
        comps = cfg.comparison_defs()
        records = prepare_records(_records(ctx), comps).localCheckpoint()
        n_records = records.count()
        r.rows_in = n_records
        r.stage("records read", n_records)
        identifiers = lake.read_or_empty(S.SILVER_IDENTIFIERS.address, S.SILVER_IDENTIFIERS.schema)
        events = lake.read(S.SILVER_EVENTS.address) if lake.exists(S.SILVER_EVENTS.address) else None
        t_model = time.monotonic()
        model, version, trained = _model(ctx, records, retrain)
        train_s = time.monotonic() - t_model if retrain else 0.0
        model.check_comparisons(comps)
        if model.tf_resolution != cfg.term_frequency_resolution:
            log.warning(
                "match: model version %s rounds term-frequency counts to %s bits, the config says %s: "
                "the model's value scores (retrain to use the config's)", version, model.tf_resolution,
                cfg.term_frequency_resolution,
            )
        counts = term_counts(records, comps)
        counts = counts.localCheckpoint() if counts is not None else None
        tf = (
            frequencies_from_counts(counts, model.tf_totals, model.tf_resolution).localCheckpoint()
            if counts is not None else None
        )
        oversized = oversized_blocks(records, cfg, salt).localCheckpoint()

        merge = False
        if incremental:
            stored = _pairs_version(ctx)
            if stored is None:
                log.info("incremental match: no pairs stored yet, scoring every pair")
            elif stored is not _NO_PAIRS and stored != version:
                log.info("incremental match: model version %s differs from the stored pairs' %s: rescoring every pair", version, stored)
            elif counts is not None and any(t is None for t in model.tf_totals.values()):
                log.info("incremental match: the model has no fixed term-frequency denominators: rescoring every pair")
            else:
                merge = True
        if merge and new_keys is None:
            new_keys = ctx.state.get("changed_record_keys")
        if merge and new_keys is None:
            new_keys = _new_keys(ctx, records)
        if merge and new_keys is None:
            merge = False

        summary_inc: dict[str, Any] = {}
        untouched: DataFrame | None = None  # the stored pairs of no regenerated record, when merging
        if merge and new_keys is not None:
            previous_blocks = lake.read_or_empty(S.MATCH_SKIPPED_BLOCKS.address, S.MATCH_SKIPPED_BLOCKS.schema)
            now_b = oversized.select("blocking_rule", "key_hash")
            before_b = previous_blocks.select("blocking_rule", "key_hash")
            crossed = now_b.subtract(before_b).unionByName(before_b.subtract(now_b))  # crossed the limit either way
            regen = new_keys.select("record_key").unionByName(block_members(records, cfg, crossed, salt)).distinct().localCheckpoint()
            stored_pairs = lake.read(S.MATCH_PAIRS.address)
            untouched = _not_touching(stored_pairs, regen)
            to_score = generate_candidate_pairs(records, cfg, regen, carry=needed_columns(comps)).select(
                "record_key_l", "record_key_r", "blocking_rule"
            )
            summary_inc = {"regenerated_records": regen.count()}
        if trained is not None and trained.levels is not None and not merge:
            # training's candidates are this run's: score their levels, computed once
            log.info("match: scoring the levels training computed for the same candidate pairs")
            scored = score_levels(trained.levels, model, comps, tf)
        else:
            if not merge:
                to_score = generate_candidate_pairs(records, cfg, None, carry=needed_columns(comps))
            scored = score_pairs(to_score, model, records, comps, tf)
        scored = scored.select(
            *[c for c in S.MATCH_PAIRS.column_names if c not in ("model_version", "run_id")],
            F.lit(version).alias("model_version"),
            F.lit(r.run_id).alias("run_id"),
        )
        scored = scored.localCheckpoint()
        n_pairs = scored.count()
        r.stage("pairs scored", n_pairs)
        if untouched is not None:
            # One rewrite of the stored pairs: those of no regenerated record, weighed again with
            # today's term frequencies from their stored levels, then the new candidates' (at
            # 1,000,000 persons: 25 million kept, 1.2 million scored). The candidates all have a
            # regenerated record, so the two parts do not overlap.
            kept = reweigh_pairs(untouched, model, records, comps, tf, r.run_id)
            lake.overwrite(S.MATCH_PAIRS.address, kept.unionByName(scored.select(*kept.columns)))
            all_pairs = lake.read(S.MATCH_PAIRS.address)
            summary_inc["rescored_pairs"] = all_pairs.where(F.col("run_id") == F.lit(r.run_id)).count() - n_pairs
        else:
            lake.overwrite(S.MATCH_PAIRS.address, scored)
            all_pairs = scored
        if counts is not None:
            lake.overwrite(
                S.MATCH_TERM_COUNTS.address,
                counts.select(
                    F.col(TF_COMPARISON).alias("comparison"), F.col(TF_VALUE).alias("value"),
                    F.col(TF_COUNT).cast("long").alias("n"), F.lit(r.run_id).alias("run_id"),
                ),
            )
        lake.overwrite(S.MATCH_SKIPPED_BLOCKS.address, oversized.withColumn("run_id", F.lit(r.run_id)))
        det_edges, det_report = identifier_edges(identifiers, events, cfg.deterministic, r.run_id, records)
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
        skipped = {row["blocking_rule"]: int(row["n"]) for row in oversized.groupBy("blocking_rule").agg(F.count(F.lit(1)).alias("n")).collect()}
        summary: dict[str, Any] = {
            "records": n_records,
            "pairs": n_pairs,
            "edges": sum(edge_counts.values()),
            **{f"edges_{k.replace(':', '_')}": v for k, v in sorted(edge_counts.items())},
            "clusters": int(stats["c"]),
            "model_version": version,
            "skipped_blocks": sum(skipped.values()),
            **{f"skipped_blocks_{k}": v for k, v in sorted(skipped.items())},
            "generic_identifier_values": sum(int(x.get("values", 0)) for x in det_report if x["reason"] != REASON_CONFLICT),
            "conflicting_identifier_values": sum(int(x.get("values", 0)) for x in det_report if x["reason"] == REASON_CONFLICT),
            "guard_splits": sum(1 for x in guard_report if int(x.get("parts", 1)) > 1),
            "incremental": bool(merge),
            **summary_inc,
            **({"train_seconds": round(train_s, 2)} if retrain else {}),
        }
        if trained is not None:
            trained.finish()  # the model's charts, logged while this run scored
        for k, v in summary.items():
            r.metric(k, v)
    return summary
