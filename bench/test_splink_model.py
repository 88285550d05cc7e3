"""Splink's model for generated data (bench/splink_runner.generated_model): what it blocks and
trains on, and that its comparison SQL runs on DuckDB and builds for Spark.

Run explicitly: ``pytest bench/test_splink_model.py`` (skipped where splink is not installed).
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest

pytest.importorskip("splink")
pytest.importorskip("duckdb")

from bench.inputs import GENERATED_COLUMNS  # noqa: E402
from bench.splink_runner import generated_model  # noqa: E402

ADDRESS = {"postcode", "house_number", "street", "city"}


def _sql(rule, dialect: str) -> str:  # noqa: ANN001
    from splink.internals.blocking_rule_creator_utils import to_blocking_rule_creator

    return to_blocking_rule_creator(rule).get_blocking_rule(dialect).blocking_rule_sql


def _columns(sql: str) -> set[str]:
    return {c for c in GENERATED_COLUMNS if f"l.{c}" in sql or f'l."{c}"' in sql}


def test_no_rule_rests_on_an_address_or_a_shared_email_alone() -> None:
    model = generated_model("duckdb")
    for rule in model["blocking_rules"] + model["em_rules"]:
        cols = _columns(_sql(rule, "duckdb"))
        assert cols and not cols <= ADDRESS, (cols, _sql(rule, "duckdb"))
    deterministic = [_columns(_sql(r, "duckdb")) for r in model["deterministic_rules"]]
    assert {"email"} not in deterministic and all(cols - ADDRESS for cols in deterministic)
    assert "loyalty_card" not in {c for rule in model["blocking_rules"] for c in _columns(_sql(rule, "duckdb"))}


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_settings_build_for_both_backends(dialect: str) -> None:
    from splink import SettingsCreator

    model = generated_model(dialect)
    settings = SettingsCreator(
        unique_id_column_name="unique_id", link_type=model["link_type"],
        blocking_rules_to_generate_predictions=model["blocking_rules"], comparisons=model["comparisons"],
    ).get_settings(dialect).as_dict()
    names = [c["output_column_name"] for c in settings["comparisons"]]
    assert names == ["given_name", "family_name", "name_swap", "birth_date", "email", "phone", "address", "customer_number"]
    address = settings["comparisons"][names.index("address")]["comparison_levels"]
    assert [lv.get("label_for_charts") for lv in address][1:] == [
        "same address, another given name", "same address", "same street", "same city", "same postcode area",
        "All other comparisons",
    ]
    assert address[4]["tf_adjustment_column"] == "city"


def test_household_members_and_one_person_fall_in_different_address_levels() -> None:
    """On DuckDB: two records of one person at one address are 'same address', two people of
    the household 'same address, another given name'; a logged-in cookie links by its customer number."""
    from splink import DuckDBAPI, Linker, SettingsCreator

    home = {"family_name": "bakker", "street": "dorpsstraat", "house_number": "1", "postcode": "1234 AB", "city": "ootmarsum"}
    rows = [
        {"unique_id": "a1", "given_name": "jan", "birth_date": "1980-01-02", "email": "fam.bakker@x.nl", "customer_number": "C1", **home},
        {"unique_id": "a2", "given_name": "jan", "birth_date": "1980-01-02", "email": "jan@x.nl", **home},
        {"unique_id": "a3", "given_name": "petra", "birth_date": "1982-05-02", "email": "fam.bakker@x.nl", **home},
        {"unique_id": "w1", "customer_number": "C1"},  # a web cookie: only the customer number it logged in with
    ]
    frame = pd.DataFrame(rows, columns=["unique_id", *GENERATED_COLUMNS]).astype("string")
    model = generated_model("duckdb")
    settings = SettingsCreator(
        unique_id_column_name="unique_id", link_type=model["link_type"],
        blocking_rules_to_generate_predictions=model["blocking_rules"], comparisons=model["comparisons"],
    )
    linker = Linker(DuckDBAPI().register(frame), settings, log_level=logging.ERROR)
    got = linker.inference.predict().as_pandas_dataframe()
    levels = {(r.unique_id_l, r.unique_id_r): (r.gamma_address, r.gamma_email, r.gamma_customer_number) for r in got.itertuples()}
    # address gammas: 5 household, 4 same address, ..., 0 else, -1 null
    assert levels == {("a1", "a2"): (4, 0, -1), ("a1", "a3"): (5, 2, -1), ("a2", "a3"): (5, 0, -1), ("a1", "w1"): (-1, -1, 1)}
    # the customer number's u is fixed at 1e-9, not sampled: alone it outweighs the prior
    assert got.set_index(["unique_id_l", "unique_id_r"]).loc[("a1", "w1"), "match_probability"] > 0.99
