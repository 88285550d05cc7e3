"""Subject resolution on a small hand-made lake: which edges erasure follows, what it refuses.

The lake (silver.identifiers, match.edges, match.clusters, golden.identity_map):

* Anna: a1 (crm, customer number K1, e-mail anna@), a2 (webshop, e-mail anna@: joined to a1 by the
  e-mail edge only), a3 (loyalty card, joined to a1 by a probabilistic edge);
* Bert, her household member: b1, with the household's landline, which the phone links (phone in
  ``id_types``, not in ``conflict_check``) joined to a1: so Anna and Bert are one cluster and one
  person (P1), an over-merge; b1 also holds the family e-mail fam@;
* Carla: c1, person P3, also holds fam@ (so two persons hold it);
* Dirk: d1 (customer number K4) and d2, a probabilistic edge between them, but the over-merge guard
  put them in two clusters (persons P4 and P5).
"""

from __future__ import annotations

import re

import pytest

from jobs.common import schemas as S
from jobs.common.errors import PrivacyError
from jobs.privacy import job as privacy

IDENTIFIERS = [
    ("a1", "customer_number", "K1", "crm"),
    ("a1", "email", "anna@voorbeeld.nl", "crm"),
    ("a2", "email", "anna@voorbeeld.nl", "webshop"),
    ("a3", "loyalty_card", "L1", "pos_members"),
    ("b1", "phone", "+31201234567", "crm"),
    ("b1", "email", "fam@voorbeeld.nl", "crm"),
    ("c1", "email", "fam@voorbeeld.nl", "webshop"),
    ("d1", "customer_number", "K4", "crm"),
    ("d2", "loyalty_card", "L4", "pos_members"),
]
EDGES = [
    ("a1", "a2", "identifier:email", None, 1.0),
    ("a1", "a3", "probabilistic", 12.0, 0.999),
    ("a1", "b1", "identifier:phone", None, 1.0),
    ("d1", "d2", "probabilistic", 4.0, 0.95),
]
CLUSTERS = {"a1": "a1", "a2": "a1", "a3": "a1", "b1": "a1", "c1": "c1", "d1": "d1", "d2": "d2"}
PERSONS = {"a1": "P1", "a2": "P1", "a3": "P1", "b1": "P1", "c1": "P3", "d1": "P4", "d2": "P5"}
PHONE_LINKS = {"id_types": ["customer_number", "loyalty_card", "email", "phone"]}


@pytest.fixture()
def small_lake(make_ctx):  # noqa: ANN001, ANN201
    def build(deterministic: dict | None = None, **sections: object):  # noqa: ANN202
        det = {**PHONE_LINKS, **(deterministic or {})}
        ctx = make_ctx(match={"deterministic": det}, privacy={"salt": "test-salt-123"}, **sections)
        lake = ctx.lake
        lake.append_rows(
            S.SILVER_IDENTIFIERS.address,
            [dict(zip(("record_key", "id_type", "id_value", "source"), r)) for r in IDENTIFIERS],
            S.SILVER_IDENTIFIERS.schema,
        )
        lake.append_rows(
            S.MATCH_EDGES.address,
            [dict(zip(("record_key_l", "record_key_r", "edge_type", "match_weight", "match_probability"), e), run_id="r") for e in EDGES],
            S.MATCH_EDGES.schema,
        )
        sizes = {c: list(CLUSTERS.values()).count(c) for c in CLUSTERS.values()}
        lake.append_rows(
            S.MATCH_CLUSTERS.address,
            [{"record_key": k, "cluster_id": c, "cluster_size": sizes[c], "run_id": "r"} for k, c in CLUSTERS.items()],
            S.MATCH_CLUSTERS.schema,
        )
        lake.append_rows(
            S.GOLDEN_IDENTITY_MAP.address,
            [{"record_key": k, "person_id": p, "first_seen_run": "r", "run_id": "r"} for k, p in PERSONS.items()],
            S.GOLDEN_IDENTITY_MAP.schema,
        )
        return ctx

    return build


