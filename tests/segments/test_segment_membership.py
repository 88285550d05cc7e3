"""Segment evaluation (consent, suppression, RFM) and membership history across runs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, StructField, StructType

from jobs.common.schemas import SEGMENT_MEMBERSHIP
from jobs.segments.config import SegmentConfig, SegmentsConfig
from jobs.segments.transforms import (
    RFM_GRID,
    RFM_SEGMENTS,
    evaluate_segments,
    membership_counts,
    rfm_micro_segments,
    rfm_segment,
    segment_names,
    update_membership,
)

RUN_DATE = dt.date(2024, 6, 15)
MEMBERS = StructType([StructField("person_id", StringType()), StructField("segment", StringType())])


def members(spark: SparkSession, pairs: list[tuple[str, str]]) -> DataFrame:
    return spark.createDataFrame(pairs, MEMBERS)


def test_evaluate_segments_applies_rules_consent_and_suppression(spark: SparkSession, make_profiles) -> None:  # noqa: ANN001
    profiles = make_profiles(
        [
            dict(person_id="p1", total_revenue=Decimal("500"), city="Utrecht", consent_email=True,
                 rfm_recency=5, rfm_frequency=5, rfm_monetary=4),
            dict(person_id="p2", total_revenue=Decimal("500"), city="Utrecht", consent_email=False),
            dict(person_id="p3", total_revenue=Decimal("500"), city="Gouda", consent_email=None, consent_sms=True),
            dict(person_id="p4", total_revenue=Decimal("500"), city="Utrecht", consent_email=True,
                 rfm_recency=1, rfm_frequency=1, rfm_monetary=1),
            dict(person_id="p5", total_revenue=Decimal("10"), city="Utrecht", consent_email=True),
        ]
    )
    cfg = SegmentsConfig(
        segments=[
            SegmentConfig(name="big_spenders", rule="total_revenue >= 100", consent="email"),
            SegmentConfig(name="utrecht", rule="city = 'Utrecht'"),
            SegmentConfig(name="sms_ok", rule="total_revenue > 0", consent="sms"),
        ]
    )
    suppressed = spark.createDataFrame([("p4",)], "person_id string")
    got = evaluate_segments(profiles, cfg, RUN_DATE, suppressed)
    expected = members(
        spark,
        [
            ("p1", "big_spenders"), ("p1", "utrecht"), ("p1", "rfm_champions"),
            ("p2", "utrecht"),  # no e-mail consent: not a big spender for marketing
            ("p3", "sms_ok"),  # unknown e-mail consent is no consent
            ("p5", "utrecht"),
        ],
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)

    cfg.rfm_micro_segments = False
    no_rfm = evaluate_segments(profiles, cfg, RUN_DATE)  # no suppression list: p4 is back
    assert sorted(map(tuple, no_rfm.collect())) == [
        ("p1", "big_spenders"), ("p1", "utrecht"), ("p2", "utrecht"), ("p3", "sms_ok"),
        ("p4", "big_spenders"), ("p4", "utrecht"), ("p5", "utrecht"),
    ]
    empty = evaluate_segments(profiles, SegmentsConfig(rfm_micro_segments=False), RUN_DATE)
    assert empty.columns == ["person_id", "segment"]


def test_rfm_grid_covers_every_cell_once() -> None:
    assert len(RFM_GRID) == 5 and all(len(row) == 5 for row in RFM_GRID)
    assert RFM_SEGMENTS == (
        "rfm_about_to_sleep", "rfm_at_risk", "rfm_cant_lose", "rfm_champions", "rfm_hibernating", "rfm_lost",
        "rfm_loyal", "rfm_need_attention", "rfm_new", "rfm_potential_loyalist", "rfm_promising",
    )
    # spot checks against the published map
    assert rfm_segment(5, 5, 5) == "rfm_champions"
    assert rfm_segment(5, 1, 1) == "rfm_new"
    assert rfm_segment(1, 1, 1) == "rfm_lost"
    assert rfm_segment(2, 5, 5) == "rfm_cant_lose"
    assert rfm_segment(3, 3, 3) == "rfm_need_attention"
    assert rfm_segment(4, 4, 3) == "rfm_loyal"  # FM = 3.5 rounds half up to 4
    assert rfm_segment(4, 3, 3) == "rfm_potential_loyalist"
    assert rfm_segment(1, 2, 1) == "rfm_hibernating"  # FM = 1.5 -> 2
    assert rfm_segment(0, 3, 3) is None


def test_rfm_column_matches_the_grid_on_every_score(spark: SparkSession, make_profiles) -> None:  # noqa: ANN001
    combos = [(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)]
    rows = [dict(person_id=f"{r}{f}{m}", rfm_recency=r, rfm_frequency=f, rfm_monetary=m) for r, f, m in combos]
    rows += [dict(person_id="none", rfm_recency=None, rfm_frequency=3, rfm_monetary=3),
             dict(person_id="zero", rfm_recency=0, rfm_frequency=3, rfm_monetary=3)]
    got = dict(map(tuple, rfm_micro_segments(make_profiles(rows)).collect()))
    assert got == {f"{r}{f}{m}": rfm_segment(r, f, m) for r, f, m in combos}


def test_segment_names_lists_rule_and_rfm_segments() -> None:
    cfg = SegmentsConfig(segments=[SegmentConfig(name="vip", rule="total_revenue > 1")])
    assert segment_names(cfg) == ["vip", *RFM_SEGMENTS]
    cfg.rfm_micro_segments = False
    assert segment_names(cfg) == ["vip"]


T1 = dt.datetime(2024, 6, 1, 6, 0)
T2 = dt.datetime(2024, 6, 8, 6, 0)
T3 = dt.datetime(2024, 6, 15, 6, 0)


def history(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, SEGMENT_MEMBERSHIP.schema)


def stored(spark: SparkSession, df: DataFrame) -> DataFrame:
    """What the job reads back after writing the table: the data, without the lineage of earlier runs."""
    return spark.createDataFrame(df.collect(), SEGMENT_MEMBERSHIP.schema)


def test_membership_history_enter_stay_leave_reenter(spark: SparkSession) -> None:
    empty = history(spark, [])
    run1 = stored(spark, update_membership(empty, members(spark, [("a", "s1"), ("b", "s1"), ("a", "s2")]), T1, "r1"))
    run2 = stored(spark, update_membership(run1, members(spark, [("a", "s1"), ("c", "s1"), ("a", "s2")]), T2, "r2"))
    run3 = stored(spark, update_membership(run2, members(spark, [("a", "s1"), ("b", "s1"), ("c", "s1")]), T3, "r3"))
    expected = history(
        spark,
        [
            ("a", "s1", T1, None, "r1", None),  # stays through all runs: one open row, unchanged
            ("b", "s1", T1, T2, "r1", "r2"),  # left in run 2 ...
            ("b", "s1", T3, None, "r3", None),  # ... and re-entered in run 3: a new row
            ("c", "s1", T2, None, "r2", None),
            ("a", "s2", T1, T3, "r1", "r3"),
        ],
    )
    assert_df_equality(run3, expected, ignore_row_order=True, ignore_nullable=True)

    # idempotent: running run 3 again changes nothing
    again = update_membership(run3, members(spark, [("a", "s1"), ("b", "s1"), ("c", "s1")]), T3, "r3")
    assert_df_equality(again, expected, ignore_row_order=True, ignore_nullable=True)

    counts = membership_counts(run3)
    assert [tuple(r) for r in counts.collect()] == [("s1", 3)]


def test_membership_only_touches_the_given_segments(spark: SparkSession) -> None:
    current = history(
        spark,
        [
            ("a", "s1", T1, None, "r1", None),
            ("b", "s2", T1, None, "r1", None),
            ("c", "s2", T1, T2, "r1", "r2"),
        ],
    )
    # an incremental run of s1 only: s2 is not in `members` but must not be closed
    got = update_membership(current, members(spark, [("d", "s1"), ("x", "s9")]), T3, "r3", segments=["s1"])
    expected = history(
        spark,
        [
            ("a", "s1", T1, T3, "r1", "r3"),
            ("d", "s1", T3, None, "r3", None),
            ("b", "s2", T1, None, "r1", None),
            ("c", "s2", T1, T2, "r1", "r2"),
        ],
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    untouched = update_membership(current, members(spark, []), T3, "r3", segments=[])
    assert_df_equality(untouched, current, ignore_row_order=True, ignore_nullable=True)


def test_aware_and_naive_run_times_agree(spark: SparkSession) -> None:
    aware = T1.replace(tzinfo=dt.timezone.utc)
    a = update_membership(history(spark, []), members(spark, [("a", "s1")]), T1, "r1").collect()
    b = update_membership(history(spark, []), members(spark, [("a", "s1")]), aware, "r1").collect()
    assert a == b and a[0]["entered_at"] == T1  # the session time zone is UTC


@pytest.mark.parametrize("missing", ["entered_run"])
def test_update_membership_names_missing_columns(spark: SparkSession, missing: str) -> None:
    from jobs.common.errors import SchemaError

    current = history(spark, []).drop(missing)
    with pytest.raises(SchemaError, match=f"update_membership\\(current\\): missing column\\(s\\) {missing}"):
        update_membership(current, members(spark, []), T1, "r1")


def test_membership_changes_are_what_the_merge_needs(spark: SparkSession) -> None:
    from jobs.segments.transforms import membership_changes, open_members

    current = history(
        spark,
        [
            ("a", "s1", T1, None, "r1", None),
            ("b", "s1", T1, None, "r1", None),
            ("c", "s1", T1, T2, "r1", "r2"),
        ],
    )
    new = members(spark, [("a", "s1"), ("c", "s1"), ("d", "s1")])
    got = membership_changes(current, new, T3, "r3")
    assert sorted(map(tuple, got.collect())) == [
        ("b", "s1", T1, T3, "r1", "r3", "exited"),
        ("c", "s1", T3, None, "r3", None, "entered"),  # re-entry: a new row, the closed one untouched
        ("d", "s1", T3, None, "r3", None, "entered"),
    ]
    # incremental: only a and b were evaluated; d's membership is unknown, c's row stays closed
    persons = spark.createDataFrame([("a",), ("b",)], "person_id string")
    got = membership_changes(current, members(spark, [("a", "s1"), ("d", "s1")]), T3, "r3", persons=persons)
    assert [tuple(r) for r in got.collect()] == [("b", "s1", T1, T3, "r1", "r3", "exited")]
    full = update_membership(current, members(spark, [("a", "s1"), ("d", "s1")]), T3, "r3", persons=persons)
    assert sorted(map(tuple, full.collect())) == [
        ("a", "s1", T1, None, "r1", None),
        ("b", "s1", T1, T3, "r1", "r3"),
        ("c", "s1", T1, T2, "r1", "r2"),
    ]
    assert sorted(map(tuple, open_members(full).collect())) == [("a", "s1")]


def test_rfm_cell_fills_missing_scores(make_profiles) -> None:  # noqa: ANN001
    got = rfm_micro_segments(make_profiles([
        dict(person_id="cell", rfm_cell="5-4-5"),
        dict(person_id="scores_win", rfm_cell="5-5-5", rfm_recency=1, rfm_frequency=1, rfm_monetary=1),
        dict(person_id="bad", rfm_cell="9-x-1"),
        dict(person_id="none"),
    ]))
    assert sorted(map(tuple, got.collect())) == [("cell", "rfm_champions"), ("scores_win", "rfm_lost")]


def test_suppressed_persons_match_the_ingest_hash(spark: SparkSession, make_profiles) -> None:  # noqa: ANN001
    from jobs.common.keys import salted_hash
    from jobs.segments.transforms import suppressed_persons

    salt = "s3cret-salt"
    profiles = make_profiles([
        dict(person_id="by_email", email=" Jan@Example.nl "),
        dict(person_id="by_phone", phone="+31612345678"),
        dict(person_id="by_identifier", email="new@example.nl", identifiers={"email": ["old@example.nl"]}),
        dict(person_id="by_record", provenance={"email": ("crm", "rk1", "most_recent", None)}),
        dict(person_id="clean", email="clean@example.nl", phone="+31600000000",
             identifiers={"loyalty_card": ["123"]}),
    ])
    listed = [("email", salted_hash(salt, "email", "jan@example.nl")),
              ("phone", salted_hash(salt, "phone", "+31612345678")),
              ("email", salted_hash(salt, "email", "old@example.nl")),
              ("record_key", salted_hash(salt, "record_key", "rk1")),
              ("phone", salted_hash("other-salt", "phone", "+31600000000")),  # another salt: no match
              ("loyalty_card", salted_hash(salt, "email", "123"))]  # wrong type: no match
    suppression = spark.createDataFrame(listed, "id_type string, id_hash string")
    got = {r["person_id"] for r in suppressed_persons(profiles, suppression, salt).collect()}
    assert got == {"by_email", "by_phone", "by_identifier", "by_record"}
