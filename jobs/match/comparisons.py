"""Comparison library: how similar two records are on one attribute, as a level index.

Each comparison is registered by name (STYLE.md 6) and turns a pair DataFrame, whose record columns
carry ``_l`` and ``_r`` suffixes, into one integer column: the comparison level (Splink calls it
gamma). Fellegi and Sunter (1969) give every level its own m and u probability; the model in
``model.py`` estimates them.

Level numbering (the same for every comparison):

* ``0``: null level: either side is null or blank. It always has Bayes factor 1 (weight 0): a
  missing value is no evidence either way. (Splink numbers it -1.)
* ``1``: else level: both sides present and no other level applies.
* ``2 .. K``: ever more similar; ``K`` (the highest level) is the exact match where a comparison
  has one. Splink's gamma is ours minus one.

Jaro-Winkler is not a Spark built-in. Two implementations are here, giving identical values:
a vectorised pandas UDF around rapidfuzz (``process.cpdist`` over whole Arrow batches) and pure
Spark higher-order functions. On 2M pairs the pandas UDF was measured ~6x faster (see
``JARO_WINKLER_IMPLEMENTATION``), so it is the default; the SQL version stays as a fallback for
clusters without Python workers' Arrow support and as a cross-check in the tests.

Jaro-Winkler definition (Winkler 1990, as in the strcmp95 C code of the US Census Bureau):
matching window ``max(len)/2 - 1``; greedy matching left to right; transpositions = half
(integer division) the number of matched characters out of order; Winkler's prefix bonus
``0.1 * prefix * (1 - jaro)`` for a common prefix of at most 4 characters, applied only when the
Jaro similarity exceeds the boost threshold 0.7. rapidfuzz's ``JaroWinkler.similarity`` implements
the same definition (prefix_weight 0.1). Textbook values (Winkler 1990; W. E. Winkler, "String
Comparator Metrics and Enhanced Decision Rules in the Fellegi-Sunter Model of Record Linkage",
Proc. Section on Survey Research Methods, ASA, 1990, pp. 354-359; and the Wikipedia article
"Jaro-Winkler distance"): MARTHA/MARHTA 0.9611, DWAYNE/DUANE 0.84, DIXON/DICKSONX 0.8133;
JELLYFISH/SMELLYFISH 0.8963 (the jellyfish library's documentation). ``tests/match`` checks them
against both implementations.

Term-frequency adjustments (Splink's approach, after Winkler 1988): at the exact level of a name, or
the same-town level of an address (its normalised city), the u probability (the chance that two
random records agree) is replaced by the frequency of the agreed value, so agreeing on "Smith"
weighs less than agreeing on "Wojciechowski", and on "Amsterdam" less than on "Ootmarsum". The
weight becomes ``log2(m_exact / max(tf(value), tf_minimum_u_value))``, i.e. the level's weight
plus the adjustment ``log2(u_exact / tf(value))``; the floor stops a unique value from getting an
unbounded weight. Frequencies are computed from the records at scoring time
(:func:`term_frequencies`), so no record value is ever stored in the model; the model fixes their
denominator (non-blank values at training) and a resolution: counts are rounded to steps of
``match.term_frequency_resolution`` bits in log2 space (:func:`rounded_count`; 0.25 by default,
a weight moves by at most 0.125 bits), so a batch that adds a few "Smit"s to thousands leaves the
weight of agreeing on "Smit" as it was and an incremental run need not rescore those pairs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from jobs.common.registry import Registry
from jobs.common.schemas import TMP

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from jobs.match.config import ComparisonConfig

log = logging.getLogger(__name__)

LEVEL_NULL = 0
LEVEL_ELSE = 1
LABEL_NULL = "null"
LABEL_ELSE = "else"

# "auto": the JVM UDF when the session has it (jobs/common/jvm), else the pandas UDF. The
# environment variable CDP_JARO_WINKLER (jvm, pandas, sql) forces one, e.g. to compare them.
JARO_WINKLER_IMPLEMENTATION: Literal["auto", "jvm", "pandas", "sql"] = "auto"

SUFFIX_L = "_l"
SUFFIX_R = "_r"


class Pair:
    """Access to the left and right columns of a pair DataFrame (``<column>_l``, ``<column>_r``)."""

    def __init__(self, suffix_l: str = SUFFIX_L, suffix_r: str = SUFFIX_R) -> None:
        self.suffix_l = suffix_l
        self.suffix_r = suffix_r

    def l(self, column: str) -> Column:  # noqa: E743 - l/r is the established pair notation
        return F.col(f"{column}{self.suffix_l}")

    def r(self, column: str) -> Column:
        return F.col(f"{column}{self.suffix_r}")


Helpers = Mapping[str, Column]
Condition = Callable[[Pair, Helpers], Column]
# Per-record preparation: given a column getter for ONE record, the derived values a comparison
# needs (digits of a postcode, the local part of an e-mail, ...). They are computed once per record
# before pairing and reach the conditions as helpers ``<key>l`` and ``<key>r``.
Prepare = Callable[[Callable[[str], Column]], dict[str, Column]]


@dataclass(frozen=True)
class LevelDef:
    """One level above ``else``: its label and the condition that puts a pair in it."""

    label: str
    condition: Condition


@dataclass(frozen=True)
class Levels:
    """What a registered comparison function returns (no Spark objects until called)."""

    columns: tuple[str, ...]
    null: Condition
    levels: tuple[LevelDef, ...]  # most similar first
    helpers: Callable[[Pair, Helpers], dict[str, Column]] | None = None  # per pair (a UDF)
    tf_label: str | None = None  # level where a term-frequency adjustment may apply
    prepare: Prepare | None = None  # per record, see :data:`Prepare`
    # Prepared value whose frequency adjusts the ``tf_label`` level (a key of ``prepare``; the
    # level must imply both sides hold it). None: the first column's value as the record has it.
    tf_key: str | None = None


@dataclass(frozen=True)
class ComparisonDef:
    """A configured comparison: a name, its levels and how to compute the level of a pair."""

    name: str
    function: str
    columns: tuple[str, ...]
    arguments: Mapping[str, Any]
    spec: Levels = field(repr=False)
    term_frequency_adjustments: bool = False
    tf_minimum_u_value: float = 1e-4
    # Built pair expressions, reused (each build is hundreds of py4j calls; a training run builds
    # the same levels for the random pairs, the candidates and the labelled pairs).
    _built: dict[tuple[Any, ...], Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _reuse(self, kind: str, pair: Pair, available: Sequence[str], build: Callable[[], Any]) -> Any:
        from pyspark import SparkContext

        have = set(available)
        present = tuple(f"{n}{s}" in have for n in self.prepared_columns for s in (pair.suffix_l, pair.suffix_r))
        key = (kind, pair.suffix_l, pair.suffix_r, present, id(SparkContext._active_spark_context))
        if key not in self._built:
            self._built[key] = build()
        return self._built[key]

    @property
    def labels(self) -> tuple[str, ...]:
        """Label of each level, indexed by level: ``null``, ``else``, then least to most similar."""
        return (LABEL_NULL, LABEL_ELSE, *(lv.label for lv in reversed(self.spec.levels)))

    @property
    def n_levels(self) -> int:
        return len(self.spec.levels) + 2

    @property
    def tf_level(self) -> int | None:
        """Level index where the term-frequency adjustment applies (None: not adjusted)."""
        if not self.term_frequency_adjustments or self.spec.tf_label is None:
            return None
        return self.labels.index(self.spec.tf_label)

    @property
    def tf_column(self) -> str:
        """Record column whose value frequencies adjust the ``tf_level``: the first column, or the
        prepared column the comparison names (the address: its normalised city)."""
        if self.spec.tf_key is not None:
            return self.prepared_name(self.spec.tf_key)
        return self.columns[0]

    def helper_name(self, helper: str) -> str:
        return f"{TMP}h_{self.name}_{helper}"

    def prepared_name(self, key: str) -> str:
        """Record column holding the prepared value ``key`` (carried into pairs as ``_l``/``_r``)."""
        return f"{TMP}p_{self.name}_{key}"

    @functools.cached_property
    def prepared_keys(self) -> tuple[str, ...]:
        if self.spec.prepare is None:
            return ()
        return tuple(self.spec.prepare(F.col))

    @property
    def prepared_columns(self) -> tuple[str, ...]:
        """Names of the per-record prepared columns (``needed_columns`` carries them into pairs)."""
        return tuple(self.prepared_name(k) for k in self.prepared_keys)

    def record_columns(self) -> dict[str, Column]:
        """Per-record prepared columns, name -> expression over the record's columns."""
        if self.spec.prepare is None:
            return {}
        return {self.prepared_name(k): e for k, e in self.spec.prepare(F.col).items()}

    def prepared_helpers(self, pair: Pair, available: Sequence[str] = ()) -> dict[str, Column]:
        """``<key>l`` / ``<key>r`` for every prepared value: the carried column where the pair has it,
        else the same expression over the pair's raw columns (identical values, computed per pair)."""
        if self.spec.prepare is None:
            return {}
        have = set(available)
        out: dict[str, Column] = {}
        for side, get, suffix in (("l", pair.l, pair.suffix_l), ("r", pair.r, pair.suffix_r)):
            computed: dict[str, Column] | None = None
            for key in self.prepared_keys:
                name = f"{self.prepared_name(key)}{suffix}"
                if name in have:
                    out[f"{key}{side}"] = F.col(name)
                else:
                    computed = computed if computed is not None else self.spec.prepare(get)
                    out[f"{key}{side}"] = computed[key]
        return out

    def helper_columns(self, pair: Pair, available: Sequence[str] = ()) -> dict[str, Column]:
        """Temporary columns computed once before the level (e.g. a Jaro-Winkler similarity)."""
        if self.spec.helpers is None:
            return {}

        def build() -> dict[str, Column]:
            prepared = self.prepared_helpers(pair, available)
            return {self.helper_name(k): v for k, v in self.spec.helpers(pair, prepared).items()}

        return dict(self._reuse("helpers", pair, available, build))

    def level_column(self, pair: Pair, available: Sequence[str] = (), with_helpers: bool = True) -> Column:
        """The level as an int Column; pair helpers are read from their temporary columns."""
        return self._reuse(f"level{with_helpers}", pair, available, lambda: self._level_column(pair, available, with_helpers))

    def _level_column(self, pair: Pair, available: Sequence[str], with_helpers: bool) -> Column:
        prepared = self.prepared_helpers(pair, available)
        helpers: dict[str, Column] = dict(prepared)
        if self.spec.helpers is not None:
            names = self.spec.helpers(pair, prepared)
            if with_helpers:
                helpers.update({k: F.col(self.helper_name(k)) for k in names})
            else:
                helpers.update(names)
        top = len(self.spec.levels) + 1
        expr = F.when(self.spec.null(pair, helpers), F.lit(LEVEL_NULL))
        for i, lv in enumerate(self.spec.levels):
            expr = expr.when(lv.condition(pair, helpers), F.lit(top - i))
        return expr.otherwise(F.lit(LEVEL_ELSE)).cast("int")


