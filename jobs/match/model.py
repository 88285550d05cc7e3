"""Fellegi-Sunter model: u from random pairs, m and the prior by EM, scoring with explanations.

Fellegi and Sunter (1969), "A Theory for Record Linkage", JASA 64(328): under conditional
independence a pair's Bayes factor is the product over comparisons of ``m[level] / u[level]``,
``m`` the probability of the level among matches, ``u`` among non-matches. As in Splink:

* ``u`` is estimated from a seeded sample of random record pairs (almost all non-matches). The
  sample picks records by a hash of record key and seed, never ``rand()``, so it is reproducible.
* ``m`` and the share of matches are estimated by expectation maximisation (Dempster, Laird and
  Rubin 1977; Winkler 1988) on the candidate pairs. EM runs on the *histogram* of comparison
  vectors (one Spark ``groupBy().count()``, then numpy on the driver): every distinct vector is one
  row with its count, so an iteration costs microseconds and no Spark job.
* Inside the candidate set non-matches agree far more often than random pairs do, so EM frees
  ``u`` there too; the model keeps the random-sample ``u`` for scoring and turns the share of
  matches among candidates into the prior of two random records matching:
  ``prior = lambda_candidates * candidate_pairs / all_pairs`` (all true matches assumed blocked).

The null level (either side missing) has Bayes factor 1. The match weight is
``log2(prior / (1 - prior)) + sum(log2(m / u))`` and the probability ``2^w / (1 + 2^w)``.
The model holds parameters and counts only, never a record value.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common.errors import ConfigError, DataError, SchemaError
from jobs.common.schemas import TMP
from jobs.match.blocking import RULES
from jobs.match.comparisons import (
    LEVEL_NULL,
    TF_COMPARISON,
    TF_FREQUENCY,
    TF_VALUE,
    ComparisonDef,
    compute_levels,
    level_column_name,
    prepare_records,
    term_frequencies,
)

if TYPE_CHECKING:
    from jobs.match.config import MatchConfig

log = logging.getLogger(__name__)

MODEL_FORMAT = 1
COUNT = "count"
RULES_COLUMN = "#rules"  # histogram column of the rule bitmask (not a valid comparison name)


# --- the model -----------------------------------------------------------------------------------


@dataclass
class ComparisonParams:
    """m and u of every level of one comparison (index = level; the null level has none)."""

    name: str
    function: str
    columns: list[str]
    arguments: dict[str, Any]
    labels: list[str]
    m: list[float | None]
    u: list[float | None]
    term_frequency_adjustments: bool = False
    tf_minimum_u_value: float = 1e-4
    tf_level: int | None = None
    # Non-blank values of the adjusted column at training (a count, no value): the fixed
    # denominator of the term frequencies (comparisons.frequencies_from_counts).
    tf_total: int | None = None

    def weights(self) -> list[float]:
        """log2 Bayes factor per level (0 at the null level)."""
        out = []
        for lv, (m, u) in enumerate(zip(self.m, self.u)):
            out.append(0.0 if lv == LEVEL_NULL or m is None or u is None else math.log2(m / u))
        return out


@dataclass
class FellegiSunterModel:
    """Trained parameters; serialisable to and from JSON (no record values, ever)."""

    comparisons: list[ComparisonParams]
    prior: float
    link_type: str = "dedupe"
    trained_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    metrics: dict[str, Any] = field(default_factory=dict)
    format: int = MODEL_FORMAT
    # match.term_frequency_resolution at training (0: exact counts, as in models from before it)
    tf_resolution: float = 0.0

    @property
    def tf_totals(self) -> dict[str, int | None]:
        return {c.name: c.tf_total for c in self.comparisons if c.tf_level is not None}

    @property
    def prior_weight(self) -> float:
        return math.log2(self.prior / (1.0 - self.prior))

    def comparison(self, name: str) -> ComparisonParams:
        for c in self.comparisons:
            if c.name == name:
                return c
        raise KeyError(f"model has no comparison {name!r}; it has {[c.name for c in self.comparisons]}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FellegiSunterModel":
        if data.get("format") != MODEL_FORMAT:
            raise DataError(f"match model: format {data.get('format')!r}; expected {MODEL_FORMAT}")
        comps = [ComparisonParams(**c) for c in data["comparisons"]]
        rest = {k: v for k, v in data.items() if k != "comparisons"}
        return cls(comparisons=comps, **rest)

    @classmethod
    def from_json(cls, text: str) -> "FellegiSunterModel":
        return cls.from_dict(json.loads(text))

    def check_comparisons(self, comparisons: Sequence[ComparisonDef]) -> None:
        """The configured comparisons must be the ones the model was trained with."""
        problems = []
        names = [c.name for c in comparisons]
        if names != [c.name for c in self.comparisons]:
            problems.append(f"comparisons {names}, model has {[c.name for c in self.comparisons]}")
        else:
            for c, p in zip(comparisons, self.comparisons):
                if list(c.labels) != p.labels or c.function != p.function or list(c.columns) != p.columns:
                    problems.append(f"comparison {c.name!r}: levels {list(c.labels)}, model has {p.labels}")
        if problems:
            raise ConfigError(
                "match.comparisons do not fit the registered model: " + "; ".join(problems)
                + "; expected the comparisons the model was trained with (train again)"
            )


def build_model(
    comparisons: Sequence[ComparisonDef],
    m: Mapping[str, Sequence[float | None]],
    u: Mapping[str, Sequence[float | None]],
    prior: float,
    link_type: str = "dedupe",
    metrics: Mapping[str, Any] | None = None,
    tf_totals: Mapping[str, int] | None = None,
    tf_resolution: float = 0.0,
) -> FellegiSunterModel:
    params = [
        ComparisonParams(
            name=c.name,
            function=c.function,
            columns=list(c.columns),
            arguments=dict(c.arguments),
            labels=list(c.labels),
            m=[None if v is None else float(v) for v in m[c.name]],
            u=[None if v is None else float(v) for v in u[c.name]],
            term_frequency_adjustments=c.term_frequency_adjustments,
            tf_minimum_u_value=c.tf_minimum_u_value,
            tf_level=c.tf_level,
            tf_total=(int(tf_totals[c.name]) if tf_totals and c.name in tf_totals and c.tf_level is not None else None),
        )
        for c in comparisons
    ]
    return FellegiSunterModel(params, float(prior), link_type, metrics=dict(metrics or {}), tf_resolution=float(tf_resolution))


# --- comparison vectors and histograms --------------------------------------------------------------


def needed_columns(comparisons: Sequence[ComparisonDef]) -> list[str]:
    """Record columns a pair needs on both sides: compared columns, then prepared ones
    (:func:`~jobs.match.comparisons.prepare_records` adds those to the records)."""
    raw = [col for c in comparisons for col in c.columns]
    prepared = [col for c in comparisons for col in c.prepared_columns]
    return list(dict.fromkeys(raw + prepared))


def with_both_sides(pairs: DataFrame, records: DataFrame, columns: Sequence[str]) -> DataFrame:
    """Add ``<column>_l`` and ``<column>_r`` from the records where the pairs lack them."""
    missing = [c for c in columns if f"{c}_l" not in pairs.columns or f"{c}_r" not in pairs.columns]
    if not missing:
        return pairs
    absent = sorted(set(missing) - set(records.columns))
    if absent:
        raise SchemaError(f"match scoring: records lack column(s) {absent}; available: {sorted(records.columns)}")
    base = pairs.drop(*[f"{c}{s}" for c in missing for s in ("_l", "_r") if f"{c}{s}" in pairs.columns])
    for s in ("_l", "_r"):
        side = records.select(F.col("record_key").alias(f"record_key{s}"), *[F.col(c).alias(f"{c}{s}") for c in missing])
        base = base.join(side, f"record_key{s}")
    return base


def comparison_vectors(pairs: DataFrame, comparisons: Sequence[ComparisonDef]) -> DataFrame:
    """Pairs with both sides' columns -> record keys (and blocking rule) plus one level per comparison."""
    _check_pair_columns(pairs, comparisons, "comparison_vectors")
    keep = [c for c in ("record_key_l", "record_key_r", "blocking_rule", RULES) if c in pairs.columns]
    levels = compute_levels(pairs, comparisons)
    return levels.select(*keep, *[level_column_name(c.name) for c in comparisons])


