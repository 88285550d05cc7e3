"""Erasure end to end on generated data: nothing of the subjects remains anywhere, others stay right.

One copied lake serves every test here (a pipeline copy and each erasure re-resolve the lake, so
they are slow). The copy runs with deterministic phone links (phone in
``match.deterministic.id_types``, not conflict-checked), and one record of another person, the
*cluster mate*, is given the e-mail subject's phone number, as if a shop had typed in the subject's
landline for them: the phone link puts both into one cluster and one golden person, an over-merge
that erasure must not take along (it does not follow such edges). An incremental match and golden
run re-resolve the copy for that; no pipeline runs again. Then, as a compliance officer would:

1. an access export of the e-mail subject, then ``privacy.erase`` of them: a person with several
   records, an address of their own, a household member and the cluster mate;
2. ``cdp privacy erase`` of a family e-mail address several persons hold: refused, nothing deleted;
3. ``cdp privacy erase --file --all-holders`` with six subjects: a phone number (given in national
   format), a customer number, a person id, a person whose records only an identifier (e-mail) edge
   joins (named by a value only some of those records hold), the family address, and an e-mail
   address no record holds (nothing_held; a side file under the data root mentions it).

Subjects are chosen from the generator's ground truth, deterministically (the data has a seed; a
missing kind of subject fails, never skips), and the tests look for their values with their own
needles (independent of what erasure computes).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.errors import PrivacyError
from jobs.common.keys import salted_hash
from jobs.privacy import job as privacy
from jobs.privacy.scan import scan_for_values

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from conftest import GOLDEN_UNCHANGED, PIPELINE_RUN_DATE, copy_pipeline, full_golden_rerun, golden_runs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# Deterministic phone links without the conflict check: a shared landline links records.
PHONE_LINKS = "match.deterministic.id_types=[customer_number, loyalty_card, email, phone]"
NOBODY = "nobody.at.all.1729@voorbeeld.nl"  # an e-mail address no record holds
# Profile columns any golden run rewrites: a profile is otherwise unchanged when all others are.
RUN_COLUMNS = ("run_id", "updated_at")


def _truth(data: Path) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    with open(data / "ground_truth" / "records.csv", encoding="utf-8") as fh:
        records = {(r["source"], r["source_id"]): r["person_id"] for r in csv.DictReader(fh)}
    with open(data / "ground_truth" / "households.csv", encoding="utf-8") as fh:
        households = {r["person_id"]: r["household_id"] for r in csv.DictReader(fh)}
    return records, households


def _ground(ctx, data: Path) -> SimpleNamespace:  # noqa: ANN001
    """What the lake and the ground truth say, collected once (no Spark job per candidate)."""
    truth, households = _truth(data)
    recs = ctx.lake.read(S.SILVER_RECORDS.address).select(
        "record_key", "source", "source_id", "email", "phone", "given_name", "family_name", "customer_number"
    ).collect()
    clusters = {r.record_key: r.cluster_id for r in ctx.lake.read(S.MATCH_CLUSTERS.address).collect()}
    person_ids = {r.record_key: r.person_id for r in ctx.lake.read(S.GOLDEN_IDENTITY_MAP.address).collect()}
    holders: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in ctx.lake.read(S.SILVER_IDENTIFIERS.address).collect():
        holders[(r.id_type, r.id_value)].add(r.record_key)
    by_person: dict[str, list] = defaultdict(list)
    for r in recs:
        p = truth.get((r.source, r.source_id))
        if p:
            by_person[p].append(r)
    members: dict[str, list[str]] = defaultdict(list)
    for p, h in households.items():
        members[h].append(p)
    edges = [(r.record_key_l, r.record_key_r, r.edge_type) for r in ctx.lake.read(S.MATCH_EDGES.address).select("record_key_l", "record_key_r", "edge_type").collect()]
    return SimpleNamespace(
        edges=edges,
        recs=recs,
        clusters=clusters,
        person_ids=person_ids,
        holders=holders,
        by_person=by_person,
        households=households,
        members=members,
        names=Counter(_name(r) for r in recs),
        person_of={r.record_key: truth.get((r.source, r.source_id)) for r in recs},
    )


def _name(r) -> str:  # noqa: ANN001
    return (r.given_name or "").lower() + "|" + (r.family_name or "").lower()


def _unique_name(g: SimpleNamespace, rs: list) -> bool:
    """Nobody else carries the person's name (the tests scan for names too)."""
    return all(g.names[_name(r)] == sum(1 for x in rs if _name(x) == _name(r)) for r in rs if r.given_name and r.family_name)


def _own(g: SimpleNamespace, rs: list, kind: str) -> list[str]:
    keys = {r.record_key for r in rs}
    return sorted({getattr(r, kind) for r in rs if getattr(r, kind) and g.holders[(kind, getattr(r, kind))] <= keys})


def _resolves_exactly(ctx, kind: str, value: str, keys: set[str], all_holders: bool = False) -> bool:  # noqa: ANN001
    """Erasure resolves exactly these records (the tests are about what happens after; resolution
    quality is the match model's). A value golden gives to several persons is refused: not exact."""
    try:
        return privacy.resolve_subjects(ctx, [(kind, value)], all_holders=all_holders).record_keys == keys
    except PrivacyError:
        return False


