"""Fellegi-Sunter: EM recovers known parameters, scoring arithmetic, TF adjustment, JSON, MLflow."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from jobs.match.comparisons import build_comparison, term_frequencies
from jobs.match.config import ComparisonConfig
from jobs.match.model import FellegiSunterModel, build_model, default_m, em, histogram_weights, reweigh_pairs, score_pairs


def _cmp(name: str, function: str, column: str, tf: bool = False):  # noqa: ANN202
    return build_comparison(ComparisonConfig(name=name, function=function, columns=[column], term_frequency_adjustments=tf))


def test_em_recovers_known_parameters() -> None:
    comps = [_cmp("a", "exact", "house_number"), _cmp("b", "levenshtein", "postcode"), _cmp("c", "jaro_winkler", "street")]
    true_m = {"a": [0.05, 0.95], "b": [0.05, 0.05, 0.1, 0.8], "c": [0.05, 0.05, 0.05, 0.15, 0.7]}
    true_u = {"a": [0.9, 0.1], "b": [0.85, 0.1, 0.04, 0.01], "c": [0.8, 0.1, 0.05, 0.03, 0.02]}
    lam, n, p_null = 0.2, 400_000, 0.1
    rng = np.random.default_rng(7)
    is_match = rng.random(n) < lam
    data = {}
    for c in comps:
        levels = np.arange(1, c.n_levels)
        g = np.where(is_match, rng.choice(levels, n, p=true_m[c.name]), rng.choice(levels, n, p=true_u[c.name]))
        g[rng.random(n) < p_null] = 0
        data[c.name] = g
    hist = pd.DataFrame(data).groupby([c.name for c in comps]).size().reset_index(name="count")
    res = em(hist, comps, prior_init=0.05, max_iterations=200, tolerance=1e-7)
    assert res.converged
    assert res.prior == pytest.approx(lam, abs=0.005)
    for c in comps:
        assert np.allclose(res.m[c.name][1:], true_m[c.name], atol=0.01), (c.name, res.m[c.name])
        assert np.allclose(res.u[c.name][1:], true_u[c.name], atol=0.01), (c.name, res.u[c.name])
    assert res.m["a"][0] is None
    lls = [t["log_likelihood"] for t in res.trace]
    assert all(b >= a - 1e-6 for a, b in zip(lls, lls[1:]))  # EM never decreases the likelihood


def _model(comps) -> FellegiSunterModel:  # noqa: ANN001
    m = {"house": [None, 0.1, 0.9], "family": [None, 0.2, 0.8]}
    u = {"house": [None, 0.95, 0.05], "family": [None, 0.99, 0.01]}
    return build_model(comps, m, u, prior=0.01)


def test_scoring_arithmetic_and_tf(spark) -> None:  # noqa: ANN001
    comps = [_cmp("house", "exact", "house_number"), _cmp("family", "exact", "family_name_match", tf=True)]
    model = _model(comps)
    records = spark.createDataFrame(
        [("r1", "1", "smit"), ("r2", "1", "smit"), ("r3", "2", "smit"), ("r4", "3", "bos"), ("r5", None, "bos2"), ("r6", "4", "jong")],
        "record_key string, house_number string, family_name_match string",
    )
    pairs = spark.createDataFrame(
        [("r1", "r2", "x"), ("r1", "r3", "x"), ("r4", "r5", "x"), ("r4", "r6", "x")],
        "record_key_l string, record_key_r string, blocking_rule string",
    )
    tf = term_frequencies(records, comps)
    got = {(r["record_key_l"], r["record_key_r"]): r for r in score_pairs(pairs, model, records, comps, tf).collect()}
    pw = math.log2(0.01 / 0.99)
    # house exact, family 'smit' exact: tf(smit) = 3/6 replaces u
    r = got[("r1", "r2")]
    assert r["levels"] == {"house": 2, "family": 2}
    assert r["weights"]["house"] == pytest.approx(math.log2(0.9 / 0.05))
    assert r["weights"]["family"] == pytest.approx(math.log2(0.8 / 0.5))
    # house differs
    assert got[("r1", "r3")]["weights"]["house"] == pytest.approx(math.log2(0.1 / 0.95))
    # null house: weight 0; family differs
    r = got[("r4", "r5")]
    assert r["levels"] == {"house": 0, "family": 1}
    assert r["weights"] == {"house": 0.0, "family": pytest.approx(math.log2(0.2 / 0.99))}
    for r in got.values():
        assert r["match_weight"] == pytest.approx(pw + sum(r["weights"].values()))
        w = r["match_weight"]
        assert r["match_probability"] == pytest.approx(2**w / (1 + 2**w))
        assert r["blocking_rule"] == "x"


def test_reweighing_stored_pairs_gives_a_fresh_scorings_doubles(spark) -> None:  # noqa: ANN001
    # an incremental run keeps its stored pairs and weighs them again from their levels with the
    # new term frequencies: the doubles must be those of scoring the pairs from scratch
    comps = [_cmp("house", "exact", "house_number"), _cmp("family", "exact", "family_name_match", tf=True)]
    m = {"house": [None, 0.1, 0.9], "family": [None, 0.2, 0.8]}
    u = {"house": [None, 0.95, 0.05], "family": [None, 0.99, 0.01]}
    model = build_model(comps, m, u, prior=0.01, tf_totals={"family": 7}, tf_resolution=0.25)
    schema = "record_key string, house_number string, family_name_match string"
    before = [("r1", "1", "smit"), ("r2", "1", "smit"), ("r3", "2", "smit"), ("r4", "3", "bos"), ("r6", "4", "jong"), ("r7", "4", "jong")]
    batch = [("r8", "1", "smit"), ("r9", "5", "smit"), ("r10", "6", "bos")]  # smit 3 -> 5 crosses a step, bos 1 -> 2 too
    pairs = spark.createDataFrame(
        [("r1", "r2", "x"), ("r1", "r3", "y"), ("r4", "r6", "x"), ("r6", "r7", "x")],
        "record_key_l string, record_key_r string, blocking_rule string",
    )

    def scored(rows: list[tuple], run_id: str):  # noqa: ANN202
        records = spark.createDataFrame(rows, schema)
        tf = term_frequencies(records, comps, model.tf_totals, model.tf_resolution)
        out = score_pairs(pairs, model, records, comps, tf)
        return out.withColumn("model_version", F.lit("1")).withColumn("run_id", F.lit(run_id)), records, tf

    stored, _, _ = scored(before, "run-1")
    fresh, records, tf = scored(before + batch, "run-2")
    got = {(r["record_key_l"], r["record_key_r"]): r.asDict() for r in reweigh_pairs(stored, model, records, comps, tf, "run-2").collect()}
    want = {(r["record_key_l"], r["record_key_r"]): r.asDict() for r in fresh.collect()}
    old = {(r["record_key_l"], r["record_key_r"]): r.asDict() for r in stored.collect()}
    assert set(got) == set(want)
    for key, row in got.items():
        assert {k: v for k, v in row.items() if k != "run_id"} == {k: v for k, v in want[key].items() if k != "run_id"}, key
    # the two smit pairs moved; bos/jong (family differs) and jong/jong (jong's count stayed) did not
    assert {k: r["run_id"] for k, r in got.items()} == {
        ("r1", "r2"): "run-2", ("r1", "r3"): "run-2", ("r4", "r6"): "run-1", ("r6", "r7"): "run-1",
    }
    assert got[("r1", "r2")]["match_weight"] != old[("r1", "r2")]["match_weight"]
    assert got[("r6", "r7")]["match_weight"] == old[("r6", "r7")]["match_weight"]


def test_address_town_level_is_weighed_by_the_citys_frequency(spark) -> None:  # noqa: ANN001
    """Agreeing only on a common city weighs less than agreeing only on a rare one; agreeing only
    on the postcode's digits keeps the level's weight; an incremental reweighing gives the same doubles."""
    comps = [build_comparison(ComparisonConfig(
        name="address", function="address", columns=["postcode", "house_number", "street", "city_match"],
        term_frequency_adjustments=True, tf_minimum_u_value=0.01,
    ))]
    # levels: null, else, same_postcode_digits, same_town, same_street, same_address
    m = {"address": [None, 0.05, 0.05, 0.1, 0.2, 0.6]}
    u = {"address": [None, 0.8, 0.02, 0.15, 0.02, 0.01]}
    model = build_model(comps, m, u, prior=0.01, tf_totals={"address": 10})
    schema = "record_key string, postcode string, house_number string, street string, city_match string"
    rows = [(f"a{i}", f"10{i:02d} AA", "1", f"straat{i}", "amsterdam") for i in range(8)]  # 8 of 10 in one city
    rows += [("o1", "7631 AA", "1", "markt", "ootmarsum"), ("o2", "7630 BB", "2", "kerkweg", "Ootmarsum ")]
    rows += [("x1", "1000 ZZ", "9", "dam", None)]  # no city: 10 non-blank cities in all
    records = spark.createDataFrame(rows, schema)
    pairs = spark.createDataFrame(
        [("a1", "a2", "r"), ("o1", "o2", "r"), ("a0", "x1", "r"), ("a1", "o1", "r")],
        "record_key_l string, record_key_r string, blocking_rule string",
    )
    tf = term_frequencies(records, comps, model.tf_totals)
    scored = score_pairs(pairs, model, records, comps, tf)
    got = {(r["record_key_l"], r["record_key_r"]): r for r in scored.collect()}
    assert {k: r["levels"]["address"] for k, r in got.items()} == {
        ("a1", "a2"): 3, ("o1", "o2"): 3, ("a0", "x1"): 2, ("a1", "o1"): 1,
    }
    assert got[("a1", "a2")]["weights"]["address"] == pytest.approx(math.log2(0.1 / 0.8))  # tf 8/10 replaces u 0.15
    assert got[("o1", "o2")]["weights"]["address"] == pytest.approx(math.log2(0.1 / 0.2))  # 2/10
    assert got[("a0", "x1")]["weights"]["address"] == pytest.approx(math.log2(0.05 / 0.02))  # digits: no adjustment
    assert got[("a1", "o1")]["weights"]["address"] == pytest.approx(math.log2(0.05 / 0.8))
    stored = scored.withColumn("model_version", F.lit("1")).withColumn("run_id", F.lit("run-1"))
    again = {(r["record_key_l"], r["record_key_r"]): r for r in reweigh_pairs(stored, model, records, comps, tf, "run-2").collect()}
    for key, r in got.items():
        assert again[key]["match_weight"] == r["match_weight"] and again[key]["run_id"] == "run-1", key


def test_model_json_round_trip_and_histogram_weights() -> None:
    comps = [_cmp("house", "exact", "house_number"), _cmp("family", "exact", "family_name_match", tf=True)]
    model = _model(comps)
    back = FellegiSunterModel.from_json(model.to_json())
    assert back == model
    assert back.comparison("family").tf_level == 2
    hist = pd.DataFrame({"house": [2, 0], "family": [2, 1], "count": [3, 4]})
    w = histogram_weights(hist, model)
    assert w[0] == pytest.approx(math.log2(0.01 / 0.99) + math.log2(0.9 / 0.05) + math.log2(0.8 / 0.01))
    assert w[1] == pytest.approx(math.log2(0.01 / 0.99) + math.log2(0.2 / 0.99))


def test_labels_seed_m_and_fix_m_keeps_it() -> None:
    from jobs.match.model import m_from_labels

    comps = [_cmp("a", "exact", "house_number")]
    labelled = pd.DataFrame({"a": [2, 1, 0], "count": [9, 1, 5]})  # null level ignored
    m = m_from_labels(labelled, comps)
    assert m["a"][0] is None and m["a"][1:] == pytest.approx([0.1, 0.9])
    hist = pd.DataFrame({"a": [2, 1], "count": [30, 70]})
    res = em(hist, comps, m_init=m, fix_m=True, max_iterations=50)
    assert res.m["a"][1:] == pytest.approx([0.1, 0.9])


def test_em_sessions_per_rule_keep_households_apart() -> None:
    """Pairs found by the address rule are mostly two members of one household: in one pooled EM
    the "match" class can become "same address"; per rule, the address comparison sits out of the
    address rule's session and the names and birth dates decide there."""
    from jobs.match.config import BlockingRule, MatchConfig
    from jobs.match.model import RULES_COLUMN
    from jobs.match.training import em_sessions

    cfg = MatchConfig(
        blocking_rules=[BlockingRule(name="names", keys=["given_name_match"]), BlockingRule(name="address", keys=["postcode"])],
        comparisons=[
            ComparisonConfig(name="given", function="exact", columns=["given_name_match"]),
            ComparisonConfig(name="birth", function="exact", columns=["birth_date"]),
            ComparisonConfig(name="address", function="exact", columns=["postcode"]),
        ],
    )
    comps = cfg.comparison_defs()
    # (given, birth, address) levels (1 else, 2 exact), rule bitmask, count
    rows = [
        (2, 2, 2, 0b11, 1000),  # the same person: both rules find the pair
        (2, 2, 1, 0b01, 150),  # the same person after a move
        (1, 1, 2, 0b10, 3000),  # two members of one household
        (2, 1, 1, 0b01, 500),  # namesakes
    ]
    hist = pd.DataFrame(rows, columns=["given", "birth", "address", RULES_COLUMN, "count"])
    u = {"given": [None, 0.99, 0.01], "birth": [None, 0.999, 0.001], "address": [None, 0.999, 0.001]}
    m, sessions = em_sessions(hist, cfg, comps, None, u)
    assert [(s["rule"], s["pairs"], s["estimated"]) for s in sessions] == [
        ("names", 1650, ["birth", "address"]),
        ("address", 4000, ["given", "birth"]),
    ]
    assert m["given"][1] < 0.01 and m["birth"][1] < 0.01  # a real match hardly ever disagrees on them
    assert 0.05 < m["address"][1] < 0.2  # people move: 150 of 1150 matches found by name live elsewhere
    household = math.log2(m["given"][1] / u["given"][1]) + math.log2(m["birth"][1] / u["birth"][1]) + math.log2(m["address"][2] / u["address"][2])
    assert household < 0, household

    # a rule every comparison reads is skipped; a comparison no session estimates keeps its start
    only = cfg.model_copy(update={"blocking_rules": [BlockingRule(name="all", keys=["given_name_match", "birth_date", "postcode"])]})
    m2, s2 = em_sessions(hist.assign(**{RULES_COLUMN: 1}), only, comps, None, u)
    assert s2 == [{"rule": "all", "pairs": 4650, "estimated": [], "skipped": "every comparison reads its columns"}]
    assert m2 == {c.name: default_m(c) for c in comps}


