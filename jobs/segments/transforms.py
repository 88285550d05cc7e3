"""Segments: membership, history and audience exports, as pure DataFrame transforms.

Everything here is DataFrame in, DataFrame out (STYLE.md 2): no reads, writes, counts or collects.
jobs/segments/job.py reads the golden profiles and the membership history, calls these and writes.

Consent is built in rather than left to the caller: a segment that names a consent channel only
ever holds persons whose ``consent_<channel>`` is true, the e-mail export only ever holds persons
with e-mail consent, a hashed audience only persons with the consent configured for ad-platform
matching, and suppressed (erased) persons never appear anywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from typing import Any, Literal

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.errors import ConfigError, require_columns
from jobs.common.keys import KEY_LENGTH, SEP, salted_hash_col
from jobs.common.schemas import CONSENT_CHANNELS, ID_EMAIL, ID_PHONE, SEGMENT_MEMBERSHIP, TMP
from jobs.segments.config import SegmentsConfig
from jobs.segments.rules import compile_rule

__all__ = [
    "EMAIL_PATTERN",
    "E164_PATTERN",
    "RFM_GRID",
    "RFM_SEGMENTS",
    "email_export",
    "evaluate_segments",
    "export_manifest",
    "hash_method_for",
    "hashed_audience",
    "membership_changes",
    "membership_counts",
    "normalised_email",
    "normalised_phone",
    "open_members",
    "rfm_micro_segments",
    "rfm_segment",
    "rfm_segment_column",
    "segment_names",
    "suppressed_persons",
    "update_membership",
]

log = logging.getLogger(__name__)

PhoneFormat = Literal["e164", "digits"]
ConsentChannel = Literal["email", "sms", "post", "phone"]
ExportTarget = Literal["email_csv", "hashed_audience"]

PERSON_ID = "person_id"
SEGMENT = "segment"

# WHATWG HTML "valid e-mail address" (the browser's <input type=email> check), with at least one
# dot in the domain: strict enough to keep typos out of a mailing, loose enough for real addresses.
EMAIL_PATTERN = (
    r"^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)
# ITU-T E.164: '+', a country code that does not start with 0, at most 15 digits in all.
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"

# --- RFM micro-segments ------------------------------------------------------------------------
# The standard RFM segment map (Putler's eleven RFM segments; the same R x F map is widely used as
# the "RFM segmentation" grid): rows are the recency score R, columns the frequency-monetary score
# FM = round_half_up((F + M) / 2), every score 1-5 with 5 the best.
#
#          FM=1             FM=2                    FM=3                    FM=4           FM=5
RFM_GRID: tuple[tuple[str, str, str, str, str], ...] = (
    ("rfm_lost", "rfm_hibernating", "rfm_at_risk", "rfm_at_risk", "rfm_cant_lose"),  # R=1
    ("rfm_hibernating", "rfm_hibernating", "rfm_at_risk", "rfm_at_risk", "rfm_cant_lose"),  # R=2
    ("rfm_about_to_sleep", "rfm_about_to_sleep", "rfm_need_attention", "rfm_loyal", "rfm_loyal"),  # R=3
    ("rfm_promising", "rfm_potential_loyalist", "rfm_potential_loyalist", "rfm_loyal", "rfm_loyal"),  # R=4
    ("rfm_new", "rfm_potential_loyalist", "rfm_potential_loyalist", "rfm_champions", "rfm_champions"),  # R=5
)
RFM_SEGMENTS: tuple[str, ...] = tuple(sorted({name for row in RFM_GRID for name in row}))
RFM_CELL_PATTERN = r"^[1-5]-[1-5]-[1-5]$"


def rfm_segment(recency: int, frequency: int, monetary: int) -> str | None:
    """The micro-segment of one R-F-M cell (None outside 1-5); the reference for the Spark column."""
    if not all(1 <= s <= 5 for s in (recency, frequency, monetary)):
        return None
    fm = (frequency + monetary + 1) // 2
    return RFM_GRID[recency - 1][fm - 1]


def rfm_segment_column(
    recency: str = "rfm_recency",
    frequency: str = "rfm_frequency",
    monetary: str = "rfm_monetary",
    cell: str | None = None,
) -> Column:
    """The RFM micro-segment of each row as a Column; null when a score is missing or out of range.

    The grid is a 25-element array literal indexed by (R - 1) * 5 + FM, so the mapping is data, not
    an if/elif chain, and the documented table above is exactly what runs. With ``cell`` (the
    profile's ``rfm_cell``, 'R-F-M' such as '5-4-3'), a score column that is null is taken from the
    cell; a malformed cell counts as missing (never a cast error).
    """
    r, f, m = F.col(recency), F.col(frequency), F.col(monetary)
    if cell is not None:
        text = F.col(cell)
        well_formed = F.coalesce(text.rlike(RFM_CELL_PATTERN), F.lit(False))
        parts = F.split(text, "-")
        r, f, m = (
            F.coalesce(score, F.when(well_formed, parts.getItem(i).cast("int")))
            for i, score in enumerate((r, f, m))
        )
    fm = F.floor((f + m + F.lit(1)) / F.lit(2))
    cells = F.array(*[F.lit(name) for row in RFM_GRID for name in row])
    in_range = r.between(1, 5) & f.between(1, 5) & m.between(1, 5)
    return F.when(in_range, F.element_at(cells, ((r - F.lit(1)) * F.lit(5) + fm).cast("int")))


def rfm_micro_segments(profiles: DataFrame) -> DataFrame:
    """(person_id, segment) for every person with all three RFM scores; see RFM_GRID."""
    require_columns([PERSON_ID, "rfm_recency", "rfm_frequency", "rfm_monetary"], profiles.columns,
                    "rfm_micro_segments(profiles)")
    cell = "rfm_cell" if "rfm_cell" in profiles.columns else None
    return (
        profiles.select(F.col(PERSON_ID), rfm_segment_column(cell=cell).alias(SEGMENT))
        .where(F.col(SEGMENT).isNotNull())
    )


# --- segment membership ------------------------------------------------------------------------


def segment_names(cfg: SegmentsConfig) -> list[str]:
    """Every segment name a run of ``cfg`` can produce (rule segments, then RFM micro-segments).

    Pass this as ``segments`` to update_membership so segments removed from the config are left
    alone by incremental runs and the RFM micro-segments are tracked with the rest.
    """
    names = [s.name for s in cfg.segments]
    return names + list(RFM_SEGMENTS) if cfg.rfm_micro_segments else names


def _consent(channel: str) -> Column:
    """True only for an explicit true; unknown consent is no consent (GDPR art. 7: opt-in)."""
    return F.coalesce(F.col(f"consent_{channel}") == F.lit(True), F.lit(False))


def _without_suppressed(profiles: DataFrame, suppressed: DataFrame | None) -> DataFrame:
    if suppressed is None:
        return profiles
    require_columns([PERSON_ID], suppressed.columns, "suppressed")
    return profiles.join(suppressed.select(PERSON_ID), on=PERSON_ID, how="left_anti")


def suppressed_persons(profiles: DataFrame, suppression: DataFrame, salt: str) -> DataFrame:
    """(person_id) of every profile whose e-mail, phone or any identifier is on the suppression list.

    privacy.suppression holds ``salted_hash(salt, id_type, normalised value)`` (jobs/common/keys.py,
    the same helper ingest uses to refuse rows of erased subjects). Hashed here the same way:
    e-mail trimmed and lower-cased, phone as stored (E.164 in the golden profile), every value of
    the ``identifiers`` map under its own type, and the record keys in ``provenance`` as
    'record_key'. Matching is on hashes only, so no identifier value is compared in the clear.
    """
    require_columns([PERSON_ID, "email", "phone"], profiles.columns, "suppressed_persons(profiles)")
    require_columns(["id_type", "id_hash"], suppression.columns, "suppressed_persons(suppression)")
    kind, value = f"{TMP}id_type", f"{TMP}id_value"
    email = F.lower(F.regexp_replace(F.col("email"), r"^\s+|\s+$", ""))
    phone = F.regexp_replace(F.col("phone"), r"^\s+|\s+$", "")
    pairs = [
        F.struct(F.lit(ID_EMAIL).alias(kind), email.alias(value)),
        F.struct(F.lit(ID_PHONE).alias(kind), phone.alias(value)),
    ]
    ids = profiles.select(F.col(PERSON_ID), F.explode(F.array(*pairs)).alias(f"{TMP}pair")).select(
        PERSON_ID, F.col(f"{TMP}pair")[kind].alias(kind), F.col(f"{TMP}pair")[value].alias(value)
    )
    if "identifiers" in profiles.columns:
        more = profiles.select(F.col(PERSON_ID), F.explode(F.col("identifiers")).alias(kind, f"{TMP}values"))
        ids = ids.unionByName(
            more.select(PERSON_ID, F.col(kind), F.explode(F.col(f"{TMP}values")).alias(value))
        )
    if "provenance" in profiles.columns:
        keys = profiles.select(
            F.col(PERSON_ID), F.explode(F.map_values(F.col("provenance"))).alias(f"{TMP}prov")
        ).select(PERSON_ID, F.lit("record_key").alias(kind), F.col(f"{TMP}prov")["record_key"].alias(value))
        ids = ids.unionByName(keys)
    hashed = ids.where(F.col(value).isNotNull() & (F.col(value) != F.lit(""))).select(
        PERSON_ID,
        F.col(kind).alias("id_type"),
        salted_hash_col(salt, F.col(kind), F.col(value)).alias("id_hash"),
    )
    listed = suppression.select("id_type", "id_hash").distinct()
    return hashed.join(listed, on=["id_type", "id_hash"], how="left_semi").select(PERSON_ID).distinct()


def evaluate_segments(
    profiles: DataFrame,
    cfg: SegmentsConfig,
    run_date: dt.date,
    suppressed: DataFrame | None = None,
) -> DataFrame:
    """(person_id, segment): the members of every configured segment on ``run_date``.

    One pass over the profiles: each row gets an array with, per segment, its name when the rule
    (and the segment's consent) holds, else null; the array is exploded and nulls dropped. That
    is one scan and one plan whatever the number of segments, instead of a job per segment.
    When ``cfg.rfm_micro_segments`` is true, the person's RFM micro-segment is in the same array.
    Persons in ``suppressed`` (a DataFrame with a person_id column) never appear. Rules are compiled
    against the schema of ``profiles`` as read, so a column that disappeared fails here, naming it.
    """
    needed = [PERSON_ID] + sorted({f"consent_{s.consent}" for s in cfg.segments if s.consent})
    if cfg.rfm_micro_segments:
        needed += ["rfm_recency", "rfm_frequency", "rfm_monetary"]
    require_columns(needed, profiles.columns, "evaluate_segments(profiles)")
    labels: list[Column] = []
    for seg in cfg.segments:
        cond = compile_rule(seg.rule, profiles.schema, run_date, segment=seg.name)
        if seg.consent:
            cond = cond & _consent(seg.consent)
        labels.append(F.when(cond, F.lit(seg.name)))
    if cfg.rfm_micro_segments:
        labels.append(rfm_segment_column(cell="rfm_cell" if "rfm_cell" in profiles.columns else None))
    log.debug("evaluating %d rule segments (rfm micro-segments: %s) for %s", len(cfg.segments),
              cfg.rfm_micro_segments, run_date.isoformat())
    base = _without_suppressed(profiles, suppressed)
    if not labels:
        return base.select(F.col(PERSON_ID), F.lit(None).cast("string").alias(SEGMENT)).where(F.lit(False))
    return (
        base.select(F.col(PERSON_ID), F.explode(F.array(*labels)).alias(SEGMENT))
        .where(F.col(SEGMENT).isNotNull())
    )


def _utc(ts: dt.datetime) -> dt.datetime:
    """Naive datetimes are taken as UTC, so the literal does not depend on the driver's zone."""
    return ts.replace(tzinfo=dt.timezone.utc) if ts.tzinfo is None else ts


def _transitions(
    current: DataFrame,
    members: DataFrame,
    run_at: dt.datetime,
    run_id: str,
    segments: Sequence[str] | None,
    persons: DataFrame | None,
) -> tuple[DataFrame, DataFrame, str]:
    """(rows out of scope or closed, open rows joined with members, change-flag column).

    The second frame has SEGMENT_MEMBERSHIP columns plus the flag column: 'entered' for a new
    row, 'exited' for an open row closed by this run, null for a member who stays.
    """
    cols = SEGMENT_MEMBERSHIP.column_names
    require_columns(cols, current.columns, "update_membership(current)")
    require_columns([PERSON_ID, SEGMENT], members.columns, "update_membership(members)")
    if persons is not None:
        require_columns([PERSON_ID], persons.columns, "update_membership(persons)")
    ts = F.lit(_utc(run_at)).cast("timestamp")
    rid = F.lit(run_id)
    current = current.select(*[F.col(f.name).cast(f.dataType) for f in SEGMENT_MEMBERSHIP.schema.fields])
    members = members.select(PERSON_ID, SEGMENT).where(
        F.col(PERSON_ID).isNotNull() & F.col(SEGMENT).isNotNull()
    ).distinct()
    kept: list[DataFrame] = []
    if segments is not None:
        scope = F.coalesce(F.col(SEGMENT).isin(list(segments)), F.lit(False)) if segments else F.lit(False)
        kept.append(current.where(~scope))
        current = current.where(scope)
        members = members.where(scope)
    if persons is not None:
        ids = persons.select(PERSON_ID).where(F.col(PERSON_ID).isNotNull()).distinct()
        kept.append(current.join(ids, on=PERSON_ID, how="left_anti").select(*cols))
        current = current.join(ids, on=PERSON_ID, how="left_semi")
        members = members.join(ids, on=PERSON_ID, how="left_semi")
    is_open, is_member, change = f"{TMP}open", f"{TMP}member", f"{TMP}change"
    kept.append(current.where(F.col("exited_at").isNotNull()))
    open_rows = current.where(F.col("exited_at").isNull()).withColumn(is_open, F.lit(True))
    joined = open_rows.join(members.withColumn(is_member, F.lit(True)), on=[PERSON_ID, SEGMENT], how="full_outer")
    was_open, stays = F.col(is_open).isNotNull(), F.col(is_member).isNotNull()
    left = was_open & ~stays
    updated = joined.select(
        F.col(PERSON_ID),
        F.col(SEGMENT),
        F.when(was_open, F.col("entered_at")).otherwise(ts).alias("entered_at"),
        F.when(left, ts).otherwise(F.col("exited_at")).alias("exited_at"),
        F.when(was_open, F.col("entered_run")).otherwise(rid).alias("entered_run"),
        F.when(left, rid).otherwise(F.col("exited_run")).alias("exited_run"),
        F.when(left, F.lit("exited")).when(~was_open, F.lit("entered")).alias(change),
    )
    rest = kept[0]
    for frame in kept[1:]:
        rest = rest.unionByName(frame)
    return rest.select(*cols), updated, change


def update_membership(
    current: DataFrame,
    members: DataFrame,
    run_at: dt.datetime,
    run_id: str,
    segments: Sequence[str] | None = None,
    persons: DataFrame | None = None,
) -> DataFrame:
    """The new full membership history (SEGMENT_MEMBERSHIP schema) after a run.

    Slowly-changing history (type 2): an open row (exited_at null) per current member. For each
    (person, segment) in scope: a new member gets a row entered at ``run_at``; a member who left
    gets exited_at/exited_run on the open row; a member who stays keeps the open row unchanged;
    closed rows are kept, so leaving and re-entering gives a second row. Only segments in
    ``segments`` are in scope when given (segments dropped from the config keep their history);
    only persons in ``persons`` (a person_id column) when given (incremental runs: the others
    were not evaluated, so their rows stay as they are). Without either, everything is in scope
    and a segment with no members closes its rows. Re-running the same run (same ``run_at`` and
    members) returns the same history: idempotent.
    """
    rest, updated, change = _transitions(current, members, run_at, run_id, segments, persons)
    return rest.unionByName(updated.drop(change)).select(*SEGMENT_MEMBERSHIP.column_names)


def membership_changes(
    current: DataFrame,
    members: DataFrame,
    run_at: dt.datetime,
    run_id: str,
    segments: Sequence[str] | None = None,
    persons: DataFrame | None = None,
) -> DataFrame:
    """Only the rows a run changes, for a merge on (person_id, segment, entered_at).

    Same scope rules as update_membership. Returns SEGMENT_MEMBERSHIP columns plus ``change``
    ('entered': a new open row to insert; 'exited': an open row now closed, to update). Merging
    these into ``current`` on the table key gives exactly update_membership's result, without
    rewriting the history (the job merges; it never overwrites the table).
    """
    _, updated, change = _transitions(current, members, run_at, run_id, segments, persons)
    return updated.where(F.col(change).isNotNull()).select(
        *SEGMENT_MEMBERSHIP.column_names, F.col(change).alias("change")
    )


def open_members(membership: DataFrame) -> DataFrame:
    """(person_id, segment) of the open rows: the current members of every segment."""
    require_columns([PERSON_ID, SEGMENT, "exited_at"], membership.columns, "open_members(membership)")
    return membership.where(F.col("exited_at").isNull()).select(PERSON_ID, SEGMENT).distinct()


def membership_counts(membership: DataFrame) -> DataFrame:
    """(segment, members): current members (open rows) per segment, ordered by segment name."""
    require_columns([PERSON_ID, SEGMENT, "exited_at"], membership.columns, "membership_counts(membership)")
    return (
        membership.where(F.col("exited_at").isNull())
        .groupBy(SEGMENT)
        .agg(F.countDistinct(PERSON_ID).cast("long").alias("members"))
        .orderBy(SEGMENT)
    )


# --- exports -------------------------------------------------------------------------------------


def _members_of(profiles: DataFrame, members: DataFrame, segment: str) -> DataFrame:
    require_columns([PERSON_ID, SEGMENT], members.columns, "members")
    ids = members.where(F.col(SEGMENT) == F.lit(segment)).select(PERSON_ID)
    return profiles.join(ids, on=PERSON_ID, how="left_semi")


def normalised_email(col: Column) -> Column:
    """E-mail as ad platforms and mail tools match it: trimmed, lower case; null when not valid."""
    email = F.lower(F.trim(col))
    return F.when(email.rlike(EMAIL_PATTERN), email)


def normalised_phone(col: Column, phone_format: PhoneFormat = "e164") -> Column:
    """Phone for hashing: E.164 with '+' (Google) or its digits only (Meta); null when not E.164.

    Separators (spaces, dashes, dots, parentheses) are dropped and an international '00' prefix
    becomes '+'. A number without a country code cannot be completed here, so it is left out
    rather than guessed (the golden profile already holds E.164).
    """
    compact = F.regexp_replace(F.regexp_replace(F.trim(col), r"[\s\-().]", ""), r"^00", "+")
    valid = compact.rlike(E164_PATTERN)
    if phone_format == "e164":
        return F.when(valid, compact)
    if phone_format == "digits":
        return F.when(valid, F.substring(compact, 2, 15))
    raise ConfigError(f"phone_format: got {phone_format!r}; expected 'e164' or 'digits'")


def email_export(profiles: DataFrame, members: DataFrame, segment: str) -> DataFrame:
    """Rows for an e-mail tool: person_id, email, given_name, family_name, full_name.

    Only members of ``segment`` with e-mail consent (explicitly true) and a valid address. One row
    per address: persons sharing an address (a household) would otherwise get the mail twice; the
    smallest person_id keeps it, so the file is deterministic. ``family_name`` carries its particle
    as it appears in full_name ('van der Berg'), because mail tools have one last-name field and
    'Beste heer Berg' is wrong; capitalising the particle when it leads ('Van der Berg') is the
    template's job. Sorted by person_id.
    """
    require_columns([PERSON_ID, "email", "given_name", "name_particle", "family_name", "full_name", "consent_email"],
                    profiles.columns, "email_export(profiles)")
    email = normalised_email(F.col("email"))
    particle, family = F.col("name_particle"), F.col("family_name")
    has_particle = particle.isNotNull() & (F.trim(particle) != F.lit("")) & ~F.lower(family).startswith(
        F.concat(F.lower(particle), F.lit(" "))
    )
    family_full = F.when(family.isNull(), F.lit(None).cast("string")).when(
        has_particle, F.concat_ws(" ", particle, family)
    ).otherwise(family)
    built = F.concat_ws(" ", F.col("given_name"), particle, family)
    full = F.coalesce(F.col("full_name"), F.when(built != F.lit(""), built))
    rank = f"{TMP}rank"
    rows = (
        _members_of(profiles, members, segment)
        .where(_consent("email") & email.isNotNull())
        .select(
            F.col(PERSON_ID),
            email.alias("email"),
            F.col("given_name"),
            family_full.alias("family_name"),
            full.alias("full_name"),
        )
    )
    first = Window.partitionBy("email").orderBy(F.col(PERSON_ID).asc())
    return (
        rows.withColumn(rank, F.row_number().over(first))
        .where(F.col(rank) == 1)
        .drop(rank)
        .orderBy(PERSON_ID)
    )


def hashed_audience(
    profiles: DataFrame,
    members: DataFrame,
    segment: str,
    consent: ConsentChannel,
    phone_format: PhoneFormat = "e164",
    include_person_id: bool = False,
) -> DataFrame:
    """An ad-platform audience file: email_sha256, phone_sha256 (lower-case SHA-256 hex).

    Normalisation before hashing, per the platforms' customer-list specifications:
    - e-mail: trimmed and lower-cased (Google Customer Match and Meta Custom Audiences alike);
    - phone, ``phone_format="e164"`` (default, Google Customer Match / DV360): E.164 with the
      leading '+' and country code, e.g. '+31612345678';
    - phone, ``phone_format="digits"`` (Meta Custom Audiences): digits only with the country code,
      no '+' and no leading zeros, e.g. '31612345678'.
    A value that does not validate is left out (null), and a person with neither is dropped.
    person_id is left out by default: ad platforms must not receive our ids. ``consent`` is
    required: the channel whose consent covers matching with ad platforms (the config's
    ``hashed_audience_consent``); only persons with that consent explicitly true are in the file,
    on top of the segment's own consent (applied when the membership was evaluated). Uploading a
    person's hashed e-mail to an ad platform is processing for advertising, which needs its own
    consent (GDPR art. 6(1)(a)); membership of a segment does not imply it. Without person_id
    the rows are de-duplicated; sorted either way.
    """
    if consent not in CONSENT_CHANNELS:
        raise ConfigError(
            f"hashed_audience consent: got {consent!r}; expected one of {', '.join(CONSENT_CHANNELS)} "
            "(the channel whose consent covers matching with ad platforms)"
        )
    require_columns([PERSON_ID, "email", "phone", f"consent_{consent}"], profiles.columns, "hashed_audience(profiles)")
    email = normalised_email(F.col("email"))
    phone = normalised_phone(F.col("phone"), phone_format)
    rows = _members_of(profiles, members, segment).where(_consent(consent))
    hashed = rows.select(
        F.col(PERSON_ID),
        F.sha2(email, 256).alias("email_sha256"),
        F.sha2(phone, 256).alias("phone_sha256"),
    ).where(F.col("email_sha256").isNotNull() | F.col("phone_sha256").isNotNull())
    if include_person_id:
        return hashed.orderBy(PERSON_ID)
    return hashed.drop(PERSON_ID).distinct().orderBy("email_sha256", "phone_sha256")


def hash_method_for(target: ExportTarget, phone_format: PhoneFormat = "e164") -> str:
    """The hash_method recorded in the export manifest, so a reader knows how to match the file."""
    if target == "email_csv":
        return "none"
    return f"sha256-hex; email=trim+lower; phone={'e164' if phone_format == 'e164' else 'digits'}"


def export_manifest(
    segment: str,
    run_id: str,
    target: ExportTarget,
    path: str,
    rows: int,
    hash_method: str,
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """One SEGMENT_EXPORTS row as a dict.

    export_id is a stable hash of segment, target and run, so re-running an export replaces its
    manifest instead of adding a second one (merge on export_id).
    """
    if target not in ("email_csv", "hashed_audience"):
        raise ConfigError(f"target: got {target!r}; expected 'email_csv' or 'hashed_audience'")
    if rows < 0:
        raise ConfigError(f"rows: got {rows}; expected a count of 0 or more")
    export_id = hashlib.sha256(SEP.join([segment, target, run_id]).encode("utf-8")).hexdigest()[:KEY_LENGTH]
    return {
        "export_id": export_id,
        "segment": segment,
        "target": target,
        "path": path,
        "rows": int(rows),
        "hash_method": hash_method,
        "run_id": run_id,
        "created_at": _utc(created_at or dt.datetime.now(dt.timezone.utc)),
    }
