"""Tests for the harness: medians over repeats, target checks, the report, FEBRL entity ids.

Run explicitly: ``pytest bench/test_run_all.py`` (the main suite only collects tests/).
"""

from __future__ import annotations

import pandas as pd
import pytest

from bench.datasets import febrl_entity, record_uid
from bench.report import render
from bench.ours import TIMING_METHOD
from bench.run_all import OLD_TIMING, aggregate, check_targets, missed_pairs, score


def _run(f1: float, wall: float, rss: int, error: str | None = None) -> dict:
    """One repeat of ours as run_ours_once records it (match --retrain, one process)."""
    block = {"precision": f1, "recall": f1, "f1": f1, "true_positives": 1, "predicted_pairs": 1, "true_pairs": 1}
    return {
        "pairwise": dict(block),
        "cluster": {**block, "bcubed": {"precision": 1.0, "recall": 1.0, "f1": 1.0}},
        "wall_s": {
            "ingest": 1.0, "standardize": 1.0, "match": 4 * wall, "train": wall, "score": 2 * wall,
            "train_plus_score": 3 * wall, "train_plus_score_process": 4 * wall,
        },
        "peak_rss_bytes": rss,
        "error": error,
        "timing": TIMING_METHOD,
    }


def _splink(process: float, train: float, predict: float, cluster: float) -> dict:
    return {
        "wall_s": {"process": process, "session": 1.0, "load": 1.0, "train": train, "predict": predict, "cluster": cluster},
        "peak_rss_bytes": 1, "error": None,
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
    assert {k: a["wall_s"][k] for k in ("train", "score", "train_plus_score", "match")} == {
        "train": 20.0, "score": 40.0, "train_plus_score": 60.0, "match": 80.0,
    }
    assert a["wall_s_all"]["train"] == [10.0, 30.0, 20.0]
    assert a["peak_rss_bytes"] == 200
    assert a["timing"] == TIMING_METHOD


def test_aggregate_derives_splink_train_predict_cluster_and_flags_old_ours_records() -> None:
    a = aggregate([_splink(50.0, 10.0, 2.0, 1.0), _splink(70.0, 20.0, 4.0, 2.0)])
    assert a["wall_s"]["train_predict_cluster"] == pytest.approx(19.5)
    assert a["wall_s_all"]["train_predict_cluster"] == [13.0, 26.0]
    old = _run(0.99, 10.0, 1)
    old.pop("timing")
    old["wall_s"] = {"ingest": 1.0, "standardize": 1.0, "train": 5.0, "score": 5.0, "train_plus_score": 10.0}
    assert aggregate([old])["timing"] == OLD_TIMING


def test_aggregate_all_failed_reports_the_error() -> None:
    a = aggregate([_run(0.0, 1.0, 1, error="stage score failed")])
    assert a["repeats"] == 0 and a["error"] == "stage score failed"


IN_PROCESS = "FEBRL4 train+score vs Splink Spark train+predict+cluster (in-process phases)"
WHOLE = "FEBRL4 train+score whole process vs Splink Spark whole process (shown, not the target)"


def test_check_targets_uses_in_process_phases() -> None:
    ours4 = aggregate([_run(0.9995, 10.0, 1)])  # in-process 30 s, process 40 s
    spark4 = aggregate([_splink(200.0, 80.0, 15.0, 5.0)])  # train+predict+cluster 100 s
    ours3 = aggregate([_run(0.99, 10.0, 1)])
    summary = {"datasets": {"febrl4": {"ours": ours4, "splink_spark": spark4}, "febrl3": {"ours": ours3}}}
    checks = {c["target"]: c for c in check_targets(summary)}
    assert checks["FEBRL4 pairwise F1"]["met"] is True
    assert checks["FEBRL3 cluster F1"]["met"] is False
    t = checks[IN_PROCESS]
    assert t["measured"] == pytest.approx(0.3) and t["met"] is True
    w = checks[WHOLE]
    assert w["measured"] == pytest.approx(0.2) and w["met"] is None
    assert "gen100k pairwise F1 not below Splink's" not in checks


def test_check_targets_refuses_old_two_process_timing() -> None:
    old = _run(0.9995, 10.0, 1)
    old.pop("timing")
    old["wall_s"] = {"ingest": 1.0, "standardize": 1.0, "train": 5.0, "score": 5.0, "train_plus_score": 10.0}
    summary = {"datasets": {"febrl4": {"ours": aggregate([old]), "splink_spark": aggregate([_splink(200.0, 80.0, 15.0, 5.0)])}}}
    t = {c["target"]: c for c in check_targets(summary)}[IN_PROCESS]
    assert t["met"] is None and "rerun" in t["note"]


def test_check_targets_gen1m_match_stage() -> None:
    ours = aggregate([{**_run(0.9, 10.0, 5), "peak_rss_by_stage": {"ingest": 1, "standardize": 2, "match": 5}}])
    block = {"precision": 0.8, "recall": 0.8, "f1": 0.8}
    duck = aggregate([{**_splink(90.0, 50.0, 20.0, 5.0), "pairwise": block, "cluster": {**block, "bcubed": block}}])
    checks = {c["target"]: c for c in check_targets({"datasets": {"gen1m": {"ours": ours, "splink_duckdb": duck}}})}
    assert checks["gen1m match stage end to end (`cdp match --retrain` process) vs Splink DuckDB process"]["measured"] == 40.0
    assert checks["gen1m match stage peak RSS vs Splink DuckDB"]["measured"] == 5
    assert checks["gen1m pairwise F1 not below Splink's"]["met"] is True


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
    assert "| ours (cdp) | ingest 1.0, standardize 1.0, match 40.0 | 30.0 (train 10.0 + score 20.0) | 40.0 |" in text


def test_render_ratios_and_skipped_tools() -> None:
    summary = {
        "environment": {},
        "datasets": {"gen1m": {"ours": aggregate([_run(0.9, 10.0, 2**30)]), "splink_duckdb": aggregate([_splink(60.0, 10.0, 4.0, 1.0)])}},
        "inputs": {"gen1m": {"records": 10, "skipped_tools": {"splink_spark": "not run: too slow"}}},
    }
    summary["targets"] = check_targets(summary)
    text = render(summary)
    assert "* Splink 5 Spark: not run: too slow" in text
    assert "* in-process: ours train+score / Splink 5 DuckDB train+predict+cluster: 2.00 (30.0 s vs 15.0 s" in text
    assert "* whole process: ours `cdp match --retrain` / Splink 5 DuckDB runner: 0.67 (40.0 s vs 60.0 s" in text
