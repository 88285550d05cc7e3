"""Audience exports: e-mail tool rows with consent, ad-platform hashes, manifests."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from pyspark.sql import SparkSession

from jobs.common.errors import ConfigError
from jobs.segments.transforms import (
    email_export,
    export_manifest,
    hash_method_for,
    hashed_audience,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# consent_sms plays the channel configured for ad-platform matching (hashed_audience_consent).
PROFILES = [
    dict(person_id="p1", email=" Jan@Example.NL ", phone="+31 6 1234 5678", given_name="Jan", name_particle="van der",
         family_name="Berg", full_name="Jan van der Berg", consent_email=True, consent_sms=True),
    dict(person_id="p2", email="anna@example.nl", phone="0031612340000", given_name="Anna", family_name="de Vries",
         name_particle="de", consent_email=False, consent_sms=True),
    dict(person_id="p3", email="piet@example", phone="0612345678", given_name="Piet", family_name="Jansen",
         consent_email=True, consent_sms=True),
    dict(person_id="p4", email="kees@example.nl", phone=None, given_name="Kees", family_name="Smit",
         consent_email=None, consent_sms=True),
    dict(person_id="p5", email="jan@example.nl", phone="+31612345678", given_name="Marie", name_particle="van der",
         family_name="Berg", full_name="Marie van der Berg", consent_email=True, consent_sms=True),
    dict(person_id="p6", email="sara@example.nl", given_name="Sara", name_particle="'t", family_name="Hart",
         consent_email=True, consent_sms=True),
    dict(person_id="p7", email="x@example.nl", phone="+31600000007", given_name="Not", family_name="Member",
         consent_email=True, consent_sms=True),
    dict(person_id="p8", email=None, phone=None, consent_email=True, consent_sms=True),
    # e-mail consent, but no consent for ad matching (false, unknown): in the e-mail file only
    dict(person_id="p9", email="nina@example.nl", phone="+31600000009", given_name="Nina", family_name="Bakker",
         consent_email=True, consent_sms=False),
    dict(person_id="p10", email="otto@example.nl", phone="+31600000010", given_name="Otto", family_name="Vos",
         consent_email=True, consent_sms=None),
]
MEMBERS = [(p, "vip") for p in ("p1", "p2", "p3", "p4", "p5", "p6", "p8", "p9", "p10")] + [("p7", "other")]


@pytest.fixture()
def frames(spark: SparkSession, make_profiles):  # noqa: ANN001, ANN201
    return make_profiles(PROFILES), spark.createDataFrame(MEMBERS, "person_id string, segment string")


def test_email_export_keeps_only_consenting_valid_addresses_once(frames) -> None:  # noqa: ANN001
    profiles, members = frames
    got = email_export(profiles, members, "vip")
    assert got.columns == ["person_id", "email", "given_name", "family_name", "full_name"]
    assert [tuple(r) for r in got.collect()] == [
        # p1 and p5 share an address: one mail, to the smallest person id; trimmed and lower-cased
        ("p1", "jan@example.nl", "Jan", "van der Berg", "Jan van der Berg"),
        ("p10", "otto@example.nl", "Otto", "Vos", "Otto Vos"),
        # p2: consent false; p3: invalid address; p4: unknown consent; p7: not in the segment; p8: no e-mail
        ("p6", "sara@example.nl", "Sara", "'t Hart", "Sara 't Hart"),
        ("p9", "nina@example.nl", "Nina", "Bakker", "Nina Bakker"),
    ]


def test_hashed_audience_normalises_and_hashes_like_the_ad_platforms(frames) -> None:  # noqa: ANN001
    profiles, members = frames
    assert sha("jan@example.nl") == "".join(  # an independent reference value
        hashlib.sha256(" Jan@Example.NL ".strip().lower().encode()).hexdigest()
    )
    google = hashed_audience(profiles, members, "vip", consent="sms")
    assert google.columns == ["email_sha256", "phone_sha256"]  # no person ids for ad platforms
    expected_google = [
        (sha("jan@example.nl"), sha("+31612345678")),  # p1 and p5: the same values, one row
        (sha("anna@example.nl"), sha("+31612340000")),  # '00' becomes '+'
        (sha("kees@example.nl"), None),
        (sha("sara@example.nl"), None),
    ]
    # p3: no dot in the e-mail domain and a phone without country code: nothing to match; p8: nothing;
    # p9 and p10: no consent for ad matching (false, unknown), although e-mail consent
    assert [tuple(r) for r in google.collect()] == sorted(expected_google)  # sorted by email hash

    meta = hashed_audience(profiles, members, "vip", consent="sms", phone_format="digits", include_person_id=True)
    assert meta.columns == ["person_id", "email_sha256", "phone_sha256"]
    assert {r["person_id"]: r["phone_sha256"] for r in meta.collect()} == {
        "p1": sha("31612345678"),  # Meta: digits with country code, no '+'
        "p2": sha("31612340000"),
        "p4": None,
        "p5": sha("31612345678"),
        "p6": None,
    }
    by_email_consent = hashed_audience(profiles, members, "vip", consent="email", include_person_id=True)
    assert [r["person_id"] for r in by_email_consent.collect()] == ["p1", "p10", "p5", "p6", "p9"]
    assert all(len(h) == 64 and h == h.lower() for r in google.collect() for h in r if h)


@pytest.mark.parametrize("consent", [None, "ads", "consent_email"])
def test_hashed_audience_refuses_to_run_without_a_consent_channel(frames, consent) -> None:  # noqa: ANN001
    profiles, members = frames
    with pytest.raises(ConfigError) as err:
        hashed_audience(profiles, members, "vip", consent=consent)
    assert err.value.problems == [
        f"hashed_audience consent: got {consent!r}; expected one of email, sms, post, phone "
        "(the channel whose consent covers matching with ad platforms)"
    ]


def test_manifest_and_hash_method() -> None:
    created = dt.datetime(2024, 6, 15, 6, 0, tzinfo=dt.timezone.utc)
    m = export_manifest("vip", "run-1", "hashed_audience", "exports/vip/run-1.csv", 42,
                        hash_method_for("hashed_audience", "digits"), created_at=created)
    assert m == {
        "export_id": hashlib.sha256("vip\x1fhashed_audience\x1frun-1".encode()).hexdigest()[:32],
        "segment": "vip",
        "target": "hashed_audience",
        "path": "exports/vip/run-1.csv",
        "rows": 42,
        "hash_method": "sha256-hex; email=trim+lower; phone=digits",
        "run_id": "run-1",
        "created_at": created,
    }
    assert hash_method_for("email_csv") == "none"
    assert hash_method_for("hashed_audience") == "sha256-hex; email=trim+lower; phone=e164"
    with pytest.raises(ConfigError, match="target: got 'sftp'; expected 'email_csv' or 'hashed_audience'"):
        export_manifest("vip", "run-1", "sftp", "x", 1, "none")  # type: ignore[arg-type]


def test_hashes_match_known_reference_values(spark: SparkSession, make_profiles) -> None:  # noqa: ANN001
    profiles = make_profiles([
        dict(person_id="a", email="  TEST@Example.com", phone="+31 6 12345678", consent_post=True),
        dict(person_id="b", email="jan@example.nl", phone="+31612345678", consent_post=True),
    ])
    members = spark.createDataFrame([("a", "s"), ("b", "s")], "person_id string, segment string")
    got = {r["person_id"]: (r["email_sha256"], r["phone_sha256"])
           for r in hashed_audience(profiles, members, "s", consent="post", include_person_id=True).collect()}
    phone = "fab7be8a931d1088a82f6acf9e468aaf6a3accc07d5112ee5d6fca93281e1583"  # sha256('+31612345678')
    assert hashlib.sha256(b"+31612345678").hexdigest() == phone
    assert got == {
        "a": ("973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b", phone),  # sha256('test@example.com')
        "b": (hashlib.sha256("jan@example.nl".encode("utf-8")).hexdigest(), phone),
    }
