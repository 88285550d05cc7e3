"""Run our pipeline on a benchmark dataset through the ``cdp`` CLI and read its results back.

Each stage is its own subprocess, exactly as a scheduler would run it, so that every stage's wall
time includes what a real run pays (interpreter and JVM start, reading its input tables) and the
peak memory covers the whole process tree (driver, JVM, Python workers):

    cdp ingest            --config <conf> --set lake.root=<work>/lake --set data.root=<dataset>
    cdp standardize       --config <conf> --set ...
    cdp match --retrain   --config <conf> --set ...   (train a new model version, then score with it:
                                                        pairs, edges, clusters; one process)

Train plus score is therefore one process, like Splink's runner (bench/splink_runner.py), and is
reported two ways (``wall_s``):

``match``                     whole-process wall of ``cdp match --retrain`` (measured from outside)
``train``                     in-process training seconds (``train_seconds`` of the match run's
                              metrics in ops.runs, also in its printed summary)
``score``                     the rest of the match run: ``ended_at - started_at`` of its ops.runs
                              row minus ``train``; reading silver.records, blocking, scoring, writing
                              match.pairs/edges/clusters, deterministic edges, clustering and guard
``train_plus_score``          ``train + score`` (in-process; the FEBRL4 speed target uses this)
``train_plus_score_process``  = ``match`` (the whole-process figure shown next to it)

Results are read with ``deltalake`` (no Spark in the bench process):
``match.clusters`` (record_key, cluster_id), ``match.pairs`` (record_key_l, record_key_r,
match_probability), ``match.edges`` (record_key_l, record_key_r, edge_type) when present,
``ops.runs`` for the match run's times, and ``silver.records`` (record_key, source, source_id) to
turn record keys back into ``source:source_id``. Where silver.records cannot be read, record keys
are recomputed with ``jobs.common.keys.record_key(source, source_id)`` for every ground-truth record.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.proc import Measured, run_measured

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ingest", ("ingest",)),
    ("standardize", ("standardize",)),
    ("match", ("match", "--retrain")),
)
# Stage names of earlier versions of this module (train and score were two processes).
STAGE_ALIASES = {"train": "match", "score": "match"}
TIMING_METHOD = "cdp match --retrain: train and score in one process"


@dataclass
class OursResult:
    """Everything one run of our pipeline produced, ready for scoring."""

    wall_s: dict[str, float] = field(default_factory=dict)
    peak_rss_bytes: int = 0
    peak_rss_by_stage: dict[str, int] = field(default_factory=dict)
    clusters: pd.Series | None = None  # uid -> cluster id
    pairs: pd.DataFrame | None = None  # uid_l, uid_r, match_probability
    edges: pd.DataFrame | None = None  # uid_l, uid_r (accepted links)
    lake_root: str = ""
    config: str = ""
    logs: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def cdp_command() -> list[str]:
    """The ``cdp`` console script of this interpreter's environment, else ``python -m jobs``."""
    script = os.path.join(os.path.dirname(sys.executable), "cdp")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "jobs"]


def config_for(dataset_dir: str, conf_dir: str) -> str:
    """``<conf_dir>/<dataset>.yaml`` (febrl3, febrl4), else ``<conf_dir>/generated.yaml``."""
    name = os.path.basename(os.path.normpath(dataset_dir))
    specific = os.path.join(conf_dir, f"{name}.yaml")
    return specific if os.path.exists(specific) else os.path.join(conf_dir, "generated.yaml")


def _read_delta(path: str, columns: list[str]) -> pd.DataFrame | None:
    if not os.path.isdir(os.path.join(path, "_delta_log")):
        return None
    from deltalake import DeltaTable

    dt = DeltaTable(path)
    have = set(dt.schema().to_arrow().names)
    missing = [c for c in columns if c not in have]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; has {sorted(have)}")
    return dt.to_pandas(columns=columns)


def key_to_uid(lake_root: str, truth_uids: pd.Index) -> pd.Series:
    """record_key -> ``source:source_id``: from silver.records, completed by recomputing the hash."""
    from bench.datasets import UID_SEP

    mapping: dict[str, str] = {}
    silver = _read_delta(os.path.join(lake_root, "silver", "records"), ["record_key", "source", "source_id"])
    if silver is not None:
        uid = silver["source"].astype(str) + UID_SEP + silver["source_id"].astype(str).str.strip()
        mapping.update(zip(silver["record_key"], uid))
    try:
        from jobs.common.keys import record_key

        for u in truth_uids:
            source, _, source_id = str(u).partition(UID_SEP)
            mapping.setdefault(record_key(source, source_id), u)
    except ImportError:
        pass
    return pd.Series(mapping, name="uid")