def _check_pair_columns(pairs: DataFrame, comparisons: Sequence[ComparisonDef], where: str) -> None:
    cols = needed_columns(comparisons)
    missing = [f"{c}{s}" for c in cols for s in ("_l", "_r") if f"{c}{s}" not in pairs.columns]
    if missing:
        raise SchemaError(f"{where}: pairs lack column(s) {missing}; available: {sorted(pairs.columns)}")


def pair_levels(pairs: DataFrame, comparisons: Sequence[ComparisonDef]) -> DataFrame:
    """What scoring needs of candidate pairs: the comparison vectors of :func:`comparison_vectors`
    plus, for each term-frequency adjusted comparison, the left record's value (``<column>_l``).

    :func:`score_levels` scores these; a run that trains first computes them once for training's
    histogram and for the scoring (``training.fit(..., keep_levels=True)``).
    """
    _check_pair_columns(pairs, comparisons, "pair_levels")
    keep = [c for c in ("record_key_l", "record_key_r", "blocking_rule", RULES) if c in pairs.columns]
    tf_left = list(dict.fromkeys(f"{c.tf_column}_l" for c in comparisons if c.tf_level is not None))
    levels = compute_levels(pairs, comparisons)
    return levels.select(*keep, *tf_left, *[level_column_name(c.name) for c in comparisons])


