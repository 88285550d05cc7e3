"""Splink beside one of our lakes: the same silver.records, scored against the same ground truth.

    python -m bench.splink_on_lake --lake bench/work/scale/incremental-p1000000/inc/lake \
        --truth bench/work/scale/incremental-p1000000/gen --backend duckdb --out bench/results/splink_on_lake.json

For generated data too large to run our pipeline twice in a session (1,000,000 persons: a full run
takes 76 minutes here), the lake a scale run left behind is the reference: Splink gets its
``silver.records`` (bench/inputs.py, as bench.run_all gives it), both tools are scored on the
records that lake holds, ours from match.edges and match.clusters (after the over-merge guard).
Our match-stage wall time and peak come from the scale run that built the lake
(bench/results/scale.json), Splink's from the process measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import pandas as pd

from bench.inputs import silver_input
from bench.metrics import cluster_metrics, pairwise_from_links
from bench.ours import _read_delta, key_to_uid
from bench.proc import run_measured
from bench.run_all import REPO, SPLINK_THRESHOLD, splink_derived


def ours(lake: str, truth: pd.Series) -> dict[str, Any]:
    keys = key_to_uid(lake, truth.index)

    def to_uid(s: pd.Series) -> pd.Series:
        return s.map(keys).fillna("key:" + s.astype(str))

    clusters = _read_delta(os.path.join(lake, "match", "clusters"), ["record_key", "cluster_id"])
    edges = _read_delta(os.path.join(lake, "match", "edges"), ["record_key_l", "record_key_r"])
    cl = pd.Series(clusters["cluster_id"].to_numpy(), index=to_uid(clusters["record_key"]).to_numpy())
    links = pd.DataFrame({"uid_l": to_uid(edges["record_key_l"]), "uid_r": to_uid(edges["record_key_r"])})
    return {
        "records": int(len(cl)),
        "pairwise": pairwise_from_links(links, truth).to_dict(),
        "cluster": cluster_metrics(cl, truth).to_dict(),
    }


def splink(backend: str, input_path: str, out_dir: str, truth: pd.Series, timeout_s: float) -> dict[str, Any]:
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    cmd = [
        sys.executable, "-m", "bench.splink_runner", "--backend", backend, "--model", "generated",
        "--input", input_path, "--out", out_dir, "--threshold", str(SPLINK_THRESHOLD),
    ]
    m = run_measured(cmd, os.path.join(out_dir, "run.log"), cwd=REPO, env=env, timeout_s=timeout_s)
    out: dict[str, Any] = {"peak_rss_bytes": m.peak_rss_bytes, "wall_s": {"process": m.wall_s}, "error": None}
    if not m.ok:
        out["error"] = ("timed out: " if m.timed_out else f"exit code {m.returncode}: ") + m.log_tail(15).strip()
        return out
    with open(os.path.join(out_dir, "timings.json"), encoding="utf-8") as fh:
        out["wall_s"].update(json.load(fh)["seconds"])
    out["wall_s"].update(splink_derived(out["wall_s"]))
    pred = pd.read_parquet(os.path.join(out_dir, "predictions.parquet"), columns=["unique_id_l", "unique_id_r", "match_probability"])
    clus = pd.read_parquet(os.path.join(out_dir, "clusters.parquet"))
    links = pred[pred["match_probability"] >= SPLINK_THRESHOLD][["unique_id_l", "unique_id_r"]]
    out["threshold"] = SPLINK_THRESHOLD
    out["candidate_pairs"] = int(len(pred))
    out["pairwise"] = pairwise_from_links(links, truth).to_dict()
    out["cluster"] = cluster_metrics(pd.Series(clus["cluster_id"].to_numpy(), index=clus["unique_id"].to_numpy()), truth).to_dict()
    for f in ("predictions.parquet", "clusters.parquet"):
        os.remove(os.path.join(out_dir, f))
    return out


def main(argv: list[str] | None = None) -> int:
    from bench.datasets import load_ground_truth

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lake", required=True, help="a lake our pipeline built (silver.records, match.*)")
    ap.add_argument("--truth", required=True, help="the generator folder holding its ground truth")
    ap.add_argument("--backend", choices=["duckdb", "spark"], default="duckdb")
    ap.add_argument("--work", default="/tmp/splink_on_lake")
    ap.add_argument("--out", required=True, help="JSON written here")
    ap.add_argument("--timeout", type=float, default=3 * 3600)
    args = ap.parse_args(argv)

    frame = silver_input(args.lake)
    os.makedirs(args.work, exist_ok=True)
    input_path = os.path.join(args.work, "input.parquet")
    frame.to_parquet(input_path, index=False)
    truth = load_ground_truth(args.truth)
    truth = truth[truth.index.isin(frame["unique_id"])]  # the records this lake holds
    doc = {
        "lake": os.path.relpath(os.path.abspath(args.lake), REPO),
        "records": int(len(frame)),
        "truth_records": int(len(truth)),
        "ours": ours(args.lake, truth),
        f"splink_{args.backend}": splink(args.backend, input_path, os.path.join(args.work, args.backend), truth, args.timeout),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
    for tool in ("ours", f"splink_{args.backend}"):
        r = doc[tool]
        print(tool, {k: round(r[k]["f1"], 4) for k in ("pairwise", "cluster") if k in r}, r.get("wall_s"), r.get("error"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
