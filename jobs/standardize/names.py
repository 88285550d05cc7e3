"""Person names: salutations, particles, initials, casing and match forms, with Spark built-ins.

Dutch, Belgian and German family names carry particles ("van der", "in 't", "von") that sort and
compare apart from the name itself (Dutch BRP keeps them in a separate field, the voorvoegsel).
Sources send names in every shape: "Jan van der Berg", "J. v.d. Berg", "Berg, Jan van der",
"VAN DER BERG", "Dhr. J. Jansen MSc", or given / particle / family apart. This module brings them
to one shape with regular expressions and array functions only, so it runs in the JVM and over
Spark Connect without a Python UDF:

1. prepare: typographic apostrophes, "in't" -> "in 't", particle abbreviations ("v.d." ->
   "van der", per token), and particles after a hyphen joined to their name ("Jansen-de Vries"
   stays one family name) with an invisible joiner;
2. salutations and titles are stripped from the front (any number, "Dhr. en mevr.", "Prof. dr.
   ir.") and post-nominals from the end, and mapped to a canonical title and a gender;
3. the full name is split: "family, given" when there is a comma; "family initials" when it ends
   in initials; otherwise the first particle sequence followed by a non-particle starts the
   family name, and without a particle the last word is the family name;
4. initials come from the initials field, else from every given name and abbreviation;
5. case is normalised only for values sent all upper or all lower case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common.schemas import TMP
from jobs.standardize.config import StandardizeConfig
from jobs.standardize.text import (
    FLAG_PREFIX as FLAG,
    flag,
    fold_accents,
    in_values,
    literal_map,
    lookup,
    match_form,
    normalize_apostrophes,
    recase,
    regex_alternation,
)

_P = TMP + "nm_"
JOINER = "\u0001"  # joins "-de Vries" so that tokenising does not split a double family name
_EMPTY_ARR = "array<string>"


@dataclass(frozen=True)
class NamePatterns:
    """Regexes and lookup maps compiled from config once per plan."""

    particle_words: tuple[str, ...]
    word: str  # one particle word
    seq: str  # a sequence of particle words
    title_token: str
    title_prefix: str  # group 1: the whole run of leading titles
    postnominal_suffix: str
    title_canonical: dict[str, str]
    title_gender: dict[str, str | None]
    abbreviations: dict[str, str]

    @property
    def family_lead(self) -> str:
        """'van der Berg' -> ('van der', 'Berg')."""
        return rf"(?i)^({self.seq})(?:\s+|(?<='))((?!{self.word}(?:\s|$))\S.*)$"

    @property
    def family_trail(self) -> str:
        """'Berg, van der' and 'Berg van der' -> ('Berg', 'van der')."""
        return rf"(?i)^(\S.*?)(?:\s*,\s*|\s+)({self.seq})$"

    @property
    def given_trail(self) -> str:
        """'Jan van der' -> ('Jan', 'van der'); needs a name before the particle."""
        return rf"(?i)^(.*?\S)\s+({self.seq})$"

    @property
    def given_trail_bare(self) -> str:
        """As :attr:`given_trail`, but a bare particle ('Berg, van der') is a particle too."""
        return rf"(?i)^(?:(.*?\S)\s+)?({self.seq})$"

    @property
    def full_split(self) -> str:
        """'Jan Peter van der Berg' -> ('Jan Peter', 'van der Berg'): the first particle sequence
        followed by a non-particle starts the family name (the given part is optional and lazy,
        so 'VAN DER BERG' is all family name)."""
        return (
            rf"(?i)^(?:(.*?)\s+)??({self.seq}(?:\s+|(?<='))(?!{self.word}(?:\s|$))\S.*)$"
        )

    @property
    def protect_hyphen(self) -> str:
        """A particle after a hyphen, with the blank that follows it ('Jansen-de Vries')."""
        return rf"(?i)(-{self.word}(?:{JOINER}{self.word})*)\s+"


# "Dijk J.P.", "van Dijk P." : a family name followed by initials only.
_INITIALS_LAST = r"^(.*?[^.\s])\s+((?:\p{L}\.\s*)+)$"


def _title_key(key: str) -> str:
    """Config title keys compare without dots, lower case, single blanks: 'De  Heer.' -> 'de heer'."""
    k = key.lower().replace(".", " ").strip()
    k = re.sub(r"\s*-\s*", "-", k)
    return re.sub(r"\s+", " ", k)


def _title_regex(key: str) -> str:
    """Regex for a title key allowing the dots and blanks people write: 'dipl-ing' ~ 'Dipl.-Ing.'."""
    words = []
    for word in key.split(" "):
        words.append(r"\.?\s*-\s*".join(re.escape(p) for p in word.split("-")))
    return r"\.?\s+".join(words)


def name_patterns(cfg: StandardizeConfig) -> NamePatterns:
    """Compile the name rules of ``cfg`` into regexes and maps (pure Python, at plan time)."""
    words = sorted({w for p in cfg.particles for w in p.lower().split()}, key=lambda w: (-len(w), w))
    word = regex_alternation(words)
    seq = rf"{word}(?:\s+{word})*"
    keys = {_title_key(k): rule for k, rule in cfg.titles.items()}
    alternation = "(?:" + "|".join(_title_regex(k) for k in sorted(keys, key=lambda k: (-len(k), k))) + ")"
    token = rf"(?<![\p{{L}}])({alternation})(?:\.|(?![\p{{L}}\-']))"
    tok = rf"{alternation}(?:\.|(?![\p{{L}}\-']))"
    sep = r"(?:\s*(?:[&/+]|\s(?:en|und|and|et|of)\s)\s*|\s*)"
    prefix = rf"(?i)^((?:{tok}{sep})+)"
    post = [re.sub(r"[^a-z]", "", p.lower()) for p in cfg.postnominal_titles]
    post_alt = "|".join("".join(re.escape(ch) + r"\.?" for ch in p) for p in sorted(set(post), key=lambda p: (-len(p), p)) if p)
    postnominal = rf"(?i)(?:\s*,?\s+(?:{post_alt})(?![\p{{L}}]))+$" if post_alt else r"(?!)"
    return NamePatterns(
        particle_words=tuple(words),
        word=word,
        seq=seq,
        title_token=token,
        title_prefix=prefix,
        postnominal_suffix=postnominal,
        title_canonical={k: (r.canonical or k) for k, r in keys.items()},
        title_gender={k: r.gender for k, r in keys.items()},
        abbreviations={k.lower(): v.lower() for k, v in cfg.particle_abbreviations.items()},
    )


# --- column helpers ------------------------------------------------------------------------------


def _nullif_empty(c: Column) -> Column:
    t = F.trim(c)
    return F.nullif(t, F.lit(""))


def clean_name_text(c: Column) -> Column:
    """Apostrophes normalised, 'in't' -> 'in 't', 'v. d.' -> 'v.d.' (before tokenising)."""
    s = normalize_apostrophes(c)
    s = F.regexp_replace(s, r"(?i)(?<=^|\s)(in|op|van|uit|aan|bij|voor|onder)'t(?=\s|$)", "$1 't")
    return F.regexp_replace(s, r"(?<=^|\s)v\.\s?d\.(?=\s)", "v.d.")


def expand_abbreviations(c: Column, pats: NamePatterns, expand_last: bool = False) -> Column:
    """Particle abbreviations per token: 'J. v.d. Berg' -> 'J. van der Berg'.

    An abbreviation is expanded only when a name follows it (``expand_last`` for a particle field
    that holds nothing else), and a one-letter abbreviation ('v.') only in lower case, because 'V.'
    is also an initial.
    """
    if not pats.abbreviations:
        return c
    toks = F.split(c, " ")
    n = F.size(toks)
    amap = literal_map(pats.abbreviations)

    def expand(t: Column, i: Column) -> Column:
        full = F.try_element_at(amap, F.lower(t))
        position_ok = F.lit(True) if expand_last else (i < n - 1)
        case_ok = (t == F.lower(t)) | ~t.rlike(r"^\p{L}\.$")
        return F.when(full.isNotNull() & position_ok & case_ok, full).otherwise(t)

    return F.array_join(F.transform(toks, expand), " ")


def protect_hyphens(c: Column, pats: NamePatterns) -> Column:
    """Join particles after a hyphen to their name ('Jansen-de Vries' stays one family name)."""
    s = c
    for _ in range(3):
        s = F.regexp_replace(s, pats.protect_hyphen, "$1" + JOINER)
    return s


def prepare_name(c: Column, pats: NamePatterns, expand_last: bool = False) -> Column:
    """:func:`clean_name_text`, :func:`expand_abbreviations` and :func:`protect_hyphens` in one."""
    return protect_hyphens(expand_abbreviations(clean_name_text(c), pats, expand_last), pats)


def title_split(c: Column, pats: NamePatterns) -> tuple[Column, Column]:
    """(leading title text or '', the rest) of a value; see :func:`title_finish`."""
    return F.regexp_extract(c, pats.title_prefix, 1), F.trim(F.regexp_replace(c, pats.title_prefix, ""))


def title_finish(
    c: Column, prefix: Column, rest: Column, pats: NamePatterns, name_field: bool = True
) -> tuple[Column, Column]:
    """(name without titles and post-nominals, title text) from :func:`title_split`'s output.

    In a name field, a multi-word title without a dot that would leave nothing but an empty or
    comma-led rest is a family name: 'De Heer' and 'De Heer, Jan' are people called De Heer.
    """
    if name_field:
        is_surname = ((rest == "") | rest.startswith(",")) & ~prefix.contains(".") & F.trim(prefix).contains(" ")
        rest = F.when(is_surname, c).otherwise(rest)
        prefix = F.when(is_surname, F.lit("")).otherwise(prefix)
    rest = F.regexp_replace(rest, pats.postnominal_suffix, "")
    return _nullif_empty(rest), F.coalesce(prefix, F.lit(""))


def strip_titles(c: Column, pats: NamePatterns, name_field: bool = True) -> tuple[Column, Column]:
    """(name without leading titles and trailing post-nominals, the leading title text or '')."""
    prefix, rest = title_split(c, pats)
    return title_finish(c, prefix, rest, pats, name_field)


def title_tokens(prefix: Column, pats: NamePatterns) -> Column:
    """Normalised title keys found in a title prefix: 'Prof. dr. ir.' -> ['prof', 'dr', 'ir']."""
    found = F.regexp_extract_all(F.coalesce(prefix, F.lit("")), F.lit("(?i)" + pats.title_token), 1)
    return F.transform(found, _normalise_title)


def _normalise_title(t: Column) -> Column:
    k = F.regexp_replace(F.lower(t), r"\.", " ")
    k = F.regexp_replace(k, r"\s*-\s*", "-")
    return F.trim(F.regexp_replace(k, r"\s+", " "))


def split_family(c: Column, pats: NamePatterns) -> tuple[Column, Column]:
    """(particle, family name) of a family-name field: 'van der Berg', 'Berg, van der', 'Berg'."""
    lead_p = F.regexp_extract(c, pats.family_lead, 1)
    trail_p = F.regexp_extract(c, pats.family_trail, 2)
    particle = F.when(lead_p != "", lead_p).when(trail_p != "", trail_p)
    family = (
        F.when(lead_p != "", F.regexp_extract(c, pats.family_lead, 2))
        .when(trail_p != "", F.regexp_extract(c, pats.family_trail, 1))
        .otherwise(c)
    )
    return particle, _nullif_empty(family)


def split_given(c: Column, pats: NamePatterns, bare: bool = False) -> tuple[Column, Column]:
    """(given part, trailing particle): 'Jan van der' -> ('Jan', 'van der')."""
    pattern = pats.given_trail_bare if bare else pats.given_trail
    p = F.regexp_extract(c, pattern, 2)
    given = F.when(p != "", F.regexp_extract(c, pattern, 1)).otherwise(c)
    return _nullif_empty(given), F.when(p != "", p)


_READINGS = ("comma", "c_family", "c_given", "il_family", "il_given", "p_family", "p_given", "l_family", "l_given")


def full_name_candidates(c: Column, pats: NamePatterns) -> dict[str, Column]:
    """The readings of a whole name, as named columns for :func:`full_name_choice`.

    'family, given' when there is a comma; 'family initials' when it ends in initials ('Dijk
    J.P.'); otherwise the first particle sequence followed by a non-particle starts the family
    name; without a particle, the last word is the family name.
    """
    return {
        "comma": c.contains(","),
        "c_family": F.trim(F.substring_index(c, ",", 1)),
        "c_given": F.regexp_extract(c, r"^[^,]*,\s*(.*)$", 1),
        "il_family": F.regexp_extract(c, _INITIALS_LAST, 1),
        "il_given": F.regexp_extract(c, _INITIALS_LAST, 2),
        "p_family": F.regexp_extract(c, pats.full_split, 2),
        "p_given": F.regexp_extract(c, pats.full_split, 1),
        "l_family": F.regexp_extract(c, r"(\S+)$", 1),
        "l_given": F.regexp_extract(c, r"^(.*?)\s*\S+$", 1),
    }


def full_name_choice(col: dict[str, Column], comma_given: Column) -> tuple[Column, Column]:
    """(family part, given part) from the readings of :func:`full_name_candidates`.

    The family part still holds its particle and the given part its initials and a trailing
    particle ('Berg, Jan van der'); :func:`split_family` and :func:`split_given` finish the job.
    """
    family = (
        F.when(col["comma"], col["c_family"])
        .when(col["il_family"] != "", col["il_family"])
        .when(col["p_family"] != "", col["p_family"])
        .otherwise(col["l_family"])
    )
    given = (
        F.when(col["comma"], comma_given)
        .when(col["il_family"] != "", col["il_given"])
        .when(col["p_family"] != "", col["p_given"])
        .otherwise(col["l_given"])
    )
    return _nullif_empty(family), _nullif_empty(given)


def given_names(part: Column) -> Column:
    """The written-out given names of a given part: 'Jan P.' -> 'Jan', 'J.P.' -> null."""
    words = F.filter(
        F.split(part, r"\s+"),
        lambda t: ~t.endswith(".") & (F.length(F.regexp_replace(t, r"[^\p{L}]", "")) > 1),
    )
    return _nullif_empty(F.array_join(words, " "))


def initials_of(part: Column) -> Column:
    """Initials of a given part: one letter per name or abbreviation ('Jan Peter', 'J.P.',
    'Jean-Pierre', 'Th.' -> 'JP', 'JP', 'JP', 'T')."""
    chunks = F.filter(F.split(part, r"[\s.\-]+"), lambda x: x != "")
    letters = F.array_join(F.transform(chunks, lambda x: F.substring(x, 1, 1)), "")
    return _clean_initials(letters)


def parse_initials(c: Column) -> Column:
    """The initials field: 'J.P.', 'J P', 'JP', 'jp.' -> 'JP'; 'Th.' -> 'T' (Dutch: one initial)."""
    return F.when(c.rlike(r"^\p{L}{1,4}$"), _clean_initials(c)).otherwise(initials_of(c))


def _clean_initials(c: Column) -> Column:
    s = F.regexp_replace(F.upper(fold_accents(c)), r"[^A-Z]", "")
    return F.nullif(s, F.lit(""))


def capitalize_first(c: Column) -> Column:
    """'van der' -> 'Van der' (a particle that starts a display name)."""
    return F.concat(F.upper(F.substring(c, 1, 1)), F.substring(c, 2, 1 << 20))


# --- the step ------------------------------------------------------------------------------------


def standardize_names(df: DataFrame, cfg: StandardizeConfig) -> DataFrame:
    """Clean title, gender and name fields of a working frame of string columns.

    Reads ``title, full_name, given_name, initials, name_particle, family_name, gender`` and
    writes them back cleaned, plus ``given_name_match, family_name_match, full_name_match``,
    ``name_valid`` and dq flag columns. Values a source sent apart win over values split from
    ``full_name``; ``full_name`` fills what they leave empty.

    Every intermediate result is a (temporary) column and each stage only reads columns: sharing
    one big expression in several places makes Spark analyse and generate it once per use, which
    is what makes a naive version of this slow to plan.
    """
    pats = name_patterns(cfg)
    generic = {v.lower() for v in cfg.placeholders.generic}
    umlauts = cfg.umlaut_folding

    def c(name: str) -> Column:
        return F.col(f"{_P}{name}")

    fields = {"full": "full_name", "given": "given_name", "family": "family_name"}
    # 1. prepare every name field
    df = df.withColumns({f"{_P}{k}": clean_name_text(F.col(v)) for k, v in fields.items()})
    df = df.withColumns(
        {
            **{f"{_P}{k}": protect_hyphens(expand_abbreviations(c(k), pats), pats) for k in fields},
            f"{_P}particle": F.lower(expand_abbreviations(clean_name_text(F.col("name_particle")), pats, True)),
            f"{_P}title": normalize_apostrophes(F.col("title")),
        }
    )
    # 2. titles off the front of every field
    sources = [*fields, "title"]
    stage: dict[str, Column] = {}
    for k in sources:
        prefix, rest = title_split(c(k), pats)
        stage[f"{_P}tp_{k}"], stage[f"{_P}tr_{k}"] = prefix, rest
    df = df.withColumns(stage)
    stage = {}
    for k in sources:
        rest, prefix = title_finish(c(k), c(f"tp_{k}"), c(f"tr_{k}"), pats, name_field=k != "title")
        stage[f"{_P}{k}"], stage[f"{_P}t_{k}"] = rest, prefix
    df = df.withColumns(stage).drop(*[f"{_P}{p}_{k}" for k in sources for p in ("tp", "tr")])
    # 3. the readings of the whole name, then titles off a comma-separated given part
    df = df.withColumns({f"{_P}fn_{k}": v for k, v in full_name_candidates(c("full"), pats).items()})
    prefix, rest = title_split(c("fn_c_given"), pats)
    df = df.withColumns({f"{_P}fn_cg_p": prefix, f"{_P}fn_cg_r": rest})
    rest, prefix = title_finish(c("fn_c_given"), c("fn_cg_p"), c("fn_cg_r"), pats)
    df = df.withColumns({f"{_P}fn_cg": rest, f"{_P}t_comma": F.when(c("fn_comma"), prefix).otherwise(F.lit(""))})
    readings = {k: c(f"fn_{k}") for k in _READINGS}
    fam_part, giv_part = full_name_choice(readings, c("fn_cg"))
    df = df.withColumns({f"{_P}fn_fampart": fam_part, f"{_P}fn_givpart": giv_part})
    # 4. particles off the family and given parts
    fn_p_lead, fn_family = split_family(c("fn_fampart"), pats)
    fn_given, fn_p_trail = split_given(c("fn_givpart"), pats, bare=True)
    ff_p, ff_family = split_family(c("family"), pats)
    gf_given, gf_p = split_given(c("given"), pats)
    swapped = (
        c("given").rlike(pats.family_lead)
        & c("family").isNotNull()
        & ~c("family").rlike(pats.family_lead)
        & ~c("family").contains(" ")
    )
    df = df.withColumns(
        {
            f"{_P}fn_p": F.coalesce(fn_p_lead, fn_p_trail),
            f"{_P}fn_family": fn_family,
            f"{_P}fn_given": fn_given,
            f"{_P}ff_p": ff_p,
            f"{_P}ff_family": ff_family,
            f"{_P}gf_given": gf_given,
            f"{_P}gf_p": gf_p,
            f"{FLAG}names_swapped": flag(F.coalesce(swapped, F.lit(False)), "names_swapped_suspect"),
        }
    )
    # 5. combine: fields sent apart first, the whole name fills the gaps
    particle = F.coalesce(
        c("particle"),
        F.when(c("ff_family").isNotNull(), F.coalesce(c("ff_p"), c("gf_p"))).otherwise(c("fn_p")),
    )
    df = df.withColumns(
        {
            f"{_P}particle": F.regexp_replace(F.lower(particle), r"\s+", " "),
            f"{_P}family": F.regexp_replace(F.coalesce(c("ff_family"), c("fn_family")), JOINER, " "),
            f"{_P}given": F.coalesce(given_names(c("gf_given")), given_names(c("fn_given"))),
            f"{_P}initials": F.coalesce(
                parse_initials(F.col("initials")), initials_of(c("gf_given")), initials_of(c("fn_given"))
            ),
        }
    )
    # placeholders hiding inside a whole name ("Dhr. Onbekend", "Test Test")
    df = df.withColumns(
        {
            f"{_P}given_ph": F.coalesce(in_values(F.lower(c("given")), generic), F.lit(False)),
            f"{_P}family_ph": F.coalesce(in_values(F.lower(c("family")), generic), F.lit(False)),
        }
    )
    df = df.withColumns(
        {
            f"{_P}given": F.when(~c("given_ph"), c("given")),
            f"{_P}family": F.when(~c("family_ph"), c("family")),
            f"{_P}particle": F.when(c("particle") != "", c("particle")),
            f"{_P}initials": F.when(~c("given_ph"), c("initials")),
            f"{FLAG}ph_given_name_parsed": flag(c("given_ph"), "placeholder:given_name"),
            f"{FLAG}ph_family_name_parsed": flag(c("family_ph"), "placeholder:family_name"),
        }
    )
    df = df.withColumns(
        {
            f"{_P}given": recase(c("given"), cfg.recase_names, (), cfg.dutch_ij),
            f"{_P}family": recase(c("family"), cfg.recase_names, pats.particle_words, cfg.dutch_ij),
            # 7a. title keys from every place a title was found
            f"{_P}tokens": F.concat(
                title_tokens(c("t_title"), pats),
                F.when(c("title").isNotNull(), F.array(_normalise_title(c("title")))).otherwise(
                    F.array().cast(_EMPTY_ARR)
                ),
                title_tokens(c("t_full"), pats),
                title_tokens(c("t_comma"), pats),
                title_tokens(c("t_given"), pats),
                title_tokens(c("t_family"), pats),
            ),
            f"{_P}gkey": F.trim(F.regexp_replace(F.lower(F.col("gender")), r"[.\s]+", "")),
        }
    )
    # 6. display name and match forms
    g, fam, p, ini = c("given"), c("family"), c("particle"), c("initials")
    first = F.coalesce(g, F.regexp_replace(ini, "(.)", "$1."))
    particle_disp = F.when(g.isNull() & ini.isNull(), capitalize_first(p)).otherwise(p)
    joiner = F.when(p.endswith("'"), F.lit("")).otherwise(F.lit(" "))
    fam_disp = F.when(p.isNotNull() & fam.isNotNull(), F.concat(particle_disp, joiner, fam)).otherwise(fam)
    display = F.concat_ws(" ", first, fam_disp)
    # 7b. titles and gender
    canon_map = literal_map(pats.title_canonical)
    gender_map = literal_map(pats.title_gender)
    tokens = c("tokens")
    sent_gender = lookup({k.lower().replace(".", ""): v for k, v in cfg.gender_values.items()}, c("gkey"))
    unknown_gender = in_values(c("gkey"), {v.lower().replace(".", "") for v in cfg.gender_unknown_values})
    df = df.withColumns(
        {
            f"{_P}display": display,
            f"{_P}canonical": F.array_join(
                F.array_distinct(F.transform(tokens, lambda t: F.coalesce(F.try_element_at(canon_map, t), t))), " "
            ),
            f"{_P}genders": F.array_distinct(
                F.filter(F.transform(tokens, lambda t: F.try_element_at(gender_map, t)), lambda x: x.isNotNull())
            ),
            f"{_P}sent_gender": sent_gender,
            f"{FLAG}gender": flag(c("gkey").isNotNull() & sent_gender.isNull() & ~unknown_gender, "gender_invalid"),
        }
    )
    title_gender = F.when(F.size(c("genders")) == 1, c("genders").getItem(0))
    gender = F.coalesce(c("sent_gender"), title_gender) if cfg.gender_from_title else c("sent_gender")
    return df.withColumns(
        {
            "title": F.when(c("canonical") != "", c("canonical")),
            "gender": gender,
            "given_name": g,
            "initials": ini,
            "name_particle": p,
            "family_name": fam,
            "full_name": F.when(c("display") != "", c("display")),
            "given_name_match": match_form(g, umlauts=umlauts),
            "family_name_match": match_form(fam, umlauts=umlauts),
            "full_name_match": match_form(F.concat_ws(" ", F.coalesce(g, ini), p, fam), umlauts=umlauts),
            "name_valid": fam.isNotNull(),
        }
    ).drop(*[col for col in df.columns if col.startswith(_P)])
