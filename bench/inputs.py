"""The input table Splink gets, per dataset: one row per record, ``unique_id`` = ``source:source_id``.

FEBRL
    The same CSV files our pipeline ingests, prepared as Splink's own FEBRL examples do it: trim
    date of birth, social security id and postcode, nothing else. Splink's published FEBRL
    figures come from exactly this preparation, so they are the fair reference.

Generated data (one table for all person sources)
    * ``silver`` (preferred, the fairest comparison): our standardise stage's ``silver.records``
      read with ``deltalake``; both tools then match exactly the same cleaned values. Match forms
      (lower case, accents folded) are used for names and city. Web cookie records (source
      ``web``) carry no person fields; ours links them through the login events (a cookie that
      logged in as one customer number is linked to that customer's records), so Splink gets the
      same fact as data: such a cookie record's ``customer_number`` is the one it logged in with
      (from ``silver.events``), and Splink can block on and compare it.
    * ``raw``: when no ``silver.records`` exists, the generated files are read as
      conf/sources/*.yaml describes them (format, delimiter, encoding, mapping) and cleaned the
      way any user would before calling Splink: trim, lower-case, e-mail lower-case, phone digits
      (last nine), postcode without spaces, particle joined to the family name, a full name split
      at the last space, dates parsed leniently (day first) to ISO.
    Which one was used is written next to the results (``input_kind``).
"""

from __future__ import annotations

import glob
import json
import os
import unicodedata
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from bench.datasets import UID_SEP

WEB_SOURCE = "web"  # conf/sources/web.yaml records_source: one anonymous record per cookie

FEBRL_SPLINK_COLUMNS = (
    "given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode",
    "state", "date_of_birth", "soc_sec_id",
)
GENERATED_COLUMNS = (
    "given_name", "family_name", "birth_date", "email", "phone", "street", "house_number",
    "postcode", "city", "customer_number", "loyalty_card",
)


def _blank_to_none(frame: pd.DataFrame) -> pd.DataFrame:
    """Empty strings become nulls, so Splink uses its null level instead of comparing ''."""
    out = frame.copy()
    for c in out.columns:
        s = out[c].astype("string").str.strip()
        keep = s.notna() & (s != "").fillna(False)
        out[c] = s.astype(object).where(keep, None)
    return out


def febrl_input(dataset_dir: str) -> pd.DataFrame:
    """FEBRL source CSVs -> Splink input (``unique_id``, ``source`` and the FEBRL columns)."""
    with open(os.path.join(dataset_dir, "dataset.json"), encoding="utf-8") as fh:
        info = json.load(fh)
    parts = []
    for source in info["sources"]:
        path = os.path.join(dataset_dir, source, f"{source}.csv")
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df.insert(0, "unique_id", source + UID_SEP + df["rec_id"].str.strip())
        df.insert(1, "source", source)
        parts.append(df[["unique_id", "source", *FEBRL_SPLINK_COLUMNS]])
    return _blank_to_none(pd.concat(parts, ignore_index=True))