def _choose_email_subject(ctx, g: SimpleNamespace) -> dict:  # noqa: ANN001
    """A person with several records, an own e-mail address and phone, a household member."""
    for p, rs in sorted(g.by_person.items()):
        emails, phones = _own(g, rs, "email"), _own(g, rs, "phone")
        others_in_house = [m for m in g.members[g.households[p]] if m != p and g.by_person.get(m)]
        if len(rs) < 2 or not emails or not phones or not others_in_house or not _unique_name(g, rs):
            continue
        if _resolves_exactly(ctx, "email", emails[0], {r.record_key for r in rs}):
            return {"person": p, "records": rs, "kind": "email", "value": emails[0], "phone": phones[0], "member": others_in_house[0]}
    pytest.fail("the generated data has no person fit to be the e-mail subject")


def _choose_mate(g: SimpleNamespace, subject: dict) -> dict:
    """Another person, outside the subject's household, alone in their cluster, with a phone on
    one of their records (the record that gets the subject's number)."""
    home = set(g.members[g.households[subject["person"]]])
    taken = {g.clusters.get(r.record_key) for r in subject["records"]}
    for p, rs in sorted(g.by_person.items()):
        keys = {r.record_key for r in rs}
        clusters = {g.clusters.get(k) for k in keys}
        if p in home or len(clusters) != 1 or clusters & taken or not _unique_name(g, rs):
            continue
        if {k for k, c in g.clusters.items() if c in clusters} != keys:
            continue
        phoned = sorted(r.record_key for r in rs if r.phone)
        if phoned:
            return {"person": p, "records": rs, "record": phoned[0]}
    pytest.fail("the generated data has no person fit to be the cluster mate")


def _give_phone(ctx, key: str, phone: str) -> None:  # noqa: ANN001
    """Record ``key`` holds ``phone`` instead of its own, in silver.records and silver.identifiers,
    as if its source had sent it."""
    mine = F.col("record_key") == F.lit(key)
    records = ctx.lake.read(S.SILVER_RECORDS.address)
    ctx.lake.overwrite(S.SILVER_RECORDS.address, records.withColumn("phone", F.when(mine, F.lit(phone)).otherwise(F.col("phone"))).localCheckpoint())
    ids = ctx.lake.read(S.SILVER_IDENTIFIERS.address)
    phone_row = mine & (F.col("id_type") == F.lit(S.ID_PHONE))
    ctx.lake.overwrite(S.SILVER_IDENTIFIERS.address, ids.withColumn("id_value", F.when(phone_row, F.lit(phone)).otherwise(F.col("id_value"))).localCheckpoint())


def _reresolve_record(ctx, key: str) -> None:  # noqa: ANN001
    """Match (incremental: pairs of the changed record, edges and clusters again) and golden
    (incremental), as `cdp run --incremental` would after the record changed."""
    from jobs.golden import job as golden
    from jobs.match import job as match

    match.run(ctx, incremental=True, new_keys=ctx.spark.createDataFrame([(key,)], "record_key string"))
    golden.run(ctx, incremental=True)


def _choose(ctx, g: SimpleNamespace, kind: str, exclude: set[str]) -> dict:  # noqa: ANN001
    """A person, not in ``exclude``, erasable by ``kind`` alone and resolved exactly."""
    for p, rs in sorted(g.by_person.items()):
        keys = {r.record_key for r in rs}
        if p in exclude or not _unique_name(g, rs):
            continue
        if kind == S.ID_PERSON:
            pids = {g.person_ids.get(k) for k in keys}
            if len(pids) == 1 and None not in pids:
                pid = pids.pop()
                if {k for k, v in g.person_ids.items() if v == pid} == keys:
                    return {"person": p, "records": rs, "kind": kind, "value": pid}
            continue
        values = _own(g, rs, kind)
        if values and _resolves_exactly(ctx, kind, values[0], keys):
            return {"person": p, "records": rs, "kind": kind, "value": values[0]}
    pytest.fail(f"the generated data has no person erasable by {kind} alone")


def _components(keys: set[str], edges: list[tuple[str, str, str]]) -> list[set[str]]:
    """Connected components of ``keys`` over ``edges`` between them."""
    parent = {k: k for k in keys}

    def root(k: str) -> str:
        while parent[k] != k:
            k = parent[k]
        return k

    for l, r, _ in edges:
        if l in parent and r in parent:
            parent[root(l)] = root(r)
    parts: dict[str, set[str]] = defaultdict(set)
    for k in keys:
        parts[root(k)].add(k)
    return sorted(parts.values(), key=lambda p: sorted(p))


