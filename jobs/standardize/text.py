"""Text helpers shared by the cleansers: whitespace, accent folding, match forms, name casing.

All of them are ``Column -> Column`` built from Spark built-ins (``translate``, ``regexp_replace``,
higher-order array functions), so they run inside the JVM with whole-stage code generation and
work over Spark Connect; no Python UDF is involved.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.common.schemas import TMP

# Every step writes its data-quality findings to columns with this prefix; they end up in dq_flags.
FLAG_PREFIX = TMP + "flag_"

# Characters that are not whitespace to Java's \s but break tokenising: zero-width space/joiners,
# BOM, soft hyphen. They are removed; every other kind of blank becomes one ASCII space.
_INVISIBLE = r"[\x{200B}-\x{200D}\x{2060}\x{FEFF}\x{00AD}]"
_INVISIBLE_CHARS = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_BLANKS = r"[\h\v\s\p{Cc}]+"
# Typographic apostrophes and accents used as apostrophes ("in ’t Veld", "O´Brien").
_APOSTROPHES_FROM = "\u2019\u2018\u02bc\u00b4\u0060\u2032"
_APOSTROPHES_TO = "'" * len(_APOSTROPHES_FROM)

# Letters NFKD cannot reduce to one ASCII letter, folded by hand.
_SPECIAL_FOLDS = {
    "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "ħ": "h", "Ħ": "H", "ı": "i",
    "ŧ": "t", "Ŧ": "T", "ŀ": "l", "Ŀ": "L", "ð": "d", "Ð": "D",
}
# Letters that fold to two letters; translate() maps one character to one, so these go first.
_MULTI_FOLDS = {"ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "þ": "th", "Þ": "TH", "ĳ": "ij", "Ĳ": "IJ"}
_UMLAUT_EXPANSIONS = {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "AE", "Ö": "OE", "Ü": "UE"}


@lru_cache(maxsize=1)
def accent_table() -> tuple[str, str]:
    """(from, to) strings for ``F.translate``: every Latin letter with diacritics -> its base letter.

    Built once from Unicode's own decompositions (NFKD) over Latin-1 Supplement, Latin
    Extended-A/B and Latin Extended Additional, so the table is complete rather than hand-typed.
    """
    src, dst = [], []
    for cp in list(range(0x00C0, 0x0250)) + list(range(0x1E00, 0x1F00)):
        ch = chr(cp)
        if ch in _MULTI_FOLDS:
            continue
        if ch in _SPECIAL_FOLDS:
            src.append(ch)
            dst.append(_SPECIAL_FOLDS[ch])
            continue
        base = unicodedata.normalize("NFKD", ch)
        letters = [c for c in base if not unicodedata.combining(c)]
        if len(letters) == 1 and letters[0].isascii() and letters[0].isalpha() and letters[0] != ch:
            src.append(ch)
            dst.append(letters[0])
    return "".join(src), "".join(dst)


def clean_text(c: Column) -> Column:
    """Trim, collapse every kind of blank to one space, drop invisible characters; '' -> null.

    Sources send non-breaking spaces, tabs and zero-width characters that make equal values
    differ; this is the first thing every string field goes through.
    """
    # translate() with an empty replacement deletes: far cheaper than a second regex
    s = F.regexp_replace(F.translate(c, _INVISIBLE_CHARS, ""), _BLANKS, " ")
    # nullif, not when(s != '', s): Spark evaluates its argument once (a common expression),
    # where the when() evaluated the regex twice, and every further nesting doubled that again
    return F.nullif(F.trim(s), F.lit(""))


def normalize_apostrophes(c: Column) -> Column:
    """Typographic apostrophes -> ASCII ' (names: "in ’t Veld", "O’Brien")."""
    return F.translate(c, _APOSTROPHES_FROM, _APOSTROPHES_TO)


def fold_accents(c: Column, umlauts: str = "strip", lower_only: bool = False) -> Column:
    """Remove diacritics: 'é' -> 'e', 'ß' -> 'ss', 'ĳ' -> 'ij'; ``umlauts='expand'``: 'ü' -> 'ue'.

    ``translate`` with a generated table does the one-to-one letters in a single pass; the few
    letters that expand to two are replaced first (only their lower-case forms with
    ``lower_only``, for values already lower-cased).
    """
    s = c
    extra = dict(_MULTI_FOLDS)
    if umlauts == "expand":
        extra.update(_UMLAUT_EXPANSIONS)
    if lower_only:
        extra = {ch: rep for ch, rep in extra.items() if ch == ch.lower()}
    for ch, rep in extra.items():
        # literal replace (StringReplace): far less generated code than a regex per letter
        s = F.replace(s, F.lit(ch), F.lit(rep))
    src, dst = accent_table()
    return F.translate(s, src, dst)


def match_form(c: Column, keep_digits: bool = False, umlauts: str = "strip") -> Column:
    """Lower case, accents folded, every run of other characters one space; '' -> null.

    The comparison form of names and cities: "Jean-Pierre" and "jean pierre" agree, "Müller"
    and "Muller" agree, "O'Brien" becomes "o brien".
    """
    keep = "a-z0-9" if keep_digits else "a-z"
    s = F.trim(F.regexp_replace(fold_accents(F.lower(c), umlauts, lower_only=True), f"[^{keep}]+", " "))
    return F.nullif(s, F.lit(""))


