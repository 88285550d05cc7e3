"""Training of the match model, tracked in MLflow and registered as a model version.

:func:`fit` is the pure part (DataFrames in, a :class:`FellegiSunterModel` out; one Spark job for
the u sample and one for the histogram of candidate-pair comparison vectors, EM in numpy).
:func:`train` runs it as an MLflow run: parameters, m and u per level, the prior, convergence,
the model JSON (``model/model.json``) and charts, then registers a version under
``match.model.name``. Only parameters and counts are logged, never a record value (PII).
:func:`load_model` resolves the version the config names (a version, an alias, else the latest).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common.errors import ConfigError, DataError, SchemaError
from jobs.common.schemas import SILVER_RECORDS
from jobs.match.blocking import generate_candidate_pairs
from jobs.match.comparisons import TF_COMPARISON, TF_COUNT, ComparisonDef, prepare_records, term_counts
from jobs.match.model import (
    COUNT,
    RULES_COLUMN,
    EMResult,
    FellegiSunterModel,
    build_model,
    comparison_vectors,
    default_m,
    em,
    estimate_u,
    global_prior,
    histogram_weights,
    m_from_labels,
    needed_columns,
    pair_levels,
    vector_histogram,
    with_both_sides,
)

if TYPE_CHECKING:
    from jobs.common.context import Context
    from jobs.match.config import MatchConfig

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model/model.json"
# Strength of the random-pair u in each per-rule EM session (model.em's u_prior_pairs): a block of
# a few dozen pairs that are nearly all matches keeps u near the random pairs' u, a block with
# thousands of non-matches (a household's members found by their address) estimates its own.
SESSION_U_PRIOR_PAIRS = 1_000.0


@dataclass
class FitResult:
    model: FellegiSunterModel
    histogram: pd.DataFrame  # comparison vectors of the training pairs with counts (no values)
    em: EMResult
    u_pairs: int
    seconds: float
    levels: DataFrame | None = None  # the training candidates' pair_levels, checkpointed (keep_levels)


@dataclass
class TrainResult:
    model: FellegiSunterModel
    version: str
    run_id: str
    metrics: dict[str, Any] = field(default_factory=dict)
    levels: DataFrame | None = None  # see FitResult.levels
    pending: Future | None = None  # the charts, logged in the background (train(defer_charts=True))

    def finish(self) -> None:
        """Wait for the background logging of the MLflow run (re-raises its error)."""
        if self.pending is not None:
            self.pending.result()
            self.pending = None


def all_pairs(records: DataFrame, link_type: str) -> tuple[int, int]:
    """(records, pairs a full comparison would make): n(n-1)/2, or pairs of different sources."""
    counts = [int(r["n"]) for r in records.groupBy("source").agg(F.count(F.lit(1)).alias("n")).collect()]
    n = sum(counts)
    if link_type == "link_only":
        return n, (n * n - sum(c * c for c in counts)) // 2
    return n, n * (n - 1) // 2


def training_config(cfg: "MatchConfig") -> "MatchConfig":
    """The config restricted to ``training.blocking_rules`` (all rules when empty)."""
    if not cfg.training.blocking_rules:
        return cfg
    rules = [r for r in cfg.blocking_rules if r.name in cfg.training.blocking_rules]
    return cfg.model_copy(update={"blocking_rules": rules})


def shares_candidates(cfg: "MatchConfig") -> bool:
    """Whether training's candidate pairs are the scoring's (training uses every blocking rule)."""
    return [r.name for r in training_config(cfg).blocking_rules] == [r.name for r in cfg.blocking_rules]


def labelled_matches(labels: DataFrame) -> DataFrame:
    """Labelled pairs with is_match true, as (record_key_l, record_key_r) in key order."""
    need = {"record_key_l", "record_key_r", "is_match"}
    missing = sorted(need - set(labels.columns))
    if missing:
        raise SchemaError(f"match.training.labels_path: labels lack column(s) {missing}; have {sorted(labels.columns)}")
    is_match = F.col("is_match").cast("string").isin("true", "1", "True", "TRUE", "yes")
    l, r = F.col("record_key_l").cast("string"), F.col("record_key_r").cast("string")
    return labels.where(is_match).select(F.least(l, r).alias("record_key_l"), F.greatest(l, r).alias("record_key_r"))


def fit(
    records: DataFrame,
    cfg: "MatchConfig",
    labels: DataFrame | None = None,
    comparisons: list[ComparisonDef] | None = None,
    keep_levels: bool = False,
) -> FitResult:
    """Estimate u (random pairs), then m by EM (one session per training rule, or pooled) and the
    candidates' match share by EM with m fixed.

    ``keep_levels``: keep the candidates' :func:`~jobs.match.model.pair_levels` (checkpointed) in
    the result, so a run that scores the same candidates next does not compute them again.
    """
    t0 = time.monotonic()
    comps = comparisons or cfg.comparison_defs()
    t = cfg.training
    cols = needed_columns(comps)
    records = prepare_records(records, comps)
    tcfg = training_config(cfg)
    per_rule = t.sessions == "per_rule"
    pairs = generate_candidate_pairs(records, tcfg, carry=cols, rule_mask=per_rule)
    levels: DataFrame | None = None
    u_est, (n_records, n_all), tf_totals = _side_estimates(records, cfg, comps)
    if keep_levels:
        levels = pair_levels(pairs, comps).localCheckpoint()
        by_rules = vector_histogram(levels, comps, by_rules=per_rule)
    else:
        by_rules = vector_histogram(comparison_vectors(pairs, comps), comps, by_rules=per_rule)
    hist = by_rules.groupby([c.name for c in comps], as_index=False)[COUNT].sum() if per_rule else by_rules
    n_candidates = int(hist["count"].sum())
    if n_candidates == 0:
        raise DataError("match training: the blocking rules found no candidate pairs; expected at least one")
    m_init = None
    fix_m = False
    if labels is not None:
        matched = with_both_sides(labelled_matches(labels), records, cols)
        label_hist = vector_histogram(comparison_vectors(matched, comps), comps)
        m_init = m_from_labels(label_hist, comps, t.m_floor)
        fix_m = t.labels_mode == "fix"
    sessions: list[dict[str, Any]] = []
    if per_rule and not fix_m:
        # m from one EM per rule, then the candidates' match share with m fixed at the average
        m_init, sessions = em_sessions(by_rules, tcfg, comps, m_init, u_est["u"])
        fix_m = True
    result = em(
        hist,
        comps,
        m_init=m_init,
        u_init=u_est["u"],
        prior_init=0.1,
        max_iterations=t.max_iterations,
        tolerance=t.tolerance,
        m_floor=t.m_floor,
        fix_m=fix_m,
    )
    prior = t.prior_value if t.prior == "fixed" else global_prior(result.prior, n_candidates, n_all)
    metrics = {
        "records": n_records,
        "candidate_pairs": n_candidates,
        "all_pairs": n_all,
        "u_sample_pairs": u_est["pairs"],
        "em_iterations": result.iterations,
        "em_converged": result.converged,
        "em_final_change": result.trace[-1]["max_change"],
        "em_log_likelihood": result.log_likelihood,
        "candidate_match_share": result.prior,
        "expected_matches": result.prior * n_candidates,
        "labelled_matches": int(label_hist["count"].sum()) if labels is not None else 0,
        "em_sessions": len(sessions),
    }
    if sessions:
        metrics["em_session_summary"] = "; ".join(
            f"{x['rule']}: {x['pairs']} pairs"
            + (f", m of {','.join(x['estimated'])}, {x['iterations']} iterations, match share {x['match_share']:.4f}"
               if x["estimated"] else f", skipped ({x['skipped']})")
            for x in sessions
        )
    model = build_model(comps, result.m, u_est["u"], prior, cfg.link_type, metrics, tf_totals, cfg.term_frequency_resolution)
    return FitResult(model, hist, result, u_est["pairs"], time.monotonic() - t0, levels)


def _side_estimates(
    records: DataFrame, cfg: "MatchConfig", comps: list[ComparisonDef]
) -> tuple[dict[str, Any], tuple[int, int], dict[str, int]]:
    """u from random pairs, (records, all pairs) and the term-count totals per comparison."""
    u_est = estimate_u(records, cfg, comps)
    counts = term_counts(records, comps)
    tf_totals = (
        {r[TF_COMPARISON]: int(r["total"]) for r in counts.groupBy(TF_COMPARISON).agg(F.sum(TF_COUNT).alias("total")).collect()}
        if counts is not None
        else {}
    )
    return u_est, all_pairs(records, cfg.link_type), tf_totals


def em_sessions(
    histogram: pd.DataFrame,
    cfg: "MatchConfig",
    comparisons: list[ComparisonDef],
    m_init: dict[str, list[float | None]] | None,
    u_init: dict[str, list[float | None]],
) -> tuple[dict[str, list[float | None]], list[dict[str, Any]]]:
    """m from one EM per blocking rule, averaged: ``(m, one summary per rule)``.

    The pairs a rule finds all agree on the rule's columns, so there a comparison of those columns
    says nothing about matching, and with it in the EM the latent "match" class can become "agrees
    on the blocked columns" (people of one household, found by their address, looked like one
    person). Each session therefore estimates m only for the comparisons that read none of its
    rule's columns, on the pairs its rule finds (``histogram`` has the rule bitmask column); a
    comparison's m is the mean over the sessions that estimated it (Splink's approach). A
    comparison no session could estimate keeps its starting m (logged).
    """
    t = cfg.training
    sums = {c.name: np.zeros(c.n_levels - 1) for c in comparisons}
    seen = dict.fromkeys(sums, 0)
    summary: list[dict[str, Any]] = []
    bits = histogram[RULES_COLUMN].to_numpy(dtype=np.int64)
    for i, rule in enumerate(cfg.blocking_rules):
        rows = histogram[(bits & (1 << i)) != 0]
        blocked = rule.base_columns()
        free = [c for c in comparisons if not set(c.columns) & blocked]
        n = int(rows[COUNT].sum())
        entry: dict[str, Any] = {"rule": rule.name, "pairs": n, "estimated": []}
        if n == 0 or not free:
            entry["skipped"] = "no pairs" if n == 0 else "every comparison reads its columns"
            summary.append(entry)
            continue
        sub = rows.groupby([c.name for c in free], as_index=False)[COUNT].sum()
        res = em(
            sub, free, m_init=m_init, u_init=u_init, prior_init=0.1,
            max_iterations=t.max_iterations, tolerance=t.tolerance, m_floor=t.m_floor,
            u_prior_pairs=SESSION_U_PRIOR_PAIRS,
        )
        for c in free:
            sums[c.name] += np.array(res.m[c.name][1:], dtype=float)
            seen[c.name] += 1
        entry.update(
            estimated=[c.name for c in free], iterations=res.iterations, converged=res.converged, match_share=res.prior
        )
        log.info("EM session %s: %d pairs, m of %s, match share %.4f", rule.name, n, ",".join(entry["estimated"]), res.prior)
        summary.append(entry)
    m: dict[str, list[float | None]] = {}
    for c in comparisons:
        if seen[c.name]:
            m[c.name] = [None, *[float(v) for v in sums[c.name] / seen[c.name]]]
        else:
            m[c.name] = list(m_init[c.name]) if m_init and c.name in m_init else default_m(c)
            log.warning(
                "EM sessions: every training rule reads the columns of comparison %r; its m keeps the starting value", c.name
            )
    return m, summary


# --- MLflow -------------------------------------------------------------------------------------------------


def _client(ctx: "Context") -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=ctx.mlflow_uri, registry_uri=ctx.mlflow_uri)


def _experiment_id(client: Any, ctx: "Context") -> str:
    name = ctx.cfg.mlflow.experiment
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    os.makedirs(ctx.mlflow_artifacts, exist_ok=True)
    return client.create_experiment(name, artifact_location=f"file://{os.path.abspath(ctx.mlflow_artifacts)}")


def _charts(fitted: FitResult) -> dict[str, Any]:
    """PNG charts: m and u per level of each comparison, and the match weight distribution.

    Figures are made without pyplot (no global state), so they may be drawn off the main thread.
    """
    from matplotlib.figure import Figure

    model = fitted.model
    n = len(model.comparisons)
    cols = 2
    rows = (n + cols - 1) // cols
    fig_mu = Figure(figsize=(11, 2.6 * rows))
    axes = fig_mu.subplots(rows, cols, squeeze=False)
    for ax, c in zip(axes.flat, model.comparisons):
        labels = c.labels[1:]
        y = np.arange(len(labels))
        ax.barh(y - 0.2, [v or 0 for v in c.m[1:]], height=0.4, label="m", color="#2a7ab9")
        ax.barh(y + 0.2, [v or 0 for v in c.u[1:]], height=0.4, label="u", color="#d9822b")
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_title(c.name, fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig_mu.tight_layout()
    fig_w = Figure(figsize=(8, 4))
    ax = fig_w.subplots()
    w = histogram_weights(fitted.histogram, model)
    ax.hist(w, bins=60, weights=fitted.histogram["count"].to_numpy(dtype=float), log=True, color="#2a7ab9")
    ax.set_xlabel("match weight (log2 Bayes factor incl. prior, without term-frequency adjustment)")
    ax.set_ylabel("candidate pairs")
    fig_w.tight_layout()
    return {"charts/m_u_per_comparison.png": fig_mu, "charts/match_weight_distribution.png": fig_w}


def _log_run(client: Any, run_id: str, cfg: "MatchConfig", fitted: FitResult) -> None:
    from mlflow.entities import Metric, Param

    model = fitted.model
    t = cfg.training
    now = int(time.time() * 1000)
    params = {
        "link_type": cfg.link_type,
        "blocking_rules": ",".join(r.name for r in cfg.blocking_rules),
        "training_blocking_rules": ",".join(t.blocking_rules) or "all",
        "max_block_size": cfg.max_block_size,
        "u_sample_pairs": t.u_sample_pairs,
        "seed": t.seed,
        "max_iterations": t.max_iterations,
        "tolerance": t.tolerance,
        "prior_mode": t.prior,
        "m_floor": t.m_floor,
        "labels": "yes" if t.labels_path else "no",
        "labels_mode": t.labels_mode,
        "threshold_probability": cfg.threshold_probability,
        "term_frequency_resolution": model.tf_resolution,
        "comparisons": ",".join(f"{c.name}:{c.function}" for c in model.comparisons),
    }
    metrics = {"prior": model.prior, "prior_weight": model.prior_weight, "train_seconds": fitted.seconds}
    for k, v in model.metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            metrics[k] = float(v)
        else:
            params[k] = v
    for c in model.comparisons:
        for lv, label in enumerate(c.labels):
            if lv == 0:
                continue
            safe = label.replace(">=", "_ge_").replace("<=", "_le_").replace(">", "_gt_").replace("<", "_lt_")
            metrics[f"m.{c.name}.{lv}_{safe}"] = float(c.m[lv])
            metrics[f"u.{c.name}.{lv}_{safe}"] = float(c.u[lv])
        params[f"levels.{c.name}"] = "|".join(c.labels)
    ms = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for tr in fitted.em.trace:
        ms.append(Metric("em_max_change", float(tr["max_change"]), now, int(tr["iteration"])))
        ms.append(Metric("em_candidate_match_share", float(tr["prior"]), now, int(tr["iteration"])))
        ms.append(Metric("em_log_likelihood_trace", float(tr["log_likelihood"]), now, int(tr["iteration"])))
    ps = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, max(len(ms), len(ps)), 900):
        client.log_batch(run_id, metrics=ms[i : i + 900], params=ps[i : i + 900])
    client.log_dict(run_id, model.to_dict(), MODEL_ARTIFACT)


def _log_charts(client: Any, run_id: str, fitted: FitResult) -> None:
    for path, fig in _charts(fitted).items():
        client.log_figure(run_id, fig, path)


def register(client: Any, name: str, run_id: str) -> str:
    """Register the run's model as a new version of ``name`` (the registered model is made if missing)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="Fellegi-Sunter match model of the CDP (jobs/match/model.py)")
    mv = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    return str(mv.version)


