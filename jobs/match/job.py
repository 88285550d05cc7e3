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

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.schemas import TMP
from jobs.common.errors import DataError
from jobs.common.runlog import record_run
from jobs.match import training
from jobs.match.blocking import analyse_blocking, block_members, format_analysis, generate_candidate_pairs, oversized_blocks
from jobs.match.comparisons import (
    TF_COMPARISON, TF_COUNT, TF_VALUE, count_step, frequencies_from_counts, prepare_records, term_counts,
)
from jobs.match.model import needed_columns, score_pairs

if TYPE_CHECKING:
    from jobs.common.context import Context

log = logging.getLogger(__name__)

EDGE_PROBABILISTIC = "probabilistic"
TF_COMPARISON_COL = "comparison"
TF_VALUE_COL = "value"


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


def _model(ctx: "Context", records: DataFrame, retrain: bool = False) -> tuple[Any, str]:
    if retrain:
        log.info("retraining model %s: the new version scores this run", ctx.cfg.match.model.name)
        result = training.train(ctx, records)
        return result.model, result.version
    if training.resolve_version(ctx) is None:
        log.info("no version of model %s is registered: training one first", ctx.cfg.match.model.name)
        result = training.train(ctx, records)
        return result.model, result.version
    return training.load_model(ctx)


_NO_PAIRS = object()


def _pairs_version(ctx: "Context") -> Any:
    """Model version of the stored pairs (all share one: a new version rescores every pair);
    None without a pairs table, ``_NO_PAIRS`` when it is empty (nothing to rescore)."""
    if not ctx.lake.exists(S.MATCH_PAIRS.address) or not ctx.lake.exists(S.MATCH_CLUSTERS.address):
        return None
    row = ctx.lake.read(S.MATCH_PAIRS.address).select("model_version").limit(1).collect()
    return row[0]["model_version"] if row else _NO_PAIRS


def _changed_values(counts: DataFrame, previous: DataFrame, resolution: float = 0.0) -> DataFrame:
    """(comparison, value) whose record count differs from the previous run's (or is new / gone);
    with ``resolution`` (the model's), only those whose count moved to another step
    (:func:`~jobs.match.comparisons.count_step`): the others keep their term frequency."""
    prev = previous.select(TF_COMPARISON_COL, TF_VALUE_COL, count_step(F.col("n"), resolution).alias("n_prev"))
    now = counts.select(
        F.col(TF_COMPARISON).alias(TF_COMPARISON_COL), F.col(TF_VALUE).alias(TF_VALUE_COL),
        count_step(F.col(TF_COUNT), resolution).alias("n_now"),
    )
    both = now.join(prev, [TF_COMPARISON_COL, TF_VALUE_COL], "full_outer")
    return both.where(~F.col("n_now").eqNullSafe(F.col("n_prev"))).select(TF_COMPARISON_COL, TF_VALUE_COL)


def stale_pairs(pairs: DataFrame, records: DataFrame, comparisons: list[Any], changed: DataFrame) -> DataFrame:
    """Stored pairs agreeing exactly on a value whose term frequency changed: they need a new score.

    ``changed``: ``(comparison, value)``. Only the exact level of an adjusted comparison reads the
    frequency, so only pairs at that level with such a value are affected.
    """
    parts = []
    for c in comparisons:
        if c.tf_level is None:
            continue
        vals = changed.where(F.col(TF_COMPARISON_COL) == F.lit(c.name)).select(F.col(TF_VALUE_COL).alias(f"{TMP}v"))
        at_level = pairs.where(F.col("levels")[c.name] == F.lit(c.tf_level)).select("record_key_l", "record_key_r", "blocking_rule")
        side = records.select(F.col("record_key").alias("record_key_l"), F.col(c.tf_column).cast("string").alias(f"{TMP}v"))
        parts.append(at_level.join(side, "record_key_l").join(vals, f"{TMP}v", "left_semi").drop(f"{TMP}v"))
    if not parts:
        return pairs.select("record_key_l", "record_key_r", "blocking_rule").limit(0)
    return functools.reduce(lambda x, y: x.unionByName(y), parts).dropDuplicates(["record_key_l", "record_key_r"])


def _not_touching(pairs: DataFrame, keys: DataFrame) -> DataFrame:
    k = keys.select("record_key").distinct()
    return pairs.join(k.withColumnRenamed("record_key", "record_key_l"), "record_key_l", "left_anti").join(
        k.withColumnRenamed("record_key", "record_key_r"), "record_key_r", "left_anti"
    )


def run(ctx: "Context", incremental: bool = False, new_keys: DataFrame | None = None, retrain: bool = False) -> dict[str, Any]:
    """Score pairs, accept edges, cluster; returns the counts recorded in ops.runs.

    An incremental run gives the pairs a full run over the same records gives, scoring only what
    changed: pairs with a new or changed record (``new_keys``, default the records standardize
    just changed, else the records no run clustered yet), pairs of records whose block crossed
    ``max_block_size`` (either way), and stored pairs that agree on a value whose term frequency
    changed (the model fixes the denominators, so only the values a batch brings change, and
    rounds the counts, so only those whose count crossed a step of ``tf_resolution``). A
    model version other than the stored pairs' rescores every pair. Edges and clusters are then
    rebuilt from all pairs and identifiers (cheap, and exactly what a full run does).

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
        model, version = _model(ctx, records, retrain)
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
            stale = None
            if counts is not None:
                previous_counts = lake.read_or_empty(S.MATCH_TERM_COUNTS.address, S.MATCH_TERM_COUNTS.schema)
                stale = stale_pairs(untouched, records, comps, _changed_values(counts, previous_counts, model.tf_resolution)).localCheckpoint()
            candidates = generate_candidate_pairs(records, cfg, regen, carry=needed_columns(comps))
            to_score = candidates.select("record_key_l", "record_key_r", "blocking_rule")
            if stale is not None:
                to_score = to_score.unionByName(stale)
            summary_inc = {"regenerated_records": regen.count(), "rescored_pairs": stale.count() if stale is not None else 0}
        else:
            to_score = generate_candidate_pairs(records, cfg, None, carry=needed_columns(comps))
        scored = score_pairs(to_score, model, records, comps, tf).select(
            *[c for c in S.MATCH_PAIRS.column_names if c not in ("model_version", "run_id")],
            F.lit(version).alias("model_version"),
            F.lit(r.run_id).alias("run_id"),
        )
        scored = scored.localCheckpoint()
        n_pairs = scored.count()
        r.stage("pairs scored", n_pairs)
        if untouched is not None:
            # one rewrite of the stored pairs: those of no regenerated record and not rescored,
            # then what was scored (at 1,000,000 persons: 25 million stored, 5 million scored)
            kept = untouched.join(scored.select(*S.MATCH_PAIRS.key), list(S.MATCH_PAIRS.key), "left_anti")
            lake.overwrite(S.MATCH_PAIRS.address, kept.unionByName(scored))
            all_pairs = lake.read(S.MATCH_PAIRS.address)
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
        for k, v in summary.items():
            r.metric(k, v)
    return summary
