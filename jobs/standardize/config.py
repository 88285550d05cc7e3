"""Settings of the standardize stage (conf/standardize.yaml), validated before Spark starts.

Every rule a business could reasonably disagree with is a setting here, with Dutch defaults:
which salutations imply a gender, which words are family-name particles, which e-mail domains
are typos, what counts as a placeholder, which date formats sources send, which postcode formats
are valid per country. Regular expressions in this file are *Java* regexes (Spark evaluates them
on the JVM); they are compile-checked here with Python's ``re`` as a best effort.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from jobs.common.config import Problem, Strict, check, duplicates, is_invalid, registry_problems, valid_items
from jobs.common.schemas import CANONICAL_FIELDS, ID_COOKIE, ID_CUSTOMER_NUMBER, ID_DEVICE, ID_EMAIL, ID_LOYALTY_CARD

Gender = Literal["m", "f", "x"]
EventIdType = Literal["customer_number", "loyalty_card", "email", "cookie_id", "device_id"]

# --- defaults ------------------------------------------------------------------------------------
# Keys are written without dots, lower case; "de heer" matches "De heer", "de  heer".
DEFAULT_TITLES: dict[str, dict[str, Any]] = {
    "dhr": {"gender": "m"},
    "de heer": {"gender": "m", "canonical": "dhr"},
    "hr": {"gender": "m", "canonical": "dhr"},
    "mevr": {"gender": "f"},
    "mevrouw": {"gender": "f", "canonical": "mevr"},
    "mw": {"gender": "f", "canonical": "mevr"},
    "mej": {"gender": "f"},
    "mejuffrouw": {"gender": "f", "canonical": "mej"},
    "herr": {"gender": "m"},
    "frau": {"gender": "f"},
    "mme": {"gender": "f"},
    "madame": {"gender": "f", "canonical": "mme"},
    "mrs": {"gender": "f"},
    "ms": {"gender": "f"},
    "mx": {"gender": "x"},
    # Academic and professional titles say nothing about gender. Dutch "mr." is the law degree
    # (meester in de rechten), not "Mister".
    "mr": {},
    "dr": {},
    "drs": {},
    "ir": {},
    "ing": {},
    "prof": {},
    "ds": {},
    "dipl-ing": {},
    "fam": {},
    "familie": {"canonical": "fam"},
}

DEFAULT_POSTNOMINALS = ["msc", "bsc", "mba", "phd", "llm", "llb"]

DEFAULT_GENDER_VALUES: dict[str, Gender] = {
    "m": "m", "man": "m", "male": "m", "mannelijk": "m", "heer": "m", "dhr": "m", "mr": "m",
    "männlich": "m", "maennlich": "m", "h": "m", "homme": "m",
    "f": "f", "v": "f", "vrouw": "f", "female": "f", "vrouwelijk": "f", "mevr": "f", "mw": "f",
    "w": "f", "weiblich": "f", "femme": "f", "mrs": "f", "ms": "f",
    "x": "x", "o": "x", "other": "x", "anders": "x", "divers": "x", "d": "x", "nb": "x",
    "non-binary": "x", "non-binair": "x", "nonbinary": "x",
}
DEFAULT_GENDER_UNKNOWN = ["u", "unknown", "onbekend", "?", "n/a", "na", "-", "0", "9", "geen"]

# BRP voorvoegsels (Dutch), plus common Belgian, German and French ones. "el", "al", "ben", "do"
# are left out on purpose: in Dutch data they are mostly part of the family name (El Amrani).
DEFAULT_PARTICLES = [
    "van", "de", "der", "den", "het", "'t", "te", "ter", "ten", "tot", "toe", "thoe",
    "van der", "van den", "van de", "van het", "van 't", "van ter", "van ten",
    "in 't", "in de", "in den", "in het", "in der",
    "op 't", "op de", "op den", "op het", "op ten",
    "uit de", "uit den", "uit het", "uit 't",
    "aan de", "aan den", "aan het", "aan 't", "bij de", "bij 't", "onder de", "over de", "voor de",
    "voor den", "voor 't",
    "von", "von der", "von dem", "vom", "zu", "zum", "zur", "von und zu", "am", "auf", "auf der",
    "auf dem", "im",
    "le", "la", "les", "du", "des", "d'", "l'", "de la", "de l'",
    "del", "della", "di", "da", "dos", "das",
]

# Abbreviations of particles, matched per token, case-insensitively; a single letter with a dot
# ("v.") only when written in lower case, since "V." is also an initial.
DEFAULT_PARTICLE_ABBREVIATIONS = {
    "v.d.": "van der", "v.d": "van der", "vd": "van der", "vd.": "van der", "v/d": "van der",
    "v.der": "van der", "v.den": "van den", "v.de": "van de", "v.": "van", "v.'t": "van 't",
    "i.t.": "in 't", "i/t": "in 't", "o.d.": "op de",
}

DEFAULT_EMAIL_DOMAIN_TYPOS = {
    # gmail
    "gmial.com": "gmail.com", "gmal.com": "gmail.com", "gnail.com": "gmail.com",
    "gmai.com": "gmail.com", "gamil.com": "gmail.com", "gmil.com": "gmail.com",
    "gmaill.com": "gmail.com", "gmail.co": "gmail.com", "gmail.cm": "gmail.com",
    "gmail.om": "gmail.com", "gmaul.com": "gmail.com", "gmail.nl": "gmail.com",
    "gmali.com": "gmail.com", "gemail.com": "gmail.com",
    # hotmail
    "hotmial.com": "hotmail.com", "hotmai.com": "hotmail.com", "hotmal.com": "hotmail.com",
    "hotmil.com": "hotmail.com", "hotamil.com": "hotmail.com", "homail.com": "hotmail.com",
    "hotmail.co": "hotmail.com", "hotmaill.com": "hotmail.com", "hotnail.com": "hotmail.com",
    "hotmial.nl": "hotmail.nl", "hotmai.nl": "hotmail.nl", "hotmal.nl": "hotmail.nl",
    "hotmil.nl": "hotmail.nl", "homail.nl": "hotmail.nl", "hotamil.nl": "hotmail.nl",
    "hotmaill.nl": "hotmail.nl", "hotnail.nl": "hotmail.nl", "hotmail.n": "hotmail.nl",
    # outlook, live, yahoo, icloud
    "outlok.com": "outlook.com", "outloo.com": "outlook.com", "oulook.com": "outlook.com",
    "outllook.com": "outlook.com", "outlook.co": "outlook.com", "outlookk.com": "outlook.com",
    "outlok.nl": "outlook.nl", "yaho.com": "yahoo.com", "yahooo.com": "yahoo.com",
    "yhoo.com": "yahoo.com", "iclod.com": "icloud.com", "icoud.com": "icloud.com",
    "icloud.co": "icloud.com", "iclould.com": "icloud.com",
    # Dutch providers
    "zigo.nl": "ziggo.nl", "zigggo.nl": "ziggo.nl", "ziggo.n": "ziggo.nl", "ziggo.nll": "ziggo.nl",
    "kpnmial.nl": "kpnmail.nl", "kpnmai.nl": "kpnmail.nl", "kpnmal.nl": "kpnmail.nl",
    "kpnmaill.nl": "kpnmail.nl", "kpmail.nl": "kpnmail.nl", "kpnmail.n": "kpnmail.nl",
    "kpnplanet.n": "kpnplanet.nl", "xs4al.nl": "xs4all.nl", "xs4all.n": "xs4all.nl",
    # Belgian and German providers
    "telenet.b": "telenet.be", "skynet.b": "skynet.be", "tonline.de": "t-online.de",
    "gmx.d": "gmx.de", "web.d": "web.de",
}

DEFAULT_EMAIL_TLD_TYPOS = {
    "con": "com", "cmo": "com", "ocm": "com", "comm": "com", "cpm": "com", "vom": "com",
    "xom": "com", "nll": "nl", "nlk": "nl",
}

DEFAULT_EMAIL_PATTERN = (
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}$"
)

DEFAULT_GENERIC_PLACEHOLDERS = [
    "onbekend", "unknown", "n/a", "n.a.", "na", "nvt", "n.v.t.", "-", "--", ".", "x", "xx", "xxx",
    "test", "geen", "none", "null", "nil", "leeg", "empty", "?", "??", "nb", "n.b.", "tbd",
    "dummy", "anoniem", "anonymous", "not available", "niet bekend",
]
DEFAULT_GENERIC_FIELDS = [
    "full_name", "given_name", "family_name", "street", "house_number", "postcode", "city",
    "country", "email", "phone", "birth_date", "customer_number", "loyalty_card", "cookie_id",
    "device_id",
]
DEFAULT_EMAIL_PLACEHOLDERS = [
    "test@test.nl", "test@test.com", "x@x.nl", "x@x.com", "a@a.nl", "a@a.com", "geen@email.nl",
    "geen@geen.nl", "geen@email.com", "onbekend@onbekend.nl", "email@email.com", "email@email.nl",
    "nomail@nomail.com", "noemail@noemail.com", "test@example.com", "info@example.com",
]
DEFAULT_EMAIL_PLACEHOLDER_PATTERNS = [
    r"^(no-?reply|do-?not-?reply|donotreply)@",
    r"@(example|test)\.(com|nl|org|net|be|de)$",
    r"^(geen|onbekend|unknown|none|nomail|noemail|geenemail|geen\.email|test|dummy|fake)@",
    r"@(geen|onbekend|nomail|noemail)\.",
]
DEFAULT_PHONE_PLACEHOLDERS = [
    "0000000000", "0612345678", "1234567890", "0123456789", "0612341234", "0201234567",
    "31612345678", "0031612345678", "9999999999", "1111111111",
]
DEFAULT_BIRTH_DATE_PLACEHOLDERS = ["1900-01-01", "1899-12-30", "1800-01-01", "9999-12-31", "0000-00-00", "00-00-0000"]

DEFAULT_DATE_FORMATS = [
    "yyyy-MM-dd", "dd-MM-yyyy", "dd/MM/yyyy", "d-M-yyyy", "d/M/yyyy", "d.M.yyyy", "yyyyMMdd",
    "yyyy/MM/dd", "dd/MM/yy", "d-M-yy",
]
DEFAULT_TIMESTAMP_FORMATS = [
    "dd-MM-yyyy HH:mm:ss", "dd-MM-yyyy HH:mm", "d-M-yyyy H:mm", "dd/MM/yyyy HH:mm:ss",
    "dd/MM/yyyy HH:mm", "yyyy/MM/dd HH:mm:ss", "yyyyMMddHHmmss", "dd-MM-yyyy", "dd/MM/yyyy",
]

DEFAULT_COUNTRY_ALIASES = {
    # keys are match forms: lower case, accents folded, non-letters as single spaces
    "nl": "NL", "nld": "NL", "nederland": "NL", "holland": "NL", "the netherlands": "NL",
    "netherlands": "NL", "niederlande": "NL", "pays bas": "NL", "pays-bas": "NL",
    "be": "BE", "bel": "BE", "belgie": "BE", "belgique": "BE", "belgium": "BE", "belgien": "BE",
    "de": "DE", "deu": "DE", "ger": "DE", "deutschland": "DE", "duitsland": "DE", "germany": "DE",
    "allemagne": "DE",
    "uk": "GB", "gb": "GB", "gbr": "GB", "united kingdom": "GB", "great britain": "GB",
    "engeland": "GB", "england": "GB", "verenigd koninkrijk": "GB", "groot brittannie": "GB",
    "scotland": "GB", "schotland": "GB", "wales": "GB",
    "lu": "LU", "lux": "LU", "luxemburg": "LU", "luxembourg": "LU",
    "fr": "FR", "fra": "FR", "frankrijk": "FR", "france": "FR", "frankreich": "FR",
    "es": "ES", "spanje": "ES", "spain": "ES", "espana": "ES",
    "it": "IT", "italie": "IT", "italy": "IT", "italia": "IT",
    "at": "AT", "oostenrijk": "AT", "austria": "AT", "osterreich": "AT",
    "ch": "CH", "zwitserland": "CH", "switzerland": "CH", "schweiz": "CH", "suisse": "CH",
    "dk": "DK", "denemarken": "DK", "denmark": "DK", "pl": "PL", "polen": "PL", "poland": "PL",
    "pt": "PT", "portugal": "PT", "ie": "IE", "ierland": "IE", "ireland": "IE",
    "tr": "TR", "turkije": "TR", "turkey": "TR", "ma": "MA", "marokko": "MA", "morocco": "MA",
    "sr": "SR", "suriname": "SR", "us": "US", "usa": "US", "united states": "US",
    "verenigde staten": "US", "cw": "CW", "curacao": "CW", "aw": "AW", "aruba": "AW",
}

DEFAULT_POSTCODE_RULES: dict[str, dict[str, str | None]] = {
    # patterns run on the compact upper-case value (spaces and hyphens removed)
    "NL": {"pattern": r"^([1-9][0-9]{3})([A-Z]{2})$", "format": "$1 $2", "exclude": r"^[0-9]{4}(SA|SD|SS)$"},
    "BE": {"pattern": r"^(?:B)?([1-9][0-9]{3})$", "format": "$1"},
    "DE": {"pattern": r"^(?:D)?([0-9]{5})$", "format": "$1", "exclude": r"^(D)?00"},
    "GB": {
        "pattern": r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$",
        "format": "$1 $2",
        "exclude": r"^(?:[^A-Z]|[A-Z][^A-Z0-9]|.*[CIKMOV][A-Z]$)",
    },
    "LU": {"pattern": r"^(?:L)?([0-9]{4})$", "format": "L-$1"},
    "FR": {"pattern": r"^(?:F)?([0-9]{5})$", "format": "$1"},
    "AT": {"pattern": r"^(?:A)?([1-9][0-9]{3})$", "format": "$1"},
    "CH": {"pattern": r"^(?:CH)?([1-9][0-9]{3})$", "format": "$1"},
    "DK": {"pattern": r"^(?:DK)?([1-9][0-9]{3})$", "format": "$1"},
}

DEFAULT_HOUSE_NUMBER_SUFFIX_ALIASES = {"HUIS": "HS", "BEG": "BG", "BEL": "BG", "BOVEN": "BOV"}

DEFAULT_CITY_LOWER_WORDS = [
    "aan", "den", "de", "der", "op", "bij", "in", "het", "en", "onder", "over", "ter", "ten", "van",
    "am", "an", "im", "der", "sur", "upon", "on", "les", "la", "le",
]
DEFAULT_CITY_ALIASES = {
    "s gravenhage": "den haag", "the hague": "den haag", "la haye": "den haag",
    "den bosch": "s hertogenbosch", "bruxelles": "brussel", "brussels": "brussel",
    "anvers": "antwerpen", "antwerp": "antwerpen", "koln": "keulen", "cologne": "keulen",
    "gand": "gent", "ghent": "gent",
}

DEFAULT_CONSENT_TRUE = ["ja", "j", "yes", "y", "true", "t", "1", "waar", "opt-in", "optin", "aan", "on", "oui", "wahr"]
DEFAULT_CONSENT_FALSE = ["nee", "n", "no", "false", "f", "0", "onwaar", "opt-out", "optout", "uit", "off", "non", "nein"]

DEFAULT_STEPS = [
    "placeholders", "country", "names", "emails", "phones", "addresses", "birth_dates",
    "consents", "timestamps", "identifiers",
]

DEFAULT_EVENT_TYPE_ALIASES = {
    "purchase": "order", "bestelling": "order", "aankoop": "order", "webshop_order": "order",
    "kassabon": "receipt", "bon": "receipt", "pos_receipt": "receipt", "pos": "receipt",
    "pageview": "page_view", "page_visit": "page_view", "paginabezoek": "page_view",
    "sign_in": "login", "signin": "login", "log_in": "login", "inloggen": "login",
    "email_opened": "email_open", "mail_open": "email_open", "email_clicked": "email_click",
    "mail_click": "email_click",
}


def _default_identifier_cleansers() -> dict[str, list[CleanserRef]]:
    return {
        ID_CUSTOMER_NUMBER: [CleanserRef(name="remove_whitespace"), CleanserRef(name="upper")],
        ID_LOYALTY_CARD: [CleanserRef(name="alphanumeric"), CleanserRef(name="upper")],
        ID_COOKIE: [CleanserRef(name="remove_whitespace")],
        ID_DEVICE: [CleanserRef(name="remove_whitespace"), CleanserRef(name="lower")],
    }


# --- models --------------------------------------------------------------------------------------


class TitleRule(Strict):
    """What a salutation or title means: the gender it implies and the form written to ``title``.

    In YAML a rule may be written short: ``dhr: m`` or ``dr: null``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    gender: Gender | None = Field(
        None, description="gender the title implies (m, f, x); null: it implies none (dr, ir, prof)"
    )
    canonical: str | None = Field(None, description="form written to `title`; default: the key")

    @check
    def _canonical_not_blank(self) -> Iterator[Problem]:
        if self.canonical is not None and not self.canonical.strip():
            yield Problem("canonical", self.canonical, "a title or null")