def test_u_sample_is_reproducible_from_its_seed(spark) -> None:  # noqa: ANN001
    """The u sample picks records by a hash of record key and seed: the same seed gives the same
    pairs (in another session partitioning too), another seed other pairs; link_only pairs cross sources."""
    from jobs.match.config import MatchConfig
    from jobs.match.model import random_pairs

    records = spark.createDataFrame(
        [(f"k{i:03d}", "crm" if i % 3 else "shop", f"n{i % 17}") for i in range(300)],
        "record_key string, source string, family_name_match string",
    )

    def sample(seed: int, link_type: str = "dedupe", frame=records) -> set[tuple[str, str]]:  # noqa: ANN001
        cfg = MatchConfig(link_type=link_type, training={"u_sample_pairs": 1_000, "seed": seed})
        got = random_pairs(frame, cfg, ["family_name_match"]).collect()
        assert all(r["record_key_l"] < r["record_key_r"] for r in got)
        return {(r["record_key_l"], r["record_key_r"]) for r in got}

    first = sample(42)
    assert len(first) == 46 * 45 // 2  # the 46 records whose pairs number at least 1,000
    assert sample(42) == first
    assert sample(42, frame=records.repartition(7).orderBy("family_name_match")) == first
    other = sample(43)
    assert len(other) == len(first) and other != first
    assert len(other & first) < len(first) // 2
    cross = sample(42, "link_only")
    sources = {r["record_key"]: r["source"] for r in records.collect()}
    assert cross and all(sources[a] != sources[b] for a, b in cross)