def _choose_joined_by_identifier(ctx, g: SimpleNamespace, exclude: set[str]) -> dict:  # noqa: ANN001
    """A person whose records only an identifier:email edge joins, named by a customer number or
    phone that only the records on one side hold: the other side is theirs through that edge alone."""
    for p, rs in sorted(g.by_person.items()):
        keys = {r.record_key for r in rs}
        if p in exclude or len(rs) < 2 or not _unique_name(g, rs):
            continue
        sides = _components(keys, [e for e in g.edges if e[2] != "identifier:email"])
        if len(sides) < 2 or len(_components(keys, g.edges)) != 1:
            continue
        for kind in (S.ID_CUSTOMER_NUMBER, S.ID_PHONE):
            for value in _own(g, rs, kind):
                holding = g.holders[(kind, value)]
                if any(holding <= side for side in sides) and _resolves_exactly(ctx, kind, value, keys):
                    return {"person": p, "records": rs, "kind": kind, "value": value, "direct": holding}
    pytest.fail("the generated data has no person whose records only an identifier edge joins")


def _choose_family_address(ctx, g: SimpleNamespace, exclude: set[str]) -> dict:  # noqa: ANN001
    """An e-mail address that records of several persons hold (golden and ground truth agree),
    none of them in ``exclude`` or a household of theirs; erasing every holder takes exactly
    those persons' records."""
    houses = {g.households[p] for p in exclude if p in g.households}
    for (kind, value), holding in sorted(g.holders.items()):
        if kind != S.ID_EMAIL:
            continue
        persons = {g.person_of.get(k) for k in holding}
        pids = {g.person_ids.get(k) for k in holding}
        if None in persons or None in pids or len(persons) < 2 or len(pids) < 2:
            continue
        if persons & exclude or {g.households[p] for p in persons} & houses:
            continue
        rs = [r for p in sorted(persons) for r in g.by_person[p]]
        if not _unique_name(g, rs):
            continue
        if _resolves_exactly(ctx, kind, value, {r.record_key for r in rs}, all_holders=True):
            return {"persons": persons, "person": sorted(persons)[0], "records": rs, "kind": kind, "value": value, "holders": len(pids)}
    pytest.fail("the generated data has no e-mail address that several persons hold")


def _national(phone: str) -> str:
    """+31612345678 -> '06 12345678': the subject as a person would give it."""
    import phonenumbers

    number = phonenumbers.parse(phone)
    if number.country_code != 31:
        return phone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def _needles(g: SimpleNamespace, subject: dict) -> list[tuple[str, ...]]:
    """What the tests look for: own e-mails, phones and customer numbers, and the name."""
    rs = subject["records"]
    out: list[tuple[str, ...]] = [(v,) for kind in ("email", "phone", "customer_number") for v in _own(g, rs, kind)]
    out += sorted({(r.given_name, r.family_name) for r in rs if r.given_name and r.family_name})
    return out


def _counts_of(ctx, keys: set[str], pids: set[str]) -> dict[str, int]:  # noqa: ANN001
    """Rows the access document must hold, counted straight from the tables."""
    in_keys = lambda c: F.col(c).isin(*keys)  # noqa: E731
    return {
        "pairs": ctx.lake.read(S.MATCH_PAIRS.address).where(in_keys("record_key_l") | in_keys("record_key_r")).count(),
        "edges": ctx.lake.read(S.MATCH_EDGES.address).where(in_keys("record_key_l") | in_keys("record_key_r")).count(),
        "id_changes": ctx.lake.read(S.GOLDEN_ID_CHANGES.address).where(F.col("person_id").isin(*pids) | F.col("related_person_id").isin(*pids)).count(),
        "quarantine": ctx.lake.read(S.BRONZE_QUARANTINE.address).where(in_keys(S.RECORD_KEY)).count(),
    }


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _captured_logs() -> "Iterator[_Messages]":  # noqa: F821
    """Every message of the suite's loggers (the CLI replaces the root handlers; these stay)."""
    handler = _Messages()
    loggers = [logging.getLogger(n) for n in ("jobs", "cdp")]
    levels = [lg.level for lg in loggers]
    root = logging.getLogger()
    root_handlers, root_level = root.handlers[:], root.level
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
        root.handlers[:] = root_handlers
        root.setLevel(root_level)


def _cli(*args: str) -> tuple[int, str, str]:
    from jobs.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--config", str(REPO / "conf" / "local.yaml"), "--set", "spark.shuffle_partitions=2"])
    return code, out.getvalue(), err.getvalue()


def _profiles_of(ctx, data: Path, person: str) -> dict[str, dict]:  # noqa: ANN001
    pids = _person_ids_of(ctx, data, person)
    rows = ctx.lake.read(S.GOLDEN_PROFILES.address).where(F.col("person_id").isin(*pids)).collect() if pids else []
    return {r.person_id: r.asDict(recursive=True) for r in rows}