COMPARISONS: Registry[Callable[..., Levels]] = Registry("comparison")


def level_column_name(comparison: str) -> str:
    """Name of the temporary level column of a comparison in a pair DataFrame."""
    return f"{TMP}lvl_{comparison}"


def build_comparison(cfg: "ComparisonConfig") -> ComparisonDef:
    """Resolve a comparison config through the registry (raises ValueError on bad arguments)."""
    fn = COMPARISONS.get(cfg.function)
    spec = fn(tuple(cfg.columns), **cfg.arguments)
    cmp = ComparisonDef(
        name=cfg.name,
        function=cfg.function,
        columns=spec.columns,
        arguments=dict(cfg.arguments),
        spec=spec,
        term_frequency_adjustments=cfg.term_frequency_adjustments,
        tf_minimum_u_value=cfg.tf_minimum_u_value,
    )
    if cfg.term_frequency_adjustments and spec.tf_label is None:
        raise ValueError(
            f"comparison function {cfg.function!r} has no exact level a term-frequency adjustment "
            "could apply to; expected term_frequency_adjustments: false"
        )
    return cmp


def compute_levels(pairs: DataFrame, comparisons: Sequence[ComparisonDef], pair: Pair | None = None) -> DataFrame:
    """Add one level column per comparison (:func:`level_column_name`).

    Helper columns (similarities from a UDF) are computed in one projection first so every UDF
    runs once per pair, then the levels, then the helpers are dropped.
    """
    pair = pair or Pair()
    have = pairs.columns
    helpers: dict[str, Column] = {}
    for c in comparisons:
        helpers.update(c.helper_columns(pair, have))
    df = pairs
    if helpers:
        df = df.select("*", *[expr.alias(name) for name, expr in helpers.items()])
    df = df.select("*", *[c.level_column(pair, have).alias(level_column_name(c.name)) for c in comparisons])
    return df.drop(*helpers) if helpers else df


