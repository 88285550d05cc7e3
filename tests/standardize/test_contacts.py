"""E-mail (normalise, typos corrected or flagged, syntax) and phones (E.164 via a pandas UDF)."""

from __future__ import annotations

import pytest

from jobs.standardize.phones import format_e164
from tests.standardize.conftest import check, make_cfg, person_frame, standardized

STEPS = ["placeholders", "country", "emails", "phones"]

# key: (fields as sent, expected email, email_valid, flags)
EMAILS: dict[str, tuple[dict, tuple]] = {
    "upper_trim": ({"email": "  Jan.Jansen@Ziggo.NL "}, ("jan.jansen@ziggo.nl", True, [])),
    "gmial": ({"email": "piet@gmial.com"}, ("piet@gmail.com", True, ["email_domain_corrected"])),
    "hotmial": ({"email": "kees@HOTMIAL.COM"}, ("kees@hotmail.com", True, ["email_domain_corrected"])),
    "tld_con": ({"email": "ann@ziggo.con"}, ("ann@ziggo.com", True, ["email_domain_corrected"])),
    "mailto": ({"email": "mailto:els@kpnmail.nl"}, ("els@kpnmail.nl", True, [])),
    "no_at": ({"email": "jan.jansen.gmail.com"}, (None, False, ["email_invalid"])),
    "double_at": ({"email": "jan@@gmail.com"}, (None, False, ["email_invalid"])),
    "space_inside": ({"email": "jan jansen@gmail.com"}, ("janjansen@gmail.com", True, [])),
    "no_tld": ({"email": "jan@localhost"}, (None, False, ["email_invalid"])),
    "placeholder": ({"email": "TEST@test.nl"}, (None, False, ["placeholder:email"])),
    "example_domain": ({"email": "jan@example.com"}, (None, False, ["placeholder:email"])),
    "noreply": ({"email": "noreply@shop.nl"}, (None, False, ["placeholder:email"])),
}

# key: (fields as sent, expected phone, phone_valid, flags)
PHONES: dict[str, tuple[dict, tuple]] = {
    "nl_mobile": ({"phone": "06-23456789"}, ("+31623456789", True, [])),
    "nl_trunk_in_intl": ({"phone": "+31 (0)6 2345 6789"}, ("+31623456789", True, [])),
    "nl_landline": ({"phone": "020-5551234"}, ("+31205551234", True, [])),
    "be_by_country": ({"phone": "0471 23 45 67", "country": "België"}, ("+32471234567", True, [])),
    "de_by_country": ({"phone": "030 1234567", "country": "DE"}, ("+49301234567", True, [])),
    "intl_other_country": ({"phone": "+49 30 1234567"}, ("+49301234567", True, [])),
    "too_short": ({"phone": "06-1234"}, (None, False, ["phone_invalid"])),
    "letters": ({"phone": "bel me"}, (None, False, ["phone_invalid"])),
    "zeros": ({"phone": "0000000000"}, (None, False, ["placeholder:phone"])),
    "known_fake": ({"phone": "06 12345678"}, (None, False, ["placeholder:phone"])),
    "missing": ({}, (None, False, [])),
}


@pytest.fixture(scope="module")
def results(spark):  # noqa: ANN001, ANN201
    cases = {k: f for k, (f, _) in {**EMAILS, **PHONES}.items()}
    return standardized(spark, cases, make_cfg(steps=STEPS))


@pytest.mark.parametrize("key", list(EMAILS))
def test_email(results, key: str) -> None:  # noqa: ANN001
    email, valid, flags = EMAILS[key][1]
    r = results[key]
    check(r, {"email": email, "email_valid": valid}, key)
    assert [f for f in r["dq_flags"] if f.startswith(("email", "placeholder:email"))] == flags


@pytest.mark.parametrize("key", list(PHONES))
def test_phone(results, key: str) -> None:  # noqa: ANN001
    phone, valid, flags = PHONES[key][1]
    r = results[key]
    check(r, {"phone": phone, "phone_valid": valid}, key)
    assert [f for f in r["dq_flags"] if "phone" in f] == flags


def test_email_typo_flag_mode_keeps_the_address(spark) -> None:  # noqa: ANN001
    cfg = make_cfg(steps=["emails"], email_typo_mode="flag")
    r = standardized(spark, {"a": {"email": "piet@gmial.com"}}, cfg)["a"]
    assert (r["email"], r["email_valid"], r["dq_flags"]) == ("piet@gmial.com", True, ["email_domain_suspect"])


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("06-23456789", "NL", ("+31623456789", True)),
        ("0031623456789", "DE", ("+31623456789", True)),
        ("02 555 12 34", "BE", ("+3225551234", True)),
        ("020 7946 0958", "GB", ("+442079460958", True)),
        ("12345", "NL", (None, False)),
        ("abc", "NL", (None, False)),
        ("  ", "NL", (None, None)),
        (None, "NL", (None, None)),
    ],
)
def test_format_e164(raw: str | None, region: str, expected: tuple) -> None:
    assert format_e164(raw, region) == expected


def test_phones_run_as_a_vectorised_pandas_udf(spark) -> None:  # noqa: ANN001
    from jobs.standardize.transforms import standardize_records

    out = standardize_records(person_frame(spark, {"a": {"phone": "0612"}}), make_cfg(steps=["phones"]), "NL")
    plan = out._jdf.queryExecution().executedPlan().toString()
    assert "ArrowEvalPython" in plan and "BatchEvalPython" not in plan
