"""Sample data generator: Dutch and Belgian customers in five sources, with ground truth.

Why: matching and survivorship can only be judged on data whose truth is known. This writes a
synthetic population (persons in households) and lets each person appear, with realistic
overlap and realistic damage, in the five sources of ``conf/sources/*.yaml``: CRM (``;`` CSV,
utf-8 and latin-1), webshop (NDJSON customers and orders), POS (Parquet members and receipts),
e-mail marketing (CSV subscribers and events) and web analytics (NDJSON events with cookies).

How: Faker (``nl_NL``, ``nl_BE``) is called only a few thousand times, to build value pools
(given and family names, streets, companies); cities and postcode ranges come from a small
embedded table so that postcode and city agree. Every row is then sampled from those pools with
numpy, and every column is formatted with vectorised numpy/pandas string operations; only the
small corrupted subsets (typos) are touched row by row. One million persons take minutes.

Determinism: the output depends only on ``persons``, ``seed`` and ``start`` (the reference date,
default 2026-11-01; no wall-clock time). Each source draws from its own random stream
(``numpy.random.default_rng([seed, stream])``), so the same arguments give byte-identical files.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from jobs.common.errors import ConfigError

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0.0"
DEFAULT_START = date(2026, 11, 1)
MANIFEST = "manifest.json"
GROUND_TRUTH_DIR = "ground_truth"

Arr = np.ndarray  # object arrays of str ("" = missing) unless stated otherwise

# --- embedded reference tables -----------------------------------------------------------------

# (city, first and last 4-digit postcode, relative population weight)
NL_CITIES: tuple[tuple[str, int, int, float], ...] = (
    ("Amsterdam", 1011, 1109, 9.0), ("Rotterdam", 3011, 3089, 6.5), ("Den Haag", 2491, 2599, 5.5),
    ("Utrecht", 3511, 3585, 3.6), ("Eindhoven", 5611, 5658, 2.4), ("Groningen", 9711, 9747, 2.3),
    ("Tilburg", 5011, 5049, 2.2), ("Almere", 1311, 1364, 2.1), ("Breda", 4811, 4839, 1.8),
    ("Nijmegen", 6511, 6546, 1.8), ("Apeldoorn", 7311, 7339, 1.6), ("Haarlem", 2011, 2037, 1.6),
    ("Arnhem", 6811, 6846, 1.6), ("Enschede", 7511, 7548, 1.6), ("Amersfoort", 3811, 3829, 1.6),
    ("Zaandam", 1501, 1509, 1.0), ("'s-Hertogenbosch", 5211, 5237, 1.5), ("Zwolle", 8011, 8043, 1.3),
    ("Leiden", 2311, 2334, 1.2), ("Maastricht", 6211, 6229, 1.2), ("Dordrecht", 3311, 3329, 1.2),
    ("Leeuwarden", 8911, 8939, 1.2), ("Delft", 2611, 2629, 1.0), ("Alkmaar", 1811, 1827, 1.1),
    ("Zoetermeer", 2711, 2729, 1.2), ("Deventer", 7411, 7433, 1.0), ("Hilversum", 1211, 1223, 0.9),
    ("Heerlen", 6411, 6422, 0.9), ("Venlo", 5911, 5928, 1.0), ("Assen", 9401, 9409, 0.7),
    ("Gouda", 2801, 2809, 0.7), ("Middelburg", 4331, 4338, 0.5), ("Den Helder", 1781, 1789, 0.6),
    ("Oss", 5341, 5349, 0.9),
)
# Alternative spellings a clerk may type for the same city.
CITY_VARIANTS = {"Den Haag": "'s-Gravenhage", "'s-Hertogenbosch": "Den Bosch", "Liège": "Luik",
                 "Brussel": "Bruxelles", "Antwerpen": "Antwerp", "Namur": "Namen"}
BE_CITIES: tuple[tuple[str, tuple[int, ...], float], ...] = (
    ("Antwerpen", (2000, 2018, 2020, 2030, 2050, 2060, 2100, 2140, 2170, 2600, 2610, 2660), 5.0),
    ("Gent", (9000, 9030, 9031, 9032, 9040, 9041, 9042, 9050), 3.0),
    ("Brussel", (1000, 1020, 1050, 1060, 1080, 1090, 1120, 1130, 1150, 1170, 1180, 1190, 1200), 4.0),
    ("Brugge", (8000, 8200, 8310), 1.2), ("Leuven", (3000, 3001, 3010, 3012, 3018), 1.0),
    ("Mechelen", (2800, 2801, 2811, 2812), 0.9), ("Aalst", (9300, 9308, 9310, 9320), 0.9),
    ("Hasselt", (3500, 3501, 3510, 3511, 3512), 0.8), ("Kortrijk", (8500, 8501, 8510, 8511), 0.8),
    ("Sint-Niklaas", (9100, 9111, 9112), 0.8), ("Oostende", (8400,), 0.7), ("Genk", (3600,), 0.7),
    ("Roeselare", (8800,), 0.6), ("Turnhout", (2300,), 0.45), ("Liège", (4000, 4020, 4030), 1.9),
    ("Namur", (5000, 5001, 5002), 1.1), ("Charleroi", (6000, 6001, 6010, 6020), 2.0),
    ("Dendermonde", (9200,), 0.45), ("Lokeren", (9160,), 0.4), ("Geel", (2440,), 0.4),
    ("Sint-Truiden", (3800,), 0.4), ("Ieper", (8900,), 0.35), ("Knokke-Heist", (8300,), 0.3),
)
NL_POSTCODE_LETTERS = "ABCDEGHJKLMNPRSTVWXZ"
NL_DOMAINS = (("gmail.com", 25), ("hotmail.com", 18), ("outlook.com", 10), ("ziggo.nl", 10), ("kpnmail.nl", 8),
              ("live.nl", 7), ("home.nl", 5), ("xs4all.nl", 4), ("planet.nl", 4), ("yahoo.com", 4), ("icloud.com", 5))
BE_DOMAINS = (("telenet.be", 30), ("skynet.be", 15), ("gmail.com", 30), ("hotmail.com", 15), ("proximus.be", 10))
# Names with diacritics, so that the encoding of a file matters (all encodable in latin-1).
EXTRA_GIVEN_F = ("Renée", "Chloë", "Zoë", "Loïs", "Anaïs", "Inès", "Céline", "Hélène", "Aurélie", "Mélanie",
                 "Joëlle", "Maëlle", "Gaëlle", "Désirée", "Gül", "Noémie")
EXTRA_GIVEN_M = ("José", "Noël", "André", "René", "Frédéric", "Jérôme", "Raphaël", "Ümit", "Günther", "Björn")
EXTRA_FAMILY = ("Müller", "Dubois", "Lefèvre", "Öztürk", "Çelik", "Ünal", "Gonçalves", "Desmet-Lefèbvre",
                "Van Hée", "Brontë", "Peñalosa", "Böhm", "Schäfer")
NL_PARTICLES = ("van der", "van den", "van de", "van 't", "in 't", "op de", "van", "de", "den", "der",
                "ten", "ter", "te", "'t")
JOB_TITLES = ("Directeur", "Eigenaar", "Adviseur", "Accountmanager", "Inkoper", "Projectleider", "Docent",
              "Verpleegkundige", "Consultant", "Office manager", "Financieel medewerker", "Teamleider")
PET_NAMES = ("Bello", "Max", "Luna", "Guus", "Pluis", "Snuffie", "Tijger", "Minoes", "Nijntje", "Dribbel",
             "Rakker", "Loebas", "Saar", "Boris", "Kees", "Bobbie", "Sam", "Coco")
WEB_PATHS = ("/", "/producten/hondenvoer", "/producten/kattenbakvulling", "/producten/konijnenhok", "/acties",
             "/acties/black-friday", "/zoeken?q=krabpaal", "/winkelwagen", "/account", "/klantenservice",
             "/blog/puppy-opvoeden", "/merken/royal-canin")
WEB_HOST = "https://www.dierenwinkel-voorbeeld.nl"
PLACEHOLDER_EMAILS = np.array(["test@test.nl", "geen@email.nl", "onbekend@onbekend.nl", "x@x.nl"], dtype=object)
PLACEHOLDER_PHONES = np.array(["0000000000", "0612345678", "1234567890"], dtype=object)

# Stream numbers of the per-source random generators (fixed: adding a source never shifts another).
_S_POP, _S_CRM, _S_SHOP, _S_ORD, _S_POS, _S_REC, _S_MAIL, _S_MEV, _S_WEB, _S_POOL = range(10)

_Y4 = np.array([f"{y:04d}" for y in range(10000)], dtype=object)
_D2 = np.array([f"{i:02d}" for i in range(100)], dtype=object)


# --- small vectorised helpers ------------------------------------------------------------------


def _obj(values: Any) -> Arr:
    return np.asarray(values, dtype=object)


def _pa(values: Any) -> pa.Array:
    """64-bit offsets: a web events file passes 2 GB (the 32-bit limit) at a few million persons."""
    return values if isinstance(values, pa.Array) else pa.array(values, type=pa.large_string())


def _L(text: str) -> pa.Scalar:
    return pa.scalar(text, type=pa.large_string())


def _join(*parts: Any) -> pa.Array:
    """Arrow element-wise concatenation; the last argument is the separator (str scalars allowed)."""
    return pc.binary_join_element_wise(*(_L(p) if isinstance(p, str) else p for p in parts))


def _np(values: pa.Array) -> Arr:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)


def _slice(values: Any, start: int, stop: int = 1 << 30) -> Arr:
    return _np(pc.utf8_slice_codeunits(_pa(values), start, stop))


def _str_int(numbers: np.ndarray) -> Arr:
    return _np(pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()))


def _map_unique(values: Arr, fn: Any) -> Arr:
    """Apply ``fn`` once per distinct value (for low-cardinality columns: cities, suffixes)."""
    codes, uniques = pd.factorize(values)
    return _obj([fn(u) for u in uniques] + [""])[codes]


def _full(n: int, value: str) -> Arr:
    out = np.empty(n, dtype=object)
    out[:] = value
    return out


def _s(arr: Arr) -> pd.Series:
    return pd.Series(arr, dtype=object)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> Arr:
    digits = pc.utf8_lpad(pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.large_string()), width, "0")
    return _np(_join(prefix, digits, ""))


def _pick(rng: np.random.Generator, options: Sequence[Any], weights: Sequence[float], n: int) -> np.ndarray:
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(options), size=n, p=p / p.sum())


def _join_space(a: Arr, b: Arr) -> Arr:
    """'a b', or whichever is non-empty."""
    both = (a != "") & (b != "")
    return np.where(both, a + " " + b, a + b)


def _upper(arr: Arr) -> Arr:
    return _np(pc.utf8_upper(_pa(arr)))


def _lower(arr: Arr) -> Arr:
    return _np(pc.utf8_lower(_pa(arr)))


def _ascii(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    return "".join(ch for ch in plain if ch.isalpha())


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = days.astype("datetime64[D]")
    y = d.astype("datetime64[Y]")
    m = d.astype("datetime64[M]")
    return y.astype(np.int64) + 1970, (m - y.astype("datetime64[M]")).astype(np.int64) + 1, (d - m).astype(np.int64) + 1


def _date_table(days: np.ndarray) -> np.ndarray:
    """Distinct days in the 4 formats: shape (4, len(days))."""
    y, m, d = _ymd(days)
    ys, ms, ds = _Y4[y], _D2[m], _D2[d]
    return np.stack([ys + "-" + ms + "-" + ds, ds + "-" + ms + "-" + ys, ds + "/" + ms + "/" + _D2[y % 100],
                     ys + ms + ds])


def _fmt_date(days: np.ndarray, fmt: np.ndarray | int) -> Arr:
    """Dates (days since 1970) as 0 ISO, 1 dd-mm-yyyy, 2 dd/mm/yy, 3 yyyymmdd, per row.

    Formatted once per distinct day (there are few) and looked up."""
    codes, uniques = pd.factorize(np.asarray(days, dtype=np.int64))
    table = _date_table(np.asarray(uniques, dtype=np.int64))
    fmt = np.broadcast_to(np.asarray(fmt), codes.shape)
    return table[fmt, codes]


@functools.lru_cache(maxsize=2)
def _clock(suffix: str) -> Arr:
    sod = np.arange(86400)
    hh, rest = np.divmod(sod, 3600)
    mm, ss = np.divmod(rest, 60)
    return _D2[hh] + ":" + _D2[mm] + ":" + _D2[ss] + suffix


def _fmt_ts(seconds: np.ndarray, style: str = "iso") -> Arr:
    """Timestamps (seconds since 1970): 'iso' 2026-01-02T03:04:05Z, 'sql' 2026-01-02 03:04:05."""
    days, sod = np.divmod(seconds, 86400)
    codes, uniques = pd.factorize(days)
    dates = _date_table(np.asarray(uniques, dtype=np.int64))[0] + ("T" if style == "iso" else " ")
    return dates[codes] + _clock("Z" if style == "iso" else "")[sod]


def _event_times(rng: np.random.Generator, created: np.ndarray, ref_day: int, mean: float) -> tuple[np.ndarray, np.ndarray]:
    """Poisson(``mean``) events per account, each at a time between its creation (at most two years
    back) and ``ref_day``: the owning row per event and its epoch seconds, ordered by row, then time."""
    row = np.repeat(np.arange(len(created)), rng.poisson(mean, size=len(created)))
    start = np.maximum(created[row], max(0, ref_day - 730) * 86400)
    at = start + (rng.random(len(row)) * (ref_day * 86400 - start)).astype(np.int64)
    o = np.lexsort((row, at))
    return row[o], at[o]


def _money(values: np.ndarray) -> Arr:
    cents = np.round(np.asarray(values) * 100).astype(np.int64)
    return _str_int(cents // 100) + "." + _D2[cents % 100]


def _typos(values: Arr, rate: float, rng: np.random.Generator) -> Arr:
    """Insert, delete, substitute or transpose one character in about ``rate`` of the values."""
    n = len(values)
    idx = np.flatnonzero(rng.random(n) < rate)
    ops = rng.integers(0, 4, size=len(idx))
    pos = rng.random(len(idx))
    chars = rng.integers(0, 26, size=len(idx))
    out = values.copy()
    letters = "abcdefghijklmnopqrstuvwxyz"
    for i, op, p, c in zip(idx.tolist(), ops.tolist(), pos.tolist(), chars.tolist()):
        s = out[i]
        if len(s) < 4:
            continue
        k = 1 + int(p * (len(s) - 2))  # never the first or last character
        ch = letters[c]
        if op == 0:
            s = s[:k] + ch + s[k:]
        elif op == 1:
            s = s[:k] + s[k + 1:]
        elif op == 2:
            s = s[:k] + (ch if s[k] != ch else "e") + s[k + 1:]
        else:
            s = s[: k - 1] + s[k] + s[k - 1] + s[k + 1:]
        out[i] = s
    return out


def _blank(values: Arr, rate: float, rng: np.random.Generator) -> Arr:
    return np.where(rng.random(len(values)) < rate, "", values).astype(object)


def _placeholder(values: Arr, rate: float, pool: Arr, rng: np.random.Generator) -> Arr:
    mask = rng.random(len(values)) < rate
    choice = pool[rng.integers(0, len(pool), size=len(values))]
    return np.where(mask, choice, values).astype(object)


# --- pools -------------------------------------------------------------------------------------


@dataclass
class Pools:
    given: Arr  # all given names; index ranges per (country, gender) below
    given_ascii: Arr
    given_ranges: dict[tuple[int, int], tuple[int, int]]  # (country 0 NL/1 BE, gender 0 M/1 F) -> [lo, hi)
    given_w: dict[tuple[int, int], np.ndarray]
    particle: Arr  # family names split in particle and core (NL: 'van der' + 'Berg')
    core: Arr
    family_ascii: Arr
    family_ranges: dict[int, tuple[int, int]]
    family_w: dict[int, np.ndarray]
    streets: Arr
    street_ranges: dict[int, tuple[int, int]]
    companies: Arr


def _latin1(name: str) -> bool:
    """Encodable in latin-1, also in upper case (no ß or ÿ: their capitals are not latin-1)."""
    try:
        name.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return bool(name.strip()) and "ß" not in name and "ÿ" not in name


def _unique(names: Sequence[str]) -> list[str]:
    return [n for n in dict.fromkeys(names) if _latin1(n)]


def _zipf(n: int, extra: int = 0) -> np.ndarray:
    w = 1.0 / (np.arange(n) + 15.0)
    if extra:
        w[-extra:] = w[: n - extra].mean() * 1.5  # diacritic names are not rare
    return w / w.sum()


def _split_particle(name: str) -> tuple[str, str]:
    """'van der Berg' -> ('van der', 'Berg'); Faker's noble form 'Bourgondië, van' -> ('van', 'Bourgondië')."""
    if ", " in name:
        core, _, tail = name.partition(", ")
        if tail.lower() in NL_PARTICLES:
            return tail.lower(), core
    low = name.lower()
    for p in NL_PARTICLES:
        if low.startswith(p + " ") and len(name) > len(p) + 1:
            return p, name[len(p) + 1:]
    return "", name