def vector_histogram(
    vectors: DataFrame, comparisons: Sequence[ComparisonDef], by_rules: bool = False
) -> pd.DataFrame:
    """Distinct comparison vectors with their counts (one Spark job), columns named by comparison.

    ``by_rules``: also by the vectors' rule bitmask (column ``rules``; see
    :func:`jobs.match.blocking.generate_candidate_pairs`).
    """
    lvl = [level_column_name(c.name) for c in comparisons]
    extra = [RULES] if by_rules else []
    rows = vectors.groupBy(*lvl, *extra).agg(F.count(F.lit(1)).alias(COUNT)).collect()
    data = {c.name: [int(r[level_column_name(c.name)]) for r in rows] for c in comparisons}
    if by_rules:
        data[RULES_COLUMN] = [int(r[RULES]) for r in rows]
    data[COUNT] = [int(r[COUNT]) for r in rows]
    return pd.DataFrame(data, columns=[c.name for c in comparisons] + ([RULES_COLUMN] if by_rules else []) + [COUNT])


# --- u from random pairs ------------------------------------------------------------------------------


def _sample_size(pairs: int, cross_share: float = 1.0) -> int:
    """Records whose pairs (of different sources: ``cross_share`` of them) number about ``pairs``."""
    return max(2, math.ceil((1 + math.sqrt(1 + 8 * pairs / max(cross_share, 1e-9))) / 2))


def random_pairs(records: DataFrame, cfg: "MatchConfig", columns: Sequence[str]) -> DataFrame:
    """About ``training.u_sample_pairs`` pairs of records, picked by a hash of record key and seed."""
    t = cfg.training
    share = 1.0
    if cfg.link_type == "link_only":
        counts = [r["n"] for r in records.groupBy("source").agg(F.count(F.lit(1)).alias("n")).collect()]
        total = sum(counts)
        share = 1.0 - sum((n / total) ** 2 for n in counts) if total else 0.0
        if share <= 0:
            raise DataError("estimate_u: link_only needs records of at least two sources; found one source")
    n = _sample_size(t.u_sample_pairs, share)
    h = F.xxhash64(F.col("record_key"), F.lit(t.seed))
    sample = records.select("record_key", "source", *columns).orderBy(h, F.col("record_key")).limit(n)
    cols = ["record_key", "source", *columns]
    # The sample is one partition after the limit; spread the left side so every core compares.
    parts = max(int(records.sparkSession.conf.get("spark.sql.shuffle.partitions", "2") or 2), 2)
    left = sample.repartition(parts, "record_key").select(*[F.col(c).alias(f"{c}_l") for c in cols])
    right = sample.select(*[F.col(c).alias(f"{c}_r") for c in cols])
    pairs = left.crossJoin(right).where(F.col("record_key_l") < F.col("record_key_r"))
    if cfg.link_type == "link_only":
        pairs = pairs.where(F.col("source_l") != F.col("source_r"))
    return pairs