def prepare_records(records: DataFrame, comparisons: Sequence[ComparisonDef]) -> DataFrame:
    """Records with every comparison's per-record prepared columns (those not there yet).

    Normalising once per record (digits of a postcode, a lower-cased e-mail) instead of once per
    pair and side: a record takes part in many pairs, and the u sample alone has a million.
    """
    cols: dict[str, Column] = {}
    for c in comparisons:
        cols.update({n: e for n, e in c.record_columns().items() if n not in records.columns})
    return records.select("*", *[e.alias(n) for n, e in cols.items()]) if cols else records


# --- column helpers (Column -> Column) -----------------------------------------------------------


def blank(c: Column) -> Column:
    """True when a value is null or only whitespace."""
    return c.isNull() | (F.trim(c.cast("string")) == F.lit(""))


def digits(c: Column) -> Column:
    """Only the digits of a value (``'1234 AB'`` -> ``'1234'``); empty becomes null."""
    d = F.regexp_replace(c.cast("string"), r"[^0-9]", "")
    return F.when(d != F.lit(""), d)


def compact_upper(c: Column) -> Column:
    """Upper case without spaces (``'1234 ab'`` -> ``'1234AB'``)."""
    return F.upper(F.regexp_replace(c.cast("string"), r"\s+", ""))


def email_local(c: Column) -> Column:
    """Local part of an e-mail address, lower case; null without an '@'."""
    s = F.lower(F.trim(c.cast("string")))
    pos = F.instr(s, "@")
    return F.when(pos > 1, F.substring_index(s, "@", 1))


def last_digits(c: Column, n: int) -> Column:
    """The last ``n`` digits of a phone number; null when it has fewer digits."""
    d = F.regexp_replace(c.cast("string"), r"[^0-9]", "")
    return F.when(F.length(d) >= n, F.substring(d, -n, n))


