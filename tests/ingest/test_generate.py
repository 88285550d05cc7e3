"""Sample data generator: matches the source definitions, deterministic, corrupt on purpose, truth complete.

No Spark: generated files are read back with the ingest readers (jobs.ingest.readers), exactly
as the ingest job would read them, and checked against conf/sources/*.yaml.
"""

from __future__ import annotations

import csv
import json
import os
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from jobs.common.config import load_config
from jobs.common.errors import ConfigError
from jobs.ingest.config import SourceConfig
from jobs.ingest.generate import generate_sample_data
from jobs.ingest.job import discover_files
from jobs.ingest.readers import ParsedFile, parse_file

ROOT = Path(__file__).resolve().parents[2]
PERSONS, SEED = 300, 7
PERSON_SOURCES = ("crm", "webshop_customers", "pos_members", "email_subscribers")


@pytest.fixture(scope="module")
def sources() -> list[SourceConfig]:
    return list(load_config(str(ROOT / "conf" / "local.yaml")).model.sources)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gen") / "data"
    summary = generate_sample_data(PERSONS, SEED, str(out))
    return out, summary


def _parse(src: SourceConfig, root: Path) -> list[tuple[str, ParsedFile]]:
    files = discover_files(src, str(root))
    return [(f, parse_file(Path(f).read_bytes(), src, f)) for f in files]


def _values(parsed: list[tuple[str, ParsedFile]], field: str) -> list[str | None]:
    out: list[str | None] = []
    for _, p in parsed:
        out.extend(p.values.get(field, [None] * p.rows))
    return out


def _by_name(sources: list[SourceConfig], name: str) -> SourceConfig:
    return next(s for s in sources if s.name == name)


def _truth(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "ground_truth" / "records.csv", dtype=str, keep_default_na=False)


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_persons_and_seed_give_byte_identical_files(generated: tuple[Path, dict], tmp_path: Path) -> None:
    out, summary = generated
    again = generate_sample_data(PERSONS, SEED, str(tmp_path / "again"))
    first, second = _all_files(out), _all_files(tmp_path / "again")
    assert sorted(first) == sorted(second)
    assert [k for k in first if first[k] != second[k]] == []
    assert again["files"] == summary["files"]
    other = generate_sample_data(PERSONS, SEED + 1, str(tmp_path / "other"))
    assert (tmp_path / "other" / "crm" / "crm_export_utf8.csv").read_bytes() != first["crm/crm_export_utf8.csv"]
    assert other["persons"] == PERSONS


def test_layout_and_manifest(generated: tuple[Path, dict]) -> None:
    out, summary = generated
    expected = {
        "crm/crm_export_utf8.csv", "crm/crm_export_latin1.csv", "webshop/customers.ndjson", "webshop/orders.ndjson",
        "pos/members.parquet", "pos/receipts.parquet", "email/subscribers.csv", "email/events.csv",
        "web/events_001.ndjson", "web/events_broken.ndjson",
    }
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == expected
    assert set(summary["files"]) == expected | {"ground_truth/records.csv", "ground_truth/households.csv"}
    assert manifest["persons"] == PERSONS and manifest["seed"] == SEED and manifest["version"]
    assert manifest["start"] == "2026-11-01"
    assert "seconds" not in manifest  # wall time would break byte-identical output
    assert summary["persons"] == PERSONS and summary["seconds"] >= 0
    assert all(summary["files"][f] > 0 for f in expected)
    crm_lines = (out / "crm" / "crm_export_utf8.csv").read_bytes().count(b"\n") - 1
    assert summary["files"]["crm/crm_export_utf8.csv"] == crm_lines


