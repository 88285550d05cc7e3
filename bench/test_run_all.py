"""Tests for the harness: medians over repeats, target checks, the report, FEBRL entity ids.

Run explicitly: ``pytest bench/test_run_all.py`` (the main suite only collects tests/).
"""

from __future__ import annotations

import pandas as pd
import pytest

from bench.datasets import febrl_entity, record_uid
from bench.report import render
from bench.run_all import aggregate, check_targets, missed_pairs, score


def _run(f1: float, wall: float, rss: int, error: str | None = None) -> dict:
    block = {"precision": f1, "recall": f1, "f1": f1, "true_positives": 1, "predicted_pairs": 1, "true_pairs": 1}
    return {
        "pairwise": dict(block),
        "cluster": {**block, "bcubed": {"precision": 1.0, "recall": 1.0, "f1": 1.0}},
        "wall_s": {"train": wall, "score": 2 * wall, "train_plus_score": 3 * wall},
        "peak_rss_bytes": rss,
        "error": error,
    }


def test_febrl_entity_and_uid() -> None:
    assert febrl_entity("rec-12-dup-3") == "rec-12"
    assert febrl_entity(" rec-12-org ") == "rec-12"
    with pytest.raises(ValueError, match="rec-x"):
        febrl_entity("rec-x")
    assert record_uid("crm", " 17 ") == "crm:17"


def test_aggregate_takes_medians_and_skips_failed_repeats() -> None:
    runs = [_run(0.9, 10.0, 100), _run(0.5, 30.0, 300), _run(0.7, 20.0, 200), _run(0.0, 1.0, 1, error="boom")]
    a = aggregate(runs)
    assert (a["repeats"], a["failed_repeats"]) == (3, 1)
    assert a["pairwise"]["f1"] == pytest.approx(0.7)
    assert a["cluster"]["bcubed_f1"] == 1.0
    assert a["wall_s"] == {"train": 20.0, "score": 40.0, "train_plus_score": 60.0}
    assert a["wall_s_all"]["train"] == [10.0, 30.0, 20.0]
    assert a["peak_rss_bytes"] == 200


def test_aggregate_all_failed_reports_the_error() -> None:
    a = aggregate([_run(0.0, 1.0, 1, error="stage score failed")])
    assert a["repeats"] == 0 and a["error"] == "stage score failed"


def test_check_targets() -> None:
    ours4 = aggregate([_run(0.9995, 10.0, 1)])
    spark4 = {"wall_s": {"process": 100.0}}
    ours3 = aggregate([_run(0.99, 10.0, 1)])
    summary = {"datasets": {"febrl4": {"ours": ours4, "splink_spark": spark4}, "febrl3": {"ours": ours3}}}
    checks = {c["target"]: c for c in check_targets(summary)}
    assert checks["FEBRL4 pairwise F1"]["met"] is True
    assert checks["FEBRL3 cluster F1"]["met"] is False
    t = checks["FEBRL4 train+score wall time vs Splink Spark (whole process)"]
    assert t["measured"] == pytest.approx(0.3) and t["met"] is True
    assert "gen100k pairwise F1 not below Splink's" not in checks


def test_score_and_missed_pairs() -> None:
    truth = pd.Series({"a": "1", "b": "1", "c": "2", "d": "2"})
    links = pd.DataFrame({"l": ["a", "b"], "r": ["b", "c"]})
    s = score(links, pd.Series({"a": 0, "b": 0, "c": 0, "d": 1}), truth)
    assert (s["pairwise"]["true_positives"], s["pairwise"]["predicted_pairs"]) == (1, 2)
    assert (s["cluster"]["true_positives"], s["cluster"]["predicted_pairs"]) == (1, 3)
    m = missed_pairs(links, truth)
    assert m["fn_examples"] == [("c", "d")] and m["fp_examples"] == [("b", "c")]


def test_render_lists_targets_and_tools() -> None:
    summary = {
        "environment": {"cpus": 2, "memory_bytes": 2**34},
        "datasets": {"febrl4": {"ours": aggregate([_run(0.9995, 10.0, 2**30)])}},
        "inputs": {"febrl4": {"records": 10000}},
    }
    summary["targets"] = check_targets(summary)
    text = render(summary)
    assert "| FEBRL4 pairwise F1 | >= 0.999 (Splink 0.9992 at p 0.5) | 0.9995 | yes |" in text
    assert "| ours (cdp) | 1 | - | 0.9995 |" in text