def iso_date_compact(c: Column) -> Column:
    """A date (DateType or string) as ``yyyyMMdd``; null unless it has exactly 8 digits."""
    d = F.regexp_replace(c.cast("string"), r"[^0-9]", "")
    return F.when(F.length(d) == 8, d)


# --- Jaro-Winkler --------------------------------------------------------------------------------


def _jaro_winkler_batch(a: pd.Series, b: pd.Series) -> pd.Series:
    """Jaro-Winkler of aligned string batches with rapidfuzz (C++), null where either is null."""
    import numpy as np
    from rapidfuzz import process
    from rapidfuzz.distance import JaroWinkler

    out = np.full(len(a), np.nan, dtype=np.float64)
    mask = (a.notna() & b.notna()).to_numpy()
    if mask.any():
        out[mask] = process.cpdist(
            a[mask].tolist(),
            b[mask].tolist(),
            scorer=JaroWinkler.normalized_similarity,
            dtype=np.float64,
            workers=1,
        )
    return pd.Series(out)


@functools.cache
def _jaro_winkler_udf() -> Callable[..., Column]:
    from pyspark.sql.functions import pandas_udf

    return pandas_udf(_jaro_winkler_batch, "double")  # type: ignore[call-overload]


def jaro_winkler_pandas(a: Column, b: Column) -> Column:
    """Jaro-Winkler similarity as a vectorised pandas UDF (rapidfuzz over Arrow batches)."""
    return _jaro_winkler_udf()(a.cast("string"), b.cast("string"))


def jaro_winkler_sql(a: Column, b: Column) -> Column:
    """Jaro-Winkler similarity in Spark higher-order functions (no Python worker needed).

    The greedy match of the Jaro definition is an ``aggregate`` over the positions of ``a`` that
    carries the matched flags of ``b``; a one-element ``aggregate`` acts as a ``let`` so the
    candidate position is computed once.
    """
    a = a.cast("string")
    b = b.cast("string")
    l1 = F.length(a)
    l2 = F.length(b)
    c1 = F.split(a, "")
    c2 = F.split(b, "")
    w = F.greatest(F.floor(F.greatest(l1, l2) / 2).cast("int") - 1, F.lit(0))
    init = F.struct(
        F.array_repeat(F.lit(False), l2).alias("used"),
        F.array().cast("array<int>").alias("m1"),
    )

    def step(acc: Column, i: Column) -> Column:
        lo = F.greatest(F.lit(0), i - w)
        hi = F.least(l2 - 1, i + w)
        cands = F.filter(
            F.sequence(lo, F.greatest(hi, lo)),
            lambda j: (j <= hi) & ~F.get(acc["used"], j) & (F.get(c2, j) == F.get(c1, i)),
        )

        def bind(acc2: Column, j: Column) -> Column:
            return F.when(j.isNull(), acc2).otherwise(
                F.struct(
                    F.transform(acc2["used"], lambda u, k: u | (k == j)).alias("used"),
                    F.concat(acc2["m1"], F.array(i)).alias("m1"),
                )
            )

        return F.aggregate(F.array(F.get(cands, 0)), acc, bind)

    state = F.aggregate(F.sequence(F.lit(0), F.greatest(l1 - 1, F.lit(0))), init, lambda acc, i: F.when(i < l1, step(acc, i)).otherwise(acc))
    m1 = state["m1"]
    m2 = F.filter(F.sequence(F.lit(0), F.greatest(l2 - 1, F.lit(0))), lambda j: F.coalesce(F.get(state["used"], j), F.lit(False)))
    m = F.size(m1)
    half_t = F.floor(
        F.size(
            F.filter(
                F.sequence(F.lit(0), F.greatest(m - 1, F.lit(0))),
                lambda k: (k < m) & (F.get(c1, F.get(m1, k)) != F.get(c2, F.get(m2, k))),
            )
        )
        / 2
    )
    jaro = F.when(m == 0, F.lit(0.0)).otherwise((m / l1 + m / l2 + (m - half_t) / m) / 3.0)
    max_prefix = F.least(F.lit(4), l1, l2)
    prefix = F.aggregate(
        F.sequence(F.lit(0), F.greatest(max_prefix - 1, F.lit(0))),
        F.struct(F.lit(0).alias("n"), F.lit(True).alias("run")),
        lambda acc, k: F.when(
            acc["run"] & (k < max_prefix) & (F.get(c1, k) == F.get(c2, k)),
            F.struct((acc["n"] + 1).alias("n"), F.lit(True).alias("run")),
        ).otherwise(F.struct(acc["n"].alias("n"), F.lit(False).alias("run"))),
    )["n"]
    jw = F.when(jaro > 0.7, jaro + prefix * 0.1 * (1.0 - jaro)).otherwise(jaro)
    both_empty = (l1 == 0) & (l2 == 0)
    return F.when(a.isNull() | b.isNull(), F.lit(None).cast("double")).when(both_empty, F.lit(1.0)).otherwise(jw.cast("double"))


