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
from typing import Any

import pandas as pd

from bench.inputs import silver_input
from bench.ours import read_results
from bench.run_all import REPO, run_splink_once, score


def ours(lake: str, truth: pd.Series) -> dict[str, Any]:
    """Our pairwise (match.edges) and cluster (match.clusters) scores, as bench.run_all makes them."""
    clusters, _, edges = read_results(lake, truth.index, with_pairs=False)
    return {"records": int(len(clusters)), **score(edges[["uid_l", "uid_r"]], clusters, truth)}


def main(argv: list[str] | None = None) -> int:
    from bench.datasets import load_ground_truth

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lake", required=True, help="a lake our pipeline built (silver.records, match.*)")
    ap.add_argument("--truth", required=True, help="the generator folder holding its ground truth")
    ap.add_argument("--backend", choices=["duckdb", "spark"], default="duckdb")
    ap.add_argument("--work", default="/tmp/splink_on_lake")
    ap.add_argument("--out", required=True, help="JSON written here")
    ap.add_argument("--timeout", type=float, default=3 * 3600)
    ap.add_argument(
        "--part", choices=["both", "ours", "splink"], default="both",
        help="score only our lake or only Splink, merged into --out (Splink can run while our match still runs)",
    )
    args = ap.parse_args(argv)

    frame = silver_input(args.lake)
    truth = load_ground_truth(args.truth)
    truth = truth[truth.index.isin(frame["unique_id"])]  # the records this lake holds
    doc: dict[str, Any] = {}
    if args.part != "both" and os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as fh:
            doc = json.load(fh)
        if doc.get("records") != int(len(frame)):
            raise SystemExit(f"{args.out} holds {doc.get('records')} records, this lake {len(frame)}: not the same lake")
    doc.update({
        "lake": os.path.relpath(os.path.abspath(args.lake), REPO),
        "records": int(len(frame)),
        "truth_records": int(len(truth)),
    })
    if args.part in ("both", "ours"):
        doc["ours"] = ours(args.lake, truth)
    if args.part in ("both", "splink"):
        os.makedirs(args.work, exist_ok=True)
        input_path = os.path.join(args.work, "input.parquet")  # Splink's input; our scoring reads the lake
        frame.to_parquet(input_path, index=False)
        doc[f"splink_{args.backend}"] = run_splink_once(
            args.backend, "generated", len(frame), truth, input_path, os.path.join(args.work, args.backend), args.timeout
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
    for tool in [t for t in ("ours", f"splink_{args.backend}") if t in doc]:
        r = doc[tool]
        print(tool, {k: round(r[k]["f1"], 4) for k in ("pairwise", "cluster") if k in r}, r.get("wall_s"), r.get("error"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
