"""Tests for bench/scale.py and the phase reading of bench/ours.py (no Spark, no cdp processes).

Run explicitly: ``pytest bench/test_scale.py`` (the main suite only collects tests/).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest

from bench.ours import match_phases, printed_summary
from bench.report import render_scale
from bench.proc import Measured
from bench.scale import batch_shares, compare_runs, land, landed_batches, main, median_tree, parse_parts, resume_base, split_for_share


def _count_lines(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> str:
    from jobs.ingest.generate import generate_sample_data

    out = str(tmp_path_factory.mktemp("gen"))
    generate_sample_data(300, 5, out, batches=4)
    return out


def test_land_merges_parts_into_one_file_per_delivery(generated: str, tmp_path) -> None:  # noqa: ANN001
    merged, parts = str(tmp_path / "merged"), str(tmp_path / "parts")
    n_merged = land(generated, merged, [1, 2, 3], merge=True)
    n_parts = land(generated, parts, [1, 2, 3], merge=False)
    assert n_merged < n_parts
    assert sorted(os.listdir(merged)) == ["crm", "email", "pos", "web", "webshop"]  # no ground truth, no manifest
    crm = sorted(os.listdir(os.path.join(merged, "crm")))
    assert crm == ["crm_export_latin1_part1-3of4.csv", "crm_export_utf8_part1-3of4.csv"]
    for name in crm:
        stem = name.split("_part")[0]
        originals = [os.path.join(generated, f"batch_{b}", "crm", f"{stem}_part{b}of4.csv") for b in (1, 2, 3)]
        # one header, every data line of every part
        assert _count_lines(os.path.join(merged, "crm", name)) == 1 + sum(_count_lines(p) - 1 for p in originals)
    import pyarrow.parquet as pq

    members = pq.read_table(os.path.join(merged, "pos", "members_part1-3of4.parquet")).num_rows
    assert members == sum(pq.read_table(os.path.join(generated, f"batch_{b}", "pos", f"members_part{b}of4.parquet")).num_rows for b in (1, 2, 3))
    assert "events_broken.ndjson" in os.listdir(os.path.join(merged, "web"))  # not a part file: copied as is
    land(generated, merged, [4], merge=True)
    assert "crm_export_utf8_part4of4.csv" in os.listdir(os.path.join(merged, "crm"))


def test_batch_shares_and_split(generated: str) -> None:
    shares = batch_shares(generated)
    assert len(shares) == 4 and sum(shares) == pytest.approx(1.0)
    assert split_for_share([0.5, 0.3, 0.15, 0.05], 0.01) == 1
    assert split_for_share([0.5, 0.3, 0.15, 0.05], 0.2) == 2
    assert split_for_share([0.97, 0.005, 0.004, 0.003, 0.002], 0.01) == 3  # 0.009 is closest


def test_compare_runs() -> None:
    map1 = pd.Series({"a": "P1", "b": "P1", "c": "P2", "d": "P3"})
    map2 = pd.Series({"a": "P1", "b": "P1", "c": "P1", "d": "P3", "e": "P4", "f": "P3"})  # P2 merged into P1
    r = compare_runs(map1, map2)
    assert (r["new_records"], r["persons_run1"], r["persons_run2"]) == (2, 3, 3)
    assert r["person_ids_kept_share"] == pytest.approx(2 / 3, abs=1e-5)
    assert r["records_same_person_id_share"] == pytest.approx(0.75)
    assert r["new_share_of_run2"] == pytest.approx(2 / 6, abs=1e-5) and r["new_share_of_run1"] == 0.5


def test_median_tree_skips_failed_repeats() -> None:
    runs = [
        {"wall_s": 10.0, "n": 3, "ok": True, "sub": {"x": 1.0}, "name": "a", "error": None},
        {"wall_s": 30.0, "n": 5, "ok": False, "sub": {"x": 3.0}, "name": "b", "error": None},
        {"wall_s": 20.0, "n": 4, "ok": True, "sub": {"x": 2.0}, "name": "c", "error": None},
        {"wall_s": 1.0, "error": "boom"},
    ]
    m = median_tree(runs)
    assert (m["wall_s"], m["n"], m["sub"]["x"], m["ok"], m["name"]) == (20.0, 4, 2.0, True, "c")


def test_parse_parts() -> None:
    assert parse_parts("a,b") == ["generate", "ingest", "standardize"]
    assert parse_parts("erase,c") == ["erase", "stability"]
    with pytest.raises(SystemExit, match="unknown 'z'"):
        parse_parts("z")


def test_match_phases_from_ops_runs_and_log(tmp_path) -> None:  # noqa: ANN001
    from deltalake import write_deltalake

    lake = str(tmp_path / "lake")
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = pa.table(
        {
            "run_id": ["m1", "m2"], "job": ["match", "match"], "parent_run_id": [None, None],
            "config_hash": ["h", "h"], "started_at": [t0, t0 + timedelta(seconds=100)],
            "ended_at": [t0 + timedelta(seconds=50), t0 + timedelta(seconds=130)],
            "status": ["succeeded", "succeeded"], "rows_in": [1, 1], "rows_out": [1, 1], "rows_quarantined": [0, 0],
            "metrics": pa.array([[("train_seconds", "20.0")], [("train_seconds", "12.5")]], pa.map_(pa.string(), pa.string())),
            "error": [None, None],
        }
    )
    write_deltalake(os.path.join(lake, "ops", "runs"), rows)
    log = tmp_path / "match.log"
    log.write_text("noise\nmatch: " + json.dumps({"train_seconds": 99.0}) + "\n", encoding="utf-8")
    assert printed_summary(str(log), "match") == {"train_seconds": 99.0}
    p = match_phases(lake, str(log))  # the last match run wins; ops.runs before the printed summary
    assert p == {"train": 12.5, "score": 17.5, "train_plus_score": 30.0}


def test_render_scale_lists_every_part() -> None:
    ok = {"wall_s": 10.0, "peak_rss_bytes": 2**30, "load_average": [1.0, 2.0, 3.0], "error": None}
    scale = {
        "parts": {
            "generate": {"persons": 1000, "repeats": 1, "runs": [{**ok, "generator_s": 2.0}], "median": {**ok, "generator_s": 2.0, "records": 2300}},
            "ingest": {"persons": 1000, "repeats": 1, "runs": [ok], "median": {**ok, "rows_in": 5000, "rows_per_s": 500.0}},
            "standardize": {"persons": 1000, "repeats": 1, "runs": [ok], "median": {**ok, "records": 3000, "records_per_s": 300.0}},
            "stability": {
                "persons": 1000, "repeats": 1, "runs": [{"incremental": ok, "full": ok}],
                "median": {
                    "run1": {**ok, "records_run1": 2000},
                    "incremental": {**ok, "new_records": 300, "new_share_of_run2": 0.13, "person_ids_kept_share": 0.99,
                                    "id_changes": {"new": 80, "merged": 2}},
                    "full": {**ok, "new_records": 300},
                    "incremental_vs_full_same_person_id_share": 1.0,
                },
            },
            "erase": {
                "persons": 1000, "repeats": 1, "base": "x",
                "runs": [{"single": {**ok, "verified": True}, "batch": {**ok, "verified": False}}],
                "median": {"single": {**ok, "subjects": 1, "stages_s": {"match": 30.0, "golden": 40.5}}, "batch": {**ok, "subjects": 100}},
            },
            "incremental": {
                "persons": 1000, "repeats": 1, "batches": 100, "runs": [{"base": ok, "incremental": ok, "full": ok}],
                "median": {"new_batches": 2, "base": ok, "incremental": {**ok, "stages_s": {"ingest": 1.0}}, "full": ok,
                           "incremental_over_full": 0.5},
            },
        }
    }
    text = "\n".join(render_scale(scale))
    for heading in ("Generator and ingest", "Standardize", "Person-id stability", "Erasure", "Incremental run"):
        assert f"### {heading}" in text
    assert "| `cdp run --incremental` | 300: 13.00%" in text
    assert "new 80, merged 2" in text
    assert "| `--file` (batch) | 100 |" in text and "**failed**" in text
    assert "| match 30.0, golden 40.5 |" in text  # the re-resolving runs of the single request
    assert "ingest 1.0" in text


def test_full_only_refuses_without_an_incremental_run_and_its_lake(tmp_path) -> None:  # noqa: ANN001
    results, work = tmp_path / "results", tmp_path / "work"
    results.mkdir()
    args = ["--parts", "e", "--full-only", "--incremental-persons", "1000", "--work", str(work),
            "--results", str(results), "--docs", str(tmp_path / "b.md")]
    with pytest.raises(SystemExit, match="no incremental run at 1,000 persons"):
        main(args)
    ok = {"wall_s": 10.0, "error": None}
    part = {"persons": 1000, "seed": 42, "batches": 100, "runs": [{"base": ok, "incremental": ok}]}
    (results / "scale.json").write_text(json.dumps({"parts": {"incremental": part}}), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"incremental-p1000/inc/lake \(golden.identity_map\) .* is missing"):
        main(args)
    part["runs"][0]["incremental"] = {**ok, "error": "exit code 1: boom"}
    (results / "scale.json").write_text(json.dumps({"parts": {"incremental": part}}), encoding="utf-8")
    with pytest.raises(SystemExit, match="incremental run at 1,000 persons failed: exit code 1: boom"):
        main(args)


def test_render_scale_says_when_the_full_run_was_measured_separately() -> None:
    ok = {"wall_s": 10.0, "peak_rss_bytes": 2**30, "load_average": [1.0, 2.0, 3.0], "error": None}
    median = {"new_batches": 1, "base": ok, "incremental": ok, "full": ok, "incremental_over_full": 0.25,
              "full_measured_separately": "2026-12-08T09:00:00+00:00"}
    inc = {"persons": 1000, "repeats": 1, "batches": 150, "runs": [dict(median)], "median": median}
    text = "\n".join(render_scale({"parts": {"incremental": inc}}))
    assert "measured separately (`--full-only`, started 2026-12-08T09:00:00+00:00)" in text
    assert "incremental / full wall: 0.250" in text
    del median["full_measured_separately"]
    assert "measured separately" not in "\n".join(render_scale({"parts": {"incremental": inc}}))
    assert "--resume-base" not in text
    median["base"] = {**ok, "resumed": {"after": "match", "stages_wall_s": {"golden": 4.0}}}
    assert "The base run was cut off after match and finished with `--resume-base`" in "\n".join(render_scale({"parts": {"incremental": inc}}))


def _runs_table(rows: list[tuple[str, str, float, float | None]]) -> pa.Table:
    """ops.runs rows (job, status, start second, end second or None) from 2026-01-01."""
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    n = len(rows)
    return pa.table(
        {
            "run_id": [f"r{i}-{job}" for i, (job, *_rest) in enumerate(rows)], "job": [r[0] for r in rows],
            "parent_run_id": [None] * n, "config_hash": ["h"] * n,
            "started_at": [t0 + timedelta(seconds=r[2]) for r in rows],
            "ended_at": pa.array([None if r[3] is None else t0 + timedelta(seconds=r[3]) for r in rows], pa.timestamp("us", tz="UTC")),
            "status": [r[1] for r in rows], "rows_in": [7] * n, "rows_out": [7] * n, "rows_quarantined": [0] * n,
            "metrics": pa.array([[("persons_rebuilt", "5")] if r[0] == "golden" else [] for r in rows], pa.map_(pa.string(), pa.string())),
            "error": [None] * n,
        }
    )


def test_landed_batches_reads_the_merged_file_names(generated: str, tmp_path) -> None:  # noqa: ANN001
    data = str(tmp_path / "data")
    land(generated, data, [1, 2, 3], merge=True)
    assert landed_batches(data) == {1, 2, 3}
    land(generated, data, [4], merge=True)
    assert landed_batches(data) == {1, 2, 3, 4}


def test_resume_base_composes_the_cut_off_run_and_refuses_when_nothing_is_left(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from deltalake import write_deltalake

    import bench.scale as scale

    lake = str(tmp_path / "lake")
    runs = os.path.join(lake, "ops", "runs")
    # ingest 10 s, standardize 20 s, match 30 s succeeded; golden cut off (started, never ended)
    write_deltalake(runs, _runs_table([("ingest", "succeeded", 0, 10), ("standardize", "succeeded", 10, 30),
                                       ("match", "succeeded", 30, 60), ("golden", "started", 60, None)]))
    called: list[str] = []

    def fake_cdp(args, lake_, data, log, timeout_s):  # noqa: ANN001, ANN202
        job = args[0]
        called.append(job)
        start = 100 + 10 * len(called)
        write_deltalake(runs, _runs_table([(job, "succeeded", start, start + 4)]), mode="append")
        return Measured([job], 0, 5.5, 2**30 * len(called), log)

    monkeypatch.setattr(scale, "cdp", fake_cdp)
    out = resume_base(lake, str(tmp_path / "data"), str(tmp_path), 60)
    assert called == ["golden", "segments"]
    assert out["wall_s"] == 10 + 20 + 30 + 5.5 + 5.5  # the stages that had succeeded, then the resumed processes
    assert out["stages_s"] == {"ingest": 10.0, "standardize": 20.0, "match": 30.0, "golden": 4.0, "segments": 4.0}
    assert out["peak_rss_bytes"] == 2 * 2**30 and out["error"] is None
    assert out["resumed"]["after"] == "match" and out["resumed"]["stages_wall_s"] == {"golden": 5.5, "segments": 5.5}
    assert out["golden_metrics"] == {"persons_rebuilt": 5} and out["ingest_rows"] == 7
    with pytest.raises(SystemExit, match="nothing to resume"):  # every stage has succeeded now
        resume_base(lake, str(tmp_path / "data"), str(tmp_path), 60)
    other = str(tmp_path / "other")
    write_deltalake(os.path.join(other, "ops", "runs"), _runs_table([("ingest", "succeeded", 0, 1), ("match", "succeeded", 1, 2)]))
    with pytest.raises(SystemExit, match=r"succeeded stages \['ingest', 'match'\]"):  # standardize missing between them
        resume_base(other, str(tmp_path / "data"), str(tmp_path), 60)


def test_resume_base_refuses_when_the_landing_folders_hold_other_batches(generated: str, tmp_path) -> None:  # noqa: ANN001
    work = tmp_path / "work"
    base = work / "incremental-p300"
    args = ["--parts", "e", "--resume-base", "--incremental-persons", "300", "--incremental-batches", "4", "--seed", "5",
            "--work", str(work), "--results", str(tmp_path / "results"), "--docs", str(tmp_path / "b.md")]
    with pytest.raises(SystemExit, match="has no inc/lake, inc/data and gen"):
        main(args)
    import shutil

    shutil.copytree(generated, base / "gen")
    (base / "inc" / "lake").mkdir(parents=True)
    land(generated, str(base / "inc" / "data"), [1, 2], merge=True)  # the split lands 1-3 before the last batch
    with pytest.raises(SystemExit, match=r"holds batches .* \(2\), not the first 3 of 4"):
        main(args)