@pytest.fixture(scope="module")
def erased(pipeline, tmp_path_factory, spark):  # noqa: ANN001, ANN201
    base = tmp_path_factory.mktemp("erasure")
    ctx = copy_pipeline(pipeline, base, spark, [PHONE_LINKS])
    g = _ground(ctx, pipeline.data)
    first = _choose_email_subject(ctx, g)
    first["keys"] = {r.record_key for r in first["records"]}
    mate = _choose_mate(g, first)
    mate["keys"] = {r.record_key for r in mate["records"]}
    _give_phone(ctx, mate["record"], first["phone"])
    _reresolve_record(ctx, mate["record"])
    g = _ground(ctx, pipeline.data)
    merged = {"clusters": {g.clusters[k] for k in first["keys"] | mate["keys"]}, "persons": {g.person_ids[k] for k in first["keys"] | mate["keys"]}}
    resolved_first = privacy.resolve_subjects(ctx, [("email", first["value"])])
    taken = {first["person"], mate["person"], *g.members[g.households[first["person"]]]}
    joined = _choose_joined_by_identifier(ctx, g, taken)
    taken.add(joined["person"])
    family = _choose_family_address(ctx, g, taken)
    taken |= family["persons"]
    more = []
    for kind in (S.ID_PHONE, S.ID_CUSTOMER_NUMBER, S.ID_PERSON):
        subject = _choose(ctx, g, kind, taken)
        taken.add(subject["person"])
        more.append(subject)
    more += [joined, family]
    subjects = [first, *more]
    for s in subjects:
        s["keys"] = {r.record_key for r in s["records"]}
        s["needles"] = _needles(g, s)
    member_before = _profiles_of(ctx, pipeline.data, first["member"])
    # A row of the subject that a re-send quarantined: the export must hold it, erasure remove it.
    key = sorted(first["keys"])[0]
    ctx.lake.append_rows(
        S.BRONZE_QUARANTINE.address,
        [{"quarantine_id": "q-test-subject", S.RECORD_KEY: key, S.SOURCE: "crm", S.BATCH_ID: "b-test", S.FILE: None, S.LINE: None, "reason": "wrong column count", "raw": f"{first['value']};;;", S.INGESTED_AT: None}],
        S.BRONZE_QUARANTINE.schema,
    )
    # An order of the subject's account tied to nothing but that account (blank customer number, no
    # e-mail): found through its owner_record_key, exported and erased with its owner.
    owned = {c: None for c in S.SILVER_EVENTS.column_names} | {
        "event_key": "e-test-owned", "source": "webshop_orders", "event_type": "order", "record_key": "e-test-owned",
        "owner_record_key": sorted(first["keys"])[0], "batch_id": "b-test", "row_hash": "h-test",
    }
    ctx.lake.append(S.SILVER_EVENTS.address, spark.createDataFrame([tuple(owned.values())], S.SILVER_EVENTS.schema))
    pids = {g.person_ids[k] for k in first["keys"] if k in g.person_ids}
    expected = _counts_of(ctx, first["keys"], pids)
    before = scan_for_values([ctx.lake_root, ctx.data_root], [n for s in subjects for n in s["needles"]])
    where = ["--set", f"lake.root={ctx.lake_root}", "--set", f"data.root={ctx.data_root}", "--set", PHONE_LINKS, "--run-date", PIPELINE_RUN_DATE]

    with _captured_logs() as logs:
        access = privacy.export_subject(ctx, f"email:{first['value'].upper()}")
        access_doc = json.loads(Path(access["out"]).read_text(encoding="utf-8"))
        result = privacy.erase(ctx, [f"email:{first['value']}"])
        records_before_refusal = ctx.lake.read(S.SILVER_RECORDS.address).count()
        refused = _cli("privacy", "erase", "--subject", f"email:{family['value']}", *where)
        records_after_refusal = ctx.lake.read(S.SILVER_RECORDS.address).count()
        requests = base / "requests.txt"
        lines = [f"{S.ID_PHONE}:{_national(more[0]['value'])}", f"{S.ID_CUSTOMER_NUMBER}:  {more[1]['value']} ", f"{S.ID_PERSON}:{more[2]['value']}"]
        lines += [f"{s['kind']}:{s['value']}" for s in (joined, family)]
        lines += [f"email:{NOBODY.upper()}"]  # no record holds it: nothing_held, suppressed, its side-file line removed
        side = Path(ctx.data_root) / "notes" / "call-backs.txt"
        side.parent.mkdir(parents=True, exist_ok=True)
        side.write_text(f"call {NOBODY} back on monday\nkeep this line\n", encoding="utf-8")
        requests.write_text("# erasure requests of the week\n" + "".join(f"{line}\n" for line in lines), encoding="utf-8")
        code, printed, _err = _cli("privacy", "erase", "--file", str(requests), "--all-holders", *where)
    requests.unlink()
    return {
        "ctx": ctx, "base": base, "subject": first, "more": more, "subjects": subjects, "before": before, "result": result,
        "mate": mate, "merged": merged, "resolved_first": resolved_first, "joined": joined, "family": family,
        "member_before": member_before, "access": access, "access_doc": access_doc, "expected": expected, "pids": pids,
        "refused": refused, "refusal_counts": (records_before_refusal, records_after_refusal),
        "cli": (code, printed), "logs": logs.lines,
    }


def _person_ids_of(ctx, data: Path, person: str) -> set[str]:  # noqa: ANN001
    truth, _ = _truth(data)
    recs = ctx.lake.read(S.SILVER_RECORDS.address).select("record_key", "source", "source_id").collect()
    keys = [r.record_key for r in recs if truth.get((r.source, r.source_id)) == person]
    if not keys:
        return set()
    return {r.person_id for r in ctx.lake.read(S.GOLDEN_IDENTITY_MAP.address).where(F.col("record_key").isin(*keys)).collect()}


def test_subjects_were_present_before(erased) -> None:  # noqa: ANN001
    assert erased["before"].hits > 0
    for s in erased["subjects"]:
        assert len(s["keys"]) >= 1 and s["needles"], s["kind"]


