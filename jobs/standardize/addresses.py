"""Addresses: country to ISO-2, house number and suffix, postcode per country, street and city.

Dutch addresses are identified by postcode + house number + suffix (the BAG key), so those three
are normalised hardest: '1234ab' -> '1234 AB', '12-A' / '12a' -> ('12', 'A'), '12 hs' -> ('12',
'HS'). Postcode rules are per country and come from config; a country without a rule keeps its
postcode as sent (upper case) and gets no validity verdict (null).
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.standardize.config import StandardizeConfig
from jobs.standardize.text import lookup, match_form, py_match_form, recase

# street + house number in one field: the street must contain a letter before the number
# ("2e Hugo de Grootstraat 5", "Hoofdstraat 12 bis", "Laan 1940-1945 3" is left alone).
STREET_WITH_NUMBER = r"^(.*[^\d\s].*?)\s+(\d+(?:\s*[-/]?\s*[A-Za-z0-9]{1,5})?)$"
# house number: optional "nr."/"no.", digits, optional separator, suffix
HOUSE_NUMBER = r"(?i)^(?:(?:nr|no|huisnr)\.?\s*)?0*(\d+)\s*[-/,.]?\s*(.*)$"


@lru_cache(maxsize=1)
def iso_countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes known to libphonenumber (every country with a numbering plan)."""
    return frozenset(r for r in phonenumbers.SUPPORTED_REGIONS if len(r) == 2)


def normalize_country(c: Column, cfg: StandardizeConfig) -> tuple[Column, Column]:
    """(ISO-2 code or null, recognised) of a country as sent: 'Nederland', 'nl', 'België', 'UK'.

    Names are looked up by their match form in ``country_aliases``; any other two-letter value is
    accepted when it is an ISO code.
    """
    key = match_form(c)
    aliases = {py_match_form(k): v for k, v in cfg.country_aliases.items()}
    by_alias = lookup(aliases, key)
    code = F.upper(F.trim(c))
    iso = F.when(code.rlike(r"^[A-Z]{2}$") & code.isin(sorted(iso_countries())), code)
    value = F.coalesce(by_alias, iso)
    return value, value.isNotNull()


def split_street(street: Column, house_number: Column) -> tuple[Column, Column]:
    """(street, house number) where the street field carries the number ('Hoofdstraat 12a').

    Only when no house number was sent; a street without a trailing number is left alone.
    """
    m_street = F.regexp_extract(street, STREET_WITH_NUMBER, 1)
    m_number = F.regexp_extract(street, STREET_WITH_NUMBER, 2)
    take = house_number.isNull() & (m_number != "")
    return (
        F.when(take, m_street).otherwise(street),
        F.when(take, m_number).otherwise(house_number),
    )


def split_house_number(c: Column, suffix: Column, aliases: dict[str, str]) -> tuple[Column, Column, Column]:
    """(number, suffix, valid) of a house number: '12-A' -> ('12', 'A'), '12 bis' -> ('12', 'BIS'),
    '12-2' -> ('12', '2'), '12 III' -> ('12', 'III'), '012' -> ('12', null).

    A suffix sent in its own field wins. Suffixes are upper case without separators and mapped
    through ``aliases`` ('HUIS' -> 'HS'). A value without digits is invalid (null, flagged).
    """
    number = F.regexp_extract(c, HOUSE_NUMBER, 1)
    rest = F.upper(F.regexp_replace(F.regexp_extract(c, HOUSE_NUMBER, 2), r"[^\p{L}\p{N}]+", ""))
    sent_suffix = F.upper(F.regexp_replace(suffix, r"[^\p{L}\p{N}]+", ""))
    suffix_val = F.coalesce(F.when(sent_suffix != "", sent_suffix), F.when(rest != "", rest))
    suffix_val = F.coalesce(lookup({k.upper(): v.upper() for k, v in aliases.items()}, suffix_val), suffix_val)
    valid = number != ""
    return F.when(valid, number), F.when(valid | c.isNull(), suffix_val), valid


def compact_postcode(c: Column) -> Column:
    """Upper case without blanks, hyphens and dots: the form postcode rules match."""
    return F.upper(F.regexp_replace(c, r"[\s\-.]+", ""))


def format_postcode(
    c: Column, country: Column, cfg: StandardizeConfig, compact: Column | None = None
) -> tuple[Column, Column]:
    """(postcode, valid) per the country's rule: '1234ab' -> '1234 AB' (NL), 'B-1000' -> '1000'.

    The value is compacted (upper case, blanks and hyphens removed) and matched against the
    rule's pattern; the display form is the rule's format. Without a rule for the country the
    value is kept upper-cased and ``valid`` is null (no check exists). Invalid values are nulled
    unless 'postcode' is in ``keep_invalid``. Pass ``compact`` as a column reference
    (:func:`compact_postcode` materialised) when there are many rules: each rule reads it.
    """
    compact = compact if compact is not None else compact_postcode(c)
    if not cfg.postcode_rules:
        return F.upper(c), F.when(c.isNull(), F.lit(False))
    by_rule: Column = F.lit(None).cast("string")
    ok_by_rule: Column = F.lit(None).cast("boolean")
    for code in sorted(cfg.postcode_rules, reverse=True):
        rule = cfg.postcode_rules[code]
        ok = compact.rlike(rule.pattern)
        if rule.exclude:
            ok = ok & ~compact.rlike(rule.exclude)
        is_country = country == F.lit(code)
        by_rule = F.when(is_country, F.when(ok, F.regexp_replace(compact, rule.pattern, rule.format))).otherwise(by_rule)
        ok_by_rule = F.when(is_country, ok).otherwise(ok_by_rule)
    has_rule = F.coalesce(country.isin(sorted(cfg.postcode_rules)), F.lit(False))
    kept = F.upper(c) if "postcode" in cfg.keep_invalid else F.lit(None).cast("string")
    value = F.when(c.isNull(), F.lit(None).cast("string")).when(has_rule, F.coalesce(by_rule, kept)).otherwise(F.upper(c))
    valid = F.when(c.isNull(), F.lit(False)).when(has_rule, ok_by_rule)
    return value, valid


def clean_city(c: Column, cfg: StandardizeConfig) -> tuple[Column, Column]:
    """(city, city match form): 'ALPHEN AAN DEN RIJN' -> 'Alphen aan den Rijn'; match forms
    fold accents, drop '(ZH)'-style qualifiers and map aliases ('s gravenhage' -> 'den haag')."""
    city = recase(c, cfg.recase_names, cfg.city_lowercase_words, cfg.dutch_ij)
    base = match_form(F.regexp_replace(c, r"\s*\([^)]*\)\s*$", ""), keep_digits=True, umlauts=cfg.umlaut_folding)
    aliases = {
        py_match_form(k, keep_digits=True, umlauts=cfg.umlaut_folding): py_match_form(
            v, keep_digits=True, umlauts=cfg.umlaut_folding
        )
        for k, v in cfg.city_aliases.items()
    }
    return city, F.coalesce(lookup(aliases, base), base)


def clean_street(c: Column, cfg: StandardizeConfig) -> Column:
    """Street re-cased like a city ('LAAN VAN MEERDERVOORT' -> 'Laan van Meerdervoort')."""
    words = set(cfg.city_lowercase_words) | {w for p in cfg.particles for w in p.lower().split()}
    return recase(c, cfg.recase_names, sorted(words), cfg.dutch_ij)
