"""E-mail addresses: normalise, spot placeholders, correct (or flag) domain typos, check syntax.

One staged transform serves records and events alike (an event's e-mail must equal the record's
to link them). Typos are looked up first as a whole domain (gmial.com -> gmail.com), then by
top-level domain (.con -> .com); an unknown domain is never guessed.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common.schemas import TMP
from jobs.standardize.config import StandardizeConfig
from jobs.standardize.text import any_regex, in_values, lookup

_E = TMP + "em_"
EMAIL_OUTPUTS = ("value", "valid", "placeholder", "typo", "sent")


def normalize_email_text(c: Column) -> Column:
    """Lower case, trimmed, 'mailto:' and '<...>' removed, blanks and trailing dots removed."""
    s = F.lower(F.trim(c))
    s = F.regexp_replace(s, r"^mailto:", "")
    s = F.regexp_replace(s, r"^<(.*)>$", "$1")
    s = F.regexp_replace(s, r"\s+", "")
    return F.regexp_replace(s, r"\.+$", "")


def add_email_columns(df: DataFrame, column: str, cfg: StandardizeConfig, prefix: str) -> DataFrame:
    """Add ``<prefix>value, valid, placeholder, typo, sent`` for the raw e-mail ``column``.

    - value: normalised (:func:`normalize_email_text`), domain typo corrected when
      ``email_typo_mode == 'correct'``; null for placeholders, and for invalid addresses unless
      'email' is in ``keep_invalid``;
    - valid: present, not a placeholder, and matching ``email_pattern``;
    - placeholder: a known placeholder (test@test.nl, noreply@..., geen@...);
    - typo: the domain is a known typo (corrected or only flagged, per mode);
    - sent: the source sent something (completeness metrics).
    Intermediate results are columns, so that no large expression is planned twice.
    """
    ph = cfg.placeholders

    def c(name: str) -> Column:
        return F.col(f"{_E}{name}")

    df = df.withColumn(f"{_E}s", normalize_email_text(F.col(column)))
    df = df.withColumns(
        {
            f"{_E}s": F.when(c("s") != "", c("s")),
            f"{_E}local": F.regexp_extract(c("s"), r"^(.*)@([^@]*)$", 1),
            f"{_E}domain": F.regexp_extract(c("s"), r"^(.*)@([^@]*)$", 2),
            f"{_E}tld_base": F.regexp_extract(c("s"), r"@(.+)\.([a-z]+)$", 1),
            f"{_E}tld": F.regexp_extract(c("s"), r"@(.+)\.([a-z]+)$", 2),
        }
    )
    df = df.withColumns(
        {
            f"{_E}by_domain": lookup(cfg.email_domain_typos, c("domain")),
            f"{_E}by_tld": lookup(cfg.email_tld_typos, c("tld")),
        }
    )
    df = df.withColumn(
        f"{_E}fixed",
        F.coalesce(c("by_domain"), F.when(c("by_tld").isNotNull(), F.concat(c("tld_base"), F.lit("."), c("by_tld")))),
    )
    # a corrected top-level domain may reveal a domain typo (gmial.con -> gmial.com -> gmail.com)
    df = df.withColumn(f"{_E}fixed", F.coalesce(lookup(cfg.email_domain_typos, c("fixed")), c("fixed")))
    typo = c("fixed").isNotNull() & (c("domain") != "")
    df = df.withColumns(
        {
            f"{_E}typo": F.coalesce(typo, F.lit(False)),
            f"{_E}norm": F.when(typo, F.concat(c("local"), F.lit("@"), c("fixed"))).otherwise(c("s"))
            if cfg.email_typo_mode == "correct"
            else c("s"),
        }
    )
    generic = {v.lower() for v in ph.generic} if "email" in ph.generic_fields else set()
    listed = {v.lower() for v in ph.email} | {v.lower() for v in ph.by_field.get("email", [])}
    placeholder = in_values(c("s"), listed | generic) | in_values(c("norm"), listed) | any_regex(c("norm"), ph.email_patterns)
    df = df.withColumns(
        {
            f"{_E}placeholder": F.coalesce(placeholder, F.lit(False)),
            f"{_E}syntax": F.coalesce(c("norm").rlike(cfg.email_pattern), F.lit(False)),
        }
    )
    valid = ~c("placeholder") & c("syntax")
    keep = "email" in cfg.keep_invalid
    out = {
        f"{prefix}value": F.when(~c("placeholder"), c("norm")) if keep else F.when(valid, c("norm")),
        f"{prefix}valid": valid,
        f"{prefix}placeholder": c("placeholder"),
        f"{prefix}typo": c("typo"),
        f"{prefix}sent": c("s").isNotNull(),
    }
    return df.withColumns(out).drop(*[col for col in df.columns if col.startswith(_E)])