def level_shares(hist: pd.DataFrame, comparisons: Sequence[ComparisonDef], weights: np.ndarray | None = None,
                 floor: float = 0.0) -> dict[str, list[float | None]]:
    """Share of each non-null level per comparison in a (weighted) histogram; None at the null level."""
    w = hist[COUNT].to_numpy(dtype=float) if weights is None else weights
    out: dict[str, list[float | None]] = {}
    for c in comparisons:
        g = hist[c.name].to_numpy()
        totals = np.bincount(g, weights=w, minlength=c.n_levels)[: c.n_levels]
        present = totals[1:].sum()
        shares = totals[1:] / present if present > 0 else np.full(c.n_levels - 1, 1.0 / (c.n_levels - 1))
        if floor > 0:
            shares = np.maximum(shares, floor)
            shares = shares / shares.sum()
        out[c.name] = [None, *[float(s) for s in shares]]
    return out


def estimate_u(records: DataFrame, cfg: "MatchConfig", comparisons: Sequence[ComparisonDef]) -> dict[str, Any]:
    """u per comparison level from seeded random pairs: ``{"u": {name: [None, u1, ...]}, "pairs": n}``.

    A level no sampled pair reached gets half a pair's share (so its weight stays finite).
    """
    records = prepare_records(records, comparisons)
    pairs = random_pairs(records, cfg, needed_columns(comparisons))
    hist = vector_histogram(comparison_vectors(pairs, comparisons), comparisons)
    n = int(hist[COUNT].sum())
    if n == 0:
        raise DataError("estimate_u: the random sample gave no pairs; expected at least two records")
    u = level_shares(hist, comparisons, floor=0.5 / n)
    return {"u": u, "pairs": n}


# --- EM ----------------------------------------------------------------------------------------------------


@dataclass
class EMResult:
    m: dict[str, list[float | None]]
    u: dict[str, list[float | None]]
    prior: float  # share of matches among the histogram's pairs
    iterations: int
    converged: bool
    trace: list[dict[str, float]]
    log_likelihood: float


def _log_table(p: Sequence[float | None]) -> np.ndarray:
    return np.array([0.0] + [math.log(v) for v in p[1:]])  # null level: factor 1


