"""Survivorship: which record's value becomes the golden value of each profile attribute.

A rule is registered by name (STYLE.md 6) and returns the *ordering* of a person's candidate
records, most important criterion first, smaller is better, ending in ``record_key`` (unique within
a person) so the order is total and the choice deterministic (ARCHITECTURE.md, Invariants):

============== =================================================================================
source_trust   lowest trust_rank, then most recent source_updated_at, then record_key
most_recent    most recent source_updated_at, then lowest trust_rank, then record_key
most_frequent  value held by most records of the person, then trust, recency, value, record_key
most_complete  most complete value (most words / filled parts, then longest), then trust,
               recency, record_key
first_non_null earliest source_created_at, then trust, record_key
============== =================================================================================

Missing timestamps and trust ranks sort last. Only usable values are candidates: null values never,
and values whose validity flag is false never (``email_valid``, ``phone_valid``,
``birth_date_valid``, ``postcode_valid``; a null flag means no check exists and is accepted).

Groups survive as a whole (``jobs.golden.config.SURVIVORSHIP_GROUPS``), so a profile never mixes
the street of one record with the postcode of another, nor one record's given name with
another's family name:

- ``name`` (given_name, initials, name_particle, family_name, full_name): one record, chosen by
  the rule configured for ``family_name``. Candidates: records with any of given name, initials,
  family name or full name; records with a family name come first.
- ``address`` (street, house_number, house_number_suffix, postcode, city, country): one record,
  chosen by the rule configured for ``postcode``. Candidates: records with any of street, house
  number, postcode or city (country alone is not an address: silver fills it by default); records
  with a usable postcode and a house number come first, then those with one of them. An invalid
  postcode of the chosen record is left out; the rest of its address is kept.

Every other attribute (gender, birth_date, email, phone) survives on its own by its own rule.
For most_frequent the "value" of a group is its whole content (lower-cased), and for
most_complete a group counts words of the display name (name) or filled members (address).

Everything is one pass: a window count per (person, value) for groups that use most_frequent,
then one ``groupBy(person)`` with a ``min_by(struct of the group's values, ordering struct)`` per
group (``min_by`` skips rows whose ordering is null, which is how ineligible records drop out).
Provenance is a map attribute -> struct(source, record_key, rule, updated_at) with an entry for
every non-null surviving attribute; ``updated_at`` is the record's source_updated_at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.errors import require_columns
from jobs.common.keys import SEP
from jobs.common.registry import Registry
from jobs.common.schemas import PROVENANCE, SURVIVING_ATTRIBUTES, TMP
from jobs.golden.config import SURVIVORSHIP_GROUPS, GoldenConfig

MAX_LONG = 2**63 - 1
MAX_INT = 2**31 - 1

# attribute -> validity flag of SILVER_RECORDS; a false flag makes the value unusable
VALIDITY_FLAGS: dict[str, str] = {
    "email": "email_valid",
    "phone": "phone_valid",
    "birth_date": "birth_date_valid",
    "postcode": "postcode_valid",
}

# columns of SILVER_RECORDS the survivorship pass reads (next to the person column)
REQUIRED_COLUMNS: tuple[str, ...] = (
    "record_key", "source", "trust_rank", "source_created_at", "source_updated_at",
    *SURVIVING_ATTRIBUTES, *VALIDITY_FLAGS.values(),
)


@dataclass(frozen=True)
class RuleInputs:
    """Per-record columns a rule orders by; every one already sorts "smaller is better"."""

    value: Column  # the candidate value as text (tie-break of most_frequent)
    frequency: Column  # records of the person with the same value (negated: more is smaller)
    completeness: tuple[Column, ...]  # completeness measures, negated, most important first
    trust: Column  # trust_rank, missing last
    recency: Column  # negated source_updated_at in microseconds, missing last
    created: Column  # source_created_at in microseconds, missing last
    key: Column  # record_key: the final, unique tie-break


RuleOrder = Callable[[RuleInputs], list[Column]]

RULES: Registry[RuleOrder] = Registry("survivorship rule")


def _uses_frequency(fn: RuleOrder) -> RuleOrder:
    """Mark a rule that needs the per-(person, value) record count (one window per group)."""
    fn.uses_frequency = True  # type: ignore[attr-defined]
    return fn


@RULES.register("source_trust")
def source_trust(x: RuleInputs) -> list[Column]:
    """The most trusted source wins; the newer record breaks a tie between equally trusted ones."""
    return [x.trust, x.recency, x.key]


@RULES.register("most_recent")
def most_recent(x: RuleInputs) -> list[Column]:
    """The last update wins (contact data goes stale); trust breaks a tie."""
    return [x.recency, x.trust, x.key]


@RULES.register("most_frequent")
@_uses_frequency
def most_frequent(x: RuleInputs) -> list[Column]:
    """Majority vote over the person's records (one typo in one source loses to two agreeing)."""
    return [x.frequency, x.trust, x.recency, x.value, x.key]