def _printed(erased) -> dict:  # noqa: ANN001
    code, printed = erased["cli"]
    assert code == 0, printed
    line = printed.strip().splitlines()[-1]
    assert line.startswith("privacy erase: ")
    return json.loads(line.split(": ", 1)[1])


def test_both_erasure_runs_succeeded_and_were_verified(erased) -> None:  # noqa: ANN001
    assert erased["result"]["outcome"] == "verified" and erased["result"]["scan_hits"] == 0
    result = _printed(erased)
    assert result["outcome"] == "verified" and result["scan_hits"] == 0
    assert result["records"] == sum(len(s["keys"]) for s in erased["more"])
    assert len(result["requests"]) == 6  # the five subjects, and the address no record holds


def test_scan_finds_nothing_of_any_subject_anywhere(erased) -> None:  # noqa: ANN001
    ctx = erased["ctx"]
    for s in erased["subjects"]:
        again = scan_for_values([ctx.lake_root, ctx.data_root], s["needles"])
        assert again.files > 50
        assert again.hits == 0, (s["kind"], again.hit_files)


def test_every_layer_lost_the_subjects_records(erased) -> None:  # noqa: ANN001
    ctx = erased["ctx"]
    keys = set().union(*(s["keys"] for s in erased["subjects"]))
    for address, column in (
        (S.SILVER_RECORDS.address, "record_key"),
        (S.SILVER_IDENTIFIERS.address, "record_key"),
        (S.MATCH_CLUSTERS.address, "record_key"),
        (S.GOLDEN_IDENTITY_MAP.address, "record_key"),
        (S.MATCH_PAIRS.address, "record_key_l"),
        (S.MATCH_PAIRS.address, "record_key_r"),
        (S.MATCH_EDGES.address, "record_key_l"),
        (S.MATCH_EDGES.address, "record_key_r"),
        (S.BRONZE_QUARANTINE.address, S.RECORD_KEY),
    ):
        assert ctx.lake.read(address).where(F.col(column).isin(*keys)).count() == 0, address
    assert ctx.lake.read(S.SILVER_EVENTS.address).where(F.col("owner_record_key").isin(*keys)).count() == 0
    assert ctx.lake.read(S.SILVER_EVENTS.address).where(F.col("event_key") == "e-test-owned").count() == 0
    for t in ctx.lake.tables():
        if t.startswith("bronze.") and t != S.BRONZE_QUARANTINE.address:
            assert ctx.lake.read(t).where(F.col(S.RECORD_KEY).isin(*keys)).count() == 0, t
    person = erased["more"][2]["value"]
    for address in (S.GOLDEN_PROFILES.address, S.GOLDEN_HOUSEHOLDS.address, S.SEGMENT_MEMBERSHIP.address):
        assert ctx.lake.read(address).where(F.col("person_id") == person).count() == 0, address
    # Old versions are gone: the tables' history starts after the (last) erasure.
    assert len(ctx.lake.history(S.SILVER_RECORDS.address)) <= 3


def test_household_member_profile_is_unchanged(erased) -> None:  # noqa: ANN001
    """Everything of the household member's profile but the columns every golden run rewrites is
    as it was before both erasures (the subject's records, the family address and the batch's
    persons were never theirs)."""
    ctx, subject = erased["ctx"], erased["subject"]
    before = erased["member_before"]
    after = _profiles_of(ctx, Path(ctx.data_root), subject["member"])
    assert before, "the household member had no profile before"
    assert set(after) == set(before), "the household member's person ids changed"
    strip = lambda rows: {pid: {k: v for k, v in row.items() if k not in RUN_COLUMNS} for pid, row in rows.items()}  # noqa: E731
    assert strip(after) == strip(before)


def test_resolution_followed_the_email_edges_and_kept_the_cluster_mate(erased) -> None:  # noqa: ANN001
    """Before the erasure: the subject and the mate were one cluster and one golden person through
    the phone link; resolution took exactly the subject's records and reported the mate's record."""
    merged, subject, mate = erased["merged"], erased["subject"], erased["mate"]
    assert len(merged["clusters"]) == 1 and len(merged["persons"]) == 1, merged
    resolved = erased["resolved_first"]
    assert resolved.record_keys == subject["keys"]
    assert resolved.linked_records_kept == {mate["record"]}
    assert erased["result"]["linked_records_kept"] == 1
    assert any("linked to the subjects' records stay (edges not followed): identifier:phone: 1" in line for line in erased["logs"])


def test_former_cluster_mate_keeps_their_records_and_a_profile_of_their_own(erased) -> None:  # noqa: ANN001
    ctx, subject, mate = erased["ctx"], erased["subject"], erased["mate"]
    records = {r.record_key for r in ctx.lake.read(S.SILVER_RECORDS.address).where(F.col("record_key").isin(*mate["keys"])).collect()}
    assert records == mate["keys"], "the cluster mate lost records"
    identity = {r.record_key: r.person_id for r in ctx.lake.read(S.GOLDEN_IDENTITY_MAP.address).where(F.col("record_key").isin(*mate["keys"])).collect()}
    assert set(identity) == mate["keys"] and len(set(identity.values())) == 1
    (profile,) = ctx.lake.read(S.GOLDEN_PROFILES.address).where(F.col("person_id").isin(*identity.values())).collect()
    assert profile.record_count == len(mate["keys"])
    assert profile.given_name in {r.given_name for r in mate["records"]}
    assert profile.family_name in {r.family_name for r in mate["records"]}
    # the landline stays theirs; nothing else of the subject's is in their profile
    assert subject["value"] not in json.dumps(profile.asDict(recursive=True), default=str)
    assert subject["phone"] in profile.identifiers.get("phone", [])