def read_labels(ctx: "Context") -> DataFrame | None:
    """The labelled pairs of ``training.labels_path`` (CSV with a header, Parquet, or a Delta table)."""
    path = ctx.cfg.match.training.labels_path
    if not path:
        return None
    full = path if os.path.isabs(path) or "://" in path else os.path.join(ctx.data_root, path)
    if not os.path.exists(full) and "://" not in full:
        raise ConfigError(f"match.training.labels_path: got {path!r}; {full} does not exist")
    if os.path.isdir(os.path.join(full, "_delta_log")):
        return ctx.lake.engine.read(full, None, None)
    if full.lower().endswith(".csv"):
        return ctx.spark.read.option("header", True).csv(full)
    return ctx.spark.read.parquet(full)


def _tracking(ctx: "Context") -> tuple[Any, str]:
    """The MLflow client and the experiment's id (made on first use)."""
    client = _client(ctx)
    return client, _experiment_id(client, ctx)


def train(
    ctx: "Context", records: DataFrame | None = None, keep_levels: bool = False, defer_charts: bool = False
) -> TrainResult:
    """Fit on silver.records as one MLflow run and register the model version.

    The MLflow client (importing mlflow, opening the store, creating its tables on a new lake)
    is made in the background while Spark fits. ``defer_charts``: the charts are drawn and
    logged in the background too, and the run is marked finished after them; the caller must
    call :meth:`TrainResult.finish`. ``keep_levels``: see :func:`fit`.
    """
    cfg = ctx.cfg.match
    if records is None:
        if not ctx.lake.exists(SILVER_RECORDS.address):
            raise DataError(f"match training: table {SILVER_RECORDS.address} does not exist; run standardize first")
        records = ctx.lake.read(SILVER_RECORDS.address)
    pool = ThreadPoolExecutor(1, thread_name_prefix="cdp-mlflow")
    try:
        tracking = pool.submit(_tracking, ctx)
        fitted = fit(records, cfg, labels=read_labels(ctx), keep_levels=keep_levels)
        client, exp_id = tracking.result()
        run = client.create_run(exp_id, run_name=f"train-{cfg.model.name}", tags={"cdp.job": "match.train"})
        run_id = run.info.run_id
        try:
            _log_run(client, run_id, cfg, fitted)
            version = register(client, cfg.model.name, run_id)
            client.set_tag(run_id, "cdp.model_version", version)
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise

        def finish() -> None:
            try:
                _log_charts(client, run_id, fitted)
            except BaseException:
                client.set_terminated(run_id, "FAILED")
                raise
            client.set_terminated(run_id, "FINISHED")

        pending = pool.submit(finish) if defer_charts else None
        if pending is None:
            finish()
    finally:
        pool.shutdown(wait=False)
    log.info("match model %s version %s trained (run %s, %.1fs)", cfg.model.name, version, run_id, fitted.seconds)
    metrics = {**fitted.model.metrics, "prior": fitted.model.prior, "model_version": version}
    return TrainResult(fitted.model, version, run_id, metrics, fitted.levels, pending)


