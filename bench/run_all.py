"""Run every benchmark, score it, and write bench/results/*.json plus docs/benchmarks.md.

    python -m bench.run_all                                  # FEBRL4, FEBRL3, gen100k; 3 repeats
    python -m bench.run_all --datasets febrl4 --repeats 1    # one dataset, once
    python -m bench.run_all --datasets gen1m --repeats 1 --tools ours,splink_duckdb
    python -m bench.run_all --report-only                    # rebuild the docs from the JSON

For each dataset (prepared once as a source folder with ground truth, bench/datasets.py) and each
repeat, the tools run one after another, each in child processes measured from outside
(bench/proc.py: wall time, peak RSS of the whole process tree):

``ours``           cdp ingest, standardize, match --retrain (bench/ours.py; train and score in one
                   process), with the bench config (bench/conf/<dataset>.yaml or generated.yaml)
``splink_spark``   Splink 5 on its Spark backend, the same local[2] settings as our jobs (not on
                   gen1m: at a million records it takes too long on 2 cores; --splink-spark-1m forces it)
``splink_duckdb``  Splink 5 on DuckDB

Train plus score is reported for both tools in two ways: the whole-process wall of the step
(ours: the ``cdp match --retrain`` process; Splink: its runner process, which also starts the
session and loads the input), and the in-process phases (ours: ``train_seconds`` plus the rest of
the match run, from ops.runs; Splink: train + predict + cluster as its runner times them). The
FEBRL4 speed target is checked on the in-process phases; the whole-process ratio is shown beside it.

Splink gets the same records (bench/inputs.py): the FEBRL CSVs, or our silver.records for
generated data. Every repeat's figures go to ``bench/results/runs/<dataset>.json`` (merged with
earlier runs of other tools, so one tool can be re-run alone); ``bench/results/summary.json``
holds medians per dataset and tool, and the targets are checked against them.

Metrics (bench/metrics.py): ``pairwise`` from the accepted links as the tool emits them (ours:
match.edges, probabilistic at the configured threshold plus deterministic identifier links;
Splink: predictions at its threshold, 0.5); ``cluster`` from the pairs implied by the clusters
(ours: match.clusters after the over-merge guard; Splink: connected components at 0.5).

Scale figures (ingest, standardize, person-id stability, erasure, incremental runs on generated
data) come from bench/scale.py (bench/results/scale.json) and are rendered into the same page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import time
from typing import Any

import pandas as pd

from bench import datasets
from bench.metrics import cluster_metrics, pairwise_from_links
from bench.ours import TIMING_METHOD
from bench.proc import run_measured

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")
TOOLS = ("ours", "splink_spark", "splink_duckdb")
SPLINK_THRESHOLD = 0.5
DEFAULT_DATASETS = ("febrl4", "febrl3", "gen100k")
SPLINK_SPARK_MAX_RECORDS = 1_000_000  # ground-truth records; above this Splink's Spark backend is skipped unless forced
SPLINK_PHASES = ("train", "predict", "cluster")
# ours records without a "timing" field: train and score were two processes (before match --retrain)
OLD_TIMING = "cdp match train + cdp match: two processes"


# --- scoring ----------------------------------------------------------------------------------


def _metric_block(scores: Any) -> dict[str, Any]:
    return scores.to_dict()


def score(links: pd.DataFrame | None, clusters: pd.Series | None, truth: pd.Series) -> dict[str, Any]:
    """``pairwise`` (from links) and ``cluster`` (from clusters) against the ground truth."""
    out: dict[str, Any] = {}
    if links is not None:
        out["pairwise"] = _metric_block(pairwise_from_links(links, truth))
    if clusters is not None:
        out["cluster"] = _metric_block(cluster_metrics(clusters, truth))
    return out


def missed_pairs(links: pd.DataFrame | None, truth: pd.Series, limit: int = 20) -> dict[str, Any]:
    """False negatives and false positives of the links, by record id (ids only, no values)."""
    if links is None:
        return {}
    ids = truth.index
    ent = pd.Series(truth.to_numpy(), index=ids)
    lk = links.iloc[:, :2].copy()
    lk.columns = ["l", "r"]
    lk = lk[lk["l"].isin(ids) & lk["r"].isin(ids)]
    pred = {frozenset((a, b)) for a, b in zip(lk["l"], lk["r"]) if a != b}
    groups = truth.groupby(truth).groups
    true_pairs = set()
    for members in groups.values():
        m = sorted(members)
        if len(m) > 50:
            continue
        true_pairs.update(frozenset((m[i], m[j])) for i in range(len(m)) for j in range(i + 1, len(m)))
    fn = sorted(tuple(sorted(p)) for p in true_pairs - pred)
    fp = sorted(pair for pair in (tuple(sorted(p)) for p in pred) if ent[pair[0]] != ent[pair[1]])
    return {"false_negatives": len(fn), "false_positives": len(fp), "fn_examples": fn[:limit], "fp_examples": fp[:limit]}


# --- one tool, one repeat ---------------------------------------------------------------------


def _threshold_of(config: str, sets: list[str]) -> float:
    from jobs.common.config import load_config

    return float(load_config(config, sets).model.match.threshold_probability)


def run_ours_once(
    info: datasets.DatasetInfo, truth: pd.Series, run_dir: str, stages: tuple[str, ...] | None = None
) -> dict[str, Any]:
    from bench.ours import run_ours

    res = run_ours(info.root, os.path.join(BENCH, "conf"), run_dir, truth_uids=truth.index, stages=stages)
    out: dict[str, Any] = {
        "wall_s": res["wall_s"],
        "peak_rss_bytes": res["peak_rss_bytes"],
        "peak_rss_by_stage": res["peak_rss_by_stage"],
        "config": os.path.relpath(res["config"], REPO),
        "error": res["error"],
        "timing": res.get("timing"),
    }
    r = res["result"]
    if res["error"] is None:
        threshold = _threshold_of(res["config"], [f"lake.root={res['lake_root']}", f"data.root={info.root}"])
        out["threshold"] = threshold
        links = r.edges[["uid_l", "uid_r"]] if r.edges is not None else None
        out.update(score(links, r.clusters, truth))
        if r.pairs is not None:
            scored = r.pairs[r.pairs["match_probability"] >= threshold][["uid_l", "uid_r"]]
            out["pairwise_scored_only"] = _metric_block(pairwise_from_links(scored, truth))
            out["candidate_pairs"] = int(len(r.pairs))
        if info.records <= 50_000:
            out["errors"] = missed_pairs(links, truth)
    return out


def adopt_ours_run(name: str, run_dir: str, measured: dict[str, Any], work: str, results: str) -> dict[str, Any]:
    """Record a run of ``python -m bench.ours`` made outside this harness (its printed JSON: wall_s,
    peak_rss_bytes, peak_rss_by_stage, config, error) as a repeat of ``ours`` on ``name``.

    The run's folder becomes ``<work>/runs/<name>/ours`` so that ``--append`` repeats reuse its lake.
    """
    from bench.ours import read_results

    info = datasets.prepare(name, work)
    truth = datasets.load_ground_truth(info.root)
    target = os.path.join(work, "runs", name, "ours")
    if os.path.abspath(run_dir) != os.path.abspath(target):
        if os.path.exists(target):
            shutil.rmtree(target)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.move(run_dir, target)
    lake = os.path.join(target, "lake")
    out = {k: measured.get(k) for k in ("wall_s", "peak_rss_bytes", "peak_rss_by_stage", "error", "timing")}
    out["config"] = os.path.relpath(measured["config"], REPO)
    if not out["error"]:
        clusters, pairs, edges = read_results(lake, truth.index)
        threshold = _threshold_of(measured["config"], [f"lake.root={lake}", f"data.root={info.root}"])
        out["threshold"] = threshold
        links = edges[["uid_l", "uid_r"]] if edges is not None else None
        out.update(score(links, clusters, truth))
        if pairs is not None:
            scored = pairs[pairs["match_probability"] >= threshold][["uid_l", "uid_r"]]
            out["pairwise_scored_only"] = _metric_block(pairwise_from_links(scored, truth))
            out["candidate_pairs"] = int(len(pairs))
        if info.records <= 50_000:
            out["errors"] = missed_pairs(links, truth)
    runs_path = os.path.join(results, "runs", f"{name}.json")
    doc = _load_json(runs_path)
    doc["dataset"] = info.to_dict()
    doc.setdefault("tools", {}).setdefault("ours", []).append(out)
    _dump(runs_path, doc)
    return out


def splink_input(info: datasets.DatasetInfo, lake_root: str | None, path: str) -> str:
    """Write the parquet Splink reads; returns its input kind (febrl, silver or raw)."""
    from bench.inputs import build_input

    sources = [os.path.join(REPO, "conf", "sources", f) for f in sorted(os.listdir(os.path.join(REPO, "conf", "sources")))]
    df, kind = build_input(info.root, info.link_type, lake_root=lake_root, source_files=sources)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    df.to_parquet(path, index=False)
    return kind


def splink_derived(wall: dict[str, Any]) -> dict[str, float]:
    """``train_predict_cluster``: Splink's in-process train+score, the counterpart of ours'."""
    if all(wall.get(k) is not None for k in SPLINK_PHASES):
        return {"train_predict_cluster": float(sum(wall[k] for k in SPLINK_PHASES))}
    return {}


def run_splink_once(
    backend: str, model: str, records: int, truth: pd.Series, input_path: str, run_dir: str, timeout_s: float,
) -> dict[str, Any]:
    """One measured Splink run on ``input_path``, scored against ``truth`` (``records``: the
    dataset's; above 50,000 the outputs are removed and no error examples kept)."""
    if os.path.exists(run_dir):
        shutil.rmtree(run_dir)
    os.makedirs(run_dir)
    env = dict(os.environ)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    cmd = [
        sys.executable, "-m", "bench.splink_runner", "--backend", backend, "--model", model, "--input", input_path,
        "--out", run_dir, "--threshold", str(SPLINK_THRESHOLD),
    ]
    m = run_measured(cmd, os.path.join(run_dir, "run.log"), cwd=REPO, env=env, timeout_s=timeout_s)
    print(f"[splink_{backend}] rc={m.returncode} {m.wall_s:.1f}s peak {m.peak_rss_bytes / 2**30:.2f} GiB", flush=True)
    out: dict[str, Any] = {"peak_rss_bytes": m.peak_rss_bytes, "wall_s": {"process": m.wall_s}, "error": None}
    if not m.ok:
        out["error"] = ("timed out: " if m.timed_out else f"exit code {m.returncode}: ") + m.log_tail(15).strip()
        return out
    with open(os.path.join(run_dir, "timings.json"), encoding="utf-8") as fh:
        timings = json.load(fh)
    out["wall_s"].update(timings["seconds"])
    out["wall_s"].update(splink_derived(out["wall_s"]))
    out["threshold"] = SPLINK_THRESHOLD
    pred = pd.read_parquet(os.path.join(run_dir, "predictions.parquet"))
    clus = pd.read_parquet(os.path.join(run_dir, "clusters.parquet"))
    links = pred[pred["match_probability"] >= SPLINK_THRESHOLD][["unique_id_l", "unique_id_r"]]
    out.update(score(links, pd.Series(clus["cluster_id"].to_numpy(), index=clus["unique_id"].to_numpy()), truth))
    out["candidate_pairs"] = None
    if records <= 50_000:
        out["errors"] = missed_pairs(links, truth)
    # keep the outputs small on disk: predictions of large runs are large
    for f in ("predictions.parquet", "clusters.parquet"):
        if records > 50_000:
            os.remove(os.path.join(run_dir, f))
    for d in ("spark-tmp", "checkpoints", "warehouse", "duckdb-tmp"):
        shutil.rmtree(os.path.join(run_dir, d), ignore_errors=True)
    return out


# --- aggregation ------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the successful repeats of one tool on one dataset."""
    ok = [r for r in runs if not r.get("error")]
    out: dict[str, Any] = {"repeats": len(ok), "failed_repeats": len(runs) - len(ok)}
    if not ok:
        out["error"] = runs[-1].get("error") if runs else "not run"
        return out
    for block in ("pairwise", "cluster", "pairwise_scored_only"):
        if all(block in r for r in ok):
            out[block] = {k: _median([r[block][k] for r in ok]) for k in ("precision", "recall", "f1")}
            counts = ok[-1][block]
            out[block].update({k: counts[k] for k in ("true_positives", "predicted_pairs", "true_pairs") if k in counts})
            if block == "cluster":
                out[block]["bcubed_f1"] = _median([r[block]["bcubed"]["f1"] for r in ok])
    for r in ok:  # records written before train_predict_cluster existed
        r["wall_s"] = {**r["wall_s"], **{k: v for k, v in splink_derived(r["wall_s"]).items() if k not in r["wall_s"]}}
    timings = list(dict.fromkeys(r.get("timing") or OLD_TIMING for r in ok))
    if any(r.get("timing") for r in ok) or "ingest" in ok[0].get("wall_s", {}):
        out["timing"] = timings[0] if len(timings) == 1 else "mixed: " + " / ".join(timings)
    stages = list(dict.fromkeys(k for r in ok for k in r["wall_s"]))
    out["wall_s"] = {s: _median([r["wall_s"].get(s) for r in ok]) for s in stages}
    out["wall_s_all"] = {s: [r["wall_s"].get(s) for r in ok] for s in stages}
    out["peak_rss_bytes"] = int(_median([r["peak_rss_bytes"] for r in ok]) or 0)
    if "peak_rss_by_stage" in ok[0]:
        out["peak_rss_by_stage"] = {
            s: int(_median([r["peak_rss_by_stage"].get(s) for r in ok]) or 0) for s in ok[0]["peak_rss_by_stage"]
        }
    for k in ("threshold", "config", "candidate_pairs"):
        if k in ok[-1]:
            out[k] = ok[-1][k]
    if "errors" in ok[-1]:
        out["errors_last_run"] = dict(ok[-1]["errors"])
    return out


def check_targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, evaluated on the medians (None = not measured)."""
    d = summary["datasets"]

    def get(ds: str, tool: str, *path: str) -> Any:
        cur: Any = d.get(ds, {}).get(tool)
        for p in path:
            if not isinstance(cur, dict) or p not in cur:
                return None
            cur = cur[p]
        return cur

    checks: list[dict[str, Any]] = []

    def add(name: str, value: Any, target: str, ok: bool | None, note: str = "") -> None:
        checks.append({"target": name, "measured": value, "goal": target, "met": ok, "note": note})

    f4 = get("febrl4", "ours", "pairwise", "f1")
    add("FEBRL4 pairwise F1", f4, ">= 0.999 (Splink 0.9992 at p 0.5)", None if f4 is None else f4 >= 0.999)
    f3 = get("febrl3", "ours", "cluster", "f1")
    add("FEBRL3 cluster F1", f3, ">= 0.997 (Splink 0.9972)", None if f3 is None else f3 >= 0.997)
    for ds in ("gen100k", "gen1m"):
        if ds not in d:
            continue
        for kind in ("pairwise", "cluster"):
            ours = get(ds, "ours", kind, "f1")
            best = [get(ds, t, kind, "f1") for t in ("splink_spark", "splink_duckdb")]
            best = [b for b in best if b is not None]
            ok = None if ours is None or not best else ours >= max(best) - 1e-9
            add(f"{ds} {kind} F1 not below Splink's", ours, f">= {max(best):.4f}" if best else "Splink not measured", ok)
    timing = get("febrl4", "ours", "timing")
    old = timing is not None and timing != TIMING_METHOD
    ts = get("febrl4", "ours", "wall_s", "train_plus_score")
    sp = get("febrl4", "splink_spark", "wall_s", "train_predict_cluster")
    ratio = ts / sp if ts and sp and not old else None
    add(
        "FEBRL4 train+score vs Splink Spark train+predict+cluster (in-process phases)",
        ratio,
        "<= 1/3 (0.333)",
        None if ratio is None else ratio <= 1 / 3,
        (f"ours {ts:.1f} s, Splink Spark {sp:.1f} s" if ratio else "")
        + ("measured with the old two-process timing: rerun" if old else ""),
    )
    tp = get("febrl4", "ours", "wall_s", "train_plus_score_process")
    spp = get("febrl4", "splink_spark", "wall_s", "process")
    pratio = tp / spp if tp and spp else None
    add(
        "FEBRL4 train+score whole process vs Splink Spark whole process (shown, not the target)",
        pratio,
        "(target is on the in-process phases)",
        None,
        f"ours `cdp match --retrain` {tp:.1f} s, Splink Spark runner {spp:.1f} s" if pratio else "",
    )
    if "gen1m" in d:
        w = get("gen1m", "ours", "wall_s", "match")
        dw = get("gen1m", "splink_duckdb", "wall_s", "process")
        add(
            "gen1m match stage end to end (`cdp match --retrain` process) vs Splink DuckDB process", w,
            f"next to {dw:.1f} s" if dw else "Splink DuckDB not measured", None,
        )
        add(
            "gen1m match stage peak RSS vs Splink DuckDB", get("gen1m", "ours", "peak_rss_by_stage", "match"),
            f"next to {get('gen1m', 'splink_duckdb', 'peak_rss_bytes')}", None,
        )
    return checks


def environment() -> dict[str, Any]:
    import psutil

    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "load_average_at_start": os.getloadavg(),
    }
    for mod in ("splink", "pyspark", "duckdb", "deltalake", "recordlinkage"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            info[mod] = None
    return info


# --- main -------------------------------------------------------------------------------------


def _load_json(path: str) -> dict[str, Any]:
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    return {}


def _dump(path: str, doc: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, default=str)
    os.replace(tmp, path)


def model_for(name: str) -> str:
    return name if name in ("febrl3", "febrl4") else "generated"


def bench_dataset(
    name: str, tools: list[str], repeats: int, work: str, results: str, timeout_s: float,
    repeat_stages: tuple[str, ...] | None = None,
    append: bool = False,
    splink_spark_large: bool = False,
    first_stages: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    info = datasets.prepare(name, work)
    truth = datasets.load_ground_truth(info.root)
    skipped: dict[str, str] = {}
    if "splink_spark" in tools and info.records > SPLINK_SPARK_MAX_RECORDS and not splink_spark_large:
        skipped["splink_spark"] = (
            f"not run: {info.records:,} records; Splink's Spark backend takes too long at this size on "
            f"{os.cpu_count()} cores (--splink-spark-1m runs it)"
        )
        print(f"== {name} splink_spark {skipped['splink_spark']}", flush=True)
        tools = [t for t in tools if t != "splink_spark"]
    runs_path = os.path.join(results, "runs", f"{name}.json")
    start = _load_json(runs_path).get("tools", {})
    # Only the lists of the tools run here are written back, merged into the file as it is then,
    # so that invocations running other tools on the same dataset at the same time keep theirs.
    mine: dict[str, list[dict[str, Any]]] = {t: list(start.get(t, [])) if append else [] for t in tools}
    extra: dict[str, Any] = {"skipped_tools": skipped} if skipped else {}

    def save() -> dict[str, Any]:
        doc = _load_json(runs_path)
        doc["dataset"] = info.to_dict()
        doc.setdefault("tools", {}).update(mine)
        doc.update(extra)
        _dump(runs_path, doc)
        return doc

    ours_lake = os.path.join(work, "runs", name, "ours", "lake")
    have_silver = bool(start.get("ours")) and os.path.isdir(os.path.join(ours_lake, "silver", "records"))
    input_path = os.path.join(work, "runs", name, f"splink_input_{os.getpid()}.parquet")
    input_kind = None
    for rep in range(repeats):
        lake_root = None
        if "ours" in tools:
            print(f"== {name} ours repeat {rep + 1}/{repeats}", flush=True)
            stages = repeat_stages if (rep > 0 or (append and have_silver)) else first_stages
            if rep == 0 and stages is not None and "ingest" not in stages and not os.path.isdir(os.path.join(ours_lake, "bronze")):
                raise SystemExit(f"{ours_lake}: no bronze tables to run {', '.join(stages)} on; run ingest first")
            r = run_ours_once(info, truth, os.path.join(work, "runs", name, "ours"), stages)
            mine["ours"].append(r)
            lake_root = ours_lake
            save()
        splinks = [t for t in tools if t.startswith("splink_")]
        if splinks and input_kind is None:
            lake = lake_root or ours_lake
            input_kind = splink_input(info, lake if os.path.isdir(lake) else None, input_path)
            extra["splink_input_kind"] = input_kind
        for t in splinks:
            backend = t.split("_", 1)[1]
            print(f"== {name} {t} repeat {rep + 1}/{repeats}", flush=True)
            r = run_splink_once(backend, model_for(name), info.records, truth, input_path, os.path.join(work, "runs", name, t), timeout_s)
            mine[t].append(r)
            save()
    if os.path.exists(input_path):
        os.remove(input_path)
    doc = save()
    return doc


def build_summary(results: str) -> dict[str, Any]:
    summary: dict[str, Any] = {"environment": environment(), "datasets": {}, "inputs": {}}
    old = _load_json(os.path.join(results, "summary.json"))
    if old.get("environment"):
        summary["environment"] = old["environment"]
    runs_dir = os.path.join(results, "runs")
    order = {n: i for i, n in enumerate(("febrl4", "febrl3", "gen100k", "gen1m"))}
    names = sorted((f[:-5] for f in os.listdir(runs_dir) if f.endswith(".json")), key=lambda n: (order.get(n, 99), n)) if os.path.isdir(runs_dir) else []
    for n in names:
        doc = _load_json(os.path.join(runs_dir, f"{n}.json"))
        summary["inputs"][n] = {
            **doc.get("dataset", {}), "splink_input_kind": doc.get("splink_input_kind"),
            "skipped_tools": doc.get("skipped_tools", {}),
        }
        summary["datasets"][n] = {t: aggregate(runs) for t, runs in doc.get("tools", {}).items() if runs}
    summary["targets"] = check_targets(summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run the benchmarks and write bench/results + docs/benchmarks.md")
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS), help="febrl4,febrl3,gen100k,gen1m")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-repeats", type=int, default=1, help="repeats for generated data (gen*)")
    parser.add_argument("--work", default=os.path.join(BENCH, "work"))
    parser.add_argument("--results", default=os.path.join(BENCH, "results"))
    parser.add_argument("--docs", default=os.path.join(REPO, "docs", "benchmarks.md"))
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per child process")
    parser.add_argument(
        "--repeat-stages", default="match",
        help="stages of ours run again in repeats 2..n on the first repeat's silver tables ('all': every stage)",
    )
    parser.add_argument(
        "--splink-spark-1m", action="store_true",
        help=f"also run Splink's Spark backend on datasets above {SPLINK_SPARK_MAX_RECORDS:,} records (hours on 2 cores)",
    )
    parser.add_argument(
        "--append", action="store_true",
        help="add these repeats to the runs already recorded (ours reuses the recorded silver tables)",
    )
    parser.add_argument(
        "--first-stages", default="all",
        help="stages of ours in the first repeat, e.g. 'standardize,match' to rerun on the lake already in --work "
             "(its bronze tables) without ingesting again ('all': every stage)",
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild summary.json and the docs")
    args = parser.parse_args(argv)
    tools = [t for t in args.tools.split(",") if t]
    bad = [t for t in tools if t not in TOOLS]
    if bad:
        parser.error(f"--tools: unknown {bad}; expected some of {', '.join(TOOLS)}")
    t0 = time.perf_counter()
    if not args.report_only:
        if summary_env := environment():
            _dump(os.path.join(args.results, "environment.json"), summary_env)
        for name in [n for n in args.datasets.split(",") if n]:
            reps = args.large_repeats if name.startswith("gen") else args.repeats
            rs = None if args.repeat_stages == "all" else tuple(s for s in args.repeat_stages.split(",") if s)
            fs = None if args.first_stages == "all" else tuple(s for s in args.first_stages.split(",") if s)
            bench_dataset(
                name, tools, reps, args.work, args.results, args.timeout, rs, args.append, args.splink_spark_1m, fs,
            )
            write_outputs(args.results, args.docs)
    write_outputs(args.results, args.docs)
    print(f"bench done in {time.perf_counter() - t0:.0f} s; {os.path.relpath(args.docs, REPO)}", flush=True)
    return 0


def write_outputs(results: str, docs: str) -> None:
    from bench.report import render

    summary = build_summary(results)
    env = _load_json(os.path.join(results, "environment.json"))
    if env:
        summary["environment"] = env
    _dump(os.path.join(results, "summary.json"), summary)
    scale = _load_json(os.path.join(results, "scale.json"))
    text = render(summary, scale or None)
    notes = os.path.join(BENCH, "observations.md")  # hand-written analysis of the latest run, appended as is
    if os.path.exists(notes):
        with open(notes, encoding="utf-8") as fh:
            text = text.rstrip("\n") + "\n\n" + fh.read()
    os.makedirs(os.path.dirname(docs), exist_ok=True)
    with open(docs, "w", encoding="utf-8") as fh:
        fh.write(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    sys.exit(main())