def test_a_person_joined_only_by_an_identifier_edge_is_erased_whole(erased) -> None:  # noqa: ANN001
    ctx, joined = erased["ctx"], erased["joined"]
    assert joined["direct"] < joined["keys"]  # the value named only some of their records
    assert ctx.lake.read(S.SILVER_RECORDS.address).where(F.col("record_key").isin(*joined["keys"])).count() == 0
    again = scan_for_values([ctx.lake_root, ctx.data_root], joined["needles"])
    assert again.files > 50 and again.hits == 0, again.hit_files


def test_an_identifier_several_persons_hold_is_refused_without_all_holders(erased) -> None:  # noqa: ANN001
    ctx, family = erased["ctx"], erased["family"]
    code, _out, err = erased["refused"]
    reference = privacy.subject_hash(ctx.cfg.privacy.salt, "email", family["value"])[:16]
    assert code == 1
    assert (
        f"error: privacy erase: 1 subject(s) name an identifier that more than one person in golden.identity_map holds "
        f"(a family e-mail address, a shared card): the email subject (reference {reference}) is held by records of "
        f"{family['holders']} persons; nothing was changed."
    ) in err
    assert "--all-holders" in err and family["value"] not in err
    before, after = erased["refusal_counts"]
    assert before == after
    # then erased with --all-holders: every holder is gone
    assert ctx.lake.read(S.SILVER_RECORDS.address).where(F.col("record_key").isin(*family["keys"])).count() == 0


def test_batch_audit_rows_carry_each_requests_own_counts(erased) -> None:  # noqa: ANN001
    ctx = erased["ctx"]
    salt = ctx.cfg.privacy.salt
    result = _printed(erased)
    audit = {r.request_id: r for r in ctx.lake.read(S.PRIVACY_AUDIT.address).where(F.col("request_id").isin(*result["requests"])).collect()}
    per_request = {p["request"]: p for p in result["per_request"]}
    assert set(audit) == set(per_request) == set(result["requests"])
    for request_id, subject in zip(result["requests"], erased["more"]):  # requests in the file's order
        row = audit[request_id]
        assert row.subject_hash == privacy.subject_hash(salt, subject["kind"], subject["value"])
        assert row.records == per_request[request_id]["records"] == len(subject["keys"]), subject["kind"]
        assert row.rows_removed == per_request[request_id]["rows_removed"]
        assert len(subject["keys"]) < row.rows_removed < result["rows_removed"], subject["kind"]
        # the tables, versions, files and scan are the batch's, and the row says so
        assert (row.batch_requests, row.tables, row.versions, row.scan_files) == (6, result["tables"], result["versions"], result["scan_files"])
    assert sum(r.records for r in audit.values()) == result["records"]


def test_a_subject_no_record_holds_is_nothing_held_suppressed_and_scrubbed(erased) -> None:  # noqa: ANN001
    """Nothing to erase is said, not reported as verified; the identifier is still suppressed and
    searched for (a landing side file's line naming it goes)."""
    ctx = erased["ctx"]
    result = _printed(erased)
    assert result["outcome"] == "verified" and result["nothing_held"] == 1
    request = result["requests"][-1]
    row = ctx.lake.read(S.PRIVACY_AUDIT.address).where(F.col("request_id") == request).collect()[0]
    assert (row.outcome, row.records, row.rows_removed) == ("nothing_held", 0, 0)
    assert [p["outcome"] for p in result["per_request"]] == ["verified"] * 5 + ["nothing_held"]
    hashes = {r.id_hash for r in ctx.lake.read(S.PRIVACY_SUPPRESSION.address).where(F.col("id_type") == "email").collect()}
    assert salted_hash(ctx.cfg.privacy.salt, "email", NOBODY) in hashes
    side = Path(ctx.data_root) / "notes" / "call-backs.txt"
    assert side.read_text(encoding="utf-8") == "keep this line\n"


def test_golden_reresolved_incrementally_as_a_full_run_would(erased, tmp_path, spark) -> None:  # noqa: ANN001
    ctx = erased["ctx"]
    runs = golden_runs(ctx)[-2:]  # one per erasure request
    assert [r.metrics["mode"] for r in runs] == ["incremental", "incremental"], [r.metrics.get("full_reason") for r in runs]
    # The first request's run rebuilt at least the household member; the second's subjects may
    # have left no one behind whose profile changes.
    assert int(runs[0].metrics["persons_rebuilt"]) >= 1, runs[0].metrics
    for r in runs:
        assert int(r.metrics["persons_rebuilt"]) < int(r.metrics["persons"]) / 4, r.metrics
    summary = full_golden_rerun(ctx, tmp_path, spark)
    assert {k: summary[k] for k in GOLDEN_UNCHANGED} == dict.fromkeys(GOLDEN_UNCHANGED, 0)
    assert summary["persons"] == int(runs[-1].metrics["persons"])


