"""Blocking: which record pairs are compared at all.

A blocking rule is a list of keys; two records form a candidate pair when every key of the rule is
equal (and not null or blank) on both. A key is a column of silver.records or a registered key
function applied to one column, parsed from config text against an allow-list (never pasted into
SQL): ``family_name_match``, ``substr(family_name_match,1,3)``, ``soundex(family_name_match)``,
``phone_last9``, ``postcode_digits``, ``year(birth_date)``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.errors import SchemaError
from jobs.common.registry import Registry
from jobs.common.schemas import TMP

if TYPE_CHECKING:
    from jobs.match.config import BlockingRule, MatchConfig

# Key functions: (column, *int args) -> Column. Registered by name (STYLE.md 6).
KEY_FUNCTIONS: Registry[Callable[..., Column]] = Registry("blocking key function")


@KEY_FUNCTIONS.register("substr")
def _substr(c: Column, start: int, length: int) -> Column:
    return F.substring(c, start, length)


@KEY_FUNCTIONS.register("soundex")
def _soundex(c: Column) -> Column:
    return F.soundex(c)


@KEY_FUNCTIONS.register("year")
def _year(c: Column) -> Column:
    return F.year(c).cast("string")


@KEY_FUNCTIONS.register("digits")
def _digits(c: Column) -> Column:
    return F.regexp_replace(c.cast("string"), r"[^0-9]", "")


@KEY_FUNCTIONS.register("last")
def _last(c: Column, n: int) -> Column:
    s = F.regexp_replace(c.cast("string"), r"[^0-9]", "")
    return F.when(F.length(s) >= n, F.substring(s, -n, n))


@KEY_FUNCTIONS.register("lower")
def _lower(c: Column) -> Column:
    return F.lower(c)


@KEY_FUNCTIONS.register("email_local")
def _email_local(c: Column) -> Column:
    return F.substring_index(c, "@", 1)


# Shorthand keys: name -> (function, column, args)
DERIVED_KEYS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "phone_last9": ("last", "phone", (9,)),
    "postcode_digits": ("digits", "postcode", ()),
    "birth_year": ("year", "birth_date", ()),
    "email_local": ("email_local", "email", ()),
}

_CALL = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*\(\s*([a-z_][a-z0-9_]*)\s*((?:,\s*-?\d+\s*)*)\)\s*$")
_NAME = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*$")


@dataclass(frozen=True)
class BlockingKey:
    """A parsed key: a function (or none) applied to one column of silver.records."""

    text: str
    column: str
    function: str | None = None
    args: tuple[int, ...] = ()

    def expression(self) -> Column:
        c = F.col(self.column)
        if self.function is None:
            return c.cast("string")
        return KEY_FUNCTIONS.get(self.function)(c, *self.args).cast("string")


def parse_key(text: str) -> BlockingKey:
    """Parse a key from config text; raise ValueError naming the text and what is allowed."""
    from jobs.match.config import MATCH_COLUMNS

    if not isinstance(text, str):
        raise ValueError(f"got {text!r}; expected a column name or function(column, ...)")
    m = _NAME.match(text)
    if m:
        name = m.group(1)
        if name in DERIVED_KEYS:
            fn, col, args = DERIVED_KEYS[name]
            return BlockingKey(text, col, fn, args)
        if name not in MATCH_COLUMNS:
            raise ValueError(
                f"got {text!r}; expected a column of silver.records ({', '.join(MATCH_COLUMNS)}) "
                f"or a derived key ({', '.join(sorted(DERIVED_KEYS))})"
            )
        return BlockingKey(text, name)
    m = _CALL.match(text)
    if not m:
        raise ValueError(f"got {text!r}; expected a column name or function(column, integer, ...)")
    fn, col, rest = m.group(1), m.group(2), m.group(3)
    if fn not in KEY_FUNCTIONS:
        raise ValueError(f"got {text!r}; unknown key function {fn!r}; expected one of: {', '.join(KEY_FUNCTIONS.names())}")
    if col not in MATCH_COLUMNS:
        raise ValueError(f"got {text!r}; column {col!r} is not a column of silver.records")
    args = tuple(int(a) for a in re.findall(r"-?\d+", rest))
    problems = KEY_FUNCTIONS.check_arguments(fn, {}, skip=1 + len(args))
    import inspect

    n_params = len(inspect.signature(KEY_FUNCTIONS.get(fn)).parameters) - 1
    if len(args) != n_params:
        raise ValueError(f"got {text!r}; {fn} takes {n_params} integer argument(s) after the column")
    del problems
    return BlockingKey(text, col, fn, args)


# --- candidate pairs -------------------------------------------------------------------------------

KEY_SEP = "\x1f"
_NEW = f"{TMP}is_new"
RULES = f"{TMP}rules"  # bitmask of the rules whose keys agree on a pair (generate_candidate_pairs)


def _key_col(i: int) -> str:
    return f"{TMP}bk{i}"


def _blank(c: Column) -> Column:
    return c.isNull() | (F.trim(c) == F.lit(""))


def rule_key(rule: "BlockingRule") -> Column:
    """The block key of a rule: its key values joined, null when any of them is null or blank."""
    exprs = [parse_key(k).expression() for k in rule.keys]
    present = functools.reduce(lambda a, b: a & b, [~_blank(e) for e in exprs])
    return F.when(present, F.concat_ws(KEY_SEP, *exprs))


def _check_columns(records: DataFrame, needed: Sequence[str], where: str) -> None:
    missing = sorted(set(needed) - set(records.columns))
    if missing:
        raise SchemaError(f"{where}: records lack column(s) {missing}; available: {sorted(records.columns)}")


def _needed_columns(cfg: "MatchConfig") -> set[str]:
    cols = {"record_key", "source"}
    for rule in cfg.blocking_rules:
        cols |= rule.base_columns()
    return cols


def keyed_records(records: DataFrame, cfg: "MatchConfig", carry: Sequence[str] = ()) -> DataFrame:
    """record_key, source, carried columns and one block key per rule (``__cdp_bk<i>``).

    A key in a block larger than ``max_block_size`` is set to null: that block is skipped (and
    reported by :func:`analyse_blocking`), so a later rule may still find its pairs.
    """
    _check_columns(records, sorted(_needed_columns(cfg) | set(carry)), "generate_candidate_pairs")
    carry = [c for c in dict.fromkeys(carry) if c not in ("record_key", "source")]
    raw = [rule_key(r).alias(_key_col(i)) for i, r in enumerate(cfg.blocking_rules)]
    df = records.select("record_key", "source", *carry, *raw)
    limited = []
    for i in range(len(cfg.blocking_rules)):
        k = F.col(_key_col(i))
        size = F.count(F.lit(1)).over(Window.partitionBy(k))
        limited.append(F.when(k.isNotNull() & (size <= F.lit(cfg.max_block_size)), k).alias(_key_col(i)))
    keep = ["record_key", "source", *carry]
    return df.select(*keep, *limited)


def _side(df: DataFrame, columns: Sequence[str], suffix: str) -> DataFrame:
    # toDF renames in one call; an alias per column costs two py4j calls each (40 columns, 6 rules)
    return df.select(*columns).toDF(*[f"{c}{suffix}" for c in columns])


def generate_candidate_pairs(
    records: DataFrame,
    cfg: "MatchConfig",
    new_keys: DataFrame | None = None,
    carry: Sequence[str] = (),
    rule_mask: bool = False,
) -> DataFrame:
    """Candidate pairs ``(record_key_l < record_key_r, blocking_rule)``, each pair once.

    Rules are applied in order; rule ``i`` drops pairs whose keys of an earlier rule agree (Splink's
    approach), so a pair found by several rules appears once, tagged with the first rule that found
    it, without a shuffle over all pairs. ``link_only`` keeps pairs of different sources; ``dedupe``
    and ``link_and_dedupe`` keep every pair (MatchConfig.link_type). With
    ``new_keys`` (column ``record_key``) only pairs with at least one new record are made: blocks
    without a new record are left out before the join. ``carry`` columns come along on both sides
    as ``<column>_l`` and ``<column>_r`` (so comparisons need no join back to the records).
    ``rule_mask``: add :data:`RULES` (bit ``i`` set when rule ``i``'s keys agree: every rule that
    finds the pair, not only the first; training's per-rule EM sessions).
    """
    # Materialised once: each rule reads it twice (left and right side), and Spark reuses no
    # exchange between those reads, so each read would compute every rule's block-size window
    # again (FEBRL4: 55 shuffles for 30,000 pairs).
    keyed = keyed_records(records, cfg, carry).localCheckpoint()
    carry = [c for c in dict.fromkeys(carry) if c not in ("record_key", "source")]
    base = ["record_key", "source", *carry]
    if new_keys is not None:
        if "record_key" not in new_keys.columns:
            raise SchemaError(f"generate_candidate_pairs: new_keys lacks column record_key; has {new_keys.columns}")
        flags = new_keys.select("record_key").distinct().withColumn(_NEW, F.lit(True))
        keyed = keyed.join(flags, "record_key", "left").withColumn(_NEW, F.coalesce(F.col(_NEW), F.lit(False)))
    parts = []
    n_rules = len(cfg.blocking_rules)
    mask = None
    if rule_mask:
        bits = [
            F.when(F.coalesce(F.col(f"{_key_col(j)}_l") == F.col(f"{_key_col(j)}_r"), F.lit(False)), F.lit(1 << j))
            .otherwise(F.lit(0))
            for j in range(n_rules)
        ]
        mask = functools.reduce(lambda a, b: a + b, bits).cast("long").alias(RULES)
    for i, rule in enumerate(cfg.blocking_rules):
        keys = [_key_col(j) for j in range(n_rules if rule_mask else i + 1)]
        cols = base + keys + ([_NEW] if new_keys is not None else [])
        side = keyed.where(F.col(_key_col(i)).isNotNull())
        if new_keys is not None:
            blocks = side.where(F.col(_NEW)).select(_key_col(i)).distinct()
            side = side.join(blocks, _key_col(i), "left_semi")
        left = _side(side, cols, "_l")
        right = _side(side, cols, "_r")
        cond = F.col(f"{_key_col(i)}_l") == F.col(f"{_key_col(i)}_r")
        keep = [F.col("record_key_l") < F.col("record_key_r")]
        if cfg.link_type == "link_only":
            keep.append(F.col("source_l") != F.col("source_r"))
        if new_keys is not None:
            keep.append(F.col(f"{_NEW}_l") | F.col(f"{_NEW}_r"))
        for j in range(i):
            keep.append(~F.coalesce(F.col(f"{_key_col(j)}_l") == F.col(f"{_key_col(j)}_r"), F.lit(False)))
        # one filter (each DataFrame step is analysed again on the JVM)
        pairs = left.join(right, cond).where(functools.reduce(lambda a, b: a & b, keep))
        out = ["record_key_l", "record_key_r", *[f"{c}{s}" for c in ["source", *carry] for s in ("_l", "_r")]]
        if mask is not None:
            out.append(mask)
        parts.append(pairs.select(*out, F.lit(rule.name).alias("blocking_rule")))
    return functools.reduce(lambda a, b: a.unionByName(b), parts)


def analyse_blocking(records: DataFrame, cfg: "MatchConfig", top: int = 5) -> list[dict[str, Any]]:
    """Per rule: candidate pairs, pairs new versus earlier rules, skipped oversized blocks.

    Block sizes only, never key values (they are PII). Candidate pairs of a rule are counted from
    its block sizes (``n(n-1)/2``, or pairs of different sources for ``link_only``) without the join;
    the new pairs come from :func:`generate_candidate_pairs`.
    """
    _check_columns(records, sorted(_needed_columns(cfg)), "analyse_blocking")
    raw = records.select("source", *[rule_key(r).alias(_key_col(i)) for i, r in enumerate(cfg.blocking_rules)])
    new_counts = {
        r["blocking_rule"]: r["n"]
        for r in generate_candidate_pairs(records, cfg).groupBy("blocking_rule").agg(F.count(F.lit(1)).alias("n")).collect()
    }
    out = []
    for i, rule in enumerate(cfg.blocking_rules):
        k = _key_col(i)
        per_source = raw.where(F.col(k).isNotNull()).groupBy(k, "source").agg(F.count(F.lit(1)).alias("ns"))
        blocks = per_source.groupBy(k).agg(F.sum("ns").alias("n"), F.sum(F.col("ns") * F.col("ns")).alias("n2"))
        if cfg.link_type == "link_only":
            pairs_expr = (F.col("n") * F.col("n") - F.col("n2")) / 2
        else:
            pairs_expr = F.col("n") * (F.col("n") - 1) / 2
        ok = F.col("n") <= F.lit(cfg.max_block_size)
        agg = blocks.agg(
            F.sum(F.when(ok, pairs_expr).otherwise(F.lit(0))).cast("long").alias("pairs"),
            F.sum(F.when(~ok, 1).otherwise(0)).cast("long").alias("skipped"),
            F.sum(F.when(~ok, pairs_expr).otherwise(F.lit(0))).cast("long").alias("skipped_pairs"),
            F.count(F.lit(1)).alias("blocks"),
        ).collect()[0]
        largest = [r["n"] for r in blocks.orderBy(F.col("n").desc()).select("n").limit(top).collect()]
        out.append(
            {
                "rule": rule.name,
                "keys": list(rule.keys),
                "blocks": int(agg["blocks"] or 0),
                "candidate_pairs": int(agg["pairs"] or 0),
                "new_pairs": int(new_counts.get(rule.name, 0)),
                "skipped_blocks": int(agg["skipped"] or 0),
                "skipped_pairs": int(agg["skipped_pairs"] or 0),
                "largest_blocks": [int(n) for n in largest],
            }
        )
    return out


def format_analysis(rows: list[dict[str, Any]]) -> str:
    """The analysis as a plain text table (counts only)."""
    head = f"{'rule':<24}{'pairs':>14}{'new':>14}{'cumulative':>14}{'skipped':>9}  largest blocks"
    lines = [head, "-" * len(head)]
    total = 0
    for r in rows:
        total += r["new_pairs"]
        lines.append(
            f"{r['rule']:<24}{r['candidate_pairs']:>14,}{r['new_pairs']:>14,}{total:>14,}{r['skipped_blocks']:>9}  "
            + ", ".join(str(n) for n in r["largest_blocks"])
        )
    return "\n".join(lines)


def oversized_blocks(records: DataFrame, cfg: "MatchConfig", salt: str) -> DataFrame:
    """Blocks above ``max_block_size``: ``(blocking_rule, key_hash, size)``, keys as salted hashes.

    The incremental match compares them with the previous run's (``match.skipped_blocks``): the
    records of a block that crossed the limit either way get their pairs made anew, as a full run
    over the same records would make them.
    """
    from jobs.common.keys import salted_hash_col

    parts = []
    for rule in cfg.blocking_rules:
        k = rule_key(rule)
        parts.append(
            records.select(k.alias(f"{TMP}k"))
            .where(F.col(f"{TMP}k").isNotNull())
            .groupBy(f"{TMP}k")
            .agg(F.count(F.lit(1)).alias("size"))
            .where(F.col("size") > F.lit(cfg.max_block_size))
            .select(
                F.lit(rule.name).alias("blocking_rule"),
                salted_hash_col(salt, f"block:{rule.name}", F.col(f"{TMP}k")).alias("key_hash"),
                F.col("size").cast("long").alias("size"),
            )
        )
    return functools.reduce(lambda a, b: a.unionByName(b), parts)


def block_members(records: DataFrame, cfg: "MatchConfig", blocks: DataFrame, salt: str) -> DataFrame:
    """``record_key`` of the records in ``blocks`` (``blocking_rule, key_hash``)."""
    from jobs.common.keys import salted_hash_col

    parts = []
    for rule in cfg.blocking_rules:
        hashes = blocks.where(F.col("blocking_rule") == F.lit(rule.name)).select("key_hash")
        keyed = records.select("record_key", salted_hash_col(salt, f"block:{rule.name}", rule_key(rule)).alias("key_hash"))
        parts.append(keyed.join(hashes, "key_hash", "left_semi").select("record_key"))
    return functools.reduce(lambda a, b: a.unionByName(b), parts).distinct()