def em(
    histogram: pd.DataFrame,
    comparisons: Sequence[ComparisonDef],
    m_init: Mapping[str, Sequence[float | None]] | None = None,
    u_init: Mapping[str, Sequence[float | None]] | None = None,
    prior_init: float = 0.1,
    max_iterations: int = 25,
    tolerance: float = 1e-5,
    m_floor: float = 1e-6,
    fix_m: bool = False,
    u_prior_pairs: float = 0.0,
) -> EMResult:
    """Expectation maximisation of m, u and the match share on a histogram of comparison vectors.

    ``histogram``: one column per comparison (level index) and ``count``. The null level is
    missing-at-random (factor 1 in both classes). Stops when no m, u or prior moves more than
    ``tolerance``. ``fix_m``: keep m (from labels) and estimate only u and the prior.
    ``u_prior_pairs``: u is estimated as if that many extra non-matching pairs distributed as
    ``u_init`` (random pairs) had been seen, a Dirichlet prior. The per-rule sessions use it: where
    nearly every pair of a block is a match, a free u let the "non-match" class take the common
    vectors and the "match" class the odd ones; where a block holds many non-matches (members of
    one household found by their address) their own u still dominates.
    """
    if histogram.empty or histogram[COUNT].sum() <= 0:
        raise DataError("EM: no candidate pairs to train on; expected blocking rules that find pairs")
    counts = histogram[COUNT].to_numpy(dtype=float)
    gammas = {c.name: histogram[c.name].to_numpy(dtype=np.int64) for c in comparisons}
    for c in comparisons:
        g = gammas[c.name]
        if g.min() < 0 or g.max() >= c.n_levels:
            raise DataError(f"EM: comparison {c.name!r} has level {int(g.max())}; expected 0..{c.n_levels - 1}")
    m = {c.name: list(m_init[c.name]) if m_init and c.name in m_init else default_m(c) for c in comparisons}
    u = {c.name: list(u_init[c.name]) if u_init and c.name in u_init else default_u(c) for c in comparisons}
    lam = float(prior_init)
    u_start = {k: list(v) for k, v in u.items()}
    trace: list[dict[str, float]] = []
    converged = False
    ll = float("nan")
    it = 0
    for it in range(1, max_iterations + 1):
        log_m = np.full(len(counts), math.log(lam))
        log_u = np.full(len(counts), math.log(1.0 - lam))
        for c in comparisons:
            log_m += _log_table(m[c.name])[gammas[c.name]]
            log_u += _log_table(u[c.name])[gammas[c.name]]
        top = np.maximum(log_m, log_u)
        denom = top + np.log(np.exp(log_m - top) + np.exp(log_u - top))
        ll = float((counts * denom).sum())
        post = np.exp(log_m - denom)
        wm = counts * post
        wu = counts * (1.0 - post)
        new_lam = float(min(max(wm.sum() / counts.sum(), 1e-12), 1 - 1e-12))
        hist_w = histogram
        new_m = m if fix_m else level_shares(hist_w, comparisons, wm, floor=m_floor)
        new_u = level_shares(hist_w, comparisons, wu, floor=1e-12)
        if u_prior_pairs > 0:
            seen = float(wu.sum())
            new_u = {
                c.name: [None, *[(seen * a + u_prior_pairs * b) / (seen + u_prior_pairs)
                                 for a, b in zip(new_u[c.name][1:], u_start[c.name][1:])]]
                for c in comparisons
            }
        delta = abs(new_lam - lam)
        for c in comparisons:
            for a, b in zip(new_m[c.name][1:], m[c.name][1:]):
                delta = max(delta, abs(a - b))
            for a, b in zip(new_u[c.name][1:], u[c.name][1:]):
                delta = max(delta, abs(a - b))
        m, u, lam = new_m, new_u, new_lam
        trace.append({"iteration": it, "max_change": delta, "prior": lam, "log_likelihood": ll})
        log.info("EM iteration %d: largest change %.3g, match share %.5f", it, delta, lam)
        if delta < tolerance:
            converged = True
            break
    return EMResult(dict(m), dict(u), lam, it, converged, trace, ll)


def default_m(c: ComparisonDef) -> list[float | None]:
    """Starting m: most mass on the most similar level, decreasing below it."""
    k = c.n_levels - 1
    raw = np.array([0.5 ** (k - i) for i in range(1, k + 1)])  # else .. exact
    raw[-1] *= 4
    raw = raw / raw.sum()
    return [None, *[float(v) for v in raw]]


def default_u(c: ComparisonDef) -> list[float | None]:
    """Starting u: most mass on the else level."""
    k = c.n_levels - 1
    raw = np.array([0.9] + [0.1 / max(k - 1, 1)] * (k - 1)) if k > 1 else np.array([1.0])
    return [None, *[float(v) for v in raw / raw.sum()]]


def m_from_labels(histogram: pd.DataFrame, comparisons: Sequence[ComparisonDef], m_floor: float = 1e-6) -> dict[str, list[float | None]]:
    """m per level from the comparison vectors of labelled matches (labels_mode seed / fix)."""
    if histogram.empty:
        raise DataError("training labels: no labelled match could be compared; expected pairs of existing records")
    return level_shares(histogram, comparisons, floor=m_floor)


def global_prior(candidate_share: float, candidate_pairs: int, all_pairs: int) -> float:
    """Probability that two random records match: expected matches among candidates over all pairs."""
    if all_pairs <= 0:
        raise DataError("prior: no record pairs at all; expected at least two records")
    p = candidate_share * candidate_pairs / all_pairs
    return float(min(max(p, 1e-12), 1 - 1e-9))