def test_audit_requests_and_suppression_hold_hashes_only(erased) -> None:  # noqa: ANN001
    ctx = erased["ctx"]
    salt = ctx.cfg.privacy.salt
    rows = ctx.lake.read(S.PRIVACY_AUDIT.address).where("kind = 'erasure'").collect()
    expected = {privacy.subject_hash(salt, s["kind"], s["value"]): s for s in erased["subjects"]}
    family = privacy.subject_hash(salt, "email", erased["family"]["value"])
    nobody = privacy.subject_hash(salt, "email", NOBODY)
    assert sorted((r.subject_hash, r.outcome) for r in rows) == sorted(
        [(h, "verified") for h in expected] + [(family, "refused"), (nobody, "nothing_held")]
    )
    audit = {r.subject_hash: r for r in rows if r.outcome == "verified"}
    for h, row in audit.items():
        assert row.scan_hits == 0 and row.rows_removed > 0 and row.records > 0 and row.scan_files > 50
    first = audit[privacy.subject_hash(salt, "email", erased["subject"]["value"])]
    assert first.tables[S.SILVER_RECORDS.address] == first.records == len(erased["subject"]["keys"])
    assert first.tables[S.BRONZE_QUARANTINE.address] >= 1
    assert (first.batch_requests, first.linked_records_kept, first.rows_removed) == (1, 1, sum(first.tables.values()))
    requests = ctx.lake.read(S.PRIVACY_REQUESTS.address).where("kind = 'erasure'").collect()
    assert sorted((r.subject_hash, r.state) for r in requests) == sorted(
        [(h, "done") for h in expected] + [(family, "failed"), (nobody, "done")]
    )
    kinds = {r.id_type for r in ctx.lake.read(S.PRIVACY_SUPPRESSION.address).collect()}
    assert {"email", "phone", "customer_number", "record_key"} <= kinds


def test_no_subject_value_in_logs_run_log_or_audit(erased) -> None:  # noqa: ANN001
    ctx = erased["ctx"]
    values = {s["value"] for s in erased["subjects"]} | {n[0] for s in erased["subjects"] for n in s["needles"] if len(n) == 1}
    values |= {f"{n[0]} {n[1]}" for s in erased["subjects"] for n in s["needles"] if len(n) == 2}
    assert len(erased["logs"]) > 10
    text = "\n".join(erased["logs"]) + erased["cli"][1] + erased["refused"][1] + erased["refused"][2]
    for address in (S.OPS_RUNS.address, S.PRIVACY_AUDIT.address, S.PRIVACY_REQUESTS.address, S.PRIVACY_SUPPRESSION.address):
        text += json.dumps([r.asDict(recursive=True) for r in ctx.lake.read(address).collect()], default=str)
    low = text.lower()
    leaked = sorted(v for v in values if v.lower() in low)
    assert leaked == []


def test_reingesting_the_subject_is_quarantined_as_suppressed(erased) -> None:  # noqa: ANN001
    from jobs.ingest import job as ingest

    ctx, subject = erased["ctx"], erased["subject"]
    crm = Path(ctx.data_root) / "crm" / "crm_export_zz_resend.csv"
    crm.write_text(
        "klantnummer;aanhef;voornaam;tussenvoegsel;achternaam;geboortedatum;geslacht;email;telefoon;straat;huisnummer;postcode;woonplaats;land;opt_in_post;bedrijf;functie;aangemaakt;gewijzigd\n"
        f"K-RESEND-1;;Iemand;;Anders;;;{subject['value'].upper()};;;;;;NL;;;;;\n",
        encoding="utf-8",
    )
    before = ctx.lake.read(S.BRONZE_QUARANTINE.address).where("reason = 'suppressed'").count()
    summary = ingest.run(ctx, sources=["crm"])
    assert summary["crm"]["quarantined"] == 1 and summary["crm"]["landed"] == 0
    assert ctx.lake.read(S.BRONZE_QUARANTINE.address).where("reason = 'suppressed'").count() == before + 1
    crm.unlink()


# --- the access export, taken before the erasure ---------------------------------------------------