class CleanserRef(Strict):
    """A registered column cleanser by name, with its keyword arguments (checked at load)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str = Field(..., description="a registered column cleanser (registry CLEANSERS: upper, alphanumeric, ...)")
    args: dict[str, Any] = Field(
        default_factory=dict, description="its keyword arguments, checked against its signature when the config loads"
    )


class PostcodeRule(Strict):
    """A country's postcode: a Java regex on the compact upper-case value and its display format."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    pattern: str = Field(..., description="Java regex with capture groups, on the value without spaces/hyphens")
    format: str = Field(..., description="replacement using the groups, e.g. '$1 $2'")
    exclude: str | None = Field(None, description="Java regex; a compact value matching it is invalid")

    @check
    def _regexes(self) -> Iterator[Problem]:
        yield from _regex_problems([("pattern", self.pattern), ("exclude", self.exclude)])


class PlaceholderConfig(Strict):
    """Values that mean 'no value' and are nulled (and flagged ``placeholder:<field>``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    generic: list[str] = Field(
        default_factory=lambda: list(DEFAULT_GENERIC_PLACEHOLDERS),
        description="values meaning 'no value' in any of generic_fields (compared trimmed, lower case)",
    )
    generic_patterns: list[str] = Field(
        default_factory=lambda: [r"^[^\p{L}\p{N}]+$"],
        description="Java regexes on the trimmed value; the default: nothing but punctuation",
    )
    generic_fields: list[str] = Field(
        default_factory=lambda: list(DEFAULT_GENERIC_FIELDS),
        description="canonical fields that generic and generic_patterns apply to",
    )
    email: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EMAIL_PLACEHOLDERS),
        description="placeholder e-mail addresses (compared lower case, as sent and after typo correction)",
    )
    email_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EMAIL_PLACEHOLDER_PATTERNS),
        description="Java regexes on the normalised address; a match is a placeholder (noreply@, @example.com)",
    )
    phone: list[str] = Field(default_factory=lambda: list(DEFAULT_PHONE_PLACEHOLDERS), description="digits only")
    phone_repeated_digit: bool = Field(True, description="a number of one repeated digit is a placeholder")
    birth_date: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BIRTH_DATE_PLACEHOLDERS),
        description="as sent, or ISO yyyy-MM-dd after parsing",
    )
    by_field: dict[str, list[str]] = Field(
        default_factory=dict, description="more placeholder values per canonical field"
    )

    @check
    def _known_generic_fields(self) -> Iterator[Problem]:
        for i, f in valid_items(self.generic_fields):
            if f not in CANONICAL_FIELDS:
                yield Problem(f"generic_fields[{i}]", f, f"a canonical field: {', '.join(CANONICAL_FIELDS)}")

    @check
    def _known_by_field(self) -> Iterator[Problem]:
        for f in self.by_field:
            if f not in CANONICAL_FIELDS:
                yield Problem(f"by_field.{f}", f, f"a canonical field: {', '.join(CANONICAL_FIELDS)}", f"key {f!r}")

    @check
    def _phone_digits(self) -> Iterator[Problem]:
        for i, p in valid_items(self.phone):
            if not re.fullmatch(r"\d+", p):
                yield Problem(f"phone[{i}]", p, "digits only")

    @check
    def _regexes(self) -> Iterator[Problem]:
        yield from _regex_problems(
            [(f"generic_patterns[{i}]", p) for i, p in valid_items(self.generic_patterns)]
            + [(f"email_patterns[{i}]", p) for i, p in valid_items(self.email_patterns)]
        )


class StandardizeConfig(Strict):
    """All rules of the standardize stage; the defaults suit Dutch, Belgian and German data."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    steps: list[str] = Field(
        default_factory=lambda: list(DEFAULT_STEPS),
        description="record cleansers (registry RECORD_STEPS) in the order they run; "
        "later steps use earlier results (phones and addresses use the country)",
    )
    # names
    titles: dict[str, TitleRule] = Field(
        default_factory=lambda: {k: TitleRule(**v) for k, v in DEFAULT_TITLES.items()},
        description="salutations and titles before a name (key lower case, without dots) -> what they mean; "
        "taken out of the name into `title`",
    )
    postnominal_titles: list[str] = Field(
        default_factory=lambda: list(DEFAULT_POSTNOMINALS),
        description="titles after a name (msc, phd), matched with or without dots in any case; taken out of the name",
    )
    gender_values: dict[str, Gender] = Field(
        default_factory=lambda: dict(DEFAULT_GENDER_VALUES),
        description="gender values as sent (lower case, without dots) -> m, f or x; other values are flagged invalid",
    )
    gender_unknown_values: list[str] = Field(
        default_factory=lambda: list(DEFAULT_GENDER_UNKNOWN),
        description="gender values meaning 'unknown': null gender, not flagged (the title may still give one)",
    )
    gender_from_title: bool = Field(True, description="derive gender from the salutation when the source sends none")
    particles: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PARTICLES),
        description="family-name particles (van, de, van der, von, ...) split off into name_particle; "
        "family names are matched without them",
    )
    particle_abbreviations: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_PARTICLE_ABBREVIATIONS),
        description="abbreviated particles -> the particle (v.d. -> van der), per token in any case; a single "
        "letter with a dot (v.) only in lower case, as V. is an initial",
    )
    recase_names: bool = Field(
        True, description="title-case names sent all upper or all lower case; mixed case is kept as sent"
    )
    dutch_ij: bool = Field(True, description="capitalise the Dutch digraph IJ as one letter (IJsselmeer, IJzerman)")
    umlaut_folding: Literal["strip", "expand"] = Field(
        "strip", description="match forms: ü -> u (strip) or ü -> ue (expand, German convention)"
    )
    # e-mail
    email_domain_typos: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_EMAIL_DOMAIN_TYPOS),
        description="misspelt e-mail domains -> the intended domain (gmial.com -> gmail.com)",
    )
    email_tld_typos: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_EMAIL_TLD_TYPOS),
        description="misspelt top-level domains -> the intended one (con -> com); the corrected domain is "
        "then looked up in email_domain_typos too",
    )
    email_typo_mode: Literal["correct", "flag"] = Field(
        "correct",
        description="a typo domain is replaced (correct, flag email_domain_corrected) or kept "
        "(flag, flag email_domain_suspect)",
    )
    email_pattern: str = Field(DEFAULT_EMAIL_PATTERN, description="Java regex on the lower-cased address")
    keep_invalid: list[Literal["email", "postcode"]] = Field(
        default_factory=list, description="fields whose invalid values are kept (flagged) instead of nulled"
    )
    placeholders: PlaceholderConfig = Field(
        default_factory=PlaceholderConfig, description="values meaning 'no value': nulled and flagged placeholder:<field>"
    )
    # phones
    phone_regions: dict[str, str] = Field(
        default_factory=dict,
        description="country -> phonenumbers region where they differ; otherwise the record's country, "
        "else the source's default country",
    )
    # addresses
    postcode_rules: dict[str, PostcodeRule] = Field(
        default_factory=lambda: {k: PostcodeRule(**v) for k, v in DEFAULT_POSTCODE_RULES.items()},  # type: ignore[arg-type]
        description="ISO country -> its postcode format; a postcode of such a country that does not match is "
        "invalid (nulled unless keep_invalid), one of another country is kept in upper case",
    )
    house_number_suffix_aliases: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_HOUSE_NUMBER_SUFFIX_ALIASES),
        description="house-number suffixes (upper case, no separators) -> their standard form (HUIS -> HS)",
    )
    split_street_house_number: bool = Field(
        True, description="take the house number from the street when no house number is sent"
    )
    city_lowercase_words: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CITY_LOWER_WORDS),
        description="words kept lower case when a city name is recased (Alphen aan den Rijn), besides the particles",
    )
    city_aliases: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_CITY_ALIASES), description="match form -> match form"
    )
    country_aliases: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_COUNTRY_ALIASES),
        description="country names and codes as sent (lower case, accents folded) -> ISO 3166-1 alpha-2 code",
    )
    # dates
    date_formats: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DATE_FORMATS),
        min_length=1,
        description="Spark datetime patterns tried in order for birth dates; the first that parses wins",
    )
    two_digit_year_pivot: int | None = Field(
        None, ge=0, le=99,
        description="yy <= pivot -> 20yy, else 19yy; None: the reference year (no birth year in the future)",
    )
    min_birth_year: int = Field(
        1900, ge=1800, le=2100, description="birth dates before this year are implausible: nulled and flagged invalid"
    )
    min_age_years: int = Field(
        0,
        ge=0,
        le=120,
        description="birth dates less than this many years before the reference date are implausible "
        "(0: only dates in the future)",
    )
    reference_date: date | None = Field(None, description="'today' for date checks; None: the run's current date")
    timestamp_formats: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TIMESTAMP_FORMATS),
        description="tried after ISO 8601 and epoch seconds/milliseconds; read as UTC",
    )
    # consent
    consent_true: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CONSENT_TRUE),
        description="consent values meaning yes (compared lower case); a value in neither list is unknown (null)",
    )
    consent_false: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CONSENT_FALSE), description="consent values meaning no (compared lower case)"
    )
    # identifiers
    identifier_cleansers: dict[str, list[CleanserRef]] = Field(
        default_factory=_default_identifier_cleansers,
        description="customer_number, loyalty_card, cookie_id, device_id -> column cleansers (registry CLEANSERS)",
    )
    # events
    event_type_aliases: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_TYPE_ALIASES),
        description="event types (lower case, spaces as underscores, after the source's event_types) -> "
        "canonical type (bestelling -> order)",
    )
    event_identifier_priority: list[EventIdType] = Field(
        default_factory=lambda: [ID_CUSTOMER_NUMBER, ID_LOYALTY_CARD, ID_EMAIL, ID_COOKIE, ID_DEVICE],  # type: ignore[list-item]
        description="identifier types tried in order to tie an event to a person; the first the event has wins",
    )
    default_currency: str | None = Field(
        "EUR",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 currency of amounts that name none (no currency field or symbol); null: unknown",
    )

    @field_validator("titles", mode="before")
    @classmethod
    def _short_titles(cls, v: Any) -> Any:
        """Accept ``dhr: m`` and ``dr: null`` as short for ``{gender: m}`` and ``{}``."""
        if isinstance(v, dict):
            return {k: ({"gender": r} if isinstance(r, str) or r is None else r) for k, r in v.items()}
        return v

    @field_validator("identifier_cleansers", mode="before")
    @classmethod
    def _short_cleansers(cls, v: Any) -> Any:
        """Accept a bare name (``- upper``) for a cleanser without arguments."""
        if isinstance(v, dict):
            return {
                k: [{"name": c} if isinstance(c, str) else c for c in lst] if isinstance(lst, list) else (lst or [])
                for k, lst in v.items()
            }
        return v

    @check
    def _known_steps(self) -> Iterator[Problem]:
        # Registered names live with the cleansers; imported here to avoid an import cycle.
        from jobs.standardize.cleansers import RECORD_STEPS

        for i, step in valid_items(self.steps):
            if step not in RECORD_STEPS:
                yield Problem(f"steps[{i}]", step, f"a record step: {', '.join(RECORD_STEPS.names())}")

    @check
    def _steps_once(self) -> Iterator[Problem]:
        for i, step, first in duplicates(valid_items(self.steps)):
            yield Problem(f"steps[{i}]", step, f"each step at most once; {step!r} is already steps[{first}]")

    @check
    def _identifier_cleansers(self) -> Iterator[Problem]:
        from jobs.standardize.cleansers import CLEANSERS

        allowed_ids = (ID_CUSTOMER_NUMBER, ID_LOYALTY_CARD, ID_COOKIE, ID_DEVICE)
        for id_type, refs in self.identifier_cleansers.items():
            path = f"identifier_cleansers.{id_type}"
            if id_type not in allowed_ids:
                yield Problem(path, id_type, f"one of {', '.join(allowed_ids)}", f"key {id_type!r}")
            if is_invalid(refs):
                continue
            for i, ref in valid_items(refs):
                if is_invalid(ref.name) or is_invalid(ref.args):
                    continue
                for p in registry_problems(CLEANSERS, ref.name, ref.args, skip=1):
                    yield p.under(f"{path}[{i}]")

    @check
    def _title_keys(self) -> Iterator[Problem]:
        for k in self.titles:
            if not re.fullmatch(r"[a-zà-ÿ' .-]+", k.lower()):
                yield Problem(f"titles.{k}", k, "letters, spaces, dots or hyphens", f"key {k!r}")

    @check
    def _country_codes(self) -> Iterator[Problem]:
        for name, values in (("country_aliases", self.country_aliases), ("phone_regions", self.phone_regions)):
            for k, v in values.items():
                if not re.fullmatch(r"[A-Z]{2}", v):
                    yield Problem(f"{name}.{k}", v, "an ISO 3166-1 alpha-2 code in upper case")

    @check
    def _postcode_countries(self) -> Iterator[Problem]:
        for k in self.postcode_rules:
            if not re.fullmatch(r"[A-Z]{2}", k):
                yield Problem(f"postcode_rules.{k}", k, "an ISO 3166-1 alpha-2 code in upper case", f"key {k!r}")

    @check
    def _event_identifier_priority_once(self) -> Iterator[Problem]:
        for i, id_type, first in duplicates(valid_items(self.event_identifier_priority)):
            yield Problem(
                f"event_identifier_priority[{i}]",
                id_type,
                f"each identifier type at most once; {id_type!r} is already event_identifier_priority[{first}]",
            )

    @check
    def _consent_disjoint(self) -> Iterator[Problem]:
        true_values = {str(v).lower(): i for i, v in valid_items(self.consent_true)}
        for j, v in valid_items(self.consent_false):
            if v.lower() in true_values:
                yield Problem(
                    f"consent_false[{j}]",
                    v,
                    f"a value not also in consent_true; {v!r} is consent_true[{true_values[v.lower()]}]",
                )

    @check
    def _particles(self) -> Iterator[Problem]:
        if not self.particles:
            yield Problem("particles", self.particles, "at least one particle")

    @check
    def _date_formats(self) -> Iterator[Problem]:
        for i, fmt in valid_items(self.date_formats):
            if "y" not in fmt or "M" not in fmt or "d" not in fmt:
                yield Problem(f"date_formats[{i}]", fmt, "a pattern with year (y), month (M) and day (d)")

    @check
    def _email_pattern(self) -> Iterator[Problem]:
        yield from _regex_problems([("email_pattern", self.email_pattern)])


def _regex_problems(regexes: list[tuple[str, str | None]]) -> Iterator[Problem]:
    """Problems of (path, Java regex) pairs; None and values that did not validate are skipped."""
    for where, pattern in regexes:
        if pattern is None or is_invalid(pattern):
            continue
        problem = _regex_problem(pattern)
        if problem:
            yield Problem(where, pattern, f"a valid regular expression ({problem})")


def _regex_problem(pattern: str) -> str | None:
    """Best-effort check of a Java regex with Python's ``re`` (Unicode classes swapped for ``\\w``)."""
    approx = re.sub(r"\\[pP]\{[A-Za-z_]+\}", r"\\w", pattern)
    try:
        re.compile(approx)
    except re.error as exc:
        return str(exc)
    return None