@RULES.register("most_complete")
def most_complete(x: RuleInputs) -> list[Column]:
    """The fullest value ('Jan Pieter van der Berg' over 'J. Berg'); trust breaks a tie."""
    return [*x.completeness, x.trust, x.recency, x.key]


@RULES.register("first_non_null")
def first_non_null(x: RuleInputs) -> list[Column]:
    """The value of the oldest record: the first statement a source ever made."""
    return [x.created, x.trust, x.key]


@dataclass(frozen=True)
class SurvivorGroup:
    """Attributes that survive together from one record, and the rule that picks it."""

    name: str
    members: tuple[str, ...]
    rule: str

    @property
    def column(self) -> str:
        """Temporary column of the group's winning struct."""
        return f"{TMP}sv_{self.name}"


def survivor_groups(cfg: GoldenConfig) -> list[SurvivorGroup]:
    """The name and address groups (rule of their anchor) plus one group per other attribute."""
    grouped = {a for members in SURVIVORSHIP_GROUPS.values() for a in members}
    groups = [SurvivorGroup(name, members, cfg.rule_for(members[0])) for name, members in SURVIVORSHIP_GROUPS.items()]
    groups += [SurvivorGroup(a, (a,), cfg.rule_for(a)) for a in SURVIVING_ATTRIBUTES if a not in grouped]
    for g in groups:
        RULES.get(g.rule)  # unknown names fail here, naming the known ones
    return groups


# --- per-record columns --------------------------------------------------------------------------


def usable(attribute: str) -> Column:
    """The attribute's value, or null when its validity flag says it is invalid."""
    value = F.col(attribute)
    flag = VALIDITY_FLAGS.get(attribute)
    return F.when(F.coalesce(F.col(flag), F.lit(True)), value) if flag else value


def _text(c: Column) -> Column:
    return c.cast("string")


def _words(c: Column) -> Column:
    return F.when(c.isNull() | (F.trim(c) == ""), F.lit(0)).otherwise(F.size(F.split(F.trim(c), r"\s+")))


def _filled(cols: Sequence[Column]) -> Column:
    return sum((c.isNotNull().cast("int") for c in cols), F.lit(0))


def _display_name() -> Column:
    return F.coalesce(
        F.col("full_name"),
        F.nullif(F.concat_ws(" ", F.col("given_name"), F.col("name_particle"), F.col("family_name")), F.lit("")),
    )


@dataclass(frozen=True)
class _GroupColumns:
    eligible: Column
    tier: Column  # smaller is better; applied before the rule
    value: Column
    completeness: tuple[Column, ...]  # larger is better


def _group_columns(group: SurvivorGroup) -> _GroupColumns:
    members = [usable(m) for m in group.members]
    if group.name == "name":
        name = _display_name()
        return _GroupColumns(
            eligible=_filled([F.col(a) for a in ("given_name", "initials", "family_name", "full_name")]) > 0,
            tier=F.col("family_name").isNull().cast("int"),
            value=F.lower(name),
            completeness=(_words(name), _filled(members), F.coalesce(F.length(name), F.lit(0))),
        )
    if group.name == "address":
        text = F.concat_ws(SEP, *[F.coalesce(F.lower(m), F.lit("")) for m in members])
        return _GroupColumns(
            eligible=_filled([usable(a) for a in ("street", "house_number", "postcode", "city")]) > 0,
            tier=usable("postcode").isNull().cast("int") + F.col("house_number").isNull().cast("int"),
            value=text,
            completeness=(_filled(members), F.length(text)),
        )
    (value,) = members
    text = _text(value)
    return _GroupColumns(
        eligible=value.isNotNull(),
        tier=F.lit(0),
        value=text,
        completeness=(_words(text), F.coalesce(F.length(text), F.lit(0))),
    )


def _desc_time(c: Column) -> Column:
    return F.coalesce(-F.unix_micros(c), F.lit(MAX_LONG))


def _asc_time(c: Column) -> Column:
    return F.coalesce(F.unix_micros(c), F.lit(MAX_LONG))


def _trust() -> Column:
    return F.coalesce(F.col("trust_rank"), F.lit(MAX_INT))


def _frequency_column(group: SurvivorGroup) -> str:
    return f"{TMP}freq_{group.name}"