def jaro_winkler_jvm(a: Column, b: Column) -> Column:
    """Jaro-Winkler similarity as our JVM UDF (jobs/common/jvm/cdp/udf/JaroWinkler.java)."""
    return F.call_function("cdp_jaro_winkler", a.cast("string"), b.cast("string"))


def jaro_winkler_implementation() -> str:
    """The implementation :func:`jaro_winkler` uses now (module docstring)."""
    import os

    from jobs.common.jvm import jvm_udfs_available

    choice = os.environ.get("CDP_JARO_WINKLER") or JARO_WINKLER_IMPLEMENTATION
    if choice not in ("auto", "jvm", "pandas", "sql"):
        raise ValueError(f"CDP_JARO_WINKLER: got {choice!r}; expected auto, jvm, pandas or sql")
    if choice == "auto":
        return "jvm" if jvm_udfs_available() else "pandas"
    return choice


def jaro_winkler(a: Column, b: Column) -> Column:
    """Jaro-Winkler similarity with the implementation chosen by measurement (module docstring)."""
    impl = jaro_winkler_implementation()
    if impl == "jvm":
        return jaro_winkler_jvm(a, b)
    if impl == "sql":
        return jaro_winkler_sql(a, b)
    return jaro_winkler_pandas(a, b)


# --- registered comparisons -----------------------------------------------------------------------


def _one(columns: Sequence[str], function: str) -> str:
    if len(columns) != 1:
        raise ValueError(f"comparison {function!r} takes exactly one column; got {list(columns)}")
    return columns[0]


def _thresholds(values: Sequence[float], lo: float, hi: float, what: str, descending: bool) -> list[float]:
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError(f"{what}: expected at least one threshold")
    bad = [v for v in vals if not lo <= v <= hi]
    if bad:
        raise ValueError(f"{what}: got {bad}; expected values between {lo} and {hi}")
    if len(set(vals)) != len(vals):
        raise ValueError(f"{what}: got {vals}; expected distinct values")
    return sorted(vals, reverse=descending)


def _null1(c: str) -> Condition:
    return lambda p, h: blank(p.l(c)) | blank(p.r(c))


@COMPARISONS.register("exact")
def exact(columns: Sequence[str]) -> Levels:
    """Levels: null, else, exact."""
    c = _one(columns, "exact")
    return Levels(
        columns=(c,),
        null=_null1(c),
        levels=(LevelDef("exact", lambda p, h: p.l(c) == p.r(c)),),
        tf_label="exact",
    )


def _differing(a: Column, b: Column) -> tuple[Column, Column]:
    """``a`` and ``b`` where both are present and differ, else null: only those need a similarity."""
    differ = ~blank(a) & ~blank(b) & (a != b)
    none = F.lit(None).cast("string")
    return F.when(differ, a).otherwise(none), F.when(differ, b).otherwise(none)


@COMPARISONS.register("jaro_winkler")
def jaro_winkler_levels(columns: Sequence[str], thresholds: Sequence[float] = (0.92, 0.88, 0.7)) -> Levels:
    """Levels: null, else, Jaro-Winkler >= each threshold (ascending), exact."""
    c = _one(columns, "jaro_winkler")
    ts = _thresholds(thresholds, 0.0, 1.0, "jaro_winkler thresholds", descending=True)
    lvls = [LevelDef("exact", lambda p, h: p.l(c) == p.r(c))]
    for t in ts:
        lvls.append(LevelDef(f"jaro_winkler>={t:g}", lambda p, h, t=t: h["jw"] >= F.lit(t)))

    def helpers(p: Pair, h: Helpers) -> dict[str, Column]:
        return {"jw": jaro_winkler(*_differing(p.l(c), p.r(c)))}

    return Levels(columns=(c,), null=_null1(c), levels=tuple(lvls), helpers=helpers, tf_label="exact")


@COMPARISONS.register("levenshtein")
def levenshtein_levels(columns: Sequence[str], thresholds: Sequence[int] = (1, 2)) -> Levels:
    """Levels: null, else, Levenshtein distance <= each threshold (descending), exact."""
    from_ = _one(columns, "levenshtein")
    ts = [int(t) for t in _thresholds(thresholds, 1, 100, "levenshtein thresholds", descending=False)]
    lvls = [LevelDef("exact", lambda p, h: p.l(from_) == p.r(from_))]
    for t in ts:
        # The threshold form of levenshtein stops early and returns -1 above the largest threshold.
        lvls.append(LevelDef(f"levenshtein<={t}", lambda p, h, t=t: (h["lev"] >= 0) & (h["lev"] <= t)))

    def helpers(p: Pair, h: Helpers) -> dict[str, Column]:
        return {"lev": F.levenshtein(p.l(from_).cast("string"), p.r(from_).cast("string"), max(ts))}

    return Levels(columns=(from_,), null=_null1(from_), levels=tuple(lvls), helpers=helpers, tf_label="exact")