@functools.lru_cache(maxsize=4)
def build_pools(seed: int) -> Pools:
    """Value pools from Faker (a few thousand calls, once); the only place Faker is used.

    Cached per seed: the arrays are never modified by the generator."""
    from faker import Faker

    given: list[str] = []
    given_ranges: dict[tuple[int, int], tuple[int, int]] = {}
    given_w: dict[tuple[int, int], np.ndarray] = {}
    particle: list[str] = []
    core: list[str] = []
    family_ranges: dict[int, tuple[int, int]] = {}
    family_w: dict[int, np.ndarray] = {}
    streets: list[str] = []
    street_ranges: dict[int, tuple[int, int]] = {}
    companies: list[str] = []
    for country, locale in enumerate(("nl_NL", "nl_BE")):
        fk = Faker(locale)
        fk.seed_instance(seed * 7 + country)
        for gender, extra in ((0, EXTRA_GIVEN_M), (1, EXTRA_GIVEN_F)):
            draw = fk.first_name_male if gender == 0 else fk.first_name_female
            names = _unique([draw() for _ in range(700)])
            names = [n for n in names if n not in extra] + list(extra)
            given_ranges[(country, gender)] = (len(given), len(given) + len(names))
            given_w[(country, gender)] = _zipf(len(names), len(extra))
            given.extend(names)
        fams = _unique([fk.last_name() for _ in range(2000)])
        fams = [f for f in fams if f not in EXTRA_FAMILY] + list(EXTRA_FAMILY)
        family_ranges[country] = (len(core), len(core) + len(fams))
        family_w[country] = _zipf(len(fams), len(EXTRA_FAMILY))
        for f in fams:
            p, c = _split_particle(f) if country == 0 else ("", f)
            particle.append(p)
            core.append(c)
        sts = _unique([fk.street_name() for _ in range(900)])
        street_ranges[country] = (len(streets), len(streets) + len(sts))
        streets.extend(sts)
        companies.extend(_unique([fk.company() for _ in range(150)]))
    return Pools(
        given=_obj(given), given_ascii=_obj([_ascii(g) for g in given]), given_ranges=given_ranges,
        given_w=given_w, particle=_obj(particle), core=_obj(core),
        family_ascii=_obj([_ascii(p + c) for p, c in zip(particle, core)]), family_ranges=family_ranges,
        family_w=family_w, streets=_obj(streets), street_ranges=street_ranges, companies=_obj(companies),
    )


