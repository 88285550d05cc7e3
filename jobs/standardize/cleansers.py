"""The cleansers of the standardize stage, registered by name so that config can name them.

Two registries (STYLE.md 6):

- ``CLEANSERS``: ``Column -> Column`` helpers with keyword arguments (``trim``, ``upper``,
  ``strip_leading_zeros``, ``regex_replace(pattern, replacement)``, ...). Config chains them per
  identifier type (``identifier_cleansers``); arguments are checked when the config is loaded.
- ``RECORD_STEPS``: ``(DataFrame, StandardizeConfig, default_country) -> DataFrame`` steps over
  the working frame of :func:`jobs.standardize.transforms.standardize_records`, run in the order
  of ``StandardizeConfig.steps``. Each step overwrites the canonical columns it owns with their
  cleaned values, adds the validity columns of SILVER_RECORDS it owns, and writes its findings
  to flag columns (prefix ``FLAG_PREFIX``) that end up in ``dq_flags``.

Everything here is Spark built-ins except the phone step, which calls the phonenumbers pandas UDF.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common.registry import Registry
from jobs.common.schemas import CONSENT_CHANNELS, TMP
from jobs.standardize import addresses, dates, emails, names, phones
from jobs.standardize.config import StandardizeConfig
from jobs.standardize.text import (
    FLAG_PREFIX,
    any_regex,
    clean_text,
    flag,
    fold_accents,
    in_values,
    lookup,
    match_form,
    name_case,
)

ColumnCleanser = Callable[..., Column]
RecordStep = Callable[[DataFrame, StandardizeConfig, str], DataFrame]

CLEANSERS: Registry[ColumnCleanser] = Registry("cleanser")
RECORD_STEPS: Registry[RecordStep] = Registry("standardize step")


@dataclass(frozen=True)
class SourceCountry:
    """The default country of rows that come from several sources at once.

    ``column`` holds each row's source default (ISO-2); ``values`` are all of them (for the
    placeholder phone numbers, which are spelled out per region). One standardisation plan over
    the union of all sources costs one plan build instead of one per source.
    """

    column: Column
    values: frozenset[str]


DefaultCountry = "str | SourceCountry"


def country_column(default_country: "str | SourceCountry") -> Column:
    """The source default country as a Column."""
    return default_country.column if isinstance(default_country, SourceCountry) else F.lit(default_country)


def default_countries(default_country: "str | SourceCountry") -> set[str]:
    return set(default_country.values) if isinstance(default_country, SourceCountry) else {default_country}


# --- column cleansers ----------------------------------------------------------------------------


@CLEANSERS.register("trim")
def trim(c: Column) -> Column:
    """Blanks off both ends."""
    return F.trim(c)


@CLEANSERS.register("collapse_whitespace")
def collapse_whitespace(c: Column) -> Column:
    """Every kind of blank to one space, trimmed, invisible characters dropped."""
    return clean_text(c)


@CLEANSERS.register("remove_whitespace")
def remove_whitespace(c: Column) -> Column:
    """All blanks out ('NL 12 34' -> 'NL1234'): ids are often typed with spaces."""
    return F.regexp_replace(c, r"[\h\v\s]+", "")


@CLEANSERS.register("upper")
def upper(c: Column) -> Column:
    """Upper case (ids that are case-insensitive)."""
    return F.upper(c)


@CLEANSERS.register("lower")
def lower(c: Column) -> Column:
    """Lower case (device ids, which are hex UUIDs in either case)."""
    return F.lower(c)


@CLEANSERS.register("alphanumeric")
def alphanumeric(c: Column) -> Column:
    """Letters and digits only ('1234-5678 90' -> '1234567890')."""
    return F.regexp_replace(c, r"[^\p{L}\p{N}]+", "")


@CLEANSERS.register("digits_only")
def digits_only(c: Column) -> Column:
    """Digits only."""
    return F.regexp_replace(c, r"[^0-9]+", "")


@CLEANSERS.register("strip_leading_zeros")
def strip_leading_zeros(c: Column) -> Column:
    """'000123' -> '123' (one system pads, the other not); a value of zeros stays '0'."""
    return F.regexp_replace(c, r"^0+(?=.)", "")


@CLEANSERS.register("strip_prefix")
def strip_prefix(c: Column, prefix: str) -> Column:
    """Remove a fixed prefix, case-insensitively ('CRM-000123' with prefix 'CRM-')."""
    import re

    return F.regexp_replace(c, "(?i)^" + re.escape(prefix), "")


@CLEANSERS.register("regex_replace")
def regex_replace(c: Column, pattern: str, replacement: str = "") -> Column:
    """Java regex replacement, for what no named cleanser covers."""
    return F.regexp_replace(c, pattern, replacement)


@CLEANSERS.register("fold_accents")
def fold_accents_cleanser(c: Column) -> Column:
    """Diacritics removed ('é' -> 'e')."""
    return fold_accents(c)


@CLEANSERS.register("match_form")
def match_form_cleanser(c: Column, keep_digits: bool = True) -> Column:
    """Lower case, accents folded, other characters as single spaces."""
    return match_form(c, keep_digits=keep_digits)


@CLEANSERS.register("name_case")
def name_case_cleanser(c: Column) -> Column:
    """Title case that understands hyphens and O'-prefixes."""
    return name_case(c)


