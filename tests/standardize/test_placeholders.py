"""Placeholders ('test@test.nl', '0000000000', 'onbekend', 'n/a', configurable) nulled and flagged."""

from __future__ import annotations

import pytest

from tests.standardize.conftest import make_cfg, standardized

STEPS = ["placeholders", "country", "names", "emails", "phones", "addresses"]

# key: (fields as sent, {field: expected value}, expected dq_flags)
CASES: dict[str, tuple[dict, dict, list[str]]] = {
    "email": ({"email": "test@test.nl"}, {"email": None}, ["placeholder:email"]),
    "phone_zeros": ({"phone": "0000000000"}, {"phone": None}, ["placeholder:phone"]),
    "phone_repeated": ({"phone": "5555 555 555"}, {"phone": None}, ["placeholder:phone"]),
    "city_onbekend": ({"city": "Onbekend"}, {"city": None}, ["placeholder:city"]),
    "street_na": ({"street": "n/a"}, {"street": None}, ["placeholder:street"]),
    "postcode_dash": ({"postcode": "--"}, {"postcode": None}, ["placeholder:postcode"]),
    "family_in_full_name": ({"full_name": "Dhr. Onbekend"}, {"family_name": None, "gender": "m"}, ["placeholder:family_name"]),
    "custom_by_field": ({"city": "Nowhere"}, {"city": None}, ["placeholder:city"]),
    "real_values_kept": ({"city": "Test", "street": "Kerkstraat"}, {"city": None, "street": "Kerkstraat"}, ["placeholder:city"]),
}


@pytest.fixture(scope="module")
def results(spark):  # noqa: ANN001, ANN201
    cfg = make_cfg(steps=STEPS)
    cfg.placeholders.by_field = {"city": ["nowhere"]}
    return standardized(spark, {k: f for k, (f, _, _) in CASES.items()}, cfg)


@pytest.mark.parametrize("key", list(CASES))
def test_placeholder(results, key: str) -> None:  # noqa: ANN001
    _, expected, flags = CASES[key]
    r = results[key]
    assert ({k: r[k] for k in expected}, r["dq_flags"]) == (expected, flags), key


def test_placeholder_lists_are_configurable(spark) -> None:  # noqa: ANN001
    cfg = make_cfg(steps=["placeholders"])
    cfg.placeholders.generic = ["zzz"]
    r = standardized(spark, {"a": {"city": "ZZZ", "street": "onbekend"}}, cfg)["a"]
    assert (r["city"], r["street"], r["dq_flags"]) == (None, "onbekend", ["placeholder:city"])