def test_files_match_every_configured_source(generated: tuple[Path, dict], sources: list[SourceConfig]) -> None:
    out, _ = generated
    assert {s.name for s in sources} == {
        "crm", "webshop_customers", "webshop_orders", "pos_members", "pos_receipts", "email_subscribers",
        "email_events", "web_events",
    }
    for src in sources:
        parsed = _parse(src, out)
        assert parsed, f"{src.name}: no files at {src.location}/{src.pattern}"
        columns = set().union(*(p.columns for _, p in parsed))
        missing = [f for f in src.fields if f not in columns]
        assert missing == [], f"{src.name}: missing {missing}"
        assert sum(p.rows for _, p in parsed) > 0
        for field in src.primary_key:  # every readable row has its key, and keys are unique
            keys = _values(parsed, field)
            assert None not in keys and len(set(keys)) == len(keys), src.name
    crm = _parse(_by_name(sources, "crm"), out)
    assert [list(p.columns) for _, p in crm] == [[
        "klantnummer", "aanhef", "voornaam", "tussenvoegsel", "achternaam", "geboortedatum", "geslacht", "email",
        "telefoon", "straat", "huisnummer", "postcode", "woonplaats", "land", "opt_in_post", "bedrijf", "functie",
        "aangemaakt", "gewijzigd"]] * 2
    shop = _parse(_by_name(sources, "webshop_customers"), out)
    assert "utm_source" in shop[0][1].columns  # an unmapped key, for bronze _extra
    assert set(_values(shop, "newsletter")) == {"true", "false"}
    assert set(_values(shop, "pet_species")) == {None, "hond", "kat", "konijn"}
    web = _parse(_by_name(sources, "web_events"), out)
    types = _values(web, "event_type")
    numbers = _values(web, "customer_number")
    assert set(types) == {"page_view", "login"}
    assert all((n is not None) == (t == "login") for t, n in zip(types, numbers))
    orders = _parse(_by_name(sources, "webshop_orders"), out)
    assert set(_values(orders, "currency")) == {"EUR"}
    assert all(re.fullmatch(r"\d+\.\d{2}", t) for t in _values(orders, "total"))


def test_broken_rows_go_to_quarantine_and_only_there(generated: tuple[Path, dict], sources: list[SourceConfig]) -> None:
    out, _ = generated
    reasons: dict[str, list[str]] = {}
    for src in sources:
        for path, p in _parse(src, out):
            reasons[os.path.relpath(path, out)] = [r.split(":")[0] for _, r, _ in p.quarantine]
    assert sorted(reasons["crm/crm_export_utf8.csv"]) == ["broken quoting", "wrong column count"]
    assert sorted(reasons["crm/crm_export_latin1.csv"]) == ["broken quoting", "wrong column count"]
    assert sorted(reasons["email/subscribers.csv"]) == ["broken quoting", "wrong column count"]
    assert reasons["web/events_broken.ndjson"] == ["malformed JSON"] * 3
    clean = [f for f in reasons if f not in ("crm/crm_export_utf8.csv", "crm/crm_export_latin1.csv",
                                             "email/subscribers.csv", "web/events_broken.ndjson")]
    assert len(clean) == 6 and all(reasons[f] == [] for f in clean)