def test_identifier_edges_of_conflict_checked_types_are_followed_landline_edges_are_not(small_lake) -> None:  # noqa: ANN001
    ctx = small_lake()  # conflict_check: e-mail and loyalty card (the default)
    assert privacy.unfollowed_edge_types(ctx.cfg.match.deterministic) == {"identifier:phone"}
    found = privacy.resolve_subjects(ctx, [("customer_number", "K1")])
    # a2 is Anna's although only the e-mail edge joins it; Bert's record stays and is counted
    assert found.record_keys == {"a1", "a2", "a3"}
    assert found.linked_records_kept == {"b1"}
    assert found.person_ids == {"P1"}
    assert [(r.kind, r.record_keys, r.linked_records_kept) for r in found.requests] == [("customer_number", {"a1", "a2", "a3"}, {"b1"})]
    # Anna's own e-mail goes with her; the family e-mail and landline are Bert's (and Carla's)
    assert found.identifiers == {("customer_number", "K1"), ("email", "anna@voorbeeld.nl"), ("loyalty_card", "L1")}


def test_the_match_config_decides_which_identifier_edges_are_followed(small_lake) -> None:  # noqa: ANN001
    checked = small_lake({"conflict_check": ["email", "loyalty_card", "phone"]})
    assert privacy.unfollowed_edge_types(checked.cfg.match.deterministic) == set()
    found = privacy.resolve_subjects(checked, [("customer_number", "K1")])
    assert (found.record_keys, found.linked_records_kept) == ({"a1", "a2", "a3", "b1"}, set())


def test_unchecked_email_edges_are_not_followed(small_lake) -> None:  # noqa: ANN001
    ctx = small_lake({"conflict_check": ["loyalty_card"]})
    assert privacy.unfollowed_edge_types(ctx.cfg.match.deterministic) == {"identifier:email", "identifier:phone"}
    found = privacy.resolve_subjects(ctx, [("customer_number", "K1")])
    assert (found.record_keys, found.linked_records_kept) == ({"a1", "a3"}, {"a2", "b1"})


def test_an_edge_across_clusters_is_not_followed_but_counted(small_lake, caplog) -> None:  # noqa: ANN001
    ctx = small_lake()
    with caplog.at_level("INFO", logger="jobs.privacy.job"):
        found = privacy.resolve_subjects(ctx, [("customer_number", "K4")])
    assert (found.record_keys, found.linked_records_kept, found.person_ids) == ({"d1"}, {"d2"}, {"P4"})
    logged = [r.getMessage() for r in caplog.records if "stay" in r.getMessage()]
    assert logged == ["resolution: 1 record(s) linked to the subjects' records stay (edges not followed): across clusters: 1"]


def test_a_batch_keeps_each_requests_share(small_lake) -> None:  # noqa: ANN001
    ctx = small_lake()
    found = privacy.resolve_subjects(ctx, [("customer_number", "K1"), ("customer_number", "K4"), ("person_id", "P3")])
    assert [(r.record_keys, r.person_ids, r.linked_records_kept) for r in found.requests] == [
        ({"a1", "a2", "a3"}, {"P1"}, {"b1"}),
        ({"d1"}, {"P4"}, {"d2"}),
        ({"c1"}, {"P3"}, set()),
    ]
    assert found.record_keys == {"a1", "a2", "a3", "d1", "c1"} and found.linked_records_kept == {"b1", "d2"}


def test_rows_per_request_count_what_the_deletes_remove(small_lake) -> None:  # noqa: ANN001
    ctx = small_lake()
    found = privacy.resolve_subjects(ctx, [("customer_number", "K1"), ("customer_number", "K4")])
    per_request = privacy.rows_per_request(ctx, found, {})
    # identifiers 4 / 1, edges 3 / 1, clusters 3 / 1, identity map 4 (b1 by Anna's person id P1) / 1
    assert per_request == [14, 4]
    removed = privacy.delete_everywhere(ctx, found, {})
    assert removed == {S.SILVER_IDENTIFIERS.address: 5, S.MATCH_EDGES.address: 4, S.MATCH_CLUSTERS.address: 4, S.GOLDEN_IDENTITY_MAP.address: 5}
    assert sum(per_request) == sum(removed.values())


