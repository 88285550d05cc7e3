"""Postcodes per country, house number and suffix split, street and city."""

from __future__ import annotations

import pytest

from tests.standardize.conftest import check, make_cfg, standardized

STEPS = ["placeholders", "country", "addresses"]
A = ("postcode", "postcode_valid", "house_number", "house_number_suffix", "country")

CASES: dict[str, tuple[dict, tuple]] = {
    "nl_compact": ({"postcode": "1234ab", "house_number": "12-A"}, ("1234 AB", True, "12", "A", "NL")),
    "nl_spaced": ({"postcode": " 1234  AB", "house_number": "12a"}, ("1234 AB", True, "12", "A", "NL")),
    "nl_leading_zero": ({"postcode": "0123 AB", "house_number": "12 bis"}, (None, False, "12", "BIS", "NL")),
    "nl_excluded_sa": ({"postcode": "1234 SA", "house_number": "12 hs"}, (None, False, "12", "HS", "NL")),
    "nl_huis_alias": ({"postcode": "1011AB", "house_number": "12 huis"}, ("1011 AB", True, "12", "HS", "NL")),
    "nl_floor": ({"postcode": "1011-ab", "house_number": "12-2"}, ("1011 AB", True, "12", "2", "NL")),
    "nl_suffix_apart": ({"postcode": "1011AB", "house_number": "012", "house_number_suffix": "b"}, ("1011 AB", True, "12", "B", "NL")),
    "be": ({"postcode": "B-1000", "country": "Belgique", "house_number": "3"}, ("1000", True, "3", None, "BE")),
    "be_bad": ({"postcode": "100", "country": "BE"}, (None, False, None, None, "BE")),
    "de": ({"postcode": "D-10115", "country": "Deutschland", "house_number": "7b"}, ("10115", True, "7", "B", "DE")),
    "de_bad": ({"postcode": "1011", "country": "DE"}, (None, False, None, None, "DE")),
    "uk": ({"postcode": "sw1a1aa", "country": "UK"}, ("SW1A 1AA", True, None, None, "GB")),
    "uk_spaced": ({"postcode": "EC1A 1BB", "country": "United Kingdom"}, ("EC1A 1BB", True, None, None, "GB")),
    "no_rule_country": ({"postcode": "75008", "country": "US"}, ("75008", None, None, None, "US")),
    "street_with_number": ({"street": "Hoofdstraat 12a"}, (None, False, "12", "A", "NL")),
    "no_digits": ({"house_number": "abc"}, (None, False, None, None, "NL")),
}


@pytest.fixture(scope="module")
def results(spark):  # noqa: ANN001, ANN201
    cases = {k: f for k, (f, _) in CASES.items()}
    cases["street_city"] = {"street": "LAAN VAN MEERDERVOORT", "house_number": "5", "city": "'S-GRAVENHAGE"}
    cases["city_qualifier"] = {"city": "Hengelo (OV)"}
    return standardized(spark, cases, make_cfg(steps=STEPS))


@pytest.mark.parametrize("key", list(CASES))
def test_address_case(results, key: str) -> None:  # noqa: ANN001
    check(results[key], dict(zip(A, CASES[key][1])), key)


def test_flags(results) -> None:  # noqa: ANN001
    assert results["nl_excluded_sa"]["dq_flags"] == ["postcode_invalid"]
    assert results["no_digits"]["dq_flags"] == ["house_number_invalid"]
    assert results["nl_compact"]["dq_flags"] == []


def test_street_split_and_city(results) -> None:  # noqa: ANN001
    assert results["street_with_number"]["street"] == "Hoofdstraat"
    r = results["street_city"]
    assert (r["street"], r["city"], r["city_match"]) == ("Laan van Meerdervoort", "'s-Gravenhage", "den haag")
    assert results["city_qualifier"]["city_match"] == "hengelo"
