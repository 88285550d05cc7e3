"""Over-merge guard (jobs/match/guard.py)."""

from __future__ import annotations

import logging

import pytest
from chispa import assert_df_equality
from pyspark.sql.types import LongType, StringType, StructField, StructType

from jobs.common.errors import DataError
from jobs.common.schemas import MATCH_EDGES
from jobs.match.config import GuardConfig
from jobs.match.guard import apply_guard

RUN = "run-1"
CLUSTERS = StructType([StructField("record_key", StringType()), StructField("cluster_id", StringType())])
OUT = StructType(
    [
        StructField("record_key", StringType()),
        StructField("cluster_id", StringType()),
        StructField("cluster_size", LongType()),
        StructField("guard", StringType()),
    ]
)
THRESHOLD = 0.9


def P(l: str, r: str, p: float) -> tuple:  # noqa: N802 - probabilistic edge
    return (l, r, "probabilistic", 10.0, p, RUN)


def D(l: str, r: str, kind: str = "email") -> tuple:  # noqa: N802 - identifier edge
    return (l, r, f"identifier:{kind}", None, 1.0, RUN)


def clique(keys: list[str], p: float) -> list[tuple]:
    return [P(a, b, p) for i, a in enumerate(keys) for b in keys[i + 1 :]]


def run(spark, members: dict[str, list[str]], edges: list[tuple], cfg: GuardConfig):  # noqa: ANN001, ANN201
    rows = [(k, cid) for cid, keys in members.items() for k in keys]
    clusters = spark.createDataFrame(rows, CLUSTERS)
    return apply_guard(clusters, spark.createDataFrame(edges, MATCH_EDGES.schema), cfg, THRESHOLD)


def expected(spark, rows: list[tuple]):  # noqa: ANN001, ANN201
    return spark.createDataFrame(rows, OUT)


def test_barbell_split_at_weak_bridge_and_others_untouched(spark) -> None:  # noqa: ANN001
    left, right = ["a1", "a2", "a3"], ["b1", "b2", "b3"]
    edges = clique(left, 0.95) + clique(right, 0.97) + [P("a3", "b1", 0.92)]
    edges += [P("c1", "c2", 0.95)]  # small pair, untouched
    edges += [D("d1", "d2"), D("d2", "d3"), D("d3", "d4"), P("d2", "d3", 0.91)]  # identifier chain: strong bridges
    members = {"a1": left + right, "c1": ["c1", "c2"], "d1": ["d1", "d2", "d3", "d4"], "e1": ["e1"]}
    out, report = run(spark, members, edges, GuardConfig())
    want = expected(
        spark,
        [(k, "a1", 3, "bridge") for k in left]
        + [(k, "b1", 3, "bridge") for k in right]
        + [("c1", "c1", 2, None), ("c2", "c1", 2, None)]
        + [(k, "d1", 4, None) for k in ["d1", "d2", "d3", "d4"]]
        + [("e1", "e1", 1, None)],
    )
    assert_df_equality(out, want, ignore_row_order=True, ignore_nullable=True)
    assert report == [{"cluster_id_before": "a1", "size_before": 6, "reason": "bridge", "parts": 2}]


def test_strong_bridge_kept(spark) -> None:  # noqa: ANN001
    left, right = ["a1", "a2", "a3"], ["b1", "b2", "b3"]
    edges = clique(left, 0.95) + clique(right, 0.95) + [P("a3", "b1", 0.9995)]
    out, report = run(spark, {"a1": left + right}, edges, GuardConfig())
    want = expected(spark, [(k, "a1", 6, None) for k in left + right])
    assert_df_equality(out, want, ignore_row_order=True, ignore_nullable=True)
    assert report == []


def test_weak_bridge_with_an_identifier_edge_beside_it_is_kept(spark) -> None:  # noqa: ANN001
    left, right = ["a1", "a2", "a3"], ["b1", "b2", "b3"]
    edges = clique(left, 0.95) + clique(right, 0.95) + [P("a3", "b1", 0.92), D("b1", "a3", "customer_number")]
    out, report = run(spark, {"a1": left + right}, edges, GuardConfig())
    assert {r.cluster_id for r in out.collect()} == {"a1"}
    assert report == []