def apply_cleansers(c: Column, refs: list[Any]) -> Column:
    """Chain the configured cleansers over a column; '' -> null at the end."""
    out = c
    for ref in refs:
        out = CLEANSERS.get(ref.name)(out, **ref.args)
    return F.nullif(out, F.lit(""))  # the chain evaluated once (see text.clean_text)


def is_placeholder(c: Column, field: str, cfg: StandardizeConfig) -> Column:
    """Whether a field's value is one of its placeholders (never null)."""
    ph = cfg.placeholders
    values = {v.lower() for v in ph.by_field.get(field, [])}
    patterns: list[str] = []
    if field in ph.generic_fields:
        values |= {v.lower() for v in ph.generic}
        patterns = list(ph.generic_patterns)
    if not values and not patterns:
        return F.lit(False)
    return F.coalesce(in_values(F.lower(c), values) | any_regex(c, patterns), F.lit(False))


def placeholder_fields(cfg: StandardizeConfig) -> list[str]:
    """Fields the generic placeholder step checks."""
    return sorted(set(cfg.placeholders.generic_fields) | set(cfg.placeholders.by_field))


_IDV = f"{TMP}idv_"


def add_identifier_columns(df: DataFrame, fields: dict[str, tuple[str, str]], cfg: StandardizeConfig) -> DataFrame:
    """Customer numbers, loyalty cards, cookie and device ids as records and events both store them.

    ``fields`` maps an output column to (input column, identifier type). Each value is cleaned
    text, placeholders nulled, then the type's configured cleansers: one function for records and
    events, so that an event's customer number equals the record's.

    Each step is a column of its own, as in :func:`emails.add_email_columns`. Nested in one
    expression, the placeholder test and the cleansers each referred to the step before several
    times and Spark copied it at every reference: the clean-text regex ran some twenty times per
    identifier, and with five identifiers in one projection the generated code grew past what the
    JVM compiles (at 20,000 web events the event's identifier took 25 s against 0.4 s for one
    identifier alone).
    """
    steps = {out: (f"{_IDV}{i}_s", f"{_IDV}{i}_v") for i, out in enumerate(fields)}
    df = df.withColumns({steps[out][0]: clean_text(F.col(src)) for out, (src, _t) in fields.items()})
    df = df.withColumns(
        {
            steps[out][1]: F.when(~is_placeholder(F.col(steps[out][0]), t, cfg), F.col(steps[out][0]))
            for out, (_src, t) in fields.items()
        }
    )
    df = df.withColumns(
        {out: apply_cleansers(F.col(steps[out][1]), list(cfg.identifier_cleansers.get(t, []))) for out, (_src, t) in fields.items()}
    )
    return df.drop(*[c for pair in steps.values() for c in pair])


def parse_consent(c: Column, cfg: StandardizeConfig) -> tuple[Column, Column]:
    """(consent, recognised) of 'ja/nee/yes/no/true/false/1/0/j/n/y': unknown text -> null."""
    key = F.lower(F.trim(c))
    value = F.when(in_values(key, {v.lower() for v in cfg.consent_true}), F.lit(True)).when(
        in_values(key, {v.lower() for v in cfg.consent_false}), F.lit(False)
    )
    return value, value.isNotNull()


# --- record steps --------------------------------------------------------------------------------


@RECORD_STEPS.register("placeholders")
def null_placeholders(df: DataFrame, cfg: StandardizeConfig, default_country: "str | SourceCountry") -> DataFrame:
    """Null placeholder values ('onbekend', 'n/a', '-', 'test') and flag ``placeholder:<field>``.

    Runs first, so that no later step parses 'onbekend' as a city or a name.
    """
    cols: dict[str, Column] = {}
    for field in placeholder_fields(cfg):
        ph = is_placeholder(F.col(field), field, cfg)
        cols[field] = F.when(~ph, F.col(field))
        cols[f"{FLAG_PREFIX}ph_{field}"] = flag(ph, f"placeholder:{field}")
    return df.withColumns(cols)