def test_access_export_holds_every_layer_with_provenance(erased) -> None:  # noqa: ANN001
    doc, subject, expected = erased["access_doc"], erased["subject"], erased["expected"]
    layers = doc["layers"]
    silver_keys = {r["record_key"] for r in layers["silver"]["records"]}
    assert subject["keys"] <= silver_keys
    assert erased["access"]["records"] == len(silver_keys)
    assert set(doc["person_ids"]) == erased["pids"]
    assert layers["golden"]["profiles"] and all("provenance" in p for p in layers["golden"]["profiles"])
    # Provenance: every bronze row names its source, batch and landing file and line.
    bronze = [r for t, rows in layers["bronze"].items() if t != "_quarantine" for r in rows]
    assert bronze and all(r["_source"] and r["_batch_id"] and r["_file"] and r["_line"] for r in bronze)
    assert {r["source"] for r in layers["silver"]["records"]} <= set(layers["bronze"]) | {"web"}
    # Score explanations: every pair of the subject's records, with its levels and weights.
    pairs = layers["match"]["pairs"]
    assert len(pairs) == expected["pairs"] > 0
    assert all(p["levels"] and p["weights"] and set(p["levels"]) == set(p["weights"]) for p in pairs)
    assert all(p["record_key_l"] in silver_keys or p["record_key_r"] in silver_keys for p in pairs)
    assert len(layers["match"]["edges"]) == expected["edges"] > 0
    assert len(layers["golden"]["id_changes"]) == expected["id_changes"] > 0
    assert {c["person_id"] for c in layers["golden"]["id_changes"]} & erased["pids"]
    assert len(layers["bronze"]["_quarantine"]) == expected["quarantine"] >= 1
    assert "q-test-subject" in {q["quarantine_id"] for q in layers["bronze"]["_quarantine"]}
    assert "e-test-owned" in {e["event_key"] for e in layers["silver"]["events"]}
    assert isinstance(layers["segments"]["exports"], list)
    assert doc["subject"]["reference"] == privacy.subject_hash(erased["ctx"].cfg.privacy.salt, "email", subject["value"])
    assert subject["value"] in json.dumps(doc, ensure_ascii=False)


def test_access_export_was_recorded_as_a_run_and_a_request(erased) -> None:  # noqa: ANN001
    ctx, access = erased["ctx"], erased["access"]
    runs = {r.run_id: r for r in ctx.lake.read(S.OPS_RUNS.address).where("job = 'privacy_export'").collect()}
    assert list(runs) == [access["run_id"]]
    run = runs[access["run_id"]]
    assert run.status == "succeeded" and run.rows_out > 0 and int(run.metrics["rows.match.pairs"]) == erased["expected"]["pairs"]
    request = ctx.lake.read(S.PRIVACY_REQUESTS.address).where(F.col("request_id") == access["request"]).collect()
    assert [(r.kind, r.state, r.run_id) for r in request] == [("access", "done", access["run_id"])]
    assert request[0].subject_hash == erased["access_doc"]["subject"]["reference"]


def test_erasure_removed_the_subjects_access_document(erased) -> None:  # noqa: ANN001
    assert not os.path.exists(erased["access"]["out"])


def test_access_export_of_an_unknown_subject_fails_without_naming_it(erased) -> None:  # noqa: ANN001
    from jobs.common.errors import PrivacyError

    ctx = erased["ctx"]
    with pytest.raises(PrivacyError, match=r"privacy export: no records found for the email subject \(reference [0-9a-f]{16}\); expected an identifier of type email in silver.identifiers") as info:
        privacy.export_subject(ctx, "email:nobody.at.all@example.invalid")
    assert "nobody" not in str(info.value)
    failed = ctx.lake.read(S.OPS_RUNS.address).where("job = 'privacy_export' and status = 'failed'").collect()
    assert len(failed) == 1 and "nobody" not in (failed[0].error or "")
    with pytest.raises(PrivacyError, match="got 2 subjects; expected exactly one --subject TYPE:VALUE"):
        privacy.export_subject(ctx, ["email:a@b.nl", "email:c@d.nl"])


def test_segment_export_rows_are_found_by_person_id_and_hash(erased) -> None:  # noqa: ANN001
    """The subject's rows in audience files: by person id (e-mail CSV) or by hash (ad audiences)."""
    ctx = erased["ctx"]
    folder = erased["base"] / "audiences"
    folder.mkdir()
    email_csv, hashed_csv = folder / "email_csv.csv", folder / "hashed_audience.csv"
    email_csv.write_text("person_id,email\nP-subject,jan@voorbeeld.nl\nP-other,piet@voorbeeld.nl\n", encoding="utf-8")
    sha = lambda v: hashlib.sha256(v.encode()).hexdigest()  # noqa: E731
    hashed_csv.write_text(f"email_sha256,phone_sha256\n{sha('piet@voorbeeld.nl')},\n,{sha('31612345678')}\n", encoding="utf-8")
    manifests = [
        {"export_id": f"x-{t}", "segment": "test_segment", "target": t, "path": str(p), "rows": 2, "hash_method": "none", "run_id": "r-test", "created_at": None}
        for t, p in (("email_csv", email_csv), ("hashed_audience", hashed_csv))
    ]
    ctx.lake.append_rows(S.SEGMENT_EXPORTS.address, manifests, S.SEGMENT_EXPORTS.schema)
    found = privacy.Subject(person_ids={"P-subject"}, identifiers={("email", "jan@voorbeeld.nl"), ("phone", "+31612345678")})
    rows = [r for r in privacy.segment_export_rows(ctx, found) if r["segment"] == "test_segment"]
    assert [(r["target"], r["line"], r["row"]) for r in rows] == [
        ("email_csv", 2, {"person_id": "P-subject", "email": "jan@voorbeeld.nl"}),
        ("hashed_audience", 3, {"email_sha256": "", "phone_sha256": sha("31612345678")}),
    ]
    ctx.lake.delete(S.SEGMENT_EXPORTS.address, "segment = 'test_segment'")