def read_results(
    lake_root: str, truth_uids: pd.Index, with_pairs: bool = True
) -> tuple[pd.Series | None, pd.DataFrame | None, pd.DataFrame | None]:
    """match.clusters, match.pairs and match.edges with record keys replaced by uids (pairs None
    without ``with_pairs``: at 1,000,000 persons they are 25 million rows)."""
    keys = key_to_uid(lake_root, truth_uids)

    def to_uid(s: pd.Series) -> pd.Series:
        return s.map(keys).fillna("key:" + s.astype(str))

    clusters = _read_delta(os.path.join(lake_root, "match", "clusters"), ["record_key", "cluster_id"])
    cl = None
    if clusters is not None:
        cl = pd.Series(clusters["cluster_id"].to_numpy(), index=to_uid(clusters["record_key"]).to_numpy(), name="cluster_id")
    pairs = (
        _read_delta(os.path.join(lake_root, "match", "pairs"), ["record_key_l", "record_key_r", "match_probability"])
        if with_pairs else None
    )
    pr = None
    if pairs is not None:
        pr = pd.DataFrame(
            {
                "uid_l": to_uid(pairs["record_key_l"]),
                "uid_r": to_uid(pairs["record_key_r"]),
                "match_probability": pairs["match_probability"].astype(float),
            }
        )
    edges = _read_delta(os.path.join(lake_root, "match", "edges"), ["record_key_l", "record_key_r"])
    ed = None
    if edges is not None:
        ed = pd.DataFrame({"uid_l": to_uid(edges["record_key_l"]), "uid_r": to_uid(edges["record_key_r"])})
    return cl, pr, ed


def read_runs(lake_root: str) -> pd.DataFrame | None:
    """ops.runs (run_id, job, parent_run_id, started_at, ended_at, status, rows_*, metrics) or None."""
    cols = ["run_id", "job", "parent_run_id", "started_at", "ended_at", "status", "rows_in", "rows_out",
            "rows_quarantined", "metrics"]
    runs = _read_delta(os.path.join(lake_root, "ops", "runs"), cols)
    if runs is None:
        return None
    runs["metrics"] = runs["metrics"].map(lambda m: dict(m) if m is not None else {})
    return runs.sort_values(["started_at", "run_id"]).reset_index(drop=True)


def run_seconds(row: Any) -> float | None:
    """``ended_at - started_at`` of one ops.runs row, in seconds."""
    if row is None or pd.isna(row["started_at"]) or pd.isna(row["ended_at"]):
        return None
    return float((pd.Timestamp(row["ended_at"]) - pd.Timestamp(row["started_at"])).total_seconds())


def printed_summary(log_path: str, stage: str) -> dict[str, Any] | None:
    """The JSON a ``cdp`` verb prints as its last ``<stage>: {...}`` line, or None."""
    found = None
    try:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(f"{stage}: {{"):
                    try:
                        found = json.loads(line[len(stage) + 2:])
                    except ValueError:
                        continue
    except OSError:
        return None
    return found


def match_phases(lake_root: str, log_path: str) -> dict[str, float]:
    """In-process phases of the last succeeded ``match`` run: train, score, train_plus_score.

    ``train_seconds`` comes from the run's ops.runs metrics (or, failing that, the printed summary);
    the run's duration from its ops.runs row. Missing figures are left out, never guessed.
    """
    out: dict[str, float] = {}
    runs = read_runs(lake_root)
    row = None
    if runs is not None:
        done = runs[(runs["job"] == "match") & (runs["status"] == "succeeded")]
        row = done.iloc[-1] if len(done) else None
    summary = printed_summary(log_path, "match") or {}
    train = None
    if row is not None and row["metrics"].get("train_seconds") not in (None, "None"):
        train = float(row["metrics"]["train_seconds"])
    elif summary.get("train_seconds") is not None:
        train = float(summary["train_seconds"])
    total = run_seconds(row)
    if train is not None:
        out["train"] = train
    if total is not None and train is not None:
        out["score"] = max(total - train, 0.0)
        out["train_plus_score"] = total
    return out