def test_bridge_to_a_small_side_is_kept(spark) -> None:  # noqa: ANN001
    left = ["a1", "a2", "a3", "a4"]
    edges = clique(left, 0.95) + [P("a4", "z9", 0.92)]  # one record hangs on the bridge: side 1 < 2
    out, report = run(spark, {"a1": left + ["z9"]}, edges, GuardConfig(bridge_min_side=2))
    assert {(r.record_key, r.cluster_id, r.cluster_size, r.guard) for r in out.collect()} == {
        (k, "a1", 5, None) for k in left + ["z9"]
    }
    assert report == []
    out, report = run(spark, {"a1": left + ["z9"]}, edges, GuardConfig(bridge_min_side=1))
    assert sorted((r.record_key, r.cluster_id, r.guard) for r in out.collect()) == [
        ("a1", "a1", "bridge"), ("a2", "a1", "bridge"), ("a3", "a1", "bridge"), ("a4", "a1", "bridge"), ("z9", "z9", "bridge")
    ]
    assert report == [{"cluster_id_before": "a1", "size_before": 5, "reason": "bridge", "parts": 2}]


def test_big_cluster_split_by_size_with_strong_edges_only(spark) -> None:  # noqa: ANN001
    g1, g2, g3 = ["k01", "k02", "k03"], ["k04", "k05"], ["k06"]
    # strong: identifier links inside g1, a 0.9995 link inside g2; weak 0.95 links join everything
    edges = [D("k01", "k02"), D("k02", "k03"), P("k04", "k05", 0.9995)]
    edges += [P("k03", "k04", 0.95), P("k05", "k06", 0.95), P("k01", "k06", 0.95)]
    out, report = run(spark, {"k01": g1 + g2 + g3}, edges, GuardConfig(max_cluster_size=5))
    want = expected(
        spark,
        [(k, "k01", 3, "size:6") for k in g1] + [(k, "k04", 2, "size:6") for k in g2] + [("k06", "k06", 1, "size:6")],
    )
    assert_df_equality(out, want, ignore_row_order=True, ignore_nullable=True)
    assert report == [{"cluster_id_before": "k01", "size_before": 6, "reason": "size", "parts": 3}]


def test_big_cluster_held_by_strong_edges_stays_and_is_reported(spark) -> None:  # noqa: ANN001
    keys = ["k1", "k2", "k3"]
    out, report = run(spark, {"k1": keys}, [D("k1", "k2"), D("k2", "k3")], GuardConfig(max_cluster_size=2))
    assert {(r.record_key, r.cluster_id, r.cluster_size, r.guard) for r in out.collect()} == {(k, "k1", 3, None) for k in keys}
    assert report == [{"cluster_id_before": "k1", "size_before": 3, "reason": "size", "parts": 1}]


def test_the_run_log_gets_one_summary_line_and_each_split_at_debug(spark, caplog) -> None:  # noqa: ANN001
    # two barbells (split at the bridge) and one big cluster held by identifier links (reported, not split)
    edges, members = [], {}
    for side in ("a", "b"):
        left, right = [f"{side}l{i}" for i in range(3)], [f"{side}r{i}" for i in range(3)]
        edges += clique(left, 0.95) + clique(right, 0.95) + [P(left[-1], right[0], 0.92)]
        members[left[0]] = left + right
    held = [f"h{i}" for i in range(7)]
    edges += [D(a, b) for a, b in zip(held, held[1:])]
    members[held[0]] = held
    with caplog.at_level(logging.DEBUG, logger="jobs.match.guard"):
        run(spark, members, edges, GuardConfig(max_cluster_size=6))
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert info == [
        "over-merge guard: 3 suspicious clusters inspected, 3 reported (1 over the size limit, 2 held by a weak "
        "bridge), 2 split into 4 parts; the largest had 7 records (each at DEBUG)"
    ]
    assert sorted(debug) == [
        "over-merge guard: a cluster of 6 records (bridge): split into 2 parts",
        "over-merge guard: a cluster of 6 records (bridge): split into 2 parts",
        "over-merge guard: a cluster of 7 records (size): kept whole (no weak link to cut)",
    ]


def test_too_many_edges_to_inspect(spark) -> None:  # noqa: ANN001
    keys = ["k1", "k2", "k3", "k4"]
    with pytest.raises(DataError, match=r"more than 2 edges \(match.guard.max_inspected_edges\)"):
        run(spark, {"k1": keys}, clique(keys, 0.95), GuardConfig(max_cluster_size=2, max_inspected_edges=2))


def test_disabled_only_adds_sizes(spark) -> None:  # noqa: ANN001
    keys = ["k1", "k2", "k3"]
    out, report = run(spark, {"k1": keys}, clique(keys, 0.95), GuardConfig(enabled=False, max_cluster_size=2))
    assert_df_equality(out, expected(spark, [(k, "k1", 3, None) for k in keys]), ignore_row_order=True, ignore_nullable=True)
    assert report == []