def test_an_identifier_several_persons_hold_is_refused_unless_every_holder_is_asked_for(small_lake) -> None:  # noqa: ANN001
    ctx = small_lake()
    reference = privacy.subject_hash("test-salt-123", "email", "fam@voorbeeld.nl")[:16]
    expected = (
        "privacy erase: 1 subject(s) name an identifier that more than one person in golden.identity_map holds "
        f"(a family e-mail address, a shared card): the email subject (reference {reference}) is held by records of 2 persons; "
        "nothing was changed. Expected an identifier of one person: name the person with a person_id:P... subject "
        "(`cdp profile --id TYPE:VALUE` lists the holders' person ids), or pass --all-holders to erase every holder"
    )
    with pytest.raises(PrivacyError, match=re.escape(expected)) as info:
        privacy.resolve_subjects(ctx, [("customer_number", "K4"), ("email", "fam@voorbeeld.nl")])
    assert "fam@" not in str(info.value)
    with pytest.raises(PrivacyError, match=r"^privacy export: .*lists the holders' person ids\)$"):
        privacy.resolve_subjects(ctx, [("email", "fam@voorbeeld.nl")], command="privacy export")
    every = privacy.resolve_subjects(ctx, [("email", "fam@voorbeeld.nl")], all_holders=True)
    # each holder's records, walked as for any subject (b1's landline edge to Anna is not followed)
    assert (every.record_keys, every.person_ids, every.linked_records_kept) == ({"b1", "c1"}, {"P1", "P3"}, {"a1"})


def test_erase_refuses_before_deleting_when_a_place_cannot_be_scanned(small_lake) -> None:  # noqa: ANN001
    ctx = small_lake(data={"root": "s3a://landing-bucket/cdp"}, mlflow={"tracking_uri": "http://127.0.0.1:9"})
    before = {t: ctx.lake.read(t).count() for t in ctx.lake.tables()}
    with pytest.raises(PrivacyError) as info:
        privacy.erase(ctx, ["customer_number:K1"])
    message = str(info.value)
    assert message.startswith(
        "privacy erase: nothing was deleted: the verification scan cannot read data.root 's3a://landing-bucket/cdp' "
        "(a s3a: location, not a local path); mlflow.tracking_uri 'http://127.0.0.1:9' (not a local store, and its "
        "API cannot be read: MlflowException: API request to http://127.0.0.1:9/api/2.0/mlflow/experiments/search failed"
    )
    assert message.endswith(
        "Expected every place erasure scans (lake.root, data.root, privacy.export_dir, segments.export_dir, "
        "privacy.scan_extra_paths) to be a local or mounted path (e.g. /Volumes/... or /dbfs/... on Databricks) "
        "or a file: URI, and mlflow.tracking_uri a local store or one whose API answers"
    )
    assert {t: ctx.lake.read(t).count() for t in before} == before
    requests = ctx.lake.read(S.PRIVACY_REQUESTS.address).collect()
    audit = ctx.lake.read(S.PRIVACY_AUDIT.address).collect()
    assert [r.state for r in requests] == ["failed"]
    assert [(a.outcome, a.rows_removed, a.records, a.batch_requests, a.request_id) for a in audit] == [("refused", 0, 0, 1, requests[0].request_id)]


def test_erase_refuses_a_shared_identifier_and_records_the_refusal(small_lake) -> None:  # noqa: ANN001
    ctx = small_lake()
    with pytest.raises(PrivacyError, match="held by records of 2 persons"):
        privacy.erase(ctx, ["email:fam@voorbeeld.nl", "customer_number:K4"])
    assert ctx.lake.read(S.SILVER_IDENTIFIERS.address).count() == len(IDENTIFIERS)
    audit = ctx.lake.read(S.PRIVACY_AUDIT.address).collect()
    assert sorted((a.outcome, a.batch_requests) for a in audit) == [("refused", 2), ("refused", 2)]