def silver_input(lake_root: str) -> pd.DataFrame:
    """``silver.records`` of our pipeline -> Splink input for generated data."""
    from deltalake import DeltaTable

    wanted = {
        "source": "source", "source_id": "source_id", "given_name": "given_name_match",
        "family_name": "family_name_match", "birth_date": "birth_date", "email": "email",
        "phone": "phone", "street": "street", "house_number": "house_number", "postcode": "postcode",
        "city": "city_match", "customer_number": "customer_number", "loyalty_card": "loyalty_card",
    }
    dt = DeltaTable(os.path.join(lake_root, "silver", "records"))
    have = set(dt.schema().to_arrow().names)
    missing = [c for c in wanted.values() if c not in have]
    if missing:
        raise ValueError(f"silver.records lacks {missing}; has {sorted(have)}")
    df = dt.to_pandas(columns=sorted(set(wanted.values()) | {"cookie_id"}))
    out = pd.DataFrame({k: df[v] for k, v in wanted.items()})
    logins = login_customer_numbers(lake_root)
    if logins is not None and len(logins):
        web = (df["source"] == WEB_SOURCE) & df["cookie_id"].notna()
        out.loc[web, "customer_number"] = out.loc[web, "customer_number"].fillna(df.loc[web, "cookie_id"].map(logins))
    out["birth_date"] = pd.to_datetime(out["birth_date"], errors="coerce").dt.strftime("%Y-%m-%d")
    out["street"] = out["street"].astype("string").str.lower()
    out = out.astype(object).where(out.notna(), None)
    out.insert(0, "unique_id", out["source"].astype(str) + UID_SEP + out["source_id"].astype(str).str.strip())
    out = out.drop(columns=["source_id"])
    return _blank_to_none(out[["unique_id", "source", *GENERATED_COLUMNS]])


def login_customer_numbers(lake_root: str) -> pd.Series | None:
    """cookie id -> the customer number it logged in with, for cookies that logged in as exactly one
    customer (ours treats cookies with more as shared devices and links nothing); None without events."""
    from deltalake import DeltaTable

    path = os.path.join(lake_root, "silver", "events")
    if not os.path.isdir(os.path.join(path, "_delta_log")):
        return None
    ev = DeltaTable(path).to_pandas(columns=["event_type", "cookie_id", "login_customer_number"])
    ev = ev[(ev["event_type"] == "login") & ev["cookie_id"].notna() & ev["login_customer_number"].notna()]
    pairs = ev[["cookie_id", "login_customer_number"]].drop_duplicates()
    one = pairs.groupby("cookie_id")["login_customer_number"].agg(["first", "size"])
    return one.loc[one["size"] == 1, "first"]


# --- raw generated files, read through the source YAMLs ------------------------------------------