def histogram_weights(hist: pd.DataFrame, model: FellegiSunterModel) -> np.ndarray:
    """Match weight (no term-frequency adjustment) of every histogram row: for charts and checks."""
    w = np.full(len(hist), model.prior_weight)
    for c in model.comparisons:
        w += np.array(c.weights())[hist[c.name].to_numpy(dtype=np.int64)]
    return w


# --- scoring ------------------------------------------------------------------------------------------------


def _lookup(values: Sequence[float], level: Column) -> Column:
    return F.element_at(F.array(*[F.lit(float(v)) for v in values]), level + 1)


def score_pairs(
    pairs: DataFrame,
    model: FellegiSunterModel,
    records: DataFrame | None,
    comparisons: Sequence[ComparisonDef],
    tf_tables: DataFrame | None = None,
) -> DataFrame:
    """Score candidate pairs: match_weight, match_probability, levels and weights per comparison.

    ``weights`` explain the score: ``match_weight = log2(prior/(1-prior)) + sum(weights)``.
    Comparisons with term-frequency adjustments weigh an exact agreement on value ``v`` as
    ``log2(m_exact / max(tf(v), tf_minimum_u_value))`` (comparisons.py docstring); ``tf_tables``
    is :func:`~jobs.match.comparisons.term_frequencies` of the records with the model's fixed
    denominators and count resolution (computed here when None).
    Pairs lacking the compared columns get them from ``records``.
    """
    model.check_comparisons(comparisons)
    cols = needed_columns(comparisons)
    if records is not None:
        pairs = with_both_sides(pairs, prepare_records(records, comparisons), cols)
    adjusted = [c for c in comparisons if c.tf_level is not None]
    if adjusted and tf_tables is None:
        if records is None:
            raise DataError("score_pairs: term-frequency adjustments need the records or tf_tables")
        tf_tables = term_frequencies(records, comparisons, model.tf_totals, model.tf_resolution)
    return score_levels(pair_levels(pairs, comparisons), model, comparisons, tf_tables)


def score_levels(
    levels: DataFrame,
    model: FellegiSunterModel,
    comparisons: Sequence[ComparisonDef],
    tf_tables: DataFrame | None,
) -> DataFrame:
    """Score :func:`pair_levels` rows (as :func:`score_pairs` does, which calls this)."""
    model.check_comparisons(comparisons)
    adjusted = [c for c in comparisons if c.tf_level is not None]
    if adjusted and tf_tables is None:
        raise DataError("score_levels: term-frequency adjustments need tf_tables")
    absent = [n for n in [level_column_name(c.name) for c in comparisons] + [f"{c.tf_column}_l" for c in adjusted]
              if n not in levels.columns]
    if absent:
        raise SchemaError(f"score_levels: pairs lack column(s) {absent}; available: {sorted(levels.columns)}")
    df = levels
    for c in adjusted:
        df = df.join(F.broadcast(_tf_of(tf_tables, c)), F.col(f"{c.tf_column}_l").cast("string") == F.col(_tfv(c)), "left")
    return _weighed(
        df, model, comparisons, {c.name: F.col(level_column_name(c.name)) for c in comparisons},
        [c for c in ("record_key_l", "record_key_r", "blocking_rule") if c in df.columns],
    )


def _tfv(c: ComparisonDef) -> str:
    return f"{TMP}tfv_{c.name}"


def _tf_of(tf_tables: DataFrame, c: ComparisonDef) -> DataFrame:
    """Comparison ``c``'s frequencies as ``(<tmp>tfv_<name>, <tmp>tf_<name>)``."""
    return tf_tables.where(F.col(TF_COMPARISON) == F.lit(c.name)).select(
        F.col(TF_VALUE).alias(_tfv(c)), F.col(TF_FREQUENCY).alias(f"{TMP}tf_{c.name}")
    )