@COMPARISONS.register("date")
def date_levels(
    columns: Sequence[str], typo: bool = True, day_month_swap: bool = True, same_year: bool = True
) -> Levels:
    """Levels: null, else, same year, day and month swapped, one-character typo, exact.

    Works on DateType and on strings with 8 digits (``yyyy-MM-dd``, ``yyyyMMdd``); the typo level
    is a Levenshtein distance of 1 on the ISO digits, the swap level needs the same year.
    """
    from_ = _one(columns, "date")

    def prepare(col: Callable[[str], Column]) -> dict[str, Column]:
        return {"d": iso_date_compact(col(from_))}

    def sub(col: Column, start: int, n: int) -> Column:
        return col.substr(start, n)

    lvls = [LevelDef("exact", lambda p, h: h["dl"] == h["dr"])]
    if typo:
        lvls.append(LevelDef("one_character_typo", lambda p, h: F.levenshtein(h["dl"], h["dr"], 1) == 1))
    if day_month_swap:
        lvls.append(
            LevelDef(
                "day_month_swapped",
                lambda p, h: (sub(h["dl"], 1, 4) == sub(h["dr"], 1, 4))
                & (sub(h["dl"], 5, 2) == sub(h["dr"], 7, 2))
                & (sub(h["dl"], 7, 2) == sub(h["dr"], 5, 2)),
            )
        )
    if same_year:
        lvls.append(LevelDef("same_year", lambda p, h: sub(h["dl"], 1, 4) == sub(h["dr"], 1, 4)))

    return Levels(
        columns=(from_,), null=lambda p, h: h["dl"].isNull() | h["dr"].isNull(), levels=tuple(lvls), tf_label=None, prepare=prepare
    )


@COMPARISONS.register("postcode")
def postcode_levels(columns: Sequence[str], typo: bool = True, prefix_length: int | None = None) -> Levels:
    """Levels: null, else, [same first ``prefix_length`` digits], [digits one typo apart], same digits, exact.

    ``'1234 AB'`` and ``'1234AB'`` are exact (spaces and case ignored); ``'1234 AB'`` and
    ``'1234 XY'`` share the digits (same 4-digit area in the Netherlands).
    """
    c = _one(columns, "postcode")
    if prefix_length is not None and not 1 <= int(prefix_length) <= 10:
        raise ValueError(f"postcode prefix_length: got {prefix_length}; expected 1 to 10")

    def prepare(col: Callable[[str], Column]) -> dict[str, Column]:
        return {"f": compact_upper(col(c)), "d": digits(col(c))}

    lvls = [
        LevelDef("exact", lambda p, h: h["fl"] == h["fr"]),
        LevelDef("same_digits", lambda p, h: h["dl"] == h["dr"]),
    ]
    if typo:
        lvls.append(LevelDef("digits_one_typo", lambda p, h: F.levenshtein(h["dl"], h["dr"], 1) >= 0))
    if prefix_length is not None:
        n = int(prefix_length)
        lvls.append(
            LevelDef(
                f"same_first_{n}_digits",
                lambda p, h: (h["dl"].substr(1, n) == h["dr"].substr(1, n)) & (F.length(h["dl"]) >= n),
            )
        )
    return Levels(columns=(c,), null=_null1(c), levels=tuple(lvls), tf_label="exact", prepare=prepare)


@COMPARISONS.register("address")
def address_levels(columns: Sequence[str]) -> Levels:
    """One address as one comparison: levels null, else, [same postcode digits], same town, same
    street, same address.

    Columns: ``[postcode, house_number, street, city]`` (street and city optional). Postcode,
    house number, street and city are one fact, not four: compared separately, a household's
    shared address counted four times over (some 30 bits) and outweighed different given names
    and birth dates. Same address: the same postcode (spaces and case ignored) and house number,
    or the same street, house number and city. Same street: the same postcode, or street and
    city. Same town: the same city (trimmed, case ignored); without a city column, the postcode's
    digits. Same postcode digits (only with a city column): the postcode's digits agree but the
    city does not (spelled otherwise, or missing on one side). Null: neither postcode nor street
    on both sides.

    Term-frequency adjustment (``term_frequency_adjustments: true``, needs the city column): at
    the same-town level both sides hold the same normalised city, and that city's frequency
    replaces u, so living in the same small town weighs more than living in the same capital.
    """
    if not 2 <= len(columns) <= 4:
        raise ValueError(
            f"comparison 'address' takes two to four columns [postcode, house_number, street, city]; got {list(columns)}"
        )
    pc, hn = columns[0], columns[1]
    street = columns[2] if len(columns) > 2 else None
    city = columns[3] if len(columns) > 3 else None

    def present(v: Column) -> Column:
        return F.when(v != F.lit(""), v)  # empty becomes null, as in digits()

    def prepare(col: Callable[[str], Column]) -> dict[str, Column]:
        out = {"p": present(compact_upper(col(pc))), "d": digits(col(pc)), "h": present(compact_upper(col(hn)))}
        for key, c in (("s", street), ("c", city)):
            if c is not None:
                out[key] = present(F.upper(F.trim(col(c).cast("string"))))
        return out

    def same(key: str) -> Condition:
        return lambda p, h: F.coalesce(h[f"{key}l"] == h[f"{key}r"], F.lit(False))

    def both(*conds: Condition) -> Condition:
        return lambda p, h: functools.reduce(lambda a, b: a & b, [c(p, h) for c in conds])

    def either(*conds: Condition) -> Condition:
        return lambda p, h: functools.reduce(lambda a, b: a | b, [c(p, h) for c in conds])

    postcode, number = same("p"), same("h")
    by_street = both(same("s"), same("c")) if street and city else (same("s") if street else None)
    addr = [both(postcode, number)] + ([both(by_street, number)] if by_street else [])
    street_level = [postcode] + ([by_street] if by_street else [])
    lvls = [
        LevelDef("same_address", either(*addr)),
        LevelDef("same_street", either(*street_level)),
    ]
    if city:
        # the town level is the city, so that its frequency can adjust it (both sides hold it)
        lvls += [LevelDef("same_town", same("c")), LevelDef("same_postcode_digits", same("d"))]
    else:
        lvls.append(LevelDef("same_town", same("d")))

    def null(p: Pair, h: Helpers) -> Column:
        missing = h["pl"].isNull() | h["pr"].isNull()
        if street:
            missing = missing & (h["sl"].isNull() | h["sr"].isNull())
        return missing

    return Levels(
        columns=tuple(columns), null=null, levels=tuple(lvls), prepare=prepare,
        tf_label="same_town" if city else None, tf_key="c" if city else None,
    )