def _fold(s: pd.Series) -> pd.Series:
    """Lower case, trimmed, accents removed, inner whitespace collapsed."""
    def one(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        t = unicodedata.normalize("NFKD", str(v))
        t = "".join(ch for ch in t if not unicodedata.combining(ch))
        return " ".join(t.lower().split()) or None

    return s.map(one)


def _read_file(path: str, src: dict[str, Any]) -> pd.DataFrame:
    fmt = src["format"]
    if fmt == "csv":
        enc = src.get("encoding", "utf-8")
        encodings = ["utf-8", "latin-1"] if enc == "auto" else [enc]
        for i, e in enumerate(encodings):
            try:
                return pd.read_csv(
                    path, dtype=str, keep_default_na=False, sep=src.get("delimiter", ","),
                    quotechar=src.get("quote", '"'), encoding=e,
                )
            except UnicodeDecodeError:
                if i == len(encodings) - 1:
                    raise
    if fmt in ("ndjson", "json"):
        return pd.read_json(path, lines=fmt == "ndjson", dtype=False).astype(object)
    if fmt == "parquet":
        return pd.read_parquet(path).astype(object)
    raise ValueError(f"{path}: format {fmt!r} is not readable by the bench's raw reader")


def _col(df: pd.DataFrame, mapping: dict[str, str], field: str) -> pd.Series:
    src = mapping.get(field)
    if src is None or src not in df.columns:
        return pd.Series([None] * len(df), index=df.index, dtype=object)
    s = df[src].astype(object)
    return s.where(s.notna(), None).map(lambda v: None if v is None else str(v))


def _split_full_name(full: pd.Series) -> tuple[pd.Series, pd.Series]:
    """'Berg, Jan van der' -> (jan, van der berg); 'Jan van der Berg' -> (jan, van der berg)."""
    def one(v: Any) -> tuple[Any, Any]:
        if v is None:
            return None, None
        t = str(v).strip()
        if "," in t:
            fam, _, giv = t.partition(",")
            parts = giv.split()
            given = parts[0] if parts else None
            particle = " ".join(parts[1:])
            return given, f"{particle} {fam}".strip()
        parts = t.split()
        if len(parts) < 2:
            return None, t or None
        return parts[0], " ".join(parts[1:])

    pairs = full.map(one)
    return pairs.map(lambda p: p[0]), pairs.map(lambda p: p[1])


def _clean_generated(df: pd.DataFrame, src: dict[str, Any]) -> pd.DataFrame:
    m = dict(src.get("mapping") or {})
    if "source_id" not in m and len(src["primary_key"]) == 1:
        m["source_id"] = src["primary_key"][0]
    given, family = _col(df, m, "given_name"), _col(df, m, "family_name")
    particle = _col(df, m, "name_particle")
    family = (particle.fillna("") + " " + family.fillna("")).str.strip().replace("", None)
    if "full_name" in m:
        g2, f2 = _split_full_name(_col(df, m, "full_name"))
        given, family = given.fillna(g2), family.fillna(f2)
    phone = _col(df, m, "phone").str.replace(r"\D", "", regex=True).str[-9:]
    postcode = _col(df, m, "postcode").str.upper().str.replace(r"[\s-]", "", regex=True)
    birth = pd.to_datetime(_col(df, m, "birth_date"), errors="coerce", format="mixed", dayfirst=True)
    out = pd.DataFrame(
        {
            "unique_id": src.get("records_source") or src["name"],
            "source": src.get("records_source") or src["name"],
            "given_name": _fold(given),
            "family_name": _fold(family),
            "birth_date": birth.dt.strftime("%Y-%m-%d"),
            "email": _col(df, m, "email").str.strip().str.lower(),
            "phone": phone,
            "street": _fold(_col(df, m, "street")),
            "house_number": _col(df, m, "house_number").str.extract(r"(\d+)", expand=False),
            "postcode": postcode,
            "city": _fold(_col(df, m, "city")),
            "customer_number": _col(df, m, "customer_number").str.strip().str.upper(),
            "loyalty_card": _col(df, m, "loyalty_card").str.replace(r"[^0-9A-Za-z]", "", regex=True).str.upper(),
        },
        index=df.index,
    )
    out["unique_id"] = out["source"] + UID_SEP + _col(df, m, "source_id").str.strip()
    return out


def raw_generated_input(dataset_dir: str, source_files: Iterable[str]) -> pd.DataFrame:
    """Generated person sources read via their YAMLs (kind persons, with a location)."""
    import yaml

    parts = []
    for f in source_files:
        with open(f, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        for src in doc if isinstance(doc, list) else [doc]:
            if src.get("kind", "persons") != "persons" or not src.get("location"):
                continue
            loc = os.path.join(dataset_dir, src["location"])
            files = sorted(glob.glob(os.path.join(loc, src.get("pattern", "*")))) if os.path.isdir(loc) else sorted(glob.glob(loc))
            for path in files:
                parts.append(_clean_generated(_read_file(path, src), src))
    if not parts:
        raise ValueError(f"{dataset_dir}: no person source files found through {list(source_files)}")
    out = pd.concat(parts, ignore_index=True).drop_duplicates("unique_id", keep="last")
    return _blank_to_none(out[["unique_id", "source", *GENERATED_COLUMNS]])


def build_input(
    dataset_dir: str, link_type: str, *, lake_root: str | None = None, source_files: Iterable[str] = ()
) -> tuple[pd.DataFrame, str]:
    """The Splink input for a prepared dataset and how it was made (febrl / silver / raw)."""
    if os.path.basename(os.path.normpath(dataset_dir)).startswith("febrl"):
        return febrl_input(dataset_dir), "febrl"
    if lake_root and os.path.isdir(os.path.join(lake_root, "silver", "records", "_delta_log")):
        return silver_input(lake_root), "silver"
    return raw_generated_input(dataset_dir, list(source_files)), "raw"