def test_latin1_file_needs_latin1(generated: tuple[Path, dict], sources: list[SourceConfig]) -> None:
    out, _ = generated
    data = (out / "crm" / "crm_export_latin1.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    text = data.decode("latin-1")
    rows = list(csv.reader(text.splitlines()[1:], delimiter=";"))
    names = [r[2] + " " + r[4] for r in rows if len(r) == 19]
    assert any(re.search(r"[éëüïöçèäÉÖÜ]", n) for n in names)
    parsed = dict(_parse(_by_name(sources, "crm"), out))
    latin = parsed[str(out / "crm" / "crm_export_latin1.csv")]
    assert latin.encoding == "cp1252"  # 'auto' recognises it
    assert any(ch in "".join(v or "" for v in latin.values["achternaam"] + latin.values["voornaam"]) for ch in "éëüïöç")
    assert (out / "crm" / "crm_export_utf8.csv").read_bytes().decode("utf-8")


def test_ground_truth_covers_every_person_record(generated: tuple[Path, dict], sources: list[SourceConfig]) -> None:
    out, _ = generated
    truth = _truth(out)
    assert list(truth.columns) == ["source", "source_id", "person_id"]
    assert set(truth["source"]) == {*PERSON_SOURCES, "web"}
    assert not truth.duplicated(["source", "source_id"]).any()
    households = pd.read_csv(out / "ground_truth" / "households.csv", dtype=str)
    assert list(households.columns) == ["person_id", "household_id"]
    assert len(households) == PERSONS and households["person_id"].is_unique
    assert set(truth["person_id"]) <= set(households["person_id"])
    for name in PERSON_SOURCES:
        src = _by_name(sources, name)
        keys = _values(_parse(src, out), src.primary_key[0])
        assert sorted(keys) == sorted(truth.loc[truth["source"] == name, "source_id"]), name
    # Some persons twice within one source (duplicate accounts).
    per_source = truth[truth["source"] != "web"].groupby(["source", "person_id"]).size()
    dup_sources = set(per_source[per_source > 1].index.get_level_values(0))
    assert {"crm", "webshop_customers"} <= dup_sources
    # Web truth: cookies that log in, or share a device with a login cookie of the same person.
    web = _parse(_by_name(sources, "web_events"), out)
    events = pd.DataFrame({f: _values(web, f) for f in ("cookie_id", "device_id", "event_type")})
    login_cookies = set(events.loc[events["event_type"] == "login", "cookie_id"])
    login_devices = set(events.loc[events["event_type"] == "login", "device_id"])
    device_of = dict(zip(events["cookie_id"], events["device_id"]))
    web_truth = truth[truth["source"] == "web"]
    assert len(web_truth) > 10
    assert set(web_truth["source_id"]) >= login_cookies
    assert all(c in login_cookies or device_of[c] in login_devices for c in web_truth["source_id"])
    assert len(set(events["cookie_id"])) > 2 * len(web_truth)  # most cookies stay anonymous
    # Login customer numbers point at CRM or webshop numbers of that same person.
    crm = _parse(_by_name(sources, "crm"), out)
    shop = _parse(_by_name(sources, "webshop_customers"), out)
    truth_ix = truth.set_index(["source", "source_id"])["person_id"]
    owner_of_number = {k: truth_ix[("crm", k)] for k in _values(crm, "klantnummer")}
    for cid, num in zip(_values(shop, "customer_id"), _values(shop, "customer_number")):
        if num is not None:
            owner_of_number.setdefault(num, truth_ix[("webshop_customers", cid)])
    logins = pd.DataFrame({f: _values(web, f) for f in ("cookie_id", "event_type", "customer_number")})
    logins = logins[logins["event_type"] == "login"]
    assert len(logins) > 0
    assert all(owner_of_number[n] == truth_ix[("web", c)] for c, n in zip(logins["cookie_id"], logins["customer_number"]))


def test_households_share_an_address(generated: tuple[Path, dict], sources: list[SourceConfig]) -> None:
    out, _ = generated
    truth = _truth(out)
    households = pd.read_csv(out / "ground_truth" / "households.csv", dtype=str)
    sizes = households.groupby("household_id").size()
    assert sizes.max() <= 5 and (sizes >= 2).sum() >= 30
    crm = _parse(_by_name(sources, "crm"), out)
    rows = pd.DataFrame({f: _values(crm, f) for f in ("klantnummer", "postcode", "huisnummer")})
    rows["person_id"] = rows["klantnummer"].map(truth[truth["source"] == "crm"].set_index("source_id")["person_id"])
    rows = rows.merge(households, on="person_id").dropna(subset=["postcode", "huisnummer"])
    rows["address"] = (rows["postcode"].str.replace(" ", "").str.upper() + "|"
                       + rows["huisnummer"].str.extract(r"^(\d+)", expand=False))
    multi = rows.groupby("household_id").agg(persons=("person_id", "nunique"), addresses=("address", "nunique"))
    shared = multi[(multi["persons"] >= 2) & (multi["addresses"] == 1)]
    assert len(shared) >= 10
    # Distinct households (almost always) live at distinct addresses.
    per_address = rows.groupby("address")["household_id"].nunique()
    assert (per_address > 1).sum() <= 3


def test_corruption_is_present(generated: tuple[Path, dict], sources: list[SourceConfig]) -> None:
    out, _ = generated
    crm = _parse(_by_name(sources, "crm"), out)
    postcodes = [p for p in _values(crm, "postcode") if p]
    assert any(re.fullmatch(r"\d{4}[A-Z]{2}", p) for p in postcodes)
    assert any(re.fullmatch(r"\d{4} [A-Z]{2}", p) for p in postcodes)
    assert any(re.fullmatch(r"\d{4} ?[a-z]{2}", p) for p in postcodes)
    assert any(re.fullmatch(r"\d{4}", p) for p in postcodes)  # Belgian
    phones = [p for p in _values(crm, "telefoon") if p]
    for pattern in (r"06-\d{8}", r"\+31 6 \d{4} \d{4}", r"06\d{8}", r"\+316\d{8}", r"(\+32|0032|04).*"):
        assert any(re.fullmatch(pattern, p) for p in phones), pattern
    births = [b for b in _values(crm, "geboortedatum") if b]
    for pattern in (r"\d{4}-\d\d-\d\d", r"\d\d-\d\d-\d{4}", r"\d\d/\d\d/\d\d", r"\d{8}"):
        assert any(re.fullmatch(pattern, b) for b in births), pattern
    assert {"dhr.", "mevr.", "mw."} <= set(_values(crm, "aanhef"))
    shop = _parse(_by_name(sources, "webshop_customers"), out)
    names = _values(shop, "name")
    assert any(n and re.fullmatch(r"[^,]+, .+", n) for n in names)  # 'Berg, Jan van der'
    assert any(n and n == n.upper() and " " in n for n in names)
    assert any(n and re.search(r"\d+(-[A-Z]|[a-z]| bis| hs)$", n) for n in _values(shop, "house_number"))
    everything: list[str] = []
    for src in sources:
        for _, p in _parse(src, out):
            for values in p.values.values():
                everything.extend(v for v in values if v)
    counts = pd.Series(everything).value_counts()
    assert counts.get("onbekend", 0) + sum(counts.get(e, 0) for e in ("test@test.nl", "geen@email.nl",
                                                                       "onbekend@onbekend.nl", "x@x.nl")) >= 2
    assert any(counts.get(p, 0) for p in ("0000000000", "0612345678", "1234567890"))
    # A shared family e-mail: one address on records of different persons.
    truth = _truth(out).set_index(["source", "source_id"])["person_id"]
    mails = pd.DataFrame({"email": _values(crm, "email"), "k": _values(crm, "klantnummer")}).dropna()
    mails["person"] = [truth[("crm", k)] for k in mails["k"]]
    per_mail = mails.groupby(mails["email"].str.lower())["person"].nunique()
    assert (per_mail[~per_mail.index.isin(["test@test.nl", "geen@email.nl", "onbekend@onbekend.nl", "x@x.nl"])]
            > 1).any()


def test_batches_split_rows_without_loss_or_duplication(
    generated: tuple[Path, dict], sources: list[SourceConfig], tmp_path: Path
) -> None:
    out, _ = generated
    split = tmp_path / "split"
    summary = generate_sample_data(PERSONS, SEED, str(split), batches=3)
    assert sorted(p.name for p in split.iterdir()) == ["batch_1", "batch_2", "batch_3", "ground_truth", "manifest.json"]
    assert "batch_2/crm/crm_export_utf8_part2of3.csv" in summary["files"]
    assert "batch_3/web/events_part3of3.ndjson" in summary["files"]
    assert (split / "ground_truth" / "records.csv").read_bytes() == (out / "ground_truth" / "records.csv").read_bytes()
    for src in sources:
        whole = _parse(src, out)
        expected = sorted(r for _, p in whole for r in p.raws)
        expected_bad = sorted(q[2] for _, p in whole for q in p.quarantine)
        got: list[str] = []
        got_bad: list[str] = []
        for b in (1, 2, 3):
            parts = _parse(src, split / f"batch_{b}")
            if src.name != "web_events":
                assert len(parts) == (2 if src.name == "crm" else 1), (src.name, b)
                assert all(f"_part{b}of3." in f for f, _ in parts)
            got.extend(r for _, p in parts for r in p.raws)
            got_bad.extend(q[2] for _, p in parts for q in p.quarantine)
        assert sorted(got) == expected, src.name
        assert sorted(got_bad) == expected_bad, src.name
        assert len(set(got)) == len(got) or src.format == "parquet"
    # Regenerating with one batch removes the parts listed in the previous manifest.
    generate_sample_data(PERSONS, SEED, str(split))
    assert not any(p.is_file() for p in (split / "batch_1").rglob("*"))


def test_reference_date_moves_every_date(tmp_path: Path) -> None:
    generate_sample_data(40, 1, str(tmp_path / "a"), start=date(2020, 1, 1))
    lines = (tmp_path / "a" / "webshop" / "orders.ndjson").read_text(encoding="utf-8").splitlines()
    assert lines and all(json.loads(ln)["ordered_at"] < "2020-01-01" for ln in lines)


@pytest.mark.parametrize(("persons", "batches", "message"), [
    (0, 1, "generate: persons: got 0; expected an integer >= 1"),
    (10, 0, "generate: batches: got 0; expected an integer >= 1"),
])
def test_bad_arguments_are_rejected(tmp_path: Path, persons: int, batches: int, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        generate_sample_data(persons, 1, str(tmp_path / "x"), batches=batches)
    assert message in str(err.value)


# --- corruption against the generator's truth ------------------------------------------------------
#
# The ground truth files say which record belongs to which person; the population the generator
# drew (rebuilt here from the same persons and seed) says what that person's true name, address and
# e-mail addresses are. Each kind of corruption is found by comparing the two.


@pytest.fixture(scope="module")
def truth(generated: tuple[Path, dict], sources: list[SourceConfig]) -> dict:
    from jobs.ingest.generate import DEFAULT_START, build_pools, build_population

    out, _ = generated
    pools = build_pools(SEED)
    pop = build_population(PERSONS, SEED, (DEFAULT_START - date(1970, 1, 1)).days, pools)
    index = {pid: i for i, pid in enumerate(pop.person_id)}
    person_of = {(s, k): index[p] for s, k, p in _truth(out).itertuples(index=False)}

    def rows(name: str, fields: tuple[str, ...]) -> list[dict]:
        src = _by_name(sources, name)
        parsed = _parse(src, out)
        table = {f: _values(parsed, f) for f in (src.primary_key[0], *fields)}
        return [
            {"person": person_of[(name, key)], **{f: table[f][i] or "" for f in fields}}
            for i, key in enumerate(table[src.primary_key[0]])
        ]

    return {
        "pop": pop,
        "pools": pools,
        "crm": rows("crm", ("voornaam", "tussenvoegsel", "achternaam", "email", "postcode")),
        "pos": rows("pos_members", ("first_name", "last_name", "email", "postcode")),
        "shop": rows("webshop_customers", ("email", "zip")),
        "mail": rows("email_subscribers", ("email",)),
    }


def _one_edit(a: str, b: str) -> bool:
    """One character inserted, deleted, substituted or two neighbours swapped (the generator's typos)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _close(sent: str, true: str) -> bool:
    """The true value as sent, case aside, or with one typo."""
    s, t = sent.lower(), true.lower()
    return s == t or _one_edit(s, t)


def _names(t: dict, p: int) -> dict[str, str]:
    """The person's true given name, married (or only) family name and maiden name, with particles."""
    pools, pop = t["pools"], t["pop"]
    out = {"given": pools.given[pop.given[p]], "core": pools.core[pop.family[p]], "particle": pools.particle[pop.family[p]]}
    if pop.maiden[p] >= 0:
        out["maiden"], out["maiden_particle"] = pools.core[pop.maiden[p]], pools.particle[pop.maiden[p]]
    return out


def _family_core(sent: str, n: dict[str, str]) -> str:
    """The core of a family name sent with or without its particle ('van der Berg' -> 'Berg')."""
    low = sent.lower()
    for particle in (n["particle"], n.get("maiden_particle", "")):
        if particle and low.startswith(particle.lower() + " "):
            return sent[len(particle) + 1:]
    return sent


def _family_cores(n: dict[str, str]) -> list[str]:
    return [n["core"], *([n["maiden"]] if "maiden" in n else [])]


def test_typos_are_one_edit_away_from_the_true_name(truth: dict) -> None:
    given = family = exact = rows = 0
    for source, first, last in (("crm", "voornaam", "achternaam"), ("pos", "first_name", "last_name")):
        for r in truth[source]:
            n = _names(truth, r["person"])
            rows += 1
            if r[first].lower() == n["given"].lower():
                exact += 1
            elif _one_edit(r[first].lower(), n["given"].lower()):
                given += 1
            sent = _family_core(r[last], n).lower()
            if any(_one_edit(sent, c.lower()) for c in _family_cores(n)):
                family += 1
    assert exact > 0.8 * rows  # most names arrive as they are
    # CRM about 2 %, the tills about 3 % of given and of family names
    assert 1 <= given <= 0.06 * rows and 1 <= family <= 0.06 * rows, (given, family, rows)


def test_some_records_swap_given_and_family_name(truth: dict) -> None:
    swapped = []
    for source, first, last in (("crm", "voornaam", "achternaam"), ("pos", "first_name", "last_name")):
        for r in truth[source]:
            n = _names(truth, r["person"])
            cores = _family_cores(n)
            if _close(r[last], n["given"]) and any(_close(_family_core(r[first], n), c) for c in cores):
                if n["given"].lower() not in {c.lower() for c in cores}:
                    swapped.append((source, r["person"]))
    # about 1 % of CRM and 1.5 % of till records
    assert swapped and len(swapped) <= 0.05 * (len(truth["crm"]) + len(truth["pos"])), swapped


def test_married_women_appear_under_maiden_and_married_names(truth: dict) -> None:
    pop = truth["pop"]
    used = {}  # person -> set of 'married' / 'maiden' names their records carry
    for source, last in (("crm", "achternaam"), ("pos", "last_name")):
        for r in truth[source]:
            n = _names(truth, r["person"])
            if "maiden" not in n or n["maiden"].lower() == n["core"].lower():
                continue
            family = _family_core(r[last], n)
            for kind in ("core", "maiden"):
                if _close(family, n[kind]) or _close(r[last], n[kind]):
                    used.setdefault(r["person"], set()).add(kind)
    assert any(kinds == {"core", "maiden"} for kinds in used.values()), used
    assert all(pop.gender[p] == 1 for p in used)  # only women change their name
    # ... and nobody else carries another family name than their own (typos aside)
    for r in truth["crm"]:
        n = _names(truth, r["person"])
        if "maiden" in n or not r["achternaam"] or r["achternaam"] == "onbekend" or r["voornaam"] == "":
            continue
        family = _family_core(r["achternaam"], n)
        assert _close(family, n["core"]) or _close(r["achternaam"], n["core"]) or _close(r["voornaam"], n["core"]), r


def _postcode(sent: str) -> str:
    return sent.replace(" ", "").upper()


def test_movers_appear_at_their_old_and_new_address_others_at_one(truth: dict) -> None:
    pop = truth["pop"]
    at = {}  # person -> {'new', 'old'}
    for source, field in (("crm", "postcode"), ("pos", "postcode"), ("shop", "zip")):
        for r in truth[source]:
            p, sent = r["person"], _postcode(r[field])
            if not sent:
                continue
            new, old = pop.addr.postcode[p], pop.old_addr.postcode[p]
            if pop.moved[p]:
                assert sent in (new, old), (source, r)
                at.setdefault(p, set()).add("new" if sent == new else "old")
            else:
                assert sent == new, (source, r)  # a person who never moved has one address
    assert any(kinds == {"new", "old"} for kinds in at.values())
    assert sum(1 for kinds in at.values() if "old" in kinds) >= 5


def test_changed_email_addresses_old_and_new_on_records_of_one_person(truth: dict) -> None:
    from jobs.ingest.generate import PLACEHOLDER_EMAILS

    pop = truth["pop"]
    placeholders = set(PLACEHOLDER_EMAILS)
    seen = {}  # person -> {'new', 'old', 'family'}
    for source in ("crm", "pos", "shop", "mail"):
        for r in truth[source]:
            p, sent = r["person"], r["email"].lower()
            if not sent or sent in placeholders:
                continue
            kinds = {k for k, v in (("new", pop.email[p]), ("old", pop.old_email[p]), ("family", pop.family_email[p])) if v and sent == v}
            if source in ("crm", "pos"):  # these two send addresses without typos
                assert kinds, (source, r)
            seen.setdefault(p, set()).update(kinds)
    changed = [p for p, kinds in seen.items() if {"new", "old"} <= kinds]
    assert changed, "no person appears under both an old and a new e-mail address"
    assert sum(1 for kinds in seen.values() if "old" in kinds) >= 5
    assert sum(1 for kinds in seen.values() if "family" in kinds) >= 5  # shared family addresses too


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture()
def restore_logging():  # noqa: ANN201
    """The CLI configures the root logger; put pytest's handlers back afterwards."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_cdp_generate_writes_to_data_root_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    from jobs.cli import main

    monkeypatch.chdir(tmp_path)
    config = str(ROOT / "conf" / "local.yaml")
    assert main(["generate", "--persons", "12", "--seed", "3", "--config", config]) == 0
    default = tmp_path / "data" / "sample"  # conf/local.yaml's data.root, relative to the working directory
    assert json.loads(capsys.readouterr().out)["out"] == str(default)
    manifest = json.loads((default / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["persons"], manifest["seed"]) == (12, 3)
    assert (default / "crm" / "crm_export_utf8.csv").exists()

    elsewhere = tmp_path / "elsewhere"
    assert main(["generate", "--persons", "10", "--seed", "4", "--config", config, "--set", f"data.root={elsewhere}"]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(elsewhere)
    assert json.loads((elsewhere / "manifest.json").read_text(encoding="utf-8"))["persons"] == 10
    assert json.loads((default / "manifest.json").read_text(encoding="utf-8"))["persons"] == 12  # left alone
    # conf/local.yaml's sources read from data.root: what `cdp ingest` with the same --set would read
    from jobs.common.config import load_config

    cfg = load_config(config, [f"data.root={elsewhere}"]).model
    assert all(discover_files(s, cfg.data.root) for s in cfg.sources)