@COMPARISONS.register("email")
def email_levels(columns: Sequence[str], local_threshold: float | None = None) -> Levels:
    """Levels: null, else, [local part Jaro-Winkler >= threshold], same local part, exact.

    The same local part at another domain (``jan.jansen@gmail.com`` / ``jan.jansen@hotmail.com``)
    is strong evidence; the optional fuzzy level catches typos in the local part.
    """
    c = _one(columns, "email")
    if local_threshold is not None:
        _thresholds([local_threshold], 0.0, 1.0, "email local_threshold", descending=True)

    def prepare(col: Callable[[str], Column]) -> dict[str, Column]:
        return {"e": F.lower(F.trim(col(c).cast("string"))), "l": email_local(col(c))}

    helpers = None
    if local_threshold is not None:

        def helpers(p: Pair, h: Helpers) -> dict[str, Column]:
            ll, lr = h["ll"], h["lr"]
            differ = ll.isNotNull() & lr.isNotNull() & (ll != lr)
            none = F.lit(None).cast("string")
            return {"jw": jaro_winkler(F.when(differ, ll).otherwise(none), F.when(differ, lr).otherwise(none))}

    lvls = [
        LevelDef("exact", lambda p, h: h["el"] == h["er"]),
        LevelDef("same_local_part", lambda p, h: h["ll"] == h["lr"]),
    ]
    if local_threshold is not None:
        t = float(local_threshold)
        lvls.append(LevelDef(f"local_part_jaro_winkler>={t:g}", lambda p, h: h["jw"] >= F.lit(t)))
    return Levels(columns=(c,), null=_null1(c), levels=tuple(lvls), helpers=helpers, tf_label="exact", prepare=prepare)


@COMPARISONS.register("phone")
def phone_levels(columns: Sequence[str], last_digits_count: int = 9) -> Levels:
    """Levels: null, else, same last ``last_digits_count`` digits, exact.

    The last nine digits agree across ``+31612345678`` and ``0612345678``.
    """
    c = _one(columns, "phone")
    n = int(last_digits_count)
    if not 4 <= n <= 15:
        raise ValueError(f"phone last_digits_count: got {last_digits_count}; expected 4 to 15")

    def prepare(col: Callable[[str], Column]) -> dict[str, Column]:
        return {"t": last_digits(col(c), n)}

    lvls = (
        LevelDef("exact", lambda p, h: p.l(c) == p.r(c)),
        LevelDef(f"same_last_{n}_digits", lambda p, h: h["tl"] == h["tr"]),
    )
    return Levels(columns=(c,), null=_null1(c), levels=lvls, tf_label="exact", prepare=prepare)