def _weighed(
    df: DataFrame, model: FellegiSunterModel, comparisons: Sequence[ComparisonDef], levels: Mapping[str, Column],
    keep: Sequence[str],
) -> DataFrame:
    """``keep``, match_weight, levels, weights and match_probability from each comparison's level
    (and, for adjusted comparisons, the frequency column ``<tmp>tf_<name>`` of the left value).

    The one place a score is computed: :func:`score_pairs` and :func:`reweigh_pairs` must give
    the same doubles for the same levels and frequencies (the incremental run is checked against a
    full run to the bit), so both sum the same expressions in the same order.
    """
    weight_cols = {}
    for c in comparisons:
        p = model.comparison(c.name)
        lvl = levels[c.name]
        w = _lookup(p.weights(), lvl)
        if c.tf_level is not None:
            m_exact = p.m[c.tf_level]
            tf = F.col(f"{TMP}tf_{c.name}")
            adj = F.lit(math.log2(m_exact)) - F.log2(F.greatest(tf, F.lit(c.tf_minimum_u_value)))
            w = F.when((lvl == F.lit(c.tf_level)) & tf.isNotNull(), adj).otherwise(w)
        weight_cols[c.name] = w
    wname = {c.name: f"{TMP}w_{c.name}" for c in comparisons}
    lname = {c.name: f"{TMP}l_{c.name}" for c in comparisons}
    df = df.select(
        *keep, *[levels[n].alias(lname[n]) for n in lname], *[w.alias(wname[n]) for n, w in weight_cols.items()]
    )
    total = F.lit(model.prior_weight)
    for c in comparisons:
        total = total + F.col(wname[c.name])
    out = df.select(
        *keep,
        total.alias("match_weight"),
        F.create_map(*[x for c in comparisons for x in (F.lit(c.name), F.col(lname[c.name]))]).alias("levels"),
        F.create_map(*[x for c in comparisons for x in (F.lit(c.name), F.col(wname[c.name]))]).alias("weights"),
    )
    return out.withColumn("match_probability", F.lit(1.0) / (F.lit(1.0) + F.pow(F.lit(2.0), -F.col("match_weight"))))


def reweigh_pairs(
    pairs: DataFrame,
    model: FellegiSunterModel,
    records: DataFrame,
    comparisons: Sequence[ComparisonDef],
    tf_tables: DataFrame | None,
    run_id: str,
) -> DataFrame:
    """Stored pairs (match.pairs rows) scored again with today's term frequencies, from their stored
    levels: no comparison is computed again, only the weights of adjusted comparisons at their
    exact level, whose frequency comes from the left record's value (as :func:`score_pairs` reads
    it). A pair whose score changes gets ``run_id``; the others keep theirs.

    An incremental run calls this for every stored pair it keeps: a new batch moves the counts of
    the values it brings, and one join of the pairs with the records costs less than finding the
    pairs whose value moved a step and scoring them from scratch (at 1,000,000 persons a 1.5%
    batch moved 3.8 million of 25 million stored pairs).
    """
    model.check_comparisons(comparisons)
    adjusted = [c for c in comparisons if c.tf_level is not None]
    if not adjusted:
        return pairs
    if tf_tables is None:
        raise DataError("reweigh_pairs: term-frequency adjustments need tf_tables")
    side = prepare_records(records, comparisons).select(
        F.col("record_key").alias("record_key_l"), *[F.col(c.tf_column).cast("string").alias(f"{TMP}v_{c.name}") for c in adjusted]
    )
    df = pairs.join(side, "record_key_l", "left")
    for c in adjusted:
        df = df.join(F.broadcast(_tf_of(tf_tables, c)), F.col(f"{TMP}v_{c.name}") == F.col(_tfv(c)), "left")
    old = {k: f"{TMP}old_{k}" for k in ("match_weight", "run_id")}
    df = df.select("*", *[F.col(k).alias(v) for k, v in old.items()])
    keep = ["record_key_l", "record_key_r", "blocking_rule", "model_version", *old.values()]
    out = _weighed(df, model, comparisons, {c.name: F.col("levels")[c.name] for c in comparisons}, keep)
    changed = ~F.col("match_weight").eqNullSafe(F.col(old["match_weight"]))
    return out.select(
        "record_key_l", "record_key_r", "match_weight", "match_probability", "levels", "weights", "blocking_rule",
        "model_version", F.when(changed, F.lit(run_id)).otherwise(F.col(old["run_id"])).alias("run_id"),
    )