def run_ours(
    dataset_dir: str,
    conf_dir: str,
    work_dir: str,
    *,
    truth_uids: pd.Index | None = None,
    timeout_s: float | None = 3 * 3600,
    extra_sets: tuple[str, ...] = (),
    stages: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Run ingest, standardize and ``match --retrain`` on one dataset; never raises.

    ``stages`` (default: all) runs only those stages (``train`` and ``score`` mean ``match``);
    without ``ingest`` the lake of the previous run in ``work_dir`` is kept, so a repeat can time
    train+score again on the same silver.records without paying ingest and standardize once more
    (each repeat registers a new model version).

    Returns a dict with ``wall_s`` (process wall per stage; in-process ``train``, ``score``,
    ``train_plus_score``; ``train_plus_score_process`` and ``total``), ``timing``,
    ``peak_rss_bytes`` (max over stages), ``peak_rss_by_stage``, ``lake_root``, ``config``,
    ``logs`` (stage -> log file), ``error`` (None or the failing stage and its last log lines), and
    ``result`` (an :class:`OursResult` with clusters/pairs/edges keyed by ``source:source_id``).
    """
    out = OursResult()
    work_dir = os.path.abspath(work_dir)
    lake_root = os.path.join(work_dir, "lake")
    asked = None if stages is None else {STAGE_ALIASES.get(s, s) for s in stages}
    wanted = tuple(s for s, _ in STAGES if asked is None or s in asked)
    if "ingest" in wanted and os.path.exists(lake_root):
        shutil.rmtree(lake_root)  # a fresh lake per run: ingest is idempotent and would skip landed files
    os.makedirs(work_dir, exist_ok=True)
    out.lake_root = lake_root
    out.config = os.path.abspath(config_for(dataset_dir, conf_dir))
    sets = [f"lake.root={lake_root}", f"data.root={os.path.abspath(dataset_dir)}", *extra_sets]
    base = [*cdp_command()]
    env = dict(os.environ)
    env.setdefault("CDP_PRIVACY_SALT", "bench-salt-not-secret")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    for stage, verb in STAGES:
        if stage not in wanted:
            continue
        cmd = [*base, *verb, "--config", out.config]
        for s in sets:
            cmd += ["--set", s]
        log = os.path.join(work_dir, f"{stage}.log")
        out.logs[stage] = log
        m: Measured = run_measured(cmd, log, cwd=REPO, env=env, timeout_s=timeout_s)
        out.wall_s[stage] = m.wall_s
        out.peak_rss_by_stage[stage] = m.peak_rss_bytes
        out.peak_rss_bytes = max(out.peak_rss_bytes, m.peak_rss_bytes)
        print(f"[ours] {stage}: rc={m.returncode} {m.wall_s:.1f}s peak {m.peak_rss_bytes / 2**30:.2f} GiB", flush=True)
        if not m.ok:
            reason = "timed out" if m.timed_out else f"exit code {m.returncode}"
            out.error = f"stage {stage} failed ({reason}): {m.log_tail(15).strip()}"
            break
    if out.error is None:
        if "match" in out.wall_s:
            try:
                phases = match_phases(lake_root, out.logs["match"])
            except Exception as exc:  # noqa: BLE001 - a bench run records the failure and goes on
                phases = {}
                print(f"[ours] reading the match run's phases failed: {type(exc).__name__}: {exc}", flush=True)
            out.wall_s.update(phases)
            out.wall_s["train_plus_score_process"] = out.wall_s["match"]
            if "train_plus_score" not in phases:
                out.error = "the match run recorded no train_seconds / start and end in ops.runs"
        if out.error is None:
            try:
                uids = truth_uids if truth_uids is not None else pd.Index([])
                out.clusters, out.pairs, out.edges = read_results(lake_root, uids)
                if out.clusters is None:
                    out.error = "match.clusters was not written"
            except Exception as exc:  # noqa: BLE001 - a bench run records the failure and goes on
                out.error = f"reading results failed: {type(exc).__name__}: {exc}"
    if all(s in out.wall_s for s, _ in STAGES):
        out.wall_s["total"] = sum(out.wall_s[s] for s, _ in STAGES)
    return {
        "wall_s": out.wall_s,
        "peak_rss_bytes": out.peak_rss_bytes,
        "peak_rss_by_stage": out.peak_rss_by_stage,
        "lake_root": lake_root,
        "config": out.config,
        "logs": out.logs,
        "error": out.error,
        "timing": TIMING_METHOD,
        "result": out,
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="run our pipeline on one prepared benchmark dataset")
    parser.add_argument("dataset_dir")
    parser.add_argument("--conf-dir", default=os.path.join(REPO, "bench", "conf"))
    parser.add_argument("--work-dir", required=True)
    args = parser.parse_args()
    res = run_ours(args.dataset_dir, args.conf_dir, args.work_dir)
    print(json.dumps({k: v for k, v in res.items() if k != "result"}, indent=2, default=str))
