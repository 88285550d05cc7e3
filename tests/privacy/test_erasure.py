"""Erasure end to end on generated data: nothing of the subject remains anywhere, others stay right.

The subject is chosen from the generator's ground truth: a person with several records, an e-mail
address of their own, a household member, and (when the data has one) a record of another person
in the same cluster (an over-merge the subject's erasure must not take along).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.privacy import job as privacy
from jobs.privacy.scan import scan_for_values

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from conftest import copy_pipeline  # noqa: E402


def _truth(data: Path) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    with open(data / "ground_truth" / "records.csv", encoding="utf-8") as fh:
        records = {(r["source"], r["source_id"]): r["person_id"] for r in csv.DictReader(fh)}
    with open(data / "ground_truth" / "households.csv", encoding="utf-8") as fh:
        households = {r["person_id"]: r["household_id"] for r in csv.DictReader(fh)}
    return records, households


def _choose_subject(ctx, data: Path) -> dict:  # noqa: ANN001
    truth, households = _truth(data)
    recs = ctx.lake.read(S.SILVER_RECORDS.address).select(
        "record_key", "source", "source_id", "email", "phone", "given_name", "family_name", "customer_number"
    ).collect()
    clusters = {r.record_key: r.cluster_id for r in ctx.lake.read(S.MATCH_CLUSTERS.address).collect()}
    ids = ctx.lake.read(S.SILVER_IDENTIFIERS.address).collect()
    holders: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in ids:
        holders[(r.id_type, r.id_value)].add(r.record_key)
    by_person: dict[str, list] = defaultdict(list)
    for r in recs:
        p = truth.get((r.source, r.source_id))
        if p:
            by_person[p].append(r)
    names = Counter((r.given_name or "").lower() + "|" + (r.family_name or "").lower() for r in recs)
    members: dict[str, list[str]] = defaultdict(list)
    for p, h in households.items():
        members[h].append(p)
    person_of = {r.record_key: truth.get((r.source, r.source_id)) for r in recs}
    best = None
    for p, rs in sorted(by_person.items()):
        keys = {r.record_key for r in rs}
        own_emails = sorted({r.email for r in rs if r.email and holders[("email", r.email)] <= keys})
        if len(rs) < 2 or not own_emails:
            continue
        others_in_house = [m for m in members[households[p]] if m != p and by_person.get(m)]
        if not others_in_house:
            continue
        # The subject's name must not belong to anyone else (the scan checks names too).
        if any(names[(r.given_name or "").lower() + "|" + (r.family_name or "").lower()] > sum(
            1 for x in rs if (x.given_name, x.family_name) == (r.given_name, r.family_name)
        ) for r in rs if r.given_name and r.family_name):
            continue
        # Erasure must resolve exactly this person's records (the test is about what happens
        # after; resolution quality is the match model's): skip persons the clustering got wrong.
        resolved = privacy.resolve_subjects(ctx, [("email", own_emails[0])]).record_keys
        if resolved != keys:
            continue
        cluster_ids = {clusters.get(k) for k in keys}
        mates = sorted({person_of[k] for k, c in clusters.items() if c in cluster_ids and k not in keys and person_of.get(k) and person_of[k] != p})
        candidate = {"person": p, "records": rs, "email": own_emails[0], "member": others_in_house[0], "mates": mates}
        if mates:
            return candidate
        best = best or candidate
    assert best is not None, "the generated data has no suitable subject"
    return best


@pytest.fixture(scope="module")
def erased(pipeline, tmp_path_factory, spark):  # noqa: ANN001, ANN201
    ctx = copy_pipeline(pipeline, tmp_path_factory.mktemp("erasure"), spark)
    subject = _choose_subject(ctx, pipeline.data)
    keys = {r.record_key for r in subject["records"]}
    # What the test itself will look for afterwards (independent of what erasure computes).
    needles = [(subject["email"],)]
    for r in subject["records"]:
        if r.phone and not any(r.phone == x.phone for x in ctx.lake.read(S.SILVER_RECORDS.address).where(~F.col("record_key").isin(*keys)).select("phone").collect()):
            needles.append((r.phone,))
        if r.given_name and r.family_name:
            needles.append((r.given_name, r.family_name))
    before = scan_for_values([str(ctx.lake_root), str(ctx.data_root)], needles)
    member_pids = _person_ids_of(ctx, pipeline.data, subject["member"])
    result = privacy.erase(ctx, [f"email:{subject['email']}"])
    return {"ctx": ctx, "subject": subject, "keys": keys, "needles": needles, "before": before, "result": result, "member_pids": member_pids}


def _person_ids_of(ctx, data: Path, person: str) -> set[str]:  # noqa: ANN001
    truth, _ = _truth(data)
    recs = ctx.lake.read(S.SILVER_RECORDS.address).select("record_key", "source", "source_id").collect()
    keys = [r.record_key for r in recs if truth.get((r.source, r.source_id)) == person]
    if not keys:
        return set()
    return {r.person_id for r in ctx.lake.read(S.GOLDEN_IDENTITY_MAP.address).where(F.col("record_key").isin(*keys)).collect()}


def test_subject_was_present_before(erased) -> None:  # noqa: ANN001
    assert erased["before"].hits > 0


def test_scan_finds_nothing_of_the_subject_anywhere(erased) -> None:  # noqa: ANN001
    ctx = erased["ctx"]
    assert erased["result"]["outcome"] == "verified"
    assert erased["result"]["scan_hits"] == 0
    again = scan_for_values([ctx.lake_root, ctx.data_root], erased["needles"])
    assert again.files > 50
    assert again.hits == 0, again.hit_files


def test_every_layer_lost_the_subjects_records(erased) -> None:  # noqa: ANN001
    ctx, keys = erased["ctx"], erased["keys"]
    for address, column in (
        (S.SILVER_RECORDS.address, "record_key"),
        (S.SILVER_IDENTIFIERS.address, "record_key"),
        (S.MATCH_CLUSTERS.address, "record_key"),
        (S.GOLDEN_IDENTITY_MAP.address, "record_key"),
        (S.MATCH_PAIRS.address, "record_key_l"),
        (S.MATCH_PAIRS.address, "record_key_r"),
    ):
        assert ctx.lake.read(address).where(F.col(column).isin(*keys)).count() == 0, address
    for t in ctx.lake.tables():
        if t.startswith("bronze.") and t != S.BRONZE_QUARANTINE.address:
            assert ctx.lake.read(t).where(F.col(S.RECORD_KEY).isin(*keys)).count() == 0, t
    # Old versions are gone: the tables' history starts after the erasure.
    assert len(ctx.lake.history(S.SILVER_RECORDS.address)) <= 3


def test_household_member_keeps_a_correct_profile(erased) -> None:  # noqa: ANN001
    ctx, subject = erased["ctx"], erased["subject"]
    pids = _person_ids_of(ctx, Path(ctx.data_root), subject["member"])
    assert pids, "the household member lost their records"
    profiles = ctx.lake.read(S.GOLDEN_PROFILES.address).where(F.col("person_id").isin(*pids)).collect()
    assert len(profiles) == len(pids)
    subject_given = {r.given_name for r in subject["records"] if r.given_name}
    assert all(p.given_name not in subject_given or p.given_name is None for p in profiles)
    assert all(p.household_id for p in profiles)


def test_former_cluster_mates_keep_their_records_and_profiles(erased) -> None:  # noqa: ANN001
    ctx, subject = erased["ctx"], erased["subject"]
    if not subject["mates"]:
        pytest.skip("no cluster in this generated data held the subject together with someone else")
    for mate in subject["mates"]:
        pids = _person_ids_of(ctx, Path(ctx.data_root), mate)
        assert pids, f"person {mate} lost their records"
        rows = ctx.lake.read(S.GOLDEN_PROFILES.address).where(F.col("person_id").isin(*pids)).collect()
        assert rows and all(r.record_count >= 1 for r in rows)


def test_audit_and_suppression_hold_hashes_only(erased) -> None:  # noqa: ANN001
    ctx, subject = erased["ctx"], erased["subject"]
    audit = ctx.lake.read(S.PRIVACY_AUDIT.address).collect()
    assert len(audit) == 1
    row = audit[0]
    assert row.outcome == "verified" and row.scan_hits == 0 and row.rows_removed > 0
    assert row.subject_hash == privacy.subject_hash(ctx.cfg.privacy.salt, "email", subject["email"])
    assert subject["email"] not in json.dumps(row.asDict(recursive=True), default=str)
    assert row.tables[S.SILVER_RECORDS.address] == len(erased["keys"])
    kinds = {r.id_type for r in ctx.lake.read(S.PRIVACY_SUPPRESSION.address).collect()}
    assert {"email", "record_key"} <= kinds


def test_reingesting_the_subject_is_quarantined_as_suppressed(erased) -> None:  # noqa: ANN001
    from jobs.ingest import job as ingest

    ctx, subject = erased["ctx"], erased["subject"]
    crm = Path(ctx.data_root) / "crm" / "crm_export_zz_resend.csv"
    crm.write_text(
        "klantnummer;aanhef;voornaam;tussenvoegsel;achternaam;geboortedatum;geslacht;email;telefoon;straat;huisnummer;postcode;woonplaats;land;opt_in_post;bedrijf;functie;aangemaakt;gewijzigd\n"
        f"K-RESEND-1;;Iemand;;Anders;;;{subject['email'].upper()};;;;;;NL;;;;;\n",
        encoding="utf-8",
    )
    before = ctx.lake.read(S.BRONZE_QUARANTINE.address).where("reason = 'suppressed'").count()
    summary = ingest.run(ctx, sources=["crm"])
    assert summary["crm"]["quarantined"] == 1 and summary["crm"]["landed"] == 0
    assert ctx.lake.read(S.BRONZE_QUARANTINE.address).where("reason = 'suppressed'").count() == before + 1
    crm.unlink()


def test_access_export_holds_everything_with_provenance(pipeline, tmp_path, spark) -> None:  # noqa: ANN001
    ctx = pipeline.ctx
    subject = _choose_subject(ctx, pipeline.data)
    out = tmp_path / "access.json"
    result = privacy.export_subject(ctx, f"email:{subject['email']}", str(out))
    doc = json.loads(out.read_text(encoding="utf-8"))
    keys = {r.record_key for r in subject["records"]}
    silver_keys = {r["record_key"] for r in doc["layers"]["silver"]["records"]}
    assert keys <= silver_keys
    assert result["records"] == len(silver_keys)
    assert doc["layers"]["golden"]["profiles"] and all("provenance" in p for p in doc["layers"]["golden"]["profiles"])
    assert subject["email"] in out.read_text(encoding="utf-8")
    assert doc["subject"]["reference"] != subject["email"]