def _value_column(group: SurvivorGroup) -> str:
    return f"{TMP}val_{group.name}"


def _order_column(group: SurvivorGroup) -> str:
    return f"{TMP}ord_{group.name}"


def record_order(rule: str, value: Column | None = None, frequency: Column | None = None) -> Column:
    """Ordering struct of a rule for plain per-record choices (smaller wins), e.g. extensions."""
    fields = RULES.get(rule)(
        RuleInputs(
            value=value if value is not None else F.lit(""),
            frequency=-(frequency if frequency is not None else F.lit(0)),
            completeness=(),
            trust=_trust(),
            recency=_desc_time(F.col("source_updated_at")),
            created=_asc_time(F.col("source_created_at")),
            key=F.col("record_key"),
        )
    )
    return F.struct(*[f.alias(f"o{i}") for i, f in enumerate(fields)])


def prepare_survivorship(records: DataFrame, cfg: GoldenConfig, person_col: str = "person_id") -> DataFrame:
    """Add, per group, the candidate struct and its ordering (null for ineligible records).

    ``records`` is SILVER_RECORDS joined with the identity map (a ``person_col`` column). Groups
    ruled by most_frequent get a window count of their value per person first.
    """
    require_columns([person_col, *REQUIRED_COLUMNS], records.columns, "prepare_survivorship(records)")
    df = records
    groups = survivor_groups(cfg)
    for g in groups:
        if getattr(RULES.get(g.rule), "uses_frequency", False):
            cols = _group_columns(g)
            value = F.when(cols.eligible, cols.value)
            df = df.withColumn(
                _frequency_column(g),
                F.count(F.lit(1)).over(Window.partitionBy(F.col(person_col), value)),
            )
    added: dict[str, Column] = {}
    for g in groups:
        cols = _group_columns(g)
        freq = F.col(_frequency_column(g)) if getattr(RULES.get(g.rule), "uses_frequency", False) else F.lit(0)
        fields = RULES.get(g.rule)(
            RuleInputs(
                value=F.coalesce(cols.value, F.lit("")),
                frequency=-freq,
                completeness=tuple(-c for c in cols.completeness),
                trust=_trust(),
                recency=_desc_time(F.col("source_updated_at")),
                created=_asc_time(F.col("source_created_at")),
                key=F.col("record_key"),
            )
        )
        ordering = F.struct(cols.tier.alias("tier"), *[f.alias(f"o{i}") for i, f in enumerate(fields)])
        added[_order_column(g)] = F.when(cols.eligible, ordering)
        added[_value_column(g)] = F.struct(
            *[usable(m).alias(m) for m in g.members],
            F.col("record_key").alias("record_key"),
            F.col("source").alias("source"),
            F.col("source_updated_at").alias("updated_at"),
        )
    return df.withColumns(added)


def survivorship_aggregates(cfg: GoldenConfig) -> list[Column]:
    """One ``min_by`` per group, for a ``groupBy(person)`` over :func:`prepare_survivorship`."""
    return [F.min_by(F.col(_value_column(g)), F.col(_order_column(g))).alias(g.column) for g in survivor_groups(cfg)]


def surviving_columns(cfg: GoldenConfig) -> list[Column]:
    """After the aggregation: every SURVIVING_ATTRIBUTES column, then ``provenance``."""
    groups = survivor_groups(cfg)
    where = {m: g for g in groups for m in g.members}
    values = {a: F.col(where[a].column)[a] for a in SURVIVING_ATTRIBUTES}
    entries: list[Column] = []
    for a in SURVIVING_ATTRIBUTES:
        g = where[a]
        won = F.col(g.column)
        prov = F.struct(
            won["source"].alias("source"),
            won["record_key"].alias("record_key"),
            F.lit(g.rule).alias("rule"),
            won["updated_at"].alias("updated_at"),
        ).cast(PROVENANCE)
        entries += [F.lit(a), F.when(values[a].isNotNull(), prov)]
    provenance = F.map_filter(F.create_map(*entries), lambda _k, v: v.isNotNull())
    return [*[values[a].alias(a) for a in SURVIVING_ATTRIBUTES], provenance.alias("provenance")]


def survive(records: DataFrame, cfg: GoldenConfig, person_col: str = "person_id") -> DataFrame:
    """(person, every surviving attribute, provenance): the survivorship pass on its own."""
    return (
        prepare_survivorship(records, cfg, person_col)
        .groupBy(person_col)
        .agg(*survivorship_aggregates(cfg))
        .select(F.col(person_col), *surviving_columns(cfg))
    )
