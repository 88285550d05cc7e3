"""Comparison levels on inline pairs, and Jaro-Winkler against textbook values (both implementations)."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StringType, StructField, StructType

from jobs.common.jvm import register_udfs
from jobs.match.comparisons import (
    build_comparison,
    compute_levels,
    jaro_winkler_jvm,
    jaro_winkler_pandas,
    jaro_winkler_sql,
    level_column_name,
    term_frequencies,
)
from jobs.match.config import ComparisonConfig


def _levels(spark, cfg: dict, rows: list[tuple], dtype=StringType()) -> list[int]:  # noqa: ANN001
    cmp = build_comparison(ComparisonConfig(**cfg))
    fields = [StructField("i", StringType())]
    for c in cmp.columns:
        fields += [StructField(f"{c}_l", dtype), StructField(f"{c}_r", dtype)]
    df = spark.createDataFrame([(str(i), *r) for i, r in enumerate(rows)], StructType(fields))
    out = compute_levels(df, [cmp]).orderBy(F.col("i").cast("int"))
    return [r[level_column_name(cmp.name)] for r in out.collect()]


def test_the_jvm_udf_is_built_and_registered(spark) -> None:  # noqa: ANN001
    # The test machine has a JDK: the jar must have been compiled and put on the session's classpath.
    assert register_udfs(spark) is True
    assert spark.catalog.functionExists("cdp_jaro_winkler")


@pytest.mark.parametrize("impl", [jaro_winkler_pandas, jaro_winkler_sql, jaro_winkler_jvm])
def test_jaro_winkler_textbook_values(spark, impl) -> None:  # noqa: ANN001
    register_udfs(spark)
    rows = [("MARTHA", "MARHTA"), ("DWAYNE", "DUANE"), ("DIXON", "DICKSONX"), ("JELLYFISH", "SMELLYFISH"),
            ("ABC", "ABC"), ("ABC", "XYZ"), (None, "ABC")]
    df = spark.createDataFrame(rows, "a string, b string")
    got = [r[0] for r in df.select(impl(F.col("a"), F.col("b"))).collect()]
    assert [round(v, 4) if v is not None else None for v in got] == [0.9611, 0.84, 0.8133, 0.8963, 1.0, 0.0, None]


def test_jaro_winkler_implementations_agree(spark) -> None:  # noqa: ANN001
    import random

    register_udfs(spark)
    words = ["jansen", "janssen", "jansens", "hansen", "johnson", "jonsen", "a", "ab", "ba", "van der berg", "vd berg",
             "", "müller", "mueller", "ĳssel", "ijssel", "😀ab", "ab😀"]
    rng = random.Random(7)
    alphabet = "abcde"
    words += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(40)]
    rows = [(a, b) for a in words for b in words] + [(None, "x"), ("x", None)]
    df = spark.createDataFrame(rows, "a string, b string")
    got = df.select(
        jaro_winkler_pandas(F.col("a"), F.col("b")).alias("p"),
        jaro_winkler_sql(F.col("a"), F.col("b")).alias("s"),
        jaro_winkler_jvm(F.col("a"), F.col("b")).alias("j"),
    ).collect()
    assert len(got) == len(words) ** 2 + 2
    for r in got:
        if r["p"] is None:
            assert r["s"] is None and r["j"] is None
        else:
            assert abs(r["p"] - r["s"]) < 1e-9 and abs(r["p"] - r["j"]) < 1e-9, r


def test_exact(spark) -> None:  # noqa: ANN001
    rows = [("12", "12"), ("12", "13"), (None, "12"), ("  ", "12")]
    assert _levels(spark, {"name": "h", "function": "exact", "columns": ["house_number"]}, rows) == [2, 1, 0, 0]


def test_jaro_winkler_levels(spark) -> None:  # noqa: ANN001
    rows = [("martha", "martha"), ("martha", "marhta"), ("dwayne", "duane"), ("dixon", "dicksonx"), ("abc", "xyz"), (None, "a")]
    cfg = {"name": "g", "function": "jaro_winkler", "columns": ["given_name_match"]}
    # null 0, else 1, >=0.7 2, >=0.88 3, >=0.92 4, exact 5
    assert _levels(spark, cfg, rows) == [5, 4, 2, 2, 1, 0]
    cfg["arguments"] = {"thresholds": [0.8]}
    assert _levels(spark, cfg, rows) == [3, 2, 2, 2, 1, 0]


def test_levenshtein_levels(spark) -> None:  # noqa: ANN001
    rows = [("2000", "2000"), ("2000", "2001"), ("2000", "2011"), ("2000", "3111"), (None, "1")]
    cfg = {"name": "p", "function": "levenshtein", "columns": ["postcode"]}
    # null, else, <=2, <=1, exact
    assert _levels(spark, cfg, rows) == [4, 3, 2, 1, 0]


def test_date_levels(spark) -> None:  # noqa: ANN001
    d = dt.date
    rows = [
        (d(1980, 5, 17), d(1980, 5, 17)),  # exact 5
        (d(1980, 5, 17), d(1980, 5, 18)),  # one typo 4
        (d(1980, 5, 7), d(1980, 7, 5)),  # day/month swapped 3
        (d(1980, 1, 17), d(1980, 12, 30)),  # same year 2
        (d(1980, 1, 17), d(1975, 12, 30)),  # else 1
        (None, d(1980, 1, 1)),  # null 0
    ]
    assert _levels(spark, {"name": "b", "function": "date", "columns": ["birth_date"]}, rows, DateType()) == [5, 4, 3, 2, 1, 0]


def test_postcode_levels(spark) -> None:  # noqa: ANN001
    rows = [("1234 AB", "1234ab"), ("1234 AB", "1234 XY"), ("1234 AB", "1235 AB"), ("1234 AB", "9876 AB"), ("", "1234")]
    cfg = {"name": "p", "function": "postcode", "columns": ["postcode"]}
    # null, else, one typo in the digits, same digits, exact
    assert _levels(spark, cfg, rows) == [4, 3, 2, 1, 0]
    cfg["arguments"] = {"prefix_length": 2}
    rows2 = [("1234 AB", "1299 AB"), ("1234 AB", "9999 AB")]
    assert _levels(spark, cfg, rows2) == [2, 1]


def test_address_levels(spark) -> None:  # noqa: ANN001
    # (postcode, house number, street, city) left and right: null 0, else 1, same postcode digits 2,
    # same town (city) 3, same street 4, same address 5
    cfg = {"name": "a", "function": "address", "columns": ["postcode", "house_number", "street", "city_match"]}
    rows = [
        ("1234 AB", "1234ab", "12", "12", "Dorpsstraat", "Dorpsstraat", "AMSTERDAM", "AMSTERDAM"),  # same address
        (None, "1234 AB", "12", "12", "dorpsstraat ", "Dorpsstraat", "Amsterdam", "AMSTERDAM"),  # by street, number, city
        ("1234 AB", "1234 AB", "12", "14", "Dorpsstraat", "Dorpsstraat", "AMSTERDAM", "AMSTERDAM"),  # neighbours
        ("1234 AB", "9999 ZZ", "12", "14", "Kerkweg", "Kerkweg", "AMSTERDAM", "AMSTERDAM"),  # street and city
        ("1234 AB", "1234 XY", "1", "3", "Kerkweg", "Markt", "AMSTERDAM", "AMSTEL"),  # the postcode's digits
        ("1234 AB", "1234 XY", "1", "3", "Kerkweg", "Markt", "AMSTERDAM", None),  # digits, city on one side
        ("1234 AB", "9999 ZZ", "1", "3", "Kerkweg", "Markt", "UTRECHT", " utrecht"),  # the city
        ("1234 AB", "1234 XY", "1", "3", "Kerkweg", "Markt", "UTRECHT", "UTRECHT"),  # the city and the digits
        ("1234 AB", "9999 ZZ", "1", "1", "Kerkweg", "Kerkweg", "UTRECHT", "ZWOLLE"),  # another town
        ("1234 AB", "1234 AB", None, None, None, None, None, None),  # no house numbers: one street
        (None, "1234 AB", "1", "1", None, "Kerkweg", "UTRECHT", "UTRECHT"),  # neither postcode nor street on both
        ("  ", "1234 AB", "1", "1", None, None, None, None),
    ]
    assert _levels(spark, cfg, rows) == [5, 5, 4, 4, 2, 2, 3, 3, 1, 4, 0, 0]
    # without a city the town is the postcode's digits: null, else, same town 2, same street 3, same address 4
    two = {"name": "a", "function": "address", "columns": ["postcode", "house_number"]}
    assert build_comparison(ComparisonConfig(**two)).labels == ("null", "else", "same_town", "same_street", "same_address")
    assert _levels(spark, two, [("1234 AB", "1234 XY", "1", "3"), ("1234 AB", "1234 ab", "1", "3"), ("1234 AB", "9999 AB", "1", "1")]) == [2, 3, 1]
    with pytest.raises(ValueError, match="two to four columns"):
        build_comparison(ComparisonConfig(name="a", function="address", columns=["postcode"]))


def test_address_term_frequencies_count_the_normalised_city(spark) -> None:  # noqa: ANN001
    """The address is adjusted at its town level, keyed on the city as the level compares it
    (trimmed, case ignored), so ' Utrecht' and 'UTRECHT' are one value; a city is required."""
    cfg = {"name": "a", "function": "address", "columns": ["postcode", "house_number", "street", "city_match"],
           "term_frequency_adjustments": True}
    cmp = build_comparison(ComparisonConfig(**cfg))
    assert cmp.tf_level == cmp.labels.index("same_town") == 3
    assert cmp.tf_column == cmp.prepared_name("c") and cmp.tf_column in cmp.prepared_columns
    schema = "postcode string, house_number string, street string, city_match string"
    rows = [("1234 AB", "1", "a", "Utrecht"), ("1234 AB", "2", "b", " utrecht"), ("1234 AB", "3", "c", "UTRECHT "),
            ("9999 ZZ", "4", "d", "ootmarsum"), ("9999 ZZ", "5", "e", None), ("9999 ZZ", "6", "f", "  ")]
    got = {r[1]: r[2] for r in term_frequencies(spark.createDataFrame(rows, schema), [cmp]).collect()}
    assert got == {"UTRECHT": 0.75, "OOTMARSUM": 0.25}
    off = build_comparison(ComparisonConfig(**{**cfg, "term_frequency_adjustments": False}))
    assert off.tf_level is None and off.labels == cmp.labels  # the flag changes the weights, not the levels
    with pytest.raises(ValueError, match="no exact level"):
        ComparisonConfig(name="a", function="address", columns=["postcode", "house_number", "street"],
                         term_frequency_adjustments=True)


def test_email_levels(spark) -> None:  # noqa: ANN001
    rows = [("jan@x.nl", "JAN@x.nl"), ("jan@x.nl", "jan@y.com"), ("jan@x.nl", "jann@y.com"), ("jan@x.nl", "piet@x.nl"), (None, "a@b")]
    cfg = {"name": "e", "function": "email", "columns": ["email"]}
    assert _levels(spark, cfg, rows) == [3, 2, 1, 1, 0]
    cfg["arguments"] = {"local_threshold": 0.9}
    assert _levels(spark, cfg, rows) == [4, 3, 2, 1, 0]


def test_phone_levels(spark) -> None:  # noqa: ANN001
    rows = [("+31612345678", "+31612345678"), ("+31612345678", "0612345678"), ("+31612345678", "+31612345679"), (None, "1")]
    assert _levels(spark, {"name": "t", "function": "phone", "columns": ["phone"]}, rows) == [3, 2, 1, 0]


def test_name_swap_levels(spark) -> None:  # noqa: ANN001
    cmp = build_comparison(ComparisonConfig(name="s", function="name_swap", columns=["given_name_match", "family_name_match"]))
    schema = "i int, given_name_match_l string, given_name_match_r string, family_name_match_l string, family_name_match_r string"
    rows = [
        (0, "jan", "jansen", "jansen", "jan"),  # swapped exactly: 3
        (1, "jan", "jansem", "jansen", "jan"),  # swapped with a typo: 2
        (2, "jan", "jan", "jansen", "jansen"),  # straight: else 1
        (3, "jan", None, "jansen", "jan"),  # null 0
    ]
    out = compute_levels(spark.createDataFrame(rows, schema), [cmp]).orderBy("i").collect()
    assert [r[level_column_name("s")] for r in out] == [3, 2, 1, 0]


def test_term_frequencies(spark) -> None:  # noqa: ANN001
    cmp = build_comparison(
        ComparisonConfig(name="f", function="exact", columns=["family_name_match"], term_frequency_adjustments=True)
    )
    records = spark.createDataFrame([("smit",), ("smit",), ("smit",), ("bos",), (None,), (" ",)], "family_name_match string")
    tf = term_frequencies(records, [cmp])
    got = {r[1]: r[2] for r in tf.collect()}
    assert got == {"smit": 0.75, "bos": 0.25}


def test_term_frequencies_round_counts_to_steps_in_log2_space(spark) -> None:  # noqa: ANN001
    cmp = build_comparison(
        ComparisonConfig(name="f", function="exact", columns=["family_name_match"], term_frequency_adjustments=True)
    )
    # 11 smit, 5 bos, 3 jong, 1 kok: 20 values; at 0.5 bits the steps are round(2 * log2(n))
    values = ["smit"] * 11 + ["bos"] * 5 + ["jong"] * 3 + ["kok"]
    records = spark.createDataFrame([(v,) for v in values], "family_name_match string")
    got = {r[1]: r[2] for r in term_frequencies(records, [cmp], None, 0.5).collect()}
    # log2 11 = 3.46 -> step 7 -> 2**3.5; log2 5 = 2.32 -> 5 -> 2**2.5; log2 3 = 1.58 -> 3 -> 2**1.5; 1 -> 0
    assert got == pytest.approx({"smit": 2**3.5 / 20, "bos": 2**2.5 / 20, "jong": 2**1.5 / 20, "kok": 1 / 20})
    # resolution 0 is the exact count
    exact = {r[1]: r[2] for r in term_frequencies(records, [cmp], None, 0.0).collect()}
    assert exact == pytest.approx({"smit": 11 / 20, "bos": 5 / 20, "jong": 3 / 20, "kok": 1 / 20})


def test_count_steps_change_only_when_a_count_crosses_a_step(spark) -> None:  # noqa: ANN001
    from jobs.match.comparisons import count_step

    counts = spark.createDataFrame([(n,) for n in (1, 2, 100, 101, 105, 110, 1000, 1010)], "n long")
    steps = [r[0] for r in counts.select(count_step(F.col("n"), 0.25)).collect()]
    # round(4 * log2 n): 0, 4, 26.58 -> 27, 26.63 -> 27, 26.85 -> 27, 27.12 -> 27, 39.86 -> 40, 39.92 -> 40
    assert steps == [0, 4, 27, 27, 27, 27, 40, 40]
    assert [r[0] for r in counts.select(count_step(F.col("n"), 0.0)).collect()] == [1, 2, 100, 101, 105, 110, 1000, 1010]


def test_tf_on_comparison_without_exact_level_is_refused() -> None:
    with pytest.raises(ValueError, match="no exact level"):
        ComparisonConfig(name="b", function="date", columns=["birth_date"], term_frequency_adjustments=True)


def test_built_level_expressions_are_reused_only_for_the_same_pair_columns(spark) -> None:  # noqa: ANN001
    """A comparison builds its level expression once per set of carried columns: pairs that carry
    the per-record prepared values read them, pairs that don't compute them, with equal levels."""
    from jobs.match.comparisons import Pair, prepare_records

    cmp = build_comparison(ComparisonConfig(name="e", function="email", columns=["email"], arguments={"local_threshold": 0.9}))
    assert cmp.prepared_columns  # the local part is prepared per record
    recs = prepare_records(
        spark.createDataFrame([("a", "jan@x.nl"), ("b", "JAN@y.com"), ("c", "piet@x.nl"), ("d", None)], "record_key string, email string"),
        [cmp],
    )
    cols = recs.columns
    left = recs.toDF(*[f"{c}_l" for c in cols])
    right = recs.toDF(*[f"{c}_r" for c in cols])
    carried = left.crossJoin(right).where("record_key_l < record_key_r")
    bare = carried.select("record_key_l", "record_key_r", "email_l", "email_r")
    pair = Pair()
    assert cmp.level_column(pair, carried.columns) is cmp.level_column(pair, carried.columns)
    assert cmp.level_column(pair, bare.columns) is not cmp.level_column(pair, carried.columns)

    def levels(df) -> dict:  # noqa: ANN001
        return {(r["record_key_l"], r["record_key_r"]): r[level_column_name("e")] for r in compute_levels(df, [cmp]).collect()}

    got = levels(carried)
    assert got == levels(bare)
    assert got[("a", "b")] == 3 and got[("a", "c")] == 1 and got[("a", "d")] == 0