# --- population --------------------------------------------------------------------------------


@dataclass
class Addresses:
    street: Arr
    number: np.ndarray  # int
    suffix: Arr  # '', 'A', 'b', 'bis', 'hs', '2'
    postcode: Arr  # canonical: '1234AB' (NL) or '2000' (BE)
    city: Arr


def _addresses(rng: np.random.Generator, country: np.ndarray, pools: Pools) -> Addresses:
    n = len(country)
    street = np.empty(n, dtype=object)
    postcode = np.empty(n, dtype=object)
    city = np.empty(n, dtype=object)
    for c in (0, 1):
        idx = np.flatnonzero(country == c)
        lo, hi = pools.street_ranges[c]
        street[idx] = pools.streets[rng.integers(lo, hi, size=len(idx))]
        if c == 0:
            ci = _pick(rng, NL_CITIES, [t[3] for t in NL_CITIES], len(idx))
            first = np.array([t[1] for t in NL_CITIES])[ci]
            last = np.array([t[2] for t in NL_CITIES])[ci]
            pc4 = first + (rng.random(len(idx)) * (last - first + 1)).astype(np.int64)
            pairs = np.array([a + b for a in NL_POSTCODE_LETTERS for b in NL_POSTCODE_LETTERS
                              if a + b not in ("SA", "SD", "SS")], dtype=object)
            postcode[idx] = _Y4[pc4] + pairs[rng.integers(0, len(pairs), size=len(idx))]
            city[idx] = _obj([t[0] for t in NL_CITIES])[ci]
        else:
            ci = _pick(rng, BE_CITIES, [t[2] for t in BE_CITIES], len(idx))
            k = (rng.random(len(idx)) * np.array([len(t[1]) for t in BE_CITIES])[ci]).astype(np.int64)
            codes = np.array([t[1][j] if j < len(t[1]) else 0 for t in BE_CITIES for j in range(13)]).reshape(-1, 13)
            postcode[idx] = _Y4[codes[ci, k]]
            city[idx] = _obj([t[0] for t in BE_CITIES])[ci]
    number = np.minimum(1 + rng.geometric(0.025, size=n), 400)
    suffix = _obj(["", "A", "B", "C", "a", "b", "hs", "bis", "1", "2"])[
        _pick(rng, range(10), [86, 4, 2, 1, 1.5, 1, 2, 1, 1, 0.5], n)]
    return Addresses(street, number, suffix, postcode, city)


@dataclass
class Population:
    n: int
    person_id: Arr
    household: np.ndarray
    country: np.ndarray  # 0 NL, 1 BE
    gender: np.ndarray  # 0 M, 1 F
    given: np.ndarray  # pool index
    family: np.ndarray  # pool index (married name for married women)
    maiden: np.ndarray  # pool index or -1
    birth: np.ndarray  # days since 1970
    addr: Addresses
    old_addr: Addresses
    moved: np.ndarray  # bool
    email: Arr
    old_email: Arr  # '' when the address never changed
    family_email: Arr  # '' when the household shares none
    phone: Arr  # national digits '0612345678' / '0471234567', '' when none


def _emails(rng: np.random.Generator, pools: Pools, pop_given: np.ndarray, pop_family: np.ndarray,
            birth: np.ndarray, country: np.ndarray) -> Arr:
    n = len(pop_given)
    g, f = pools.given_ascii[pop_given], pools.family_ascii[pop_family]
    yy = _D2[_ymd(birth)[0] % 100]
    initial = _obj([x[:1] for x in pools.given_ascii])[pop_given]
    pattern = _pick(rng, range(6), [30, 20, 15, 10, 15, 10], n)
    local = np.select(
        [pattern == 0, pattern == 1, pattern == 2, pattern == 3, pattern == 4],
        [g + "." + f, initial + "." + f, g + f, f + "." + g, g + yy],
        g + "_" + f,
    ).astype(object)
    nl = _obj([d for d, _ in NL_DOMAINS])[_pick(rng, NL_DOMAINS, [w for _, w in NL_DOMAINS], n)]
    be = _obj([d for d, _ in BE_DOMAINS])[_pick(rng, BE_DOMAINS, [w for _, w in BE_DOMAINS], n)]
    return local + "@" + np.where(country == 1, be, nl)


def _dedupe_emails(emails: Arr) -> Arr:
    """Make equal addresses distinct ('jan.smit@x' -> 'jan.smit2@x'); '' stays ''."""
    s = _s(emails)
    k = s.groupby(s, sort=False).cumcount().to_numpy()
    out = emails.copy()
    for i in np.flatnonzero((k > 0) & (emails != "")).tolist():
        local, domain = out[i].split("@", 1)
        out[i] = f"{local}{k[i] + 1}@{domain}"
    return out


