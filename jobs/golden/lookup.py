"""``cdp profile --id TYPE:VALUE``: find a golden profile by any identifier, with provenance.

Identifier values are personal data: no error here repeats one (errors end up in job logs,
terminals that are shared and tickets). They name the type and what was expected instead.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timezone
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.delta import commit_metadata_of
from jobs.common.errors import ConfigError, DataError

if TYPE_CHECKING:
    from jobs.common.context import Context
    from jobs.common.delta import Lake

LOOKUP_TYPES = (*S.IDENTIFIER_TYPES, S.ID_PERSON)


def parse_subject(text: str) -> tuple[str, str]:
    """'email:jan@example.nl' -> ('email', 'jan@example.nl'), normalised like silver does.

    A malformed subject fails without repeating it (module docstring).
    """
    kind, sep, value = text.partition(":")
    kind = kind.strip().lower()
    expected = f"expected TYPE:VALUE with TYPE one of {', '.join(LOOKUP_TYPES)}"
    if not sep or kind not in LOOKUP_TYPES:
        raise ConfigError(f"--id/--subject: got no known TYPE before a ':' (the value is not shown); {expected}")
    if not value.strip():
        raise ConfigError(f"--id/--subject: got {kind} with an empty value; {expected}")
    return kind, normalise_identifier(kind, value)


def normalise_identifier(kind: str, value: str, country: str = "NL") -> str:
    value = value.strip()
    if kind == S.ID_EMAIL:
        return value.lower()
    if kind == S.ID_PHONE:
        import phonenumbers

        try:
            number = phonenumbers.parse(value, country)
        except phonenumbers.NumberParseException as exc:
            raise ConfigError(
                f"phone: the value cannot be parsed as a phone number ({exc}; the value is not shown); "
                "expected national (06 12345678) or E.164 (+31612345678) form"
            ) from None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return value


def silver_form(ctx: "Context", kind: str, value: str) -> str:
    """An identifier as silver.identifiers holds it (silver's own transform: an e-mail domain typo
    corrected, a customer number or loyalty card cleansed); DataError, without the value, for a
    value silver keeps for no one (a placeholder such as test@test.nl, an invalid number)."""
    from jobs.standardize.transforms import silver_identifier_forms

    form = silver_identifier_forms(ctx.spark, [(kind, value, None)], ctx.cfg.standardize).get((kind, value, None))
    if form is None:
        raise DataError(
            f"this {kind} is a value silver keeps for no one, a placeholder or an invalid {kind} (the value is not shown); "
            f"expected the {kind} as one person holds it"
        )
    return form


def person_ids_for(ctx: "Context", kind: str, value: str) -> list[str]:
    """Person ids holding an identifier (an identifier may belong to several persons)."""
    lake = ctx.lake
    if kind == S.ID_PERSON:
        return [value]
    if not lake.exists(S.SILVER_IDENTIFIERS.address) or not lake.exists(S.GOLDEN_IDENTITY_MAP.address):
        raise DataError("no golden tables yet: run `cdp run` first")
    keys = lake.read(S.SILVER_IDENTIFIERS.address).where(
        (F.col("id_type") == F.lit(kind)) & (F.col("id_value") == F.lit(value))
    )
    ids = (
        keys.join(lake.read(S.GOLDEN_IDENTITY_MAP.address), "record_key")
        .select("person_id")
        .distinct()
        .orderBy("person_id")
        .collect()
    )
    return [r.person_id for r in ids]


def _as_of(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--as-of: got {text!r}; expected a date or date-time (2026-11-01 or 2026-11-01T12:00)") from None
    if isinstance(parsed, datetime) and len(text) <= 10:
        parsed = datetime.combine(date.fromisoformat(text), time.max)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def find_profile(ctx: "Context", identifier: str, as_of: str | None = None) -> dict[str, Any]:
    """The golden profile (with provenance) of the person holding ``identifier`` ('TYPE:VALUE').

    ``as_of`` (a date or ISO date-time, UTC unless it says otherwise; a date means its end) reads
    golden.profiles as of that time (Delta time travel); identifiers are resolved through the
    current identity map. Several persons holding the identifier: the first by person id is
    returned, the others are listed under ``other_person_ids``. The error for an unknown
    identifier names its type, not the value; nothing is logged.
    """
    kind, value = parse_subject(identifier)
    if kind != S.ID_PERSON:
        value = silver_form(ctx, kind, value)
    ids = person_ids_for(ctx, kind, value)
    if not ids:
        raise DataError(f"no person has this {kind} (the value is not shown); expected a known {kind}")
    at = _as_of(as_of)
    if not ctx.lake.exists(S.GOLDEN_PROFILES.address):
        raise DataError("no golden tables yet: run `cdp run` first")
    try:
        profiles = ctx.lake.read(S.GOLDEN_PROFILES.address, timestamp=at)
    except Exception as exc:  # noqa: BLE001 - engines raise their own types for a missing version
        if at is None:
            raise
        raise DataError(f"--as-of {as_of}: golden.profiles has no version at or before that time ({exc})") from exc
    rows = profiles.where(F.col("person_id").isin(ids)).collect()
    if not rows:
        when = f" on {as_of}" if as_of else ""
        if kind == S.ID_PERSON:
            raise DataError(_unknown_person_id(ctx.lake, value, when, at))
        raise DataError(f"person {', '.join(ids)} has no golden profile{when}")
    result = rows[0].asDict(recursive=True)
    if len(rows) > 1:
        result["other_person_ids"] = [r.person_id for r in rows[1:]]
    return result


def _unknown_person_id(lake: "Lake", person_id: str, when: str, at: datetime | None) -> str:
    """Why a person id has no profile: merged or retired (golden.id_changes, up to ``at``), or not issued."""
    expected = "expected the person_id of a golden profile"
    if lake.exists(S.GOLDEN_ID_CHANGES.address):
        changes = lake.read(S.GOLDEN_ID_CHANGES.address)
        if at is not None:
            changes = changes.where(F.col("changed_at") <= F.lit(at))
        gone = (
            changes.where((F.col("person_id") == F.lit(person_id)) & F.col("change").isin("merged", "retired"))
            .orderBy(F.col("changed_at").desc(), F.col("run_id").desc())
            .limit(1)
            .collect()
        )
        if gone and gone[0].change == "merged":
            return (f"person_id {person_id} has no golden profile{when}: it was merged into "
                    f"{gone[0].related_person_id} in run {gone[0].run_id}; {expected}")
        if gone:
            return (f"person_id {person_id} has no golden profile{when}: it was retired in run {gone[0].run_id} "
                    f"(none of its records is left); {expected}")
    return f"no person has person_id {person_id}{when}; {expected}"


def profiles_version_of_run(lake: "Lake", run_id: str) -> int | None:
    """The last version of golden.profiles a run committed (its commit metadata names the run)."""
    versions = [
        int(entry["version"])
        for entry in lake.history(S.GOLDEN_PROFILES.address)
        if commit_metadata_of(entry).get("run_id") == run_id
    ]
    return max(versions) if versions else None


def format_profile(profile: dict[str, Any]) -> str:
    """Readable text: attribute, value and where it came from."""
    prov = profile.get("provenance") or {}
    lines = [f"person {profile['person_id']}  (household {profile.get('household_id') or '-'})"]
    for attr in S.SURVIVING_ATTRIBUTES:
        value = profile.get(attr)
        if value is None:
            continue
        p = prov.get(attr) or {}
        origin = f"{p.get('source')} {p.get('record_key')} by {p.get('rule')}" if p else ""
        lines.append(f"  {attr:<20} {str(value):<32} {origin}")
    lines.append("  identifiers:")
    for kind, values in sorted((profile.get("identifiers") or {}).items()):
        lines.append(f"    {kind:<18} {', '.join(values)}")
    skip = set(S.SURVIVING_ATTRIBUTES) | {"person_id", "provenance", "identifiers", "household_id"}
    rest = {k: v for k, v in profile.items() if k not in skip and v not in (None, {}, [])}
    lines.append("  " + json.dumps(rest, default=str, sort_keys=True))
    return "\n".join(lines)