@RECORD_STEPS.register("country")
def standardize_country(df: DataFrame, cfg: StandardizeConfig, default_country: "str | SourceCountry") -> DataFrame:
    """Country to ISO-2; missing means the source's default country; unknown text is null+flagged."""
    iso, _ = addresses.normalize_country(F.col("country"), cfg)
    df = df.withColumn(f"{TMP}country", iso)
    sent = F.col("country").isNotNull()
    ok = F.col(f"{TMP}country").isNotNull()
    return df.withColumns(
        {
            "country": F.when(~sent, country_column(default_country)).otherwise(F.col(f"{TMP}country")),
            f"{FLAG_PREFIX}country": flag(sent & ~ok, "country_invalid"),
        }
    ).drop(f"{TMP}country")


@RECORD_STEPS.register("names")
def standardize_names_step(df: DataFrame, cfg: StandardizeConfig, default_country: "str | SourceCountry") -> DataFrame:
    """Titles, gender, given/particle/family split, initials, casing, match forms (names.py)."""
    return names.standardize_names(df, cfg)


@RECORD_STEPS.register("emails")
def standardize_emails(df: DataFrame, cfg: StandardizeConfig, default_country: "str | SourceCountry") -> DataFrame:
    """E-mail lower-cased, typo-corrected or flagged, syntax-checked (emails.py)."""
    p = f"{TMP}email_"
    df = emails.add_email_columns(df, "email", cfg, p)
    r = {k: F.col(f"{p}{k}") for k in emails.EMAIL_OUTPUTS}
    typo_flag = "email_domain_corrected" if cfg.email_typo_mode == "correct" else "email_domain_suspect"
    return df.withColumns(
        {
            "email": r["value"],
            "email_valid": r["valid"],
            f"{FLAG_PREFIX}ph_email_specific": flag(r["placeholder"], "placeholder:email"),
            f"{FLAG_PREFIX}email_typo": flag(r["typo"] & ~r["placeholder"], typo_flag),
            f"{FLAG_PREFIX}email_invalid": flag(r["sent"] & ~r["placeholder"] & ~r["valid"], "email_invalid"),
        }
    ).drop(*[f"{p}{k}" for k in emails.EMAIL_OUTPUTS])


def _placeholder_regions(cfg: StandardizeConfig, default_country: "str | SourceCountry") -> set[str]:
    return default_countries(default_country) | {"NL", "BE", "DE", "GB"} | set(cfg.postcode_rules) | set(cfg.phone_regions.values())


@RECORD_STEPS.register("phones")
def standardize_phones(df: DataFrame, cfg: StandardizeConfig, default_country: "str | SourceCountry") -> DataFrame:
    """Phones to E.164 in the record's country (else the source's default), via the pandas UDF.

    Placeholders are caught on the digits as sent ('06-12345678') and on the E.164 result
    ('+31 6 12345678'); invalid numbers are nulled and flagged, never guessed.
    """
    ph = cfg.placeholders
    region = F.coalesce(lookup(cfg.phone_regions, F.col("country")), F.col("country"), country_column(default_country))
    digits = phones.phone_digits(F.col("phone"))
    ph_digits = in_values(digits, ph.phone)
    if ph.phone_repeated_digit:
        ph_digits = ph_digits | digits.rlike(r"^(\d)\1+$")
    ph_digits = F.coalesce(ph_digits, F.lit(False))
    df = df.withColumns(
        {
            f"{TMP}phone_ph": ph_digits,
            f"{TMP}phone_res": phones.phone_e164(F.when(~ph_digits, F.col("phone")), region),
        }
    )
    res = F.col(f"{TMP}phone_res")
    ph_e164 = F.coalesce(
        in_values(res["e164"], phones.placeholder_e164(ph.phone, _placeholder_regions(cfg, default_country))),
        F.lit(False),
    )
    placeholder = F.col(f"{TMP}phone_ph") | ph_e164
    valid = F.coalesce(res["valid"], F.lit(False)) & ~placeholder
    sent = F.col("phone").isNotNull()
    return df.withColumns(
        {
            "phone": F.when(valid, res["e164"]),
            "phone_valid": valid,
            f"{FLAG_PREFIX}ph_phone_specific": flag(sent & placeholder, "placeholder:phone"),
            f"{FLAG_PREFIX}phone_invalid": flag(sent & ~placeholder & ~valid, "phone_invalid"),
        }
    ).drop(f"{TMP}phone_ph", f"{TMP}phone_res")