def build_population(persons: int, seed: int, ref_day: int, pools: Pools) -> Population:
    rng = np.random.default_rng([seed, _S_POP])
    n = persons
    sizes = rng.choice([1, 2, 3, 4, 5], p=[0.5, 0.26, 0.12, 0.08, 0.04], size=n)
    ends = np.cumsum(sizes)
    h = int(np.searchsorted(ends, n)) + 1
    sizes = sizes[:h].copy()
    sizes[-1] -= int(ends[h - 1]) - n
    household = np.repeat(np.arange(h), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.arange(n) - np.repeat(starts, sizes)

    h_country = (rng.random(h) < 0.15).astype(np.int64)
    country = h_country[household]
    h_family = np.empty(h, dtype=np.int64)
    for c in (0, 1):
        idx = np.flatnonzero(h_country == c)
        lo, hi = pools.family_ranges[c]
        h_family[idx] = lo + rng.choice(hi - lo, size=len(idx), p=pools.family_w[c])
    h_addr = _addresses(rng, h_country, pools)

    gender = (rng.random(n) < 0.51).astype(np.int64)
    opposite = 1 - np.repeat(gender[starts], sizes)  # most partners are of the other gender than the head
    gender = np.where((rank == 1) & (rng.random(n) < 0.9), opposite, gender)
    given = np.empty(n, dtype=np.int64)
    own_family = np.empty(n, dtype=np.int64)
    for c in (0, 1):
        for g in (0, 1):
            idx = np.flatnonzero((country == c) & (gender == g))
            lo, hi = pools.given_ranges[(c, g)]
            given[idx] = lo + rng.choice(hi - lo, size=len(idx), p=pools.given_w[(c, g)])
        idx = np.flatnonzero(country == c)
        lo, hi = pools.family_ranges[c]
        own_family[idx] = lo + rng.choice(hi - lo, size=len(idx), p=pools.family_w[c])

    head_age = rng.uniform(24, 86, size=h)[household]
    partner_age = head_age + rng.normal(0, 3, size=n)
    child_age = head_age - rng.uniform(22, 36, size=n)
    adult_age = rng.uniform(16, 30, size=n)  # a grown child or a housemate, when the parent is too young
    age = np.select(
        [rank == 0, rank == 1],
        [head_age, np.where(partner_age < 19, adult_age + 3, partner_age)],
        np.where(child_age < 16, adult_age, child_age),
    )
    birth = ref_day - (age * 365.25).astype(np.int64)

    shares = np.where(rank == 0, True, np.where(rank == 1, rng.random(n) < 0.8, rng.random(n) < 0.97))
    family = np.where(shares, h_family[household], own_family)
    # Married women: married name at home, maiden name in some sources.
    married = (gender == 1) & (rank <= 1) & shares & (age > 27) & (rng.random(n) < 0.45)
    maiden = np.where(married, own_family, -1)

    addr = Addresses(*(getattr(h_addr, f)[household] for f in ("street", "number", "suffix", "postcode", "city")))
    moved = rng.random(n) < 0.12
    old_addr = _addresses(rng, country, pools)

    email = _emails(rng, pools, given, family, birth, country)
    changed = rng.random(n) < 0.2
    alt_family = np.where(maiden >= 0, maiden, family)
    old_email = np.where(changed, _emails(rng, pools, given, alt_family, birth, country), "").astype(object)
    h_shared = (sizes >= 2) & (rng.random(h) < 0.35)
    fam_local = np.where(rng.random(h) < 0.5, "fam." + pools.family_ascii[h_family],
                         pools.family_ascii[h_family] + _str_int(h_addr.number))
    fam_domain = _obj([d for d, _ in NL_DOMAINS])[_pick(rng, NL_DOMAINS, [w for _, w in NL_DOMAINS], h)]
    family_email = np.where(h_shared, fam_local + "@" + fam_domain, "").astype(object)[household]
    # One pass of de-duplication over all three kinds (a family address is shared on purpose).
    first_member = np.zeros(n, dtype=bool)
    first_member[starts] = True
    fam_first = np.where(first_member, family_email, "")
    allmail = _dedupe_emails(np.concatenate([email, old_email, fam_first]))
    email, old_email = allmail[:n], allmail[n: 2 * n]
    family_email = allmail[2 * n:][np.repeat(starts, sizes)]

    digits = _Y4[rng.integers(0, 10000, size=n)] + _Y4[rng.integers(0, 10000, size=n)]
    be_prefix = _obj(["047", "048", "049"])[rng.integers(0, 3, size=n)]
    phone = np.where(country == 1, be_prefix + _slice(digits, 1), "06" + digits)
    phone = np.where(rng.random(n) < 0.12, "", phone).astype(object)

    return Population(
        n=n, person_id=_ids("P", np.arange(1, n + 1), 8), household=household, country=country, gender=gender,
        given=given, family=family, maiden=maiden, birth=birth, addr=addr, old_addr=old_addr, moved=moved,
        email=email, old_email=old_email, family_email=family_email, phone=phone,
    )


# --- record views: one row per source record, values as the source would hold them ---------------


@dataclass
class View:
    person: np.ndarray  # population index per row
    given: Arr
    particle: Arr
    core: Arr
    email: Arr
    phone: Arr
    street: Arr
    number: np.ndarray
    suffix: Arr
    postcode: Arr
    city: Arr
    country: np.ndarray
    birth: np.ndarray


def _view(pop: Population, pools: Pools, person: np.ndarray, rng: np.random.Generator, *,
          p_maiden: float, p_old_addr: float, p_old_email: float, p_family_email: float) -> View:
    n = len(person)
    use_maiden = (pop.maiden[person] >= 0) & (rng.random(n) < p_maiden)
    fam = np.where(use_maiden, pop.maiden[person], pop.family[person])
    use_old = pop.moved[person] & (rng.random(n) < p_old_addr)
    a, o = pop.addr, pop.old_addr

    def addr(field: str) -> np.ndarray:
        return np.where(use_old, getattr(o, field)[person], getattr(a, field)[person])

    email = pop.email[person]
    old = pop.old_email[person]
    email = np.where((old != "") & (rng.random(n) < p_old_email), old, email)
    fam_mail = pop.family_email[person]
    email = np.where((fam_mail != "") & (rng.random(n) < p_family_email), fam_mail, email).astype(object)
    return View(
        person=person, given=pools.given[pop.given[person]], particle=pools.particle[fam], core=pools.core[fam],
        email=email, phone=pop.phone[person], street=addr("street").astype(object), number=addr("number"),
        suffix=addr("suffix").astype(object), postcode=addr("postcode").astype(object),
        city=addr("city").astype(object), country=pop.country[person], birth=pop.birth[person],
    )


def _fmt_phone(digits: Arr, country: np.ndarray, rng: np.random.Generator) -> Arr:
    """'06-12345678', '+31 6 1234 5678', '0612345678', '+31612345678', '06 12345678'; BE +32 forms."""
    s = _pa(digits)
    a1, a2, a3 = _slice(s, 1, 2), _slice(s, 2, 6), _slice(s, 6)
    b1, b2, b3, b4 = _slice(s, 1, 4), _slice(s, 4, 6), _slice(s, 6, 8), _slice(s, 8)
    rest = _slice(s, 1)
    style = _pick(rng, range(5), [30, 25, 15, 20, 10], len(digits))
    nl = np.select(
        [style == 0, style == 1, style == 2, style == 3],
        [digits, "0" + a1 + "-" + a2 + a3, "+31 " + a1 + " " + a2 + " " + a3, "+31" + rest],
        "0" + a1 + " " + a2 + a3,
    )
    be = np.select(
        [style == 0, style == 1, style == 2, style == 3],
        [digits, "+32 " + b1 + " " + b2 + " " + b3 + " " + b4, "0" + b1 + "/" + b2 + "." + b3 + "." + b4,
         "+32" + rest],
        "0032" + rest,
    )
    return np.where(digits == "", "", np.where(country == 1, be, nl)).astype(object)


def _fmt_postcode(pc: Arr, country: np.ndarray, rng: np.random.Generator) -> Arr:
    """'1234AB', '1234 AB', '1234 ab', '1234ab'; BE '2000'."""
    s = _pa(pc)
    num, let = _slice(s, 0, 4), _slice(s, 4)
    low = _lower(let)
    style = _pick(rng, range(4), [40, 45, 8, 7], len(pc))
    nl = np.select([style == 0, style == 1, style == 2], [num + let, num + " " + let, num + " " + low], num + low)
    return np.where(country == 1, pc, nl).astype(object)


def _fmt_house_number(number: np.ndarray, suffix: Arr, rng: np.random.Generator) -> Arr:
    """'12', '12A', '12-A', '12 a', '12 bis', '12 hs'."""
    num = _str_int(number)
    style = _pick(rng, range(4), [45, 30, 15, 10], len(number))
    lower = _map_unique(suffix, str.lower)
    letter_case = np.where(rng.random(len(number)) < 0.5, _map_unique(suffix, str.upper), lower)
    short = _map_unique(suffix, lambda x: len(x) <= 1).astype(bool)
    sep = np.select([style == 0, style == 1, style == 2], ["", "-", " "], "")
    sep = np.where(short, sep, " ")
    sfx = np.where(short & (style == 3), lower, np.where(short, letter_case, suffix))
    return np.where(suffix == "", num, num + sep + sfx).astype(object)


def _fmt_city(city: Arr, rng: np.random.Generator) -> Arr:
    n = len(city)
    variants = _map_unique(city, lambda c: CITY_VARIANTS.get(c, c))
    out = np.where(rng.random(n) < 0.25, variants, city)
    out = np.where(rng.random(n) < 0.05, _map_unique(out, str.upper), out)
    return _typos(out.astype(object), 0.01, rng)


def _full_name(given: Arr, particle: Arr, core: Arr, rng: np.random.Generator) -> Arr:
    """'Jan van der Berg', 'Berg, Jan van der', 'JAN VAN DER BERG', 'J. van der Berg', lower case."""
    family = _join_space(particle, core)
    plain = _join_space(given, family)
    style = _pick(rng, range(5), [62, 12, 8, 10, 8], len(given))
    initial = np.where(given != "", _slice(given, 0, 1) + ".", "")
    return np.select(
        [style == 0, style == 1, style == 2, style == 3],
        [plain, np.where(given != "", core + ", " + _join_space(given, particle), family), _upper(plain),
         _join_space(initial, family)],
        _lower(plain),
    ).astype(object)


def _membership(rng: np.random.Generator, n: int, share: float, dup_rate: float,
                forced: np.ndarray | None = None) -> np.ndarray:
    """Population indexes of a source's records: about ``share`` of persons, some twice (duplicates)."""
    member = rng.random(n) < share
    if forced is not None:
        member |= forced
    base = np.flatnonzero(member)
    dups = base[rng.random(len(base)) < dup_rate]
    return np.concatenate([base, dups])


def _created(rng: np.random.Generator, n: int, ref_day: int, max_age_days: int) -> np.ndarray:
    """Creation timestamps (seconds), skewed to recent years."""
    age = (max_age_days * rng.random(n) ** 1.6).astype(np.int64) + 1
    return (ref_day - age) * 86400 + rng.integers(7 * 3600, 23 * 3600, size=n)


def _updated(rng: np.random.Generator, created: np.ndarray, ref_day: int) -> np.ndarray:
    span = ref_day * 86400 - created
    return created + (rng.random(len(created)) ** 2 * span).astype(np.int64)


def _order(created: np.ndarray, person: np.ndarray) -> np.ndarray:
    return np.lexsort((person, created))


# --- writers -----------------------------------------------------------------------------------


def _csv_field(values: Arr, delimiter: str) -> pa.Array:
    a = _pa(values)
    needs = pc.match_substring_regex(a, '[' + ("\\\\" if delimiter == "\\" else delimiter) + '"\\n]')
    if not pc.any(needs).as_py():
        return a
    quoted = _join('"', pc.replace_substring(a, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, a)


def _csv_lines(columns: dict[str, Arr], delimiter: str) -> pa.Array:
    """Newline-terminated CSV lines (quoted where a value needs it), built in Arrow."""
    parts = [_csv_field(v, delimiter) for v in columns.values()]
    return _join(_join(*parts, delimiter), "\n", "")


def _ndjson_lines(columns: dict[str, Arr], raw: Sequence[str] = (), optional: Sequence[str] = ()) -> pa.Array:
    """Newline-terminated JSON objects built by string concatenation in Arrow (fast).

    '' is null, or an absent key for the ``optional`` columns; ``raw`` columns hold JSON literals
    (true/false). Keys are fixed identifiers; values are escaped for backslash and quote (the
    generator makes no control characters)."""
    frags = []
    for i, (key, values) in enumerate(columns.items()):
        a = _pa(values)
        empty = pc.equal(a, "")
        if key in raw:
            enc = a
        else:
            esc = pc.replace_substring(pc.replace_substring(a, "\\", "\\\\"), '"', '\\"')
            enc = pc.if_else(empty, _L("null"), _join('"', esc, '"', ""))
        frag = _join(("{" if i == 0 else ",") + json.dumps(key) + ":", enc, "")
        if key in optional:
            frag = pc.if_else(empty, _L("{" if i == 0 else ""), frag)
        frags.append(frag)
    return _join(*frags, "}\n", "")


def _text_bytes(lines: pa.Array) -> bytes:
    """The concatenated values of a string array, straight from its data buffer."""
    lines = pa.concat_arrays([lines]) if lines.offset else lines
    if len(lines) == 0:
        return b""
    width = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    offsets = np.frombuffer(lines.buffers()[1], dtype=width, count=len(lines) + 1)
    return lines.buffers()[2].to_pybytes()[int(offsets[0]): int(offsets[-1])]


class Writer:
    """Writes each file's rows into ``batches`` part files; records relative path -> rows."""

    def __init__(self, out: str, batches: int) -> None:
        self.out = out
        self.batches = batches
        self.files: dict[str, int] = {}

    def path(self, folder: str, stem: str, ext: str, b: int, batch_stem: str | None = None) -> str:
        if self.batches == 1:
            return f"{folder}/{stem}.{ext}"
        return f"batch_{b + 1}/{folder}/{batch_stem or stem}_part{b + 1}of{self.batches}.{ext}"

    def _full(self, rel: str) -> str:
        full = os.path.join(self.out, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        return full

    def text(self, folder: str, stem: str, ext: str, header: str | None, lines: pa.Array, batch: np.ndarray,
             encoding: str = "utf-8", batch_stem: str | None = None) -> None:
        for b in range(self.batches):
            rel = self.path(folder, stem, ext, b, batch_stem)
            chunk = lines.filter(pa.array(batch == b))
            body = (header + "\n").encode("utf-8") if header is not None else b""
            body += _text_bytes(chunk)
            if encoding != "utf-8":
                body = body.decode("utf-8").encode(encoding)
            with open(self._full(rel), "wb") as fh:
                fh.write(body)
            self.files[rel] = len(chunk)

    def parquet(self, folder: str, stem: str, columns: dict[str, Arr], batch: np.ndarray) -> None:
        import pyarrow.parquet as pq

        for b in range(self.batches):
            rel = self.path(folder, stem, "parquet", b)
            sel = pa.array(batch == b)
            cols = {}
            for k, v in columns.items():
                a = _pa(v).filter(sel)
                cols[k] = pc.if_else(pc.equal(a, ""), pa.scalar(None, pa.large_string()), a).cast(pa.string())
            table = pa.table(cols)
            pq.write_table(table, self._full(rel), compression="snappy")
            self.files[rel] = int(table.num_rows)


# Every file of every source (person records by creation time, events by event time) is cut into
# deliveries on ONE time line: batch 1 is the initial load (everything before the last
# DELIVERY_WINDOW_DAYS plus the first slice of it), batch i the i-th slice. A person's older
# records and events therefore always arrive before newer ones, whichever source they are in,
# as nightly exports deliver them.
DELIVERY_WINDOW_DAYS = 730


def _delivery(seconds: np.ndarray, ref_day: int, batches: int) -> np.ndarray:
    """The delivery (batch) of rows created or happening at ``seconds`` (since 1970)."""
    lo = max(0, ref_day - DELIVERY_WINDOW_DAYS) * 86400
    return _batch_by_time(seconds, lo, ref_day * 86400, batches)


def _batch_by_time(seconds: np.ndarray, lo: int, hi: int, batches: int) -> np.ndarray:
    return np.clip(((seconds - lo) * batches) // max(hi - lo, 1), 0, batches - 1)


def _with_broken(lines: pa.Array, batch: np.ndarray, broken: list[str],
                 rng: np.random.Generator) -> tuple[pa.Array, np.ndarray]:
    """Insert unreadable lines at random places (they take the batch of the row they follow)."""
    n = len(lines)
    if not broken or n == 0:
        return lines, batch
    pos = np.sort(rng.integers(0, n + 1, size=len(broken)))
    order = np.insert(np.arange(n), pos, n + np.arange(len(broken)))
    extra = pa.array([b + "\n" for b in broken], type=lines.type)
    return (pa.concat_arrays([lines, extra]).take(pa.array(order)),
            np.insert(batch, pos, batch[np.minimum(pos, n - 1)]))


def _broken_csv(lines: pa.Array, delimiter: str, count: int, rng: np.random.Generator) -> list[str]:
    """Damaged copies of real rows: one column too many, or an unterminated quote."""
    if len(lines) == 0:
        return []
    picks = rng.integers(0, len(lines), size=count)
    out = []
    for k, i in enumerate(picks.tolist()):
        fields = lines[i].as_py().rstrip("\n").split(delimiter)
        if k % 2 == 0:
            out.append(delimiter.join(fields + ["extra"]))
        else:
            fields[1] = '"' + fields[1].replace('"', "")
            out.append(delimiter.join(fields))
    return out


# --- sources -----------------------------------------------------------------------------------

CRM_COLUMNS = ("klantnummer", "aanhef", "voornaam", "tussenvoegsel", "achternaam", "geboortedatum", "geslacht",
               "email", "telefoon", "straat", "huisnummer", "postcode", "woonplaats", "land", "opt_in_post",
               "bedrijf", "functie", "aangemaakt", "gewijzigd")


@dataclass
class Ctx:
    seed: int
    ref_day: int
    pop: Population
    pools: Pools
    writer: Writer
    truth: list[pd.DataFrame]
    crm_number: np.ndarray  # per person: primary CRM klantnummer (int) or 0
    shop_number: np.ndarray  # per person: webshop customer_number (int) or 0

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream])

    def add_truth(self, source: str, ids: Arr, person: np.ndarray) -> None:
        self.truth.append(pd.DataFrame({"source": source, "source_id": ids, "person_id": self.pop.person_id[person]}))


def _write_crm(c: Ctx, person: np.ndarray) -> None:
    rng = c.rng(_S_CRM)
    pop = c.pop
    created = _created(rng, len(person), c.ref_day, 3650)
    order = _order(created, person)
    person, created = person[order], created[order]
    n = len(person)
    number = 1_000_001 + np.arange(n)
    oldest = ~pd.Series(person).duplicated().to_numpy()  # a person's oldest record holds the primary number
    c.crm_number[person[oldest]] = number[oldest]
    v = _view(pop, c.pools, person, rng, p_maiden=0.3, p_old_addr=0.6, p_old_email=0.5, p_family_email=0.5)
    g = pop.gender[person]

    given, particle, core = v.given, v.particle, v.core
    given = _typos(given, 0.02, rng)
    core = _typos(core, 0.02, rng)
    initials = rng.random(n) < 0.05
    given = np.where(initials, _slice(given, 0, 1) + ".", given).astype(object)
    particle_in_family = (particle != "") & (rng.random(n) < 0.15)
    achternaam = np.where(particle_in_family, _join_space(particle, core), core)
    particle = np.where(particle_in_family, "", particle)
    achternaam = np.where(rng.random(n) < 0.02, _upper(achternaam), achternaam).astype(object)
    swap = rng.random(n) < 0.01
    given, achternaam = np.where(swap, achternaam, given), np.where(swap, given, achternaam)
    full = rng.random(n) < 0.01  # whole name typed in one field
    achternaam = np.where(full, _join_space(given, _join_space(particle, achternaam)), achternaam)
    given = np.where(full, "", given).astype(object)
    particle = np.where(full, "", particle).astype(object)
    achternaam = _placeholder(achternaam.astype(object), 0.003, _obj(["onbekend"]), rng)

    titles_m = _obj(["dhr.", "de heer", "", "dr.", "ir.", "ing.", "Dhr"])
    titles_f = _obj(["mevr.", "mw.", "", "dr.", "ir.", "Mevrouw", "mevrouw"])
    tm = titles_m[_pick(rng, range(7), [55, 8, 22, 4, 4, 4, 3], n)]
    tf = titles_f[_pick(rng, range(7), [40, 22, 22, 4, 3, 5, 4], n)]
    aanhef = np.where(g == 1, tf, tm).astype(object)
    gstyle = _pick(rng, range(4), [60, 15, 23, 2], n)
    geslacht = np.select([gstyle == 0, gstyle == 1, gstyle == 2],
                         [np.where(g == 1, "V", "M"), np.where(g == 1, "vrouw", "man"), ""], "O").astype(object)
    birth = _fmt_date(v.birth, _pick(rng, range(4), [40, 35, 10, 15], n))
    birth = _blank(_placeholder(birth, 0.005, _obj(["01-01-1900", "1900-01-01"]), rng), 0.08, rng)
    email = np.where(rng.random(n) < 0.02, _np(pc.utf8_title(_pa(v.email))), v.email).astype(object)
    email = _blank(_placeholder(email, 0.005, PLACEHOLDER_EMAILS, rng), 0.1, rng)
    phone = _blank(_placeholder(_fmt_phone(v.phone, v.country, rng), 0.005, PLACEHOLDER_PHONES, rng), 0.15, rng)
    street = _placeholder(_blank(_typos(v.street, 0.01, rng), 0.02, rng), 0.003, _obj(["onbekend"]), rng)
    huisnummer = _fmt_house_number(v.number, v.suffix, rng)
    in_street = rng.random(n) < 0.02  # number typed into the street field
    street = np.where(in_street & (street != ""), street + " " + huisnummer, street).astype(object)
    huisnummer = np.where(in_street, "", huisnummer).astype(object)
    postcode = _blank(_fmt_postcode(v.postcode, v.country, rng), 0.02, rng)
    city = _placeholder(_blank(_fmt_city(v.city, rng), 0.02, rng), 0.003, _obj(["onbekend"]), rng)
    lstyle = _pick(rng, range(4), [60, 22, 3, 15], n)
    land = np.select([lstyle == 0, lstyle == 1, lstyle == 2],
                     [np.where(v.country == 1, "BE", "NL"), np.where(v.country == 1, "België", "Nederland"),
                      np.where(v.country == 1, "Belgie", "Holland")], "").astype(object)
    opt = _obj(["ja", "nee", "J", "N", "1", "0", ""])[_pick(rng, range(7), [25, 25, 10, 10, 10, 10, 10], n)]
    has_company = rng.random(n) < 0.08
    bedrijf = np.where(has_company, c.pools.companies[rng.integers(0, len(c.pools.companies), size=n)], "")
    functie = np.where(has_company & (rng.random(n) < 0.7), _obj(JOB_TITLES)[rng.integers(0, len(JOB_TITLES), size=n)], "")
    updated = _updated(rng, created, c.ref_day)
    cstyle = rng.random(n) < 0.6
    aangemaakt = np.where(cstyle, _fmt_ts(created, "sql"), _fmt_date(created // 86400, 1)).astype(object)
    gewijzigd = np.where(cstyle, _fmt_ts(updated, "sql"), _fmt_date(updated // 86400, 1)).astype(object)

    klantnummer = _str_int(number)
    cols = dict(zip(CRM_COLUMNS, (klantnummer, aanhef, given, particle, achternaam, birth, geslacht, email, phone,
                                  street, huisnummer, postcode, city, land, opt, bedrijf.astype(object),
                                  functie.astype(object), aangemaakt, gewijzigd)))
    lines = _csv_lines(cols, ";")
    batch = _delivery(created, c.ref_day, c.writer.batches)
    latin = rng.random(n) < 0.35
    header = ";".join(CRM_COLUMNS)
    broken = max(2, n // 2000)
    for stem, sel, enc in (("crm_export_utf8", ~latin, "utf-8"), ("crm_export_latin1", latin, "latin-1")):
        part = lines.filter(pa.array(sel))
        lines_f, batch_f = _with_broken(part, batch[sel], _broken_csv(part, ";", broken, rng), rng)
        c.writer.text("crm", stem, "csv", header, lines_f, batch_f, encoding=enc)
    c.add_truth("crm", klantnummer, person)


def _write_webshop(c: Ctx, person: np.ndarray) -> None:
    rng = c.rng(_S_SHOP)
    pop = c.pop
    created = _created(rng, len(person), c.ref_day, 2900)
    order = _order(created, person)
    person, created = person[order], created[order]
    n = len(person)
    first = ~pd.Series(person).duplicated().to_numpy()
    crm = c.crm_number[person]
    own = 90_000_001 + np.arange(n)  # webshop-issued numbers, never a CRM number
    share = (crm > 0) & (rng.random(n) < 0.85)
    cust_no = np.where(share, crm, own)
    cust_no_s = np.where(~first & (rng.random(n) < 0.5), "", _str_int(cust_no)).astype(object)
    primary_no = np.zeros(pop.n, dtype=np.int64)
    primary_no[person[first]] = cust_no[first]
    c.shop_number[:] = primary_no
    v = _view(pop, c.pools, person, rng, p_maiden=0.5, p_old_addr=0.2, p_old_email=0.25, p_family_email=0.3)
    email = np.where(~first & (pop.old_email[person] != ""), pop.old_email[person], v.email).astype(object)
    email = _placeholder(_typos(email, 0.005, rng), 0.003, PLACEHOLDER_EMAILS, rng)
    given = _typos(v.given, 0.015, rng)
    core = _typos(v.core, 0.015, rng)
    name = _full_name(given, v.particle, core, rng)
    phone = _blank(_placeholder(_fmt_phone(v.phone, v.country, rng), 0.005, PLACEHOLDER_PHONES, rng), 0.3, rng)
    birth = _blank(_fmt_date(v.birth, np.where(rng.random(n) < 0.85, 0, 1)), 0.35, rng)
    street = _blank(_typos(v.street, 0.01, rng), 0.03, rng)
    house = _blank(_fmt_house_number(v.number, v.suffix, rng), 0.03, rng)
    zip_ = _blank(_fmt_postcode(v.postcode, v.country, rng), 0.03, rng)
    city = _blank(_fmt_city(v.city, rng), 0.03, rng)
    cstyle = _pick(rng, range(3), [75, 15, 10], n)
    country = np.select([cstyle == 0, cstyle == 1], [np.where(v.country == 1, "BE", "NL"),
                        np.where(v.country == 1, "Belgium", "Netherlands")], "").astype(object)
    newsletter = rng.random(n) < 0.45
    nl_at = created + (rng.random(n) * (c.ref_day * 86400 - created)).astype(np.int64)
    newsletter_at = np.where(newsletter, _fmt_ts(nl_at), "").astype(object)
    pet = rng.random(n) < 0.35
    species = np.where(pet, _obj(["hond", "kat", "konijn"])[_pick(rng, range(3), [50, 40, 10], n)], "").astype(object)
    pet_name = np.where(pet, _obj(PET_NAMES)[rng.integers(0, len(PET_NAMES), size=n)], "").astype(object)
    updated = _updated(rng, created, c.ref_day)
    utm = np.where(rng.random(n) < 0.02, _obj(["google", "facebook", "nieuwsbrief"])[rng.integers(0, 3, size=n)], "")
    customer_id = _ids("WS", np.arange(1, n + 1), 7)
    cols = {
        "customer_id": customer_id, "customer_number": cust_no_s, "name": name, "email": _blank(email, 0.01, rng),
        "phone": phone, "birth_date": birth, "street": street, "house_number": house, "zip": zip_, "city": city,
        "country": country, "newsletter": np.where(newsletter, "true", "false").astype(object),
        "newsletter_at": newsletter_at, "pet_name": pet_name, "pet_species": species,
        "created_at": _fmt_ts(created), "updated_at": _fmt_ts(updated), "utm_source": utm.astype(object),
    }
    lines = _ndjson_lines(cols, raw=("newsletter",), optional=("pet_name", "pet_species", "utm_source"))
    c.writer.text("webshop", "customers", "ndjson", None, lines, _delivery(created, c.ref_day, c.writer.batches))
    c.add_truth("webshop_customers", customer_id, person)

    # Orders: a few per account, within the last two years.
    rng = c.rng(_S_ORD)
    row, at = _event_times(rng, created, c.ref_day, 2.5)
    m = len(row)
    total = np.round(np.exp(rng.normal(3.6, 0.7, size=m)), 1) - 0.05
    ocols = {
        "order_id": _ids("O", np.arange(1, m + 1), 9), "customer_id": customer_id[row],
        "customer_number": cust_no_s[row], "email": np.where(rng.random(m) < 0.9, email[row], "").astype(object),
        "ordered_at": _fmt_ts(at), "total": _money(np.maximum(total, 1.95)),
        "currency": _full(m, "EUR"),
    }
    olines = _ndjson_lines(ocols)
    c.writer.text("webshop", "orders", "ndjson", None, olines, _delivery(at, c.ref_day, c.writer.batches))


def _write_pos(c: Ctx, person: np.ndarray) -> None:
    rng = c.rng(_S_POS)
    pop = c.pop
    created = _created(rng, len(person), c.ref_day, 4000)
    order = _order(created, person)
    person, created = person[order], created[order]
    n = len(person)
    v = _view(pop, c.pools, person, rng, p_maiden=0.5, p_old_addr=0.7, p_old_email=0.6, p_family_email=0.4)
    card = _ids("2600", np.arange(100_001, 100_001 + n), 9)
    given = _typos(v.given, 0.03, rng)
    last = _typos(_join_space(v.particle, v.core), 0.03, rng)
    last = np.where(rng.random(n) < 0.05, _upper(last), last).astype(object)
    swap = rng.random(n) < 0.015
    given, last = np.where(swap, last, given).astype(object), np.where(swap, given, last).astype(object)
    cols = {
        "card_number": card, "first_name": _blank(given, 0.05, rng), "last_name": last,
        "postcode": _blank(_fmt_postcode(v.postcode, v.country, rng), 0.05, rng),
        "house_number": _blank(_fmt_house_number(v.number, v.suffix, rng), 0.07, rng),
        "birth_date": _blank(_fmt_date(v.birth, np.where(rng.random(n) < 0.8, 1, 0)), 0.2, rng),
        "phone": _blank(_placeholder(_fmt_phone(v.phone, v.country, rng), 0.01, PLACEHOLDER_PHONES, rng), 0.25, rng),
        "email": _blank(_placeholder(v.email, 0.01, PLACEHOLDER_EMAILS, rng), 0.3, rng),
        "registered_at": _fmt_date(created // 86400, 0),
    }
    c.writer.parquet("pos", "members", cols, _delivery(created, c.ref_day, c.writer.batches))
    c.add_truth("pos_members", card, person)

    rng = c.rng(_S_REC)
    row, at = _event_times(rng, created, c.ref_day, 5.0)
    m = len(row)
    amount = np.round(np.exp(rng.normal(3.0, 0.8, size=m)), 2)
    rcols = {
        "receipt_id": _ids("R", np.arange(1, m + 1), 10), "card_number": card[row],
        "store_id": _ids("S", rng.integers(1, 121, size=m), 3), "purchased_at": _fmt_ts(at, "sql"),
        "amount": _money(amount),
    }
    c.writer.parquet("pos", "receipts", rcols, _delivery(at, c.ref_day, c.writer.batches))


def _write_email(c: Ctx, person: np.ndarray) -> None:
    rng = c.rng(_S_MAIL)
    pop = c.pop
    created = _created(rng, len(person), c.ref_day, 2500)
    order = _order(created, person)
    person, created = person[order], created[order]
    n = len(person)
    dup = pd.Series(person).duplicated().to_numpy()
    v = _view(pop, c.pools, person, rng, p_maiden=0.4, p_old_addr=0.0, p_old_email=0.3, p_family_email=0.35)
    email = np.where(dup & (pop.old_email[person] != ""), pop.old_email[person], v.email).astype(object)
    email = np.where(dup & (email == v.email), _upper(email), email).astype(object)
    email = _placeholder(_typos(email, 0.005, rng), 0.004, PLACEHOLDER_EMAILS, rng)
    sub_id = _ids("SUB", np.arange(1, n + 1), 8)
    opt_in = rng.random(n) < 0.8
    ostyle = _pick(rng, range(3), [60, 25, 15], n)
    opt_s = np.select([ostyle == 0, ostyle == 1], [np.where(opt_in, "true", "false"), np.where(opt_in, "1", "0")],
                      np.where(opt_in, "yes", "no")).astype(object)
    sms = rng.random(n) < 0.2
    cols = {
        "subscriber_id": sub_id, "email": email,
        "first_name": _blank(_typos(v.given, 0.01, rng), 0.3, rng),
        "last_name": _blank(_typos(_join_space(v.particle, v.core), 0.01, rng), 0.4, rng),
        "opt_in": opt_s, "opt_in_at": np.where(opt_in, _fmt_ts(created, "sql"), "").astype(object),
        "subscribed_at": _fmt_ts(created, "sql"),
        "sms_opt_in": np.where(sms, "true", "false").astype(object),
        "phone": np.where(sms | (rng.random(n) < 0.1), _fmt_phone(v.phone, v.country, rng), "").astype(object),
    }
    lines = _csv_lines(cols, ",")
    batch = _delivery(created, c.ref_day, c.writer.batches)
    lines_f, batch_f = _with_broken(lines, batch, _broken_csv(lines, ",", max(2, n // 3000), rng), rng)
    c.writer.text("email", "subscribers", "csv", ",".join(cols), lines_f, batch_f)
    c.add_truth("email_subscribers", sub_id, person)

    rng = c.rng(_S_MEV)
    k = np.where(opt_in, rng.poisson(3.0, size=n), 0)
    row = np.repeat(np.arange(n), k)
    lo = max(0, c.ref_day - 365) * 86400
    start = np.maximum(created[row], lo)
    at = start + (rng.random(len(row)) * (c.ref_day * 86400 - start)).astype(np.int64)
    o = np.lexsort((row, at))
    row, at = row[o], at[o]
    m = len(row)
    click = rng.random(m) < 0.25
    month = _ymd(at // 86400)
    campaign = "NB-" + _Y4[month[0]] + "-" + _D2[month[1]]
    url = np.where(click, WEB_HOST + _obj(WEB_PATHS)[rng.integers(0, len(WEB_PATHS), size=m)] +
                   "?utm_source=email&utm_campaign=" + campaign, "").astype(object)
    ecols = {
        "event_id": _ids("EV", np.arange(1, m + 1), 9), "subscriber_id": sub_id[row], "email": email[row],
        "event_type": np.where(click, "click", "open").astype(object), "event_at": _fmt_ts(at, "sql"),
        "campaign_id": campaign.astype(object), "url": url,
    }
    elines = _csv_lines(ecols, ",")
    ebatch = _delivery(at, c.ref_day, c.writer.batches)
    c.writer.text("email", "events", "csv", ",".join(ecols), elines, ebatch)


def _cookie_ids(rng: np.random.Generator, serial: np.ndarray, first_seen: np.ndarray) -> Arr:
    """Google-Analytics-like ids 'GA1.2.<9 digits>.<epoch>'; a bijection of the serial keeps them unique."""
    mixed = (serial * 387_420_489 + int(rng.integers(0, 10**9))) % 1_000_000_000
    return _ids("GA1.2.", mixed, 9) + "." + _str_int(first_seen)


def _write_web(c: Ctx, person_in: np.ndarray) -> None:
    rng = c.rng(_S_WEB)
    pop = c.pop
    # Person cookies: one or two per person in the web population; then anonymous visitors.
    two = rng.random(len(person_in)) < 0.25
    owner = np.concatenate([person_in, person_in[two]])
    second = np.concatenate([np.zeros(len(person_in), bool), np.ones(int(two.sum()), bool)])
    anon = int(len(owner) * 1.2) + 5
    owner = np.concatenate([owner, np.full(anon, -1)])
    second = np.concatenate([second, np.zeros(anon, bool)])
    nc = len(owner)
    known = owner >= 0
    number = np.where(known, np.where(c.crm_number[np.maximum(owner, 0)] > 0, c.crm_number[np.maximum(owner, 0)],
                                      c.shop_number[np.maximum(owner, 0)]), 0)
    login = known & (number > 0) & (rng.random(nc) < np.where(second, 0.45, 0.6))
    lo = max(0, c.ref_day - 730) * 86400
    hi = c.ref_day * 86400
    first_seen = lo + (rng.random(nc) * (hi - lo) * 0.9).astype(np.int64)
    cookie = _cookie_ids(rng, np.arange(nc), first_seen)
    device_serial = np.arange(nc)
    # A second cookie on the same device (cookies cleared) shares the first cookie's device id.
    idx_second = np.flatnonzero(second)
    first_of = np.flatnonzero(two)  # first cookies of persons with two, same order as idx_second
    same_device = rng.random(len(idx_second)) < 0.5
    device_serial[idx_second[same_device]] = first_of[same_device]
    device = _ids("dev-", (device_serial * 2_654_435_761 + 97) % 10**12, 12)
    linked = login.copy()
    linked[idx_second[same_device]] |= login[first_of[same_device]]
    c.add_truth("web", cookie[linked], owner[linked])

    k = 1 + rng.poisson(np.where(known, 3.0, 1.5), size=nc)
    row = np.repeat(np.arange(nc), k)
    gaps = rng.exponential(3 * 86400, size=len(row))
    starts = np.concatenate([[0], np.cumsum(k)[:-1]])
    cum = np.cumsum(gaps)
    at = first_seen[row] + (cum - np.repeat(cum[starts] - gaps[starts], k)).astype(np.int64)
    at = np.minimum(at, hi - 1)
    m = len(row)
    seq = np.arange(m) - np.repeat(starts, k)
    login_at = (rng.random(nc) * k).astype(np.int64)
    is_login = login[row] & (seq == login_at[row])
    o = np.lexsort((np.arange(m), at))
    row, at, is_login = row[o], at[o], is_login[o]
    url = np.where(is_login, WEB_HOST + "/inloggen", WEB_HOST + _obj(WEB_PATHS)[rng.integers(0, len(WEB_PATHS), size=m)])
    cols = {
        "event_id": _ids("WE", np.arange(1, m + 1), 10), "cookie_id": cookie[row], "device_id": device[row],
        "event_type": np.where(is_login, "login", "page_view").astype(object), "event_at": _fmt_ts(at),
        "url": url.astype(object),
        "customer_number": np.where(is_login, _str_int(number[row]), "").astype(object),
    }
    lines = _ndjson_lines(cols, optional=("customer_number",))
    c.writer.text("web", "events_001", "ndjson", None, lines, _delivery(at, c.ref_day, c.writer.batches),
                  batch_stem="events")

    # A small file with malformed lines among good ones (anonymous visitors, not in the ground truth).
    good = 12
    bad_cookie = _cookie_ids(rng, np.arange(nc, nc + good), np.full(good, hi - 86400))
    bcols = {
        "event_id": _ids("WX", np.arange(1, good + 1), 10), "cookie_id": bad_cookie,
        "device_id": _obj(["dev-broken-%02d" % i for i in range(good)]), "event_type": _full(good, "page_view"),
        "event_at": _fmt_ts(np.full(good, hi - 3600) + np.arange(good)), "url": _full(good, WEB_HOST + "/"),
    }
    blines = [ln.rstrip("\n") for ln in _ndjson_lines(bcols).to_pylist()]
    blines.insert(3, '{"event_id": "WX-BAD-1", "cookie_id": "GA1.2.1.1", "event_type": "page_view"')
    blines.insert(7, "{'event_id': 'WX-BAD-2', 'cookie_id': 'GA1.2.2.2'}")
    blines.insert(10, '{"event_id": "WX-BAD-3", "url": "' + WEB_HOST + '/"} trailing')
    rel = "web/events_broken.ndjson" if c.writer.batches == 1 else "batch_1/web/events_broken.ndjson"
    full = os.path.join(c.writer.out, rel)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8", newline="") as fh:
        fh.write("\n".join(blines) + "\n")
    c.writer.files[rel] = len(blines)


def _remove_previous(out: str) -> None:
    """Delete the files a previous run listed in its manifest (never anything else)."""
    path = os.path.join(out, MANIFEST)
    if not os.path.exists(path):
        return
    try:
        with open(path, encoding="utf-8") as fh:
            previous = json.load(fh)
    except (OSError, ValueError):
        return
    if previous.get("generator") != "jobs.ingest.generate":
        return
    root = os.path.realpath(out)
    for rel in [*previous.get("files", {}), *previous.get("ground_truth", {})]:
        full = os.path.realpath(os.path.join(out, rel))
        if full.startswith(root + os.sep) and os.path.isfile(full):
            os.remove(full)


def generate_sample_data(persons: int, seed: int, out: str, batches: int = 1, start: date | None = None) -> dict:
    """Write a synthetic population of Dutch and Belgian customers in five sources, with ground truth.

    Layout under ``out`` (matching ``conf/sources/*.yaml`` with ``data.root = out``)::

        crm/crm_export_utf8.csv, crm/crm_export_latin1.csv      ; CSV, utf-8 and latin-1
        webshop/customers.ndjson, webshop/orders.ndjson
        pos/members.parquet, pos/receipts.parquet
        email/subscribers.csv, email/events.csv
        web/events_001.ndjson, web/events_broken.ndjson          (3 malformed lines)
        ground_truth/records.csv    source,source_id,person_id  (source = crm, webshop_customers,
                                    pos_members, email_subscribers, web; web rows are cookies that
                                    log in, or share a device with a cookie of the same person that does)
        ground_truth/households.csv person_id,household_id       (every person; size 1 = living alone)
        manifest.json               persons, seed, start, batches, version, rows per file

    With ``batches = K > 1`` every source's rows are split into K parts, written as
    ``out/batch_<i>/<source dir>/<stem>_part<i>of<K>.<ext>`` (e.g. ``batch_2/crm/crm_export_utf8_part2of5.csv``,
    web: ``batch_2/web/events_part2of5.ndjson``). Person records go in creation order, events by
    time, so batch i holds newer data than batch i-1. To simulate deliveries, copy ``out/batch_i/*``
    into the data root one batch after another, ingesting after each; the ground truth and the
    manifest stay at ``out/`` and cover all batches. The rows of the K parts together are exactly
    the rows of the single-batch output for the same persons and seed.

    Deterministic: same ``persons``, ``seed``, ``batches`` and ``start`` give byte-identical files
    (``start`` is the reference "today", default 2026-11-01). Files listed in a previous
    ``out/manifest.json`` of this generator are removed first, so stale parts never linger.
    Broken CSV rows and malformed JSON lines are extra lines (damaged copies), not in the ground truth.

    Returns ``{"persons": n, "seed": .., "batches": .., "files": {relative path: data lines (CSV without the
    header; deliberately broken lines included)}, "seconds": wall time}``.
    """
    if not isinstance(persons, int) or persons < 1:
        raise ConfigError([f"generate: persons: got {persons!r}; expected an integer >= 1"])
    if not isinstance(batches, int) or batches < 1:
        raise ConfigError([f"generate: batches: got {batches!r}; expected an integer >= 1"])
    t0 = time.monotonic()
    ref = start or DEFAULT_START
    ref_day = (ref - date(1970, 1, 1)).days
    os.makedirs(out, exist_ok=True)
    _remove_previous(out)

    pools = build_pools(seed)
    pop = build_population(persons, seed, ref_day, pools)
    log.info("generate: %s persons in %s households", pop.n, int(pop.household.max()) + 1)
    writer = Writer(out, batches)
    ctx = Ctx(seed, ref_day, pop, pools, writer, [], np.zeros(pop.n, np.int64), np.zeros(pop.n, np.int64))
    mrng = np.random.default_rng([seed, _S_POOL])
    n = pop.n
    shop = _membership(mrng, n, 0.5, 0.04)
    pos = _membership(mrng, n, 0.35, 0.02)
    mail = _membership(mrng, n, 0.4, 0.03)
    web = np.flatnonzero(mrng.random(n) < 0.4)
    elsewhere = np.zeros(n, bool)
    elsewhere[np.concatenate([shop, pos, mail])] = True
    crm = _membership(mrng, n, 0.7, 0.03, forced=~elsewhere)  # everyone is somewhere
    for name, fn, members in (("crm", _write_crm, crm), ("webshop", _write_webshop, shop), ("pos", _write_pos, pos),
                              ("email", _write_email, mail), ("web", _write_web, web)):
        t = time.monotonic()
        fn(ctx, members)
        log.info("generate: %s written in %.1fs", name, time.monotonic() - t)

    gt_dir = os.path.join(out, GROUND_TRUTH_DIR)
    os.makedirs(gt_dir, exist_ok=True)
    truth = pd.concat(ctx.truth, ignore_index=True)
    truth.to_csv(os.path.join(gt_dir, "records.csv"), index=False, lineterminator="\n")
    households = pd.DataFrame({"person_id": pop.person_id, "household_id": _ids("H", pop.household + 1, 8)})
    households.to_csv(os.path.join(gt_dir, "households.csv"), index=False, lineterminator="\n")
    gt_files = {f"{GROUND_TRUTH_DIR}/records.csv": len(truth), f"{GROUND_TRUTH_DIR}/households.csv": len(households)}
    manifest = {
        "generator": "jobs.ingest.generate", "version": GENERATOR_VERSION, "persons": persons, "seed": seed,
        "start": ref.isoformat(), "batches": batches, "files": dict(sorted(writer.files.items())),
        "ground_truth": gt_files,
        "records_per_source": {str(k): int(v) for k, v in truth["source"].value_counts().sort_index().items()},
    }
    with open(os.path.join(out, MANIFEST), "w", encoding="utf-8", newline="") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=False)
        fh.write("\n")
    seconds = round(time.monotonic() - t0, 2)
    log.info("generate: done in %.1fs", seconds)
    return {"persons": persons, "seed": seed, "batches": batches, "files": {**manifest["files"], **gt_files},
            "seconds": seconds}