def test_all_holders_is_an_erase_flag_only(capsys) -> None:  # noqa: ANN001
    from jobs.cli import build_parser, main

    assert build_parser().parse_args(["privacy", "erase", "--subject", "email:a@b.nl", "--all-holders"]).all_holders is True
    assert main(["privacy", "export", "--subject", "email:a@b.nl", "--all-holders"]) == 2
    assert "privacy export: got --all-holders; expected it with erase only" in capsys.readouterr().err


def test_subjects_take_the_form_silver_holds(small_lake) -> None:  # noqa: ANN001
    """A request written as the person sent it finds what silver normalised (gmial.com -> gmail.com,
    a loyalty card with spaces, a customer number in lower case); a value silver keeps for no one
    (a placeholder, an invalid address or number) has no form; a person id passes through."""
    got = privacy.silver_form_subjects(
        small_lake(),
        [
            ("email", "jan@gmial.com"), ("email", "jan@gmail.com"), ("email", "test@test.nl"), ("email", "geen-adres"),
            ("phone", "+31612345679"), ("phone", "+310000000000"), ("loyalty_card", "2000 1234"),
            ("customer_number", "k 4"), ("customer_number", "onbekend"), ("person_id", "P1"),
        ],
    )
    assert got == [
        ("email", "jan@gmail.com"), ("email", "jan@gmail.com"), ("email", None), ("email", None),
        ("phone", "+31612345679"), ("phone", None), ("loyalty_card", "20001234"),
        ("customer_number", "K4"), ("customer_number", None), ("person_id", "P1"),
    ]


def test_erase_and_export_refuse_a_placeholder_before_anything_is_touched(small_lake) -> None:  # noqa: ANN001
    """test@test.nl names no one: erasing it would delete other people's landing lines that carry
    it and suppress it for everyone. The batch is refused, recorded, and nothing changes."""
    ctx = small_lake()
    landing = ctx.data_root + "/crm/export.csv"
    import os

    os.makedirs(os.path.dirname(landing), exist_ok=True)
    text = "klantnummer;email\nK1;anna@voorbeeld.nl\nK9;test@test.nl\n"
    with open(landing, "w", encoding="utf-8") as fh:
        fh.write(text)
    before = {t: ctx.lake.read(t).count() for t in ctx.lake.tables()}
    ref = privacy.subject_hash("test-salt-123", "email", "test@test.nl")[:16]
    expected = (
        "privacy erase: 1 subject(s) name a value silver keeps for no one, a placeholder (test@test.nl, 0000000000, "
        f"onbekend) or an invalid e-mail address or phone number: subject #2 (email, reference {ref}); nothing was changed."
    )
    with pytest.raises(PrivacyError, match=re.escape(expected)) as info:
        privacy.erase(ctx, ["customer_number:K4", "email:Test@Test.nl"])
    assert "Test@Test.nl" not in str(info.value)  # the subject as written is personal data
    assert {t: ctx.lake.read(t).count() for t in before if not t.startswith("privacy.")} == {
        t: n for t, n in before.items() if not t.startswith("privacy.")
    }
    assert not ctx.lake.exists(S.PRIVACY_SUPPRESSION.address) or ctx.lake.read(S.PRIVACY_SUPPRESSION.address).count() == 0
    with open(landing, encoding="utf-8") as fh:
        assert fh.read() == text
    audit = ctx.lake.read(S.PRIVACY_AUDIT.address).collect()
    assert sorted((a.outcome, a.batch_requests) for a in audit) == [("refused", 2), ("refused", 2)]
    assert {r.state for r in ctx.lake.read(S.PRIVACY_REQUESTS.address).collect()} == {"failed"}
    with pytest.raises(PrivacyError, match=r"^privacy export: 1 subject\(s\) name a value silver keeps for no one"):
        privacy.export_subject(ctx, "phone:0000000000")