@RECORD_STEPS.register("addresses")
def standardize_addresses(df: DataFrame, cfg: StandardizeConfig, default_country: "str | SourceCountry") -> DataFrame:
    """Street, house number + suffix, postcode per country, city and its match form."""
    street, hn = (
        addresses.split_street(F.col("street"), F.col("house_number"))
        if cfg.split_street_house_number
        else (F.col("street"), F.col("house_number"))
    )
    df = df.withColumns(
        {"street": street, "house_number": hn, f"{TMP}pc_compact": addresses.compact_postcode(F.col("postcode"))}
    )
    number, suffix, hn_valid = addresses.split_house_number(
        F.col("house_number"), F.col("house_number_suffix"), cfg.house_number_suffix_aliases
    )
    country = F.coalesce(F.col("country"), country_column(default_country))
    postcode, pc_valid = addresses.format_postcode(F.col("postcode"), country, cfg, F.col(f"{TMP}pc_compact"))
    city, city_match = addresses.clean_city(F.col("city"), cfg)
    return df.withColumns(
        {
            "street": addresses.clean_street(F.col("street"), cfg),
            "house_number": number,
            "house_number_suffix": suffix,
            f"{FLAG_PREFIX}house_number": flag(F.col("house_number").isNotNull() & ~hn_valid, "house_number_invalid"),
            "postcode": postcode,
            "postcode_valid": pc_valid,
            f"{FLAG_PREFIX}postcode": flag(F.col("postcode").isNotNull() & (pc_valid == F.lit(False)), "postcode_invalid"),
            "city": city,
            "city_match": city_match,
        }
    ).drop(f"{TMP}pc_compact")


@RECORD_STEPS.register("birth_dates")
def standardize_birth_dates(df: DataFrame, cfg: StandardizeConfig, default_country: "str | SourceCountry") -> DataFrame:
    """Birth date parsed in the configured formats; impossible, future and implausible dates nulled."""
    today = dates.reference_date(cfg.reference_date)
    df = df.withColumn(
        f"{TMP}birth_date", dates.parse_date(F.col("birth_date"), cfg.date_formats, cfg.two_digit_year_pivot, today)
    )
    valid, placeholder, invalid = dates.birth_date_checks(F.col("birth_date"), F.col(f"{TMP}birth_date"), cfg)
    return df.withColumns(
        {
            "birth_date": F.when(valid, F.col(f"{TMP}birth_date")),
            "birth_date_valid": valid,
            f"{FLAG_PREFIX}ph_birth_date_specific": flag(placeholder, "placeholder:birth_date"),
            f"{FLAG_PREFIX}birth_date": flag(invalid, "birth_date_invalid"),
        }
    ).drop(f"{TMP}birth_date")


@RECORD_STEPS.register("consents")
def standardize_consents(df: DataFrame, cfg: StandardizeConfig, default_country: "str | SourceCountry") -> DataFrame:
    """Consent flags to booleans; unrecognised values null and flagged ``consent_<channel>_invalid``."""
    cols: dict[str, Column] = {}
    for ch in CONSENT_CHANNELS:
        field = f"consent_{ch}"
        value, ok = parse_consent(F.col(field), cfg)
        cols[field] = value
        cols[f"{FLAG_PREFIX}{field}"] = flag(F.col(field).isNotNull() & ~ok, f"{field}_invalid")
    return df.withColumns(cols)


TIMESTAMP_FIELDS = {
    **{f"consent_{ch}_at": f"consent_{ch}_at" for ch in CONSENT_CHANNELS},
    "created_at": "source_created_at",
    "updated_at": "source_updated_at",
}


@RECORD_STEPS.register("timestamps")
def standardize_timestamps(df: DataFrame, cfg: StandardizeConfig, default_country: "str | SourceCountry") -> DataFrame:
    """Consent and source timestamps parsed as UTC; unparseable values flagged ``<field>_invalid``."""
    cols: dict[str, Column] = {}
    for field, out in TIMESTAMP_FIELDS.items():
        ts = dates.parse_timestamp(F.col(field), cfg.timestamp_formats)
        cols[out] = ts
        cols[f"{FLAG_PREFIX}{field}"] = flag(F.col(field).isNotNull() & ts.isNull(), f"{field}_invalid")
    return df.withColumns(cols)


IDENTIFIER_FIELDS = ("customer_number", "loyalty_card", "cookie_id", "device_id")


@RECORD_STEPS.register("identifiers")
def standardize_identifiers(df: DataFrame, cfg: StandardizeConfig, default_country: "str | SourceCountry") -> DataFrame:
    """Customer number, loyalty card, cookie and device ids through their configured cleansers."""
    return add_identifier_columns(df, {f: (f, f) for f in IDENTIFIER_FIELDS}, cfg)
