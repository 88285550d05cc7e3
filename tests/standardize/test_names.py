"""Names: salutations -> gender, particles split and kept, initials, case, diacritics."""

from __future__ import annotations

import pytest

from tests.standardize.conftest import check, make_cfg, standardized

N = ("title", "gender", "given_name", "initials", "name_particle", "family_name", "full_name")

# key: (fields as sent, expected values of N)
CASES: dict[str, tuple[dict, tuple]] = {
    "plain_particle": ({"full_name": "Jan van der Berg"}, (None, None, "Jan", "J", "van der", "Berg", "Jan van der Berg")),
    "abbreviated": ({"full_name": "J. v.d. Berg"}, (None, None, None, "J", "van der", "Berg", "J. van der Berg")),
    "comma_form": ({"full_name": "Berg, Jan van der"}, (None, None, "Jan", "J", "van der", "Berg", "Jan van der Berg")),
    "all_caps": ({"full_name": "VAN DER BERG"}, (None, None, None, None, "van der", "Berg", "Van der Berg")),
    "dhr_gender": ({"full_name": "Dhr. Jan van der Berg"}, ("dhr", "m", "Jan", "J", "van der", "Berg", "Jan van der Berg")),
    "mevr_initials_double": (
        {"full_name": "Mevr. A.M. de Vries-ter Horst"},
        ("mevr", "f", None, "AM", "de", "Vries-ter Horst", "A.M. de Vries-ter Horst"),
    ),
    "mw_titles_in_t": (
        {"full_name": "mw. dr. ir. Anna in 't Veld"},
        ("mevr dr ir", "f", "Anna", "A", "in 't", "Veld", "Anna in 't Veld"),
    ),
    "mr_is_no_gender": ({"full_name": "Mr. Piet Jansen"}, ("mr", None, "Piet", "P", None, "Jansen", "Piet Jansen")),
    "ir_title": ({"full_name": "ir. K. ten Brink"}, ("ir", None, None, "K", "ten", "Brink", "K. ten Brink")),
    "ter": ({"full_name": "Piet ter Horst"}, (None, None, "Piet", "P", "ter", "Horst", "Piet ter Horst")),
    "von": ({"full_name": "Johann Wolfgang von Goethe"}, (None, None, "Johann Wolfgang", "JW", "von", "Goethe", "Johann Wolfgang von Goethe")),
    "zu": ({"full_name": "Karl-Theodor zu Guttenberg"}, (None, None, "Karl-Theodor", "KT", "zu", "Guttenberg", "Karl-Theodor zu Guttenberg")),
    "van_den": ({"full_name": "Els van den Bosch"}, (None, None, "Els", "E", "van den", "Bosch", "Els van den Bosch")),
    "t_apostrophe": ({"full_name": "Kees ’t Hart"}, (None, None, "Kees", "K", "'t", "Hart", "Kees 't Hart")),
    "caps_whitespace": ({"full_name": "  jan\u00a0  JANSEN  "}, (None, None, "Jan", "J", None, "Jansen", "Jan Jansen")),
    "invisible_chars": ({"full_name": "Jan\u200b Jan\u00adsen"}, (None, None, "Jan", "J", None, "Jansen", "Jan Jansen")),
    "diacritics_kept": ({"full_name": "José Müller"}, (None, None, "José", "J", None, "Müller", "José Müller")),
    "apart_fields": (
        {"title": "Mevr.", "given_name": "Anna", "family_name": "van der Berg"},
        ("mevr", "f", "Anna", "A", "van der", "Berg", "Anna van der Berg"),
    ),
    "apart_particle_field": (
        {"given_name": "jan", "name_particle": "V.D.", "family_name": "BERG"},
        (None, None, "Jan", "J", "van der", "Berg", "Jan van der Berg"),
    ),
    "sent_gender_wins": (
        {"title": "dhr.", "gender": "V", "given_name": "Sam", "family_name": "Smit"},
        ("dhr", "f", "Sam", "S", None, "Smit", "Sam Smit"),
    ),
    "initials_field": (
        {"given_name": "Jan", "initials": "j.p.", "family_name": "Jansen"},
        (None, None, "Jan", "JP", None, "Jansen", "Jan Jansen"),
    ),
    "de_heer_is_a_name": ({"full_name": "De Heer"}, (None, None, None, None, "de", "Heer", "De Heer")),
}


@pytest.fixture(scope="module")
def results(spark):  # noqa: ANN001, ANN201
    return standardized(spark, {k: fields for k, (fields, _) in CASES.items()}, make_cfg(steps=["placeholders", "country", "names"]))


@pytest.mark.parametrize("key", list(CASES))
def test_name_case(results, key: str) -> None:  # noqa: ANN001
    check(results[key], dict(zip(N, CASES[key][1])), key)


def test_match_forms_fold_diacritics(results) -> None:  # noqa: ANN001
    r = results["diacritics_kept"]
    assert (r["given_name_match"], r["family_name_match"], r["full_name_match"]) == ("jose", "muller", "jose muller")
    r = results["abbreviated"]
    assert (r["family_name_match"], r["full_name_match"]) == ("berg", "j van der berg")


def test_name_valid_needs_family_name(results) -> None:  # noqa: ANN001
    assert results["plain_particle"]["name_valid"] is True
