"""Candidate pairs: each pair once with its first rule, link_only, oversized blocks, new_keys."""

from __future__ import annotations

import pytest

from jobs.common.errors import SchemaError
from jobs.match.blocking import analyse_blocking, generate_candidate_pairs, parse_key
from jobs.match.config import MatchConfig

SCHEMA = "record_key string, source string, family_name_match string, birth_date string"
ROWS = [
    ("k01", "a", "jansen", "1980"),
    ("k02", "b", "jansen", "1980"),  # found by both rules: once, as family
    ("k03", "a", "bos", "1990"),
    ("k04", "b", "bos", "1991"),
    ("k05", "a", "smit", "1990"),
    ("k06", "a", "visser", "2000"),  # visser: a block of 4 > max_block_size 3, skipped
    ("k07", "b", "visser", "2000"),
    ("k08", "a", "visser", "2000"),
    ("k09", "b", "visser", "2001"),
    ("k10", "a", " ", "1985"),
]


def _cfg(**kw) -> MatchConfig:  # noqa: ANN003
    return MatchConfig(
        blocking_rules=[{"name": "family", "keys": ["family_name_match"]}, {"name": "birth", "keys": ["birth_date"]}],
        max_block_size=3,
        **kw,
    )


def _pairs(df) -> set[tuple[str, str, str]]:  # noqa: ANN001
    return {(r["record_key_l"], r["record_key_r"], r["blocking_rule"]) for r in df.collect()}


def test_dedupe_pairs_once_with_first_rule(spark) -> None:  # noqa: ANN001
    records = spark.createDataFrame(ROWS, SCHEMA)
    got = generate_candidate_pairs(records, _cfg())
    assert got.count() == 6
    assert _pairs(got) == {
        ("k01", "k02", "family"),
        ("k03", "k04", "family"),
        ("k03", "k05", "birth"),
        ("k06", "k07", "birth"),
        ("k06", "k08", "birth"),
        ("k07", "k08", "birth"),
    }


def test_link_only_and_carry(spark) -> None:  # noqa: ANN001
    records = spark.createDataFrame(ROWS, SCHEMA)
    got = generate_candidate_pairs(records, _cfg(link_type="link_only"), carry=["family_name_match"])
    assert _pairs(got) == {("k01", "k02", "family"), ("k03", "k04", "family"), ("k06", "k07", "birth"), ("k07", "k08", "birth")}
    row = got.where("record_key_l = 'k03'").collect()[0]
    assert (row["family_name_match_l"], row["family_name_match_r"], row["source_l"], row["source_r"]) == ("bos", "bos", "a", "b")


def test_new_keys_restrict_to_pairs_with_a_new_record(spark) -> None:  # noqa: ANN001
    records = spark.createDataFrame(ROWS, SCHEMA)
    new = spark.createDataFrame([("k05",), ("k08",)], "record_key string")
    got = generate_candidate_pairs(records, _cfg(), new_keys=new)
    assert _pairs(got) == {("k03", "k05", "birth"), ("k06", "k08", "birth"), ("k07", "k08", "birth")}


def test_analyse_blocking_counts_only(spark) -> None:  # noqa: ANN001
    records = spark.createDataFrame(ROWS, SCHEMA)
    rows = analyse_blocking(records, _cfg())
    assert rows == [
        {"rule": "family", "keys": ["family_name_match"], "blocks": 4, "candidate_pairs": 2, "new_pairs": 2,
         "skipped_blocks": 1, "skipped_pairs": 6, "largest_blocks": [4, 2, 2, 1]},
        {"rule": "birth", "keys": ["birth_date"], "blocks": 6, "candidate_pairs": 5, "new_pairs": 4,
         "skipped_blocks": 0, "skipped_pairs": 0, "largest_blocks": [3, 2, 2, 1, 1]},
    ]
    assert "jansen" not in repr(rows)


def test_missing_column_is_named(spark) -> None:  # noqa: ANN001
    records = spark.createDataFrame([("k1", "a")], "record_key string, source string")
    with pytest.raises(SchemaError, match=r"lack column\(s\) \['birth_date', 'family_name_match'\]"):
        generate_candidate_pairs(records, _cfg())


def test_parse_key() -> None:
    assert parse_key("substr(family_name_match,1,3)").args == (1, 3)
    assert parse_key("phone_last9").column == "phone"
    with pytest.raises(ValueError, match="not a column of silver.records"):
        parse_key("soundex(password)")


# One pooled table: person jansen has a record in crm and two in shop (a duplicate within shop),
# person bos one in each source, smit only one in crm.
LINK_ROWS = [
    ("c1", "crm", "jansen", "1980"),
    ("s1", "shop", "jansen", "1980"),
    ("s2", "shop", "jansen", "1980"),
    ("c2", "crm", "bos", "1990"),
    ("s3", "shop", "bos", "1990"),
    ("c3", "crm", "smit", "1990"),
]
WITHIN_AND_ACROSS = {
    ("c1", "s1", "family"), ("c1", "s2", "family"), ("s1", "s2", "family"),  # across, across, within shop
    ("c2", "s3", "family"),
    ("c2", "c3", "birth"), ("c3", "s3", "birth"),  # within crm, across
}


@pytest.mark.parametrize(
    ("link_type", "expected", "all_pairs"),
    [
        ("dedupe", WITHIN_AND_ACROSS, 15),  # every pair of the six records: 6 * 5 / 2
        ("link_and_dedupe", WITHIN_AND_ACROSS, 15),  # Splink's "within and across inputs": the same here
        ("link_only", {("c1", "s1", "family"), ("c1", "s2", "family"), ("c2", "s3", "family"), ("c3", "s3", "birth")}, 9),
    ],
)
def test_link_types_on_one_pooled_table(spark, link_type, expected, all_pairs) -> None:  # noqa: ANN001
    from jobs.match.training import all_pairs as count_all_pairs

    records = spark.createDataFrame(LINK_ROWS, SCHEMA)
    cfg = MatchConfig(
        link_type=link_type,
        blocking_rules=[{"name": "family", "keys": ["family_name_match"]}, {"name": "birth", "keys": ["birth_date"]}],
    )
    assert _pairs(generate_candidate_pairs(records, cfg)) == expected
    assert count_all_pairs(records, link_type) == (6, all_pairs)  # the prior's denominator: crm 3 x shop 3 for link_only
