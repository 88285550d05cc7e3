"""Tests for bench/metrics.py: hand-computed cases plus an oracle that enumerates every pair.

Run explicitly: ``pytest bench/test_metrics.py`` (the main suite only collects tests/).
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pandas as pd
import pytest

from bench.metrics import cluster_metrics, clusters_from_links, pairs_count, pairwise_from_links


def _truth(mapping: dict[str, str]) -> pd.Series:
    return pd.Series(mapping, dtype=object)


def _brute_pairs(labels: dict[str, object]) -> set[frozenset[str]]:
    groups: dict[object, list[str]] = {}
    for rec, lab in labels.items():
        groups.setdefault(lab, []).append(rec)
    return {frozenset(p) for g in groups.values() for p in itertools.combinations(sorted(g), 2)}


def _brute_bcubed(pred: dict[str, object], truth: dict[str, object]) -> tuple[float, float]:
    recs = list(truth)
    p = r = 0.0
    for x in recs:
        same_pred = {y for y in recs if pred[y] == pred[x]}
        same_true = {y for y in recs if truth[y] == truth[x]}
        inter = len(same_pred & same_true)
        p += inter / len(same_pred)
        r += inter / len(same_true)
    return p / len(recs), r / len(recs)


def test_pairs_count() -> None:
    assert pairs_count(np.array([1, 2, 3, 4])) == 0 + 1 + 3 + 6
    assert pairs_count(np.array([], dtype=np.int64)) == 0


def test_pairwise_from_links_hand_computed() -> None:
    truth = _truth({"a": "1", "b": "1", "c": "1", "d": "2", "e": "2", "f": "3"})
    # true pairs: ab ac bc de = 4
    links = pd.DataFrame(
        {"l": ["a", "b", "a", "d", "c", "x"], "r": ["b", "a", "d", "e", "c", "a"]}
    )  # ab (twice, both orders), ad (wrong), de, cc (self), xa (outside universe)
    s = pairwise_from_links(links, truth)
    assert (s.true_positives, s.predicted_pairs, s.true_pairs) == (2, 3, 4)
    assert s.precision == pytest.approx(2 / 3)
    assert s.recall == pytest.approx(0.5)
    assert s.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))


def test_pairwise_from_links_accepts_tuples_and_empty() -> None:
    truth = _truth({"a": "1", "b": "1"})
    assert pairwise_from_links([("a", "b")], truth).f1 == 1.0
    empty = pairwise_from_links(pd.DataFrame({"l": [], "r": []}), truth)
    assert (empty.precision, empty.recall, empty.f1) == (1.0, 0.0, 0.0)


def test_cluster_metrics_hand_computed() -> None:
    truth = _truth({"a": "1", "b": "1", "c": "1", "d": "2", "e": "2", "f": "3"})
    # predicted: {a,b} {c,d,e} {f}; true pairs ab ac bc de
    pred = pd.Series({"a": "p", "b": "p", "c": "q", "d": "q", "e": "q", "f": "r"})
    s = cluster_metrics(pred, truth)
    # implied pairs: ab, cd, ce, de -> tp ab, de
    assert (s.pairwise.true_positives, s.pairwise.predicted_pairs, s.pairwise.true_pairs) == (2, 4, 4)
    assert s.pairwise.f1 == pytest.approx(0.5)
    # B-cubed by hand: precision per record a,b:1 c:1/3 d,e:2/3 f:1 -> (1+1+1/3+2/3+2/3+1)/6
    assert s.bcubed.precision == pytest.approx((1 + 1 + 1 / 3 + 2 / 3 + 2 / 3 + 1) / 6)
    # recall: a,b: 2/3 c: 1/3 d,e: 1 f: 1
    assert s.bcubed.recall == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 + 1 + 1) / 6)
    assert (s.records, s.predicted_clusters, s.true_clusters) == (6, 3, 3)


def test_cluster_metrics_missing_records_are_singletons_and_extra_ignored() -> None:
    truth = _truth({"a": "1", "b": "1", "c": "2"})
    pred = pd.Series({"a": "k", "z": "k"})  # b, c unclustered; z outside the truth
    s = cluster_metrics(pred, truth)
    assert s.unclustered_records == 2
    assert s.ignored_records == 1
    assert s.predicted_clusters == 3
    assert (s.pairwise.true_positives, s.pairwise.predicted_pairs, s.pairwise.true_pairs) == (0, 0, 1)
    d = s.to_dict()
    assert d["f1"] == 0.0 and d["precision"] == 1.0 and "bcubed" in d


def test_perfect_clustering_scores_one() -> None:
    truth = _truth({str(i): str(i // 3) for i in range(30)})
    pred = pd.Series({str(i): f"c{i // 3}" for i in range(30)})
    s = cluster_metrics(pred, truth)
    assert s.pairwise.f1 == 1.0 and s.bcubed.f1 == pytest.approx(1.0)


def test_duplicate_record_ids_are_refused() -> None:
    truth = pd.Series(["1", "1"], index=["a", "a"])
    with pytest.raises(ValueError, match="duplicate record ids"):
        cluster_metrics(pd.Series({"a": "x"}), truth)


@pytest.mark.parametrize("seed", range(25))
def test_oracle_against_enumerated_pairs(seed: int) -> None:
    """Random truths and clusterings: counts must equal brute-force pair enumeration."""
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    recs = [f"r{i}" for i in range(n)]
    truth = {r: rng.randint(0, max(1, n // 3)) for r in recs}
    pred = {r: rng.randint(0, max(1, n // 2)) for r in recs}
    true_pairs, pred_pairs = _brute_pairs(truth), _brute_pairs(pred)

    s = cluster_metrics(pd.Series(pred), pd.Series(truth))
    assert s.pairwise.true_pairs == len(true_pairs)
    assert s.pairwise.predicted_pairs == len(pred_pairs)
    assert s.pairwise.true_positives == len(true_pairs & pred_pairs)
    bp, br = _brute_bcubed(pred, truth)
    assert s.bcubed.precision == pytest.approx(bp)
    assert s.bcubed.recall == pytest.approx(br)

    links = [tuple(sorted(p)) for p in pred_pairs if rng.random() < 0.7]
    links += [(b, a) for a, b in links[:3]]  # reversed duplicates count once
    pw = pairwise_from_links(links, pd.Series(truth))
    distinct = {frozenset(p) for p in links}
    assert pw.predicted_pairs == len(distinct)
    assert pw.true_positives == len(distinct & true_pairs)


def test_clusters_from_links_matches_networkx() -> None:
    nx = pytest.importorskip("networkx")
    rng = random.Random(7)
    recs = [f"r{i:03d}" for i in range(200)]
    edges = [(rng.choice(recs), rng.choice(recs)) for _ in range(150)]
    labels = clusters_from_links(recs, pd.DataFrame(edges, columns=["l", "r"]))
    g = nx.Graph()
    g.add_nodes_from(recs)
    g.add_edges_from(edges)
    expected = {r: min(comp) for comp in nx.connected_components(g) for r in comp}
    assert labels.to_dict() == expected


def test_scales_to_a_million_records_quickly() -> None:
    """One million records, clusters of 1-4: must run in a few seconds without pair lists."""
    rng = np.random.default_rng(1)
    n = 1_000_000
    ent = np.repeat(np.arange(n // 2), 2)[:n]
    pred = ent.copy()
    flip = rng.random(n) < 0.01
    pred[flip] = n + np.arange(int(flip.sum()))  # 1% split off as singletons
    ids = np.arange(n).astype(str)
    s = cluster_metrics(pd.Series(pred, index=ids), pd.Series(ent, index=ids))
    assert s.pairwise.precision == 1.0
    assert 0.97 < s.pairwise.recall < 0.99