def py_match_form(value: str, keep_digits: bool = False, umlauts: str = "strip") -> str:
    """The Python twin of :func:`match_form`, for config keys (country and city aliases).

    Keys in config are normalised with this at plan time so that they equal the match form Spark
    computes for the data.
    """
    s = value.lower()
    extra = dict(_MULTI_FOLDS)
    if umlauts == "expand":
        extra.update(_UMLAUT_EXPANSIONS)
    for ch, rep in extra.items():
        s = s.replace(ch, rep)
    src, dst = accent_table()
    s = s.translate(str.maketrans(src, dst))
    keep = "a-z0-9" if keep_digits else "a-z"
    return re.sub(f"[^{keep}]+", " ", s).strip()


def is_uniform_case(c: Column) -> Column:
    """True when a value is all upper or all lower case: only then is re-casing safe.

    Mixed case ("McDonald", "DeVries") carries information the source had; it is kept.
    """
    return (c == F.upper(c)) | (c == F.lower(c))


# Split after a blank, a hyphen or the token joiner, and after "O'" / "D'" style prefixes, keeping
# the separators with the preceding piece so that joining the pieces gives the string back.
_CASE_SPLIT = r"(?<=[\s\x01\-])|(?<=(?:^|[\s\x01\-])\p{L}')"


def name_case(c: Column, lower_words: Iterable[str] = (), dutch_ij: bool = True) -> Column:
    """Title case that understands names: 'JEAN-PIERRE O'BRIEN' -> 'Jean-Pierre O'Brien'.

    ``initcap`` only capitalises after blanks; this splits after blanks, hyphens and "O'"-style
    prefixes, capitalises each piece, and keeps ``lower_words`` (name particles, 'aan den' in
    'Alphen aan den Rijn') in lower case unless they start the value. With ``dutch_ij`` the Dutch
    digraph is capitalised as one letter: 'ijsselmeer' -> 'IJsselmeer'.
    """
    words = sorted({w.lower() for w in lower_words})
    low = F.lower(c)
    pieces = F.split(low, _CASE_SPLIT)
    word_list = F.array(*[F.lit(w) for w in words]) if words else F.array().cast("array<string>")

    def recase(piece: Column, i: Column) -> Column:
        bare = F.regexp_replace(piece, r"[\s\x01\-]+$", "")
        cap = F.concat(F.upper(F.substring(piece, 1, 1)), F.substring(piece, 2, 1 << 20))
        return F.when((i > 0) & F.array_contains(word_list, bare), piece).otherwise(cap)

    s = F.array_join(F.transform(pieces, recase), "")
    if dutch_ij:
        s = F.regexp_replace(s, r"(^|[\s\x01\-])Ij", "$1IJ")
    return s


def recase(c: Column, enabled: bool, lower_words: Iterable[str] = (), dutch_ij: bool = True) -> Column:
    """:func:`name_case` for values sent all upper or all lower case; others as sent."""
    if not enabled:
        return c
    return F.when(is_uniform_case(c), name_case(c, lower_words, dutch_ij)).otherwise(c)


def _json_map(items: tuple[tuple[str, str | None], ...]) -> Column:
    from pyspark import SparkContext

    # Columns belong to one JVM: never hand one out to a later session.
    return _json_map_cached(id(SparkContext._active_spark_context), items)


@functools.lru_cache(maxsize=512)
def _json_map_cached(_context: int, items: tuple[tuple[str, str | None], ...]) -> Column:
    # One JVM call for the whole literal (a create_map of literals costs two calls per entry,
    # thousands per plan); from_json of a literal is constant-folded by the optimizer.
    return F.from_json(F.lit(json.dumps(dict(items), ensure_ascii=False)), "map<string,string>")


def literal_map(mapping: Mapping[str, str | None]) -> Column:
    """A map literal for lookups with ``try_element_at`` (one hash lookup, no join)."""
    if not mapping:
        return F.create_map().cast("map<string,string>")
    return _json_map(tuple(sorted((str(k), None if v is None else str(v)) for k, v in mapping.items())))


def lookup(mapping: Mapping[str, str | None], key: Column) -> Column:
    """``mapping[key]``, null when the key is null or absent."""
    if not mapping:
        return F.lit(None).cast("string")
    return F.try_element_at(literal_map(mapping), key)


def any_regex(c: Column, patterns: Sequence[str]) -> Column:
    """True when ``c`` matches one of ``patterns`` (one combined Java regex)."""
    if not patterns:
        return F.lit(False)
    return c.rlike("|".join(f"(?:{p})" for p in patterns))


def in_values(c: Column, values: Iterable[str]) -> Column:
    """Membership in a literal set: a hash lookup in a map literal (null when ``c`` is null)."""
    vals = sorted({str(v) for v in values})
    if not vals:
        return F.lit(False)
    if len(vals) <= 3:
        return c.isin(vals)
    # null when c is null, as with isin
    return F.when(c.isNotNull(), F.try_element_at(literal_map({v: "1" for v in vals}), c).isNotNull())


def regex_alternation(words: Iterable[str]) -> str:
    """A Java regex alternation of literal words, longest first so that 'drs' wins over 'dr'.

    Blanks inside a word match any run of blanks.
    """
    uniq = sorted(set(words), key=lambda w: (-len(w), w))
    return "(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+").replace(" ", r"\s+") for w in uniq) + ")"


def flag(condition: Column, name: str) -> Column:
    """A dq flag column: ``name`` when ``condition`` holds, else null (collected into dq_flags)."""
    return F.when(condition, F.lit(name))