def resolve_version(ctx: "Context") -> Any | None:
    """The model version the config names: its version, its alias, else the latest; None if none exists."""
    from mlflow.exceptions import MlflowException

    ref = ctx.cfg.match.model
    client = _client(ctx)
    try:
        client.get_registered_model(ref.name)
    except MlflowException:
        return None
    if ref.version is not None:
        try:
            return client.get_model_version(ref.name, str(ref.version))
        except MlflowException as exc:
            raise ConfigError(f"match.model.version: got {ref.version}; model {ref.name!r} has no such version") from exc
    if ref.alias is not None:
        try:
            return client.get_model_version_by_alias(ref.name, ref.alias)
        except MlflowException as exc:
            raise ConfigError(f"match.model.alias: got {ref.alias!r}; model {ref.name!r} has no such alias") from exc
    versions = client.search_model_versions(f"name='{ref.name}'")
    if not versions:
        return None
    return max(versions, key=lambda v: int(v.version))


def load_model(ctx: "Context") -> tuple[FellegiSunterModel, str]:
    """The registered model the config names, and its version (DataError when none is registered)."""
    mv = resolve_version(ctx)
    if mv is None:
        raise DataError(f"match.model.name: no version of model {ctx.cfg.match.model.name!r} is registered; run `cdp match train`")
    client = _client(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(mv.run_id, MODEL_ARTIFACT, tmp)
        with open(local, encoding="utf-8") as fh:
            model = FellegiSunterModel.from_json(fh.read())
    return model, str(mv.version)