@COMPARISONS.register("name_swap")
def name_swap_levels(columns: Sequence[str], threshold: float | None = 0.92) -> Levels:
    """Given and family name swapped: levels null, else, [swapped fuzzily], swapped exactly.

    Columns: ``[given, family]``. Swapped means ``given_l = family_r`` and ``family_l = given_r``
    while the straight orientation does not agree on both; the fuzzy level uses Jaro-Winkler >=
    ``threshold`` on both crossed pairs. Use it next to the given and family name comparisons:
    those then sit at their else level, and this level restores the evidence.
    """
    if len(columns) != 2:
        raise ValueError(f"comparison 'name_swap' takes two columns [given, family]; got {list(columns)}")
    g, f = columns
    if threshold is not None:
        _thresholds([threshold], 0.0, 1.0, "name_swap threshold", descending=True)

    def straight(p: Pair) -> Column:
        return (p.l(g) == p.r(g)) & (p.l(f) == p.r(f))

    def null(p: Pair, h: Helpers) -> Column:
        return blank(p.l(g)) | blank(p.r(g)) | blank(p.l(f)) | blank(p.r(f))

    def helpers(p: Pair, h: Helpers) -> dict[str, Column]:
        want = ~straight(p) & ~null(p, h)
        none = F.lit(None).cast("string")
        return {
            "jw1": jaro_winkler(F.when(want, p.l(g)).otherwise(none), F.when(want, p.r(f)).otherwise(none)),
            "jw2": jaro_winkler(F.when(want, p.l(f)).otherwise(none), F.when(want, p.r(g)).otherwise(none)),
        }

    lvls = [
        LevelDef(
            "swapped",
            lambda p, h: (p.l(g) == p.r(f)) & (p.l(f) == p.r(g)) & ~straight(p),
        )
    ]
    if threshold is not None:
        t = float(threshold)
        lvls.append(
            LevelDef(
                f"swapped_jaro_winkler>={t:g}",
                lambda p, h: (h["jw1"] >= F.lit(t)) & (h["jw2"] >= F.lit(t)),
            )
        )

    return Levels(
        columns=(g, f),
        null=null,
        levels=tuple(lvls),
        helpers=helpers if threshold is not None else None,
        tf_label=None,
    )


# --- term frequencies ---------------------------------------------------------------------------

TF_COMPARISON = f"{TMP}tf_comparison"
TF_VALUE = f"{TMP}tf_value"
TF_FREQUENCY = f"{TMP}tf"


TF_COUNT = "n"


def term_counts(records: DataFrame, comparisons: Sequence[ComparisonDef]) -> DataFrame | None:
    """How many records hold each value of each term-frequency-adjusted comparison's column.

    One small aggregation: ``(comparison, value, n)``, blank values left out. The table holds
    record values (PII): it lives in the lake (``match.term_counts``), never in the model.
    None when no comparison is adjusted.
    """
    adjusted = [c for c in comparisons if c.tf_level is not None]
    if not adjusted:
        return None
    records = prepare_records(records, adjusted)  # a prepared value (the address's city) is counted as compared
    parts = [
        records.select(F.lit(c.name).alias(TF_COMPARISON), F.col(c.tf_column).cast("string").alias(TF_VALUE)).where(
            ~blank(F.col(TF_VALUE))
        )
        for c in adjusted
    ]
    values = functools.reduce(lambda a, b: a.unionByName(b), parts)
    return values.groupBy(TF_COMPARISON, TF_VALUE).agg(F.count(F.lit(1)).alias(TF_COUNT))


def count_step(n: Column, resolution: float) -> Column:
    """Which step of ``resolution`` bits (in log2 space) count ``n`` rounds to; ``n`` at 0.

    Two counts with the same step give the same term frequency (:func:`rounded_count`).
    """
    if not resolution:
        return n.cast("long")
    return F.round(F.log2(n.cast("double")) / F.lit(float(resolution))).cast("long")


def rounded_count(n: Column, resolution: float) -> Column:
    """The count a term frequency uses: ``2 ** (resolution * step)``, or ``n`` at resolution 0."""
    if not resolution:
        return n.cast("double")
    return F.pow(F.lit(2.0), count_step(n, resolution).cast("double") * F.lit(float(resolution)))


def frequencies_from_counts(
    counts: DataFrame, totals: Mapping[str, int | None] | None = None, resolution: float = 0.0
) -> DataFrame:
    """``(comparison, value, tf)`` with ``tf = rounded_count(n) / total``.

    ``totals`` (comparison -> non-blank values when the model was trained) fixes the denominator,
    so a new batch changes the frequency only of the values it brings, and with ``resolution``
    (the model's ``tf_resolution``) only of those whose count crossed a step: an incremental run
    weighs its stored pairs again with these and gives the weights a full run over the same records
    would give. A comparison without a total uses the current one.
    """
    from pyspark.sql import Window

    current = F.sum(TF_COUNT).over(Window.partitionBy(TF_COMPARISON))
    fixed = {k: v for k, v in (totals or {}).items() if v}
    if fixed:
        total = F.coalesce(literal_totals(fixed)[F.col(TF_COMPARISON)], current)
    else:
        total = current
    return counts.select(TF_COMPARISON, TF_VALUE, (rounded_count(F.col(TF_COUNT), resolution) / total).alias(TF_FREQUENCY))


def literal_totals(totals: Mapping[str, int]) -> Column:
    return F.create_map(*[x for k, v in sorted(totals.items()) for x in (F.lit(k), F.lit(int(v)).cast("long"))])


def term_frequencies(records: DataFrame, comparisons: Sequence[ComparisonDef],
                     totals: Mapping[str, int | None] | None = None, resolution: float = 0.0) -> DataFrame | None:
    """Relative frequency of every value of each term-frequency-adjusted comparison's column:
    :func:`term_counts` over :func:`frequencies_from_counts`. None when no comparison is adjusted."""
    counts = term_counts(records, comparisons)
    return None if counts is None else frequencies_from_counts(counts, totals, resolution)
