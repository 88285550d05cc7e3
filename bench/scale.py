"""Scale benchmarks on generated data; one command, JSON into bench/results/scale.json and a section
of docs/benchmarks.md (bench/report.py).

    python -m bench.scale                                   # every part at the default sizes
    python -m bench.scale --parts a,b --ingest-persons 1000000
    python -m bench.scale --persons 3000                    # every part at 3,000 persons (a smoke test)
    python -m bench.scale --report-only                     # rebuild the page from the JSON

Parts (``--parts``, letters or names; default all):

``a`` / ``generate,ingest``  generator time for N persons (``generate_sample_data`` in a child
        process: in-process seconds and whole-process wall) and the ingest rate (``cdp ingest``:
        rows read from ops.runs over the whole-process wall, and over the run's own duration).
``b`` / ``standardize``  standardize rate (``cdp standardize`` on a's lake: silver.records rows,
        and records + events, per second).
``c`` / ``stability``  person-id stability: N persons generated with ``--stability-batches`` (20)
        deliveries cut by creation time, ``cdp run`` on the first ones, then the trailing deliveries
        closest to ``--stability-new-share`` (10%) of the person records added and ``cdp run
        --incremental``; the same second step once more as a full ``cdp run`` on a copy of the lake
        after run 1. Reported: share of run-1 person ids still live after run 2, share of run-1
        records whose person id is unchanged, share of new records in run 2 (as measured), the
        id_changes counts of run 2, cluster F1 against the ground truth, and how many records the
        incremental and the full second run give the same person id.
``d`` / ``erase``  erase time for one subject (``cdp privacy erase --subject email:...``) and for a
        batch of 100 (``--file``), on a fresh copy of the lake and landing folders after a full run
        (c's full second run when c ran at the same N, else its own ``cdp run``); subjects are
        persons of the ground truth with an e-mail address of their own. Records whether the
        verification scan passed.
``e`` / ``incremental``  N persons generated with ``--incremental-batches`` (100) deliveries; ``cdp run`` on the first ~99%,
        then the last ~1% added and ``cdp run --incremental``, next to ``cdp run`` over all of it
        on a fresh lake; per stage (from ops.runs), whole-process wall and peak RSS (bench/proc.py).
        At 1,000,000 persons the three runs take longer than a session: ``--no-full`` measures the
        first two, and a later ``--full-only`` adds the full run over the same landed files (the
        incremental lake stays in ``--work``).

Batches are landed as one file per source file and delivery (``--no-merge-batches``: one file per
generator part, e.g. 99 files per source for e): the deliveries are the same rows either way, and
per-file overhead is not what is measured. Every figure is the median over ``--repeats`` (default
1); each repeat is kept, with the load average at its start and end (the machine is shared).
Default N: 1,000,000 for a, b, e; 100,000 for c, d.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.metrics import cluster_metrics
from bench.ours import cdp_command, key_to_uid, printed_summary, read_runs, run_seconds
from bench.proc import Measured, run_measured

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")
CONFIG = os.path.join(BENCH, "conf", "scale.yaml")
PARTS = ("generate", "ingest", "standardize", "stability", "erase", "incremental")
LETTERS = {"a": ("generate", "ingest"), "b": ("standardize",), "c": ("stability",), "d": ("erase",), "e": ("incremental",)}
SOURCE_DIRS = ("crm", "webshop", "pos", "email", "web")  # conf/sources locations; never ground_truth
# generator files that hold person records (the rest are events), for estimating delivery shares
PERSON_FILES = re.compile(r"(^|/)(crm/[^/]+|webshop/customers[^/]*|pos/members[^/]*|email/subscribers[^/]*)$")
PART_FILE = re.compile(r"^(?P<stem>.+)_part(?P<i>\d+)of(?P<k>\d+)\.(?P<ext>[a-z]+)$")
PIPELINE_JOBS = ("ingest", "standardize", "match", "golden", "segments")


# --- small helpers -----------------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CDP_PRIVACY_SALT", "bench-salt-not-secret")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    return env


def cdp(args: Sequence[str], lake: str, data: str, log: str, timeout_s: float) -> Measured:
    """One measured ``cdp`` process with the scale config, pointed at ``lake`` and ``data``."""
    cmd = [*cdp_command(), *args, "--config", CONFIG, "--set", f"lake.root={lake}", "--set", f"data.root={data}"]
    m = run_measured(cmd, log, cwd=REPO, env=_env(), timeout_s=timeout_s)
    state = "ok" if m.ok else ("timed out" if m.timed_out else f"exit {m.returncode}")
    print(f"[scale] cdp {' '.join(args)}: {state} {m.wall_s:.1f}s peak {m.peak_rss_bytes / 2**30:.2f} GiB", flush=True)
    return m


def _failure(m: Measured) -> str | None:
    if m.ok:
        return None
    reason = "timed out" if m.timed_out else f"exit code {m.returncode}"
    return f"{reason}: {m.log_tail(8).strip()}"


def _measured(m: Measured, load_start: list[float]) -> dict[str, Any]:
    return {
        "wall_s": round(m.wall_s, 2), "peak_rss_bytes": m.peak_rss_bytes, "load_average": load_start,
        "load_average_end": load_average(), "error": _failure(m),
    }


def _fresh(path: str) -> str:
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def _copy(src: str, dst: str) -> None:
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)


def _read_delta(path: str, columns: list[str]) -> pd.DataFrame | None:
    if not os.path.isdir(os.path.join(path, "_delta_log")):
        return None
    from deltalake import DeltaTable

    return DeltaTable(path).to_pandas(columns=columns)


def _run_ids(lake: str) -> set[str]:
    runs = read_runs(lake)
    return set() if runs is None else set(runs["run_id"])


def _new_runs(lake: str, before: set[str]) -> pd.DataFrame:
    runs = read_runs(lake)
    if runs is None:
        return pd.DataFrame(columns=["run_id", "job", "started_at", "ended_at", "status", "rows_in", "metrics"])
    return runs[~runs["run_id"].isin(before)]


def _num(text: Any) -> Any:
    """A metric of ops.runs (stored as text) as int, float or bool where it is one."""
    if not isinstance(text, str):
        return text
    if text in ("True", "False"):
        return text == "True"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _job_row(runs: pd.DataFrame, job: str) -> Any:
    rows = runs[(runs["job"] == job) & (runs["status"] == "succeeded")]
    return rows.iloc[-1] if len(rows) else None


def _stage_seconds(runs: pd.DataFrame, jobs: Sequence[str]) -> dict[str, float]:
    """Seconds of the last succeeded run of each job in ``runs`` that has one."""
    out = {}
    for job in jobs:
        row = _job_row(runs, job)
        if row is not None:
            out[job] = round(run_seconds(row) or 0.0, 2)
    return out


# --- generated data ---------------------------------------------------------------------------


def _generate_child(argv: list[str]) -> int:
    """``python -m bench.scale _generate N SEED BATCHES OUT``: generate and print the summary JSON."""
    persons, seed, batches, out = int(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    from jobs.ingest.generate import generate_sample_data

    t0 = time.perf_counter()
    summary = generate_sample_data(persons, seed, out, batches=batches)
    print("generate: " + json.dumps({"seconds": summary["seconds"], "python_seconds": time.perf_counter() - t0}), flush=True)
    return 0


def _manifest(out: str) -> dict[str, Any]:
    try:
        with open(os.path.join(out, "manifest.json"), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def generate(out: str, persons: int, seed: int, batches: int, timeout_s: float, reuse: bool = True) -> dict[str, Any]:
    """Generated data in ``out`` (reused when its manifest says the same persons, seed and batches)."""
    man = _manifest(out)
    if reuse and man.get("persons") == persons and man.get("seed") == seed and man.get("batches") == batches \
            and os.path.exists(os.path.join(out, "ground_truth", "records.csv")):
        return {"reused": True, "records": sum(man.get("records_per_source", {}).values())}
    os.makedirs(out, exist_ok=True)
    load0 = load_average()
    cmd = [sys.executable, "-m", "bench.scale", "_generate", str(persons), str(seed), str(batches), out]
    log = os.path.join(os.path.dirname(out), f"{os.path.basename(out)}.generate.log")
    m = run_measured(cmd, log, cwd=REPO, env=_env(), timeout_s=timeout_s)
    print(f"[scale] generate {persons:,} persons, {batches} batch(es): {m.wall_s:.1f}s", flush=True)
    res = _measured(m, load0)
    if res["error"]:
        raise RuntimeError(f"generating {persons} persons failed: {res['error']}")
    printed = printed_summary(log, "generate") or {}
    man = _manifest(out)
    records = int(sum(man.get("records_per_source", {}).values()))
    res.update(
        reused=False, persons=persons, seed=seed, batches=batches, generator_s=printed.get("seconds"),
        records=records, files=len(man.get("files", {})),
    )
    if res["generator_s"]:
        res["persons_per_s"] = round(persons / res["generator_s"], 1)
    return res


def load_truth(gen_dir: str) -> pd.Series:
    from bench.datasets import load_ground_truth

    return load_ground_truth(gen_dir)


def batch_shares(gen_dir: str) -> list[float]:
    """Share of the person records (generator files of person sources) in each batch, from the manifest."""
    man = _manifest(gen_dir)
    k = int(man.get("batches", 1))
    rows = np.zeros(k)
    for rel, n in man.get("files", {}).items():
        m = re.match(r"^batch_(\d+)/(.+)$", rel)
        if m and PERSON_FILES.search(m.group(2)):
            rows[int(m.group(1)) - 1] += n
    total = rows.sum()
    return (rows / total).tolist() if total else [1.0 / k] * k


def split_for_share(shares: list[float], target: float) -> int:
    """Number of trailing batches whose share of person records is closest to ``target`` (at least 1)."""
    best, best_k = None, 1
    acc = 0.0
    for k in range(1, len(shares)):
        acc += shares[-k]
        if best is None or abs(acc - target) < best:
            best, best_k = abs(acc - target), k
    return best_k


def land(gen_dir: str, data_dir: str, batches: Sequence[int], merge: bool) -> int:
    """Put batches ``batches`` (1-based) of a generator output into the landing folders ``data_dir``.

    ``merge``: one file per source file for the whole range (``<stem>_part<a>-<b>of<K>.<ext>``:
    CSV headers once, NDJSON lines appended, Parquet tables concatenated), else every part file as
    the generator wrote it. A single-batch output (no ``batch_<i>`` folders) is copied as it is.
    The ground truth and the manifest never go into the landing folders. Returns files written.
    """
    os.makedirs(data_dir, exist_ok=True)
    written = 0
    if not os.path.isdir(os.path.join(gen_dir, "batch_1")):
        for d in SOURCE_DIRS:
            if os.path.isdir(os.path.join(gen_dir, d)):
                shutil.copytree(os.path.join(gen_dir, d), os.path.join(data_dir, d), dirs_exist_ok=True)
                written += len(os.listdir(os.path.join(gen_dir, d)))
        return written
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for b in batches:
        root = os.path.join(gen_dir, f"batch_{b}")
        for path in sorted(glob.glob(os.path.join(root, "*", "*"))):
            folder, name = os.path.relpath(path, root).split(os.sep, 1)
            m = PART_FILE.match(name)
            if not merge or m is None:
                target = os.path.join(data_dir, folder, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(path, target)
                written += 1
                continue
            groups.setdefault((folder, m.group("stem"), m.group("k"), m.group("ext")), []).append(path)
    lo, hi = min(batches), max(batches)
    tag = f"{lo}" if lo == hi else f"{lo}-{hi}"
    for (folder, stem, k, ext), paths in sorted(groups.items()):
        target = os.path.join(data_dir, folder, f"{stem}_part{tag}of{k}.{ext}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if ext == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.concat_tables([pq.read_table(p) for p in paths]), target, compression="snappy")
        else:
            with open(target, "wb") as out:
                for i, p in enumerate(paths):
                    with open(p, "rb") as fh:
                        if ext == "csv" and i > 0:
                            fh.readline()  # the header, written once
                        chunk = fh.read()
                    out.write(chunk)
                    if chunk and not chunk.endswith(b"\n"):
                        out.write(b"\n")
        written += 1
    return written


# --- pipeline runs ------------------------------------------------------------------------------


def pipeline(lake: str, data: str, log: str, timeout_s: float, incremental: bool = False) -> dict[str, Any]:
    """One measured ``cdp run`` (``--incremental``): wall, peak RSS, seconds per stage from ops.runs."""
    before = _run_ids(lake)
    load0 = load_average()
    m = cdp(["run", *(["--incremental"] if incremental else [])], lake, data, log, timeout_s)
    out = _measured(m, load0)
    runs = _new_runs(lake, before)
    out["stages_s"] = _stage_seconds(runs, PIPELINE_JOBS)
    out.update(_run_metrics(runs))
    return out


def _run_metrics(runs: pd.DataFrame) -> dict[str, Any]:
    """The match and golden metrics and the ingested rows of the last succeeded runs in ``runs``."""
    keep = {
        "match": ("incremental", "pairs", "records", "regenerated_records", "rescored_pairs", "clusters", "edges", "model_version"),
        "golden": ("mode", "full_reason", "persons_rebuilt"),
    }
    out: dict[str, Any] = {}
    for job, keys in keep.items():
        row = _job_row(runs, job)
        if row is not None:
            out[f"{job}_metrics"] = {k: _num(row["metrics"][k]) for k in keys if k in row["metrics"]}
    ingest = _job_row(runs, "ingest")
    if ingest is not None:
        out["ingest_rows"] = int(ingest["rows_in"])
    return out


def identity_map(lake: str) -> pd.Series:
    """golden.identity_map as record_key -> person_id."""
    df = _read_delta(os.path.join(lake, "golden", "identity_map"), ["record_key", "person_id"])
    if df is None:
        raise RuntimeError(f"{lake}: golden.identity_map was not written")
    return pd.Series(df["person_id"].to_numpy(), index=df["record_key"].to_numpy())


def id_changes(lake: str, exclude_runs: set[str]) -> dict[str, int]:
    """golden.id_changes counts per change type, of the runs not in ``exclude_runs``."""
    df = _read_delta(os.path.join(lake, "golden", "id_changes"), ["run_id", "change", "person_id"])
    if df is None:
        return {}
    df = df[~df["run_id"].isin(exclude_runs)]
    return {str(k): int(v) for k, v in df.groupby("change").size().sort_index().items()}


def _change_runs(lake: str) -> set[str]:
    df = _read_delta(os.path.join(lake, "golden", "id_changes"), ["run_id"])
    return set() if df is None else set(df["run_id"])


def accuracy(lake: str, ids: pd.Series, truth: pd.Series) -> dict[str, Any]:
    """Cluster metrics of person ids against the ground truth, over the delivered truth records."""
    uid = key_to_uid(lake, truth.index)
    uid = uid[~uid.index.duplicated()]
    keys = pd.Series(ids.index, index=ids.index)
    names = uid.reindex(ids.index).fillna("key:" + keys.astype(str))
    pred = pd.Series(ids.to_numpy(), index=pd.Index(names.to_numpy()))
    pred = pred[~pred.index.duplicated()]
    t = truth[truth.index.isin(pred.index)]
    s = cluster_metrics(pred, t)
    return {"precision": s.pairwise.precision, "recall": s.pairwise.recall, "f1": s.pairwise.f1, "bcubed_f1": s.bcubed.f1,
            "truth_records": int(len(t))}


def compare_runs(map1: pd.Series, map2: pd.Series) -> dict[str, Any]:
    """Stability of person ids from run 1 (``map1``) to run 2 (``map2``), both record_key -> person_id."""
    ids1 = pd.Index(map1.unique())
    live = ids1.isin(pd.Index(map2.unique()))
    common = map1.index.intersection(map2.index)
    same = int((map1.loc[common].to_numpy() == map2.loc[common].to_numpy()).sum())
    new = int((~map2.index.isin(map1.index)).sum())
    return {
        "records_run1": int(len(map1)), "records_run2": int(len(map2)),
        "persons_run1": int(len(ids1)), "persons_run2": int(map2.nunique()),
        "new_records": new,
        "new_share_of_run2": round(new / len(map2), 5) if len(map2) else None,
        "new_share_of_run1": round(new / len(map1), 5) if len(map1) else None,
        "person_ids_kept_share": round(float(live.mean()), 5) if len(ids1) else None,
        "records_same_person_id_share": round(same / len(map1), 5) if len(map1) else None,
        "run1_records_gone": int(len(map1) - len(common)),
    }


# --- parts ---------------------------------------------------------------------------------------


def part_generate_ingest(args: argparse.Namespace, parts: set[str]) -> dict[str, Any]:
    n = args.ingest_persons
    base = os.path.join(args.work, f"ingest-p{n}")
    gen_dir = os.path.join(base, "gen")
    out: dict[str, Any] = {}
    if "generate" in parts:
        runs = [generate(gen_dir, n, args.seed, 1, args.timeout, reuse=False) for _ in range(args.repeats)]
        out["generate"] = {"persons": n, "seed": args.seed, "runs": runs}
    else:
        generate(gen_dir, n, args.seed, 1, args.timeout)
    data = os.path.join(base, "data")
    if not os.path.isdir(data) or "generate" in parts:
        _fresh(data)
        land(gen_dir, data, [1], merge=True)
    lake = os.path.join(base, "lake")
    if "ingest" in parts or not os.path.isdir(os.path.join(lake, "bronze")):
        runs = []
        for rep in range(args.repeats if "ingest" in parts else 1):
            _fresh(lake)
            load0 = load_average()
            m = cdp(["ingest"], lake, data, os.path.join(base, f"ingest-{rep + 1}.log"), args.timeout)
            r = _measured(m, load0)
            row = _job_row(_new_runs(lake, set()), "ingest")
            if row is not None:
                r.update(rows_in=int(row["rows_in"]), rows_landed=int(row["rows_out"]), rows_quarantined=int(row["rows_quarantined"]))
                r["in_process_s"] = round(run_seconds(row) or 0.0, 2)
                r["rows_per_s"] = round(r["rows_in"] / m.wall_s, 1)
                if r["in_process_s"]:
                    r["rows_per_s_in_process"] = round(r["rows_in"] / r["in_process_s"], 1)
            runs.append(r)
            if r["error"]:
                break
        if "ingest" in parts:
            out["ingest"] = {"persons": n, "runs": runs}
    if "standardize" in parts:
        runs = []
        for rep in range(args.repeats):
            before = _run_ids(lake)
            load0 = load_average()
            m = cdp(["standardize"], lake, data, os.path.join(base, f"standardize-{rep + 1}.log"), args.timeout)
            r = _measured(m, load0)
            row = _job_row(_new_runs(lake, before), "standardize")
            if row is not None:
                records = int(row["metrics"].get("records", 0))
                events = int(row["metrics"].get("events", 0))
                r.update(records=records, events=events, in_process_s=round(run_seconds(row) or 0.0, 2))
                r["records_per_s"] = round(records / m.wall_s, 1)
                r["rows_per_s"] = round((records + events) / m.wall_s, 1)
                if r["in_process_s"]:
                    r["records_per_s_in_process"] = round(records / r["in_process_s"], 1)
            runs.append(r)
            if r["error"]:
                break
        out["standardize"] = {"persons": n, "runs": runs}
    return out


def part_stability(args: argparse.Namespace) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """c; returns the part's figures and the (lake, data) of the last full second run, for d."""
    n, k = args.stability_persons, args.stability_batches
    base = os.path.join(args.work, f"stability-p{n}")
    gen_dir = os.path.join(base, "gen")
    gen = generate(gen_dir, n, args.seed, k, args.timeout)
    truth = load_truth(gen_dir)
    shares = batch_shares(gen_dir)
    # the trailing deliveries whose share of the person records is closest to --stability-new-share
    new_batches = split_for_share(shares, args.stability_new_share)
    first, last = list(range(1, k - new_batches + 1)), list(range(k - new_batches + 1, k + 1))
    runs = []
    full_lake = None
    for rep in range(args.repeats):
        inc_lake, inc_data = os.path.join(base, "inc", "lake"), os.path.join(base, "inc", "data")
        full_lake, full_data = os.path.join(base, "full", "lake"), os.path.join(base, "full", "data")
        for p in (inc_lake, inc_data):
            _fresh(p)
        land(gen_dir, inc_data, first, args.merge_batches)
        r: dict[str, Any] = {"batches": k, "new_batches": new_batches, "new_share_estimated": round(sum(shares[-new_batches:]), 5)}
        r["run1"] = pipeline(inc_lake, inc_data, os.path.join(base, f"run1-{rep + 1}.log"), args.timeout)
        if r["run1"]["error"]:
            runs.append(r)
            break
        map1 = identity_map(inc_lake)
        r["run1"]["accuracy"] = accuracy(inc_lake, map1, truth)
        changes1 = _change_runs(inc_lake)
        _copy(inc_lake, full_lake)
        _copy(inc_data, full_data)
        maps = {}
        for mode, lake, data in (("incremental", inc_lake, inc_data), ("full", full_lake, full_data)):
            land(gen_dir, data, last, args.merge_batches)
            res = pipeline(lake, data, os.path.join(base, f"run2-{mode}-{rep + 1}.log"), args.timeout, incremental=mode == "incremental")
            if not res["error"]:
                maps[mode] = identity_map(lake)
                res.update(compare_runs(map1, maps[mode]))
                res["id_changes"] = id_changes(lake, changes1)
                res["accuracy"] = accuracy(lake, maps[mode], truth)
            r[mode] = res
        if len(maps) == 2:
            a, b = maps["incremental"], maps["full"]
            common = a.index.intersection(b.index)
            r["incremental_vs_full_same_person_id_share"] = round(
                float((a.loc[common].to_numpy() == b.loc[common].to_numpy()).mean()), 5
            ) if len(common) else None
        runs.append(r)
    part = {"persons": n, "seed": args.seed, "merged_batches": args.merge_batches, "generate": gen, "runs": runs}
    ok = runs and not runs[-1].get("full", {}).get("error", True)
    return part, ((full_lake, os.path.join(base, "full", "data")) if ok else None)


def pick_subjects(lake: str, truth: pd.Series, count: int, seed: int) -> list[str]:
    """``email:<value>`` of ``count`` distinct persons whose e-mail no other true person uses and
    golden gives to one person (erasure refuses a value several golden persons hold)."""
    ids = _read_delta(os.path.join(lake, "silver", "identifiers"), ["record_key", "id_type", "id_value"])
    identity = _read_delta(os.path.join(lake, "golden", "identity_map"), ["record_key", "person_id"])
    if ids is None or identity is None:
        raise RuntimeError(f"{lake}: silver.identifiers or golden.identity_map missing")
    ids = ids[(ids["id_type"] == "email") & ids["id_value"].notna()]
    uid = key_to_uid(lake, truth.index)
    ids = ids.assign(person=ids["record_key"].map(uid).map(truth), golden=ids["record_key"].map(identity.set_index("record_key")["person_id"]))
    ids = ids[ids["person"].notna()]
    persons_per_value = ids.groupby("id_value")["person"].nunique()
    golden_per_value = ids.groupby("id_value")["golden"].nunique()
    own = ids[(ids["id_value"].map(persons_per_value) == 1) & (ids["id_value"].map(golden_per_value) <= 1)]
    one = own.sort_values("id_value").groupby("person")["id_value"].first().sort_index()
    if len(one) < count:
        raise RuntimeError(f"only {len(one)} persons with an e-mail of their own; need {count}")
    rng = np.random.default_rng(seed)
    chosen = one.iloc[np.sort(rng.choice(len(one), size=count, replace=False))]
    return [f"email:{v}" for v in chosen.to_numpy()]


def _erase_once(base_lake: str, base_data: str, scratch: str, subjects: list[str], label: str, timeout_s: float) -> dict[str, Any]:
    lake, data = os.path.join(scratch, "lake"), os.path.join(scratch, "data")
    _copy(base_lake, lake)
    _copy(base_data, data)
    if len(subjects) == 1:
        verb = ["privacy", "erase", "--subject", subjects[0]]
    else:
        path = os.path.join(scratch, "subjects.txt")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(subjects) + "\n")
        verb = ["privacy", "erase", "--file", path]
    before = _run_ids(lake)
    load0 = load_average()
    log = os.path.join(os.path.dirname(scratch), f"erase-{label}.log")
    m = cdp(verb, lake, data, log, timeout_s)
    r = _measured(m, load0)
    r["subjects"] = len(subjects)
    printed = printed_summary(log, "privacy erase") or {}
    for k in ("outcome", "rows_removed", "persons", "records", "events", "files_rewritten", "scan_files", "scan_hits"):
        if k in printed:
            r[k] = printed[k]
    runs = _new_runs(lake, before)
    row = _job_row(runs, "privacy_erase")
    if row is not None:
        r["in_process_s"] = round(run_seconds(row) or 0.0, 2)
    # the re-resolving runs erasure starts (match, golden, segments); the rest is resolve, delete, vacuum, scan
    r["stages_s"] = _stage_seconds(runs, ("match", "golden", "segments"))
    r["verified"] = printed.get("outcome") == "verified"
    if not r["verified"] and "could not be verified" in m.log_tail(20):
        r["outcome"] = "scan found values"
    shutil.rmtree(scratch, ignore_errors=True)
    return r


def part_erase(args: argparse.Namespace, full_run: tuple[str, str] | None) -> dict[str, Any]:
    n = args.erase_persons
    base = os.path.join(args.work, f"erase-p{n}")
    os.makedirs(base, exist_ok=True)
    if full_run is not None:
        lake, data = full_run
        gen_dir = os.path.join(args.work, f"stability-p{n}", "gen")
        origin = "the lake after part c's full second run"
        built = None
    else:
        gen_dir = os.path.join(base, "gen")
        generate(gen_dir, n, args.seed, 1, args.timeout)
        lake, data = os.path.join(base, "base", "lake"), os.path.join(base, "base", "data")
        if not os.path.isdir(os.path.join(lake, "golden", "identity_map")):
            _fresh(lake)
            _fresh(data)
            land(gen_dir, data, [1], merge=True)
            built = pipeline(lake, data, os.path.join(base, "base-run.log"), args.timeout)
            if built["error"]:
                return {"persons": n, "error": f"full run failed: {built['error']}", "base_run": built}
        else:
            built = None
        origin = "its own full cdp run"
    truth = load_truth(gen_dir)
    subjects = pick_subjects(lake, truth, 1 + args.erase_batch, args.seed)
    single, batch = subjects[:1], subjects[1:]
    runs = []
    for rep in range(args.repeats):
        r = {
            "single": _erase_once(lake, data, os.path.join(base, "scratch"), single, f"single-{rep + 1}", args.timeout),
            "batch": _erase_once(lake, data, os.path.join(base, "scratch"), batch, f"batch-{rep + 1}", args.timeout),
        }
        runs.append(r)
    return {"persons": n, "seed": args.seed, "base": origin, "base_run": built, "batch_size": len(batch), "runs": runs}


def _split_generated(args: argparse.Namespace, gen_dir: str) -> tuple[dict[str, Any], dict[str, Any], list[int], list[int]]:
    """Part e's generated data in ``gen_dir`` (generated, or reused) and its split: the part's
    fields before its runs, the fields each run starts with, the first batches and the last ones
    (the incremental batch, the trailing batches closest to ``--new-share``)."""
    n, k = args.incremental_persons, args.incremental_batches
    gen = generate(gen_dir, n, args.seed, k, args.timeout)
    shares = batch_shares(gen_dir)
    new_batches = split_for_share(shares, args.new_share)
    head = {"persons": n, "seed": args.seed, "batches": k, "merged_batches": args.merge_batches, "generate": gen}
    run_head = {"new_batches": new_batches, "new_share_estimated": round(sum(shares[-new_batches:]), 5)}
    return head, run_head, list(range(1, k - new_batches + 1)), list(range(k - new_batches + 1, k + 1))


def part_incremental(args: argparse.Namespace, progress: Callable[[dict[str, Any]], None] = lambda part: None) -> dict[str, Any]:
    """Part e. ``progress`` gets the part as measured so far after every run (a long run that is cut
    off keeps what it measured); ``args.full`` false skips the full run over all of it (at 1,000,000
    persons two full runs do not fit in a session: the full run of the first part stands beside the
    incremental one, ``incremental_over_base``)."""
    base = os.path.join(args.work, f"incremental-p{args.incremental_persons}")
    gen_dir = os.path.join(base, "gen")
    head, run_head, first, last = _split_generated(args, gen_dir)
    truth = load_truth(gen_dir)
    runs: list[dict[str, Any]] = []
    part = {**head, "runs": runs}
    for rep in range(args.repeats):
        inc_lake, inc_data = _fresh(os.path.join(base, "inc", "lake")), _fresh(os.path.join(base, "inc", "data"))
        land(gen_dir, inc_data, first, args.merge_batches)
        r: dict[str, Any] = dict(run_head)
        runs.append(r)
        r["base"] = pipeline(inc_lake, inc_data, os.path.join(base, f"base-{rep + 1}.log"), args.timeout)
        progress(part)
        if r["base"]["error"]:
            break
        _incremental_after_base(args, base, gen_dir, last, r, truth, rep, lambda: progress(part))
        if rep + 1 < args.repeats:
            shutil.rmtree(os.path.join(base, "full", "lake"), ignore_errors=True)
    return part


def _incremental_after_base(args: argparse.Namespace, base: str, gen_dir: str, last: list[int], r: dict[str, Any],
                            truth: pd.Series, rep: int, progress: Callable[[], None]) -> None:
    """Land batches ``last`` beside the base run's and measure ``cdp run --incremental`` into
    ``r["incremental"]``, with the comparisons against the base run; then the full run unless
    ``args.full`` is false."""
    inc_lake, inc_data = os.path.join(base, "inc", "lake"), os.path.join(base, "inc", "data")
    map1 = identity_map(inc_lake)
    changes1 = _change_runs(inc_lake)
    land(gen_dir, inc_data, last, args.merge_batches)
    r["incremental"] = pipeline(inc_lake, inc_data, os.path.join(base, f"incremental-{rep + 1}.log"), args.timeout, incremental=True)
    map2 = None
    if not r["incremental"]["error"]:
        map2 = identity_map(inc_lake)
        r["incremental"].update(compare_runs(map1, map2))
        r["incremental"]["id_changes"] = id_changes(inc_lake, changes1)
        r["incremental"]["accuracy"] = accuracy(inc_lake, map2, truth)
        r["incremental_over_base"] = round(r["incremental"]["wall_s"] / r["base"]["wall_s"], 4)
    progress()
    if args.full:
        _full_beside(args, base, r, inc_data, map2, truth, rep)
    progress()


def landed_batches(data_dir: str) -> set[int]:
    """The generator batches (1-based) in the landing folders ``data_dir``, from the file names
    ``<stem>_part<a>-<b>of<K>.<ext>`` and ``<stem>_part<b>of<K>.<ext>`` that :func:`land` writes."""
    out: set[int] = set()
    for _root, _dirs, files in os.walk(data_dir):
        for f in files:
            m = re.search(r"_part(\d+)(?:-(\d+))?of\d+\.", f)
            if m:
                out.update(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    return out


def resume_base(lake: str, data: str, log_dir: str, timeout_s: float) -> dict[str, Any]:
    """The base run of part e, cut off (e.g. by the end of a session) after some of its stages
    succeeded, finished with one ``cdp <stage>`` process per stage left. Its measurement is composed:
    the seconds of the stages that had succeeded (ops.runs) plus the wall of the resumed processes;
    the peak RSS is the resumed processes' only. Refuses, naming the lake, when no stage or every
    stage had succeeded, or when the succeeded stages are not the first ones in order."""
    runs = _new_runs(lake, set())
    done = [job for job in PIPELINE_JOBS if _job_row(runs, job) is not None]
    if not done or done != list(PIPELINE_JOBS[:len(done)]) or len(done) == len(PIPELINE_JOBS):
        raise SystemExit(f"--resume-base: {lake} has succeeded stages {done or 'none'}; nothing to resume "
                         f"(the stages {', '.join(PIPELINE_JOBS)} must have succeeded up to some stage)")
    before_s = _stage_seconds(runs, done)
    load0 = load_average()
    walls, peak, error = {}, 0, None
    for job in PIPELINE_JOBS[len(done):]:
        m = cdp([job], lake, data, os.path.join(log_dir, f"base-resumed-{job}.log"), timeout_s)
        walls[job], peak = round(m.wall_s, 2), max(peak, m.peak_rss_bytes)
        error = _failure(m)
        if error:
            break
    out = {"wall_s": round(sum(before_s.values()) + sum(walls.values()), 2), "peak_rss_bytes": peak,
           "load_average": load0, "load_average_end": load_average(), "error": error,
           "resumed": {"after": done[-1], "stages_wall_s": walls,
                       "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}}
    runs = _new_runs(lake, set())
    out["stages_s"] = _stage_seconds(runs, PIPELINE_JOBS)
    out.update(_run_metrics(runs))
    return out


def part_incremental_resume(args: argparse.Namespace, progress: Callable[[dict[str, Any]], None] = lambda part: None) -> dict[str, Any]:
    """Part e with ``--resume-base``: the base run in ``--work`` was cut off after some stages; the
    stages left run (:func:`resume_base`), then the incremental batch, then the full run unless
    ``--no-full``. The landing folders must hold exactly the first batches the split gives."""
    base = os.path.join(args.work, f"incremental-p{args.incremental_persons}")
    gen_dir = os.path.join(base, "gen")
    inc_lake, inc_data = os.path.join(base, "inc", "lake"), os.path.join(base, "inc", "data")
    if not os.path.isdir(inc_lake) or not os.path.isdir(inc_data) or not os.path.isdir(gen_dir):
        raise SystemExit(f"--resume-base: {base} has no inc/lake, inc/data and gen of a cut-off base run; run part e")
    head, run_head, first, last = _split_generated(args, gen_dir)
    landed = landed_batches(inc_data)
    if landed != set(first):
        raise SystemExit(f"--resume-base: {inc_data} holds batches {sorted(landed)[:3]}..{sorted(landed)[-3:] if landed else []} "
                         f"({len(landed)}), not the first {len(first)} of {args.incremental_batches}")
    r: dict[str, Any] = dict(run_head)
    part = {**head, "runs": [r]}
    r["base"] = resume_base(inc_lake, inc_data, base, args.timeout)
    progress(part)
    if not r["base"]["error"]:
        _incremental_after_base(args, base, gen_dir, last, r, load_truth(gen_dir), 0, lambda: progress(part))
    return part


def _full_beside(args: argparse.Namespace, base: str, r: dict[str, Any], inc_data: str, map2: pd.Series | None,
                 truth: pd.Series, rep: int) -> None:
    """The full ``cdp run`` over exactly the files the incremental lake has landed, into ``r["full"]``,
    with its accuracy, its clusters against the incremental run's (``map2``) and the time ratio."""
    full_lake, full_data = _fresh(os.path.join(base, "full", "lake")), os.path.join(base, "full", "data")
    _copy(inc_data, full_data)
    r["full"] = pipeline(full_lake, full_data, os.path.join(base, f"full-{rep + 1}.log"), args.timeout)
    full, inc = r["full"], r.get("incremental") or {}
    if map2 is not None and not inc.get("error") and not full["error"]:
        full_map = identity_map(full_lake)
        full["accuracy"] = accuracy(full_lake, full_map, truth)
        agree = cluster_metrics(map2, full_map)  # the full run's clusters as the reference
        r["incremental_vs_full_clusters"] = {"pairwise_f1": agree.pairwise.f1, "bcubed_f1": agree.bcubed.f1}
        inc_s, full_s = inc.get("wall_s"), full.get("wall_s")
        if inc_s and full_s:
            r["incremental_over_full"] = round(inc_s / full_s, 4)


def part_incremental_full_only(args: argparse.Namespace, last: dict[str, Any] | None,
                               progress: Callable[[dict[str, Any]], None] = lambda part: None) -> dict[str, Any]:
    """Part e with ``--full-only``: the full run beside the last e run in scale.json (``last``), whose
    base and incremental runs were measured before (e.g. with ``--no-full`` in an earlier session) and
    whose incremental lake and landing folders are still in ``--work``. The run gets ``full`` and the
    comparisons, and ``full_measured_separately`` with the time the full run started."""
    n = args.incremental_persons
    base = os.path.join(args.work, f"incremental-p{n}")
    inc_lake, inc_data = os.path.join(base, "inc", "lake"), os.path.join(base, "inc", "data")
    runs = (last or {}).get("runs") or []
    if not last or last.get("persons") != n or not runs or not runs[-1].get("incremental"):
        raise SystemExit(f"--full-only: scale.json has no incremental run at {n:,} persons to put a full run beside")
    r = runs[-1]
    if r["incremental"].get("error"):
        raise SystemExit(f"--full-only: the incremental run at {n:,} persons failed: {r['incremental']['error']}")
    if not os.path.isdir(os.path.join(inc_lake, "golden", "identity_map")) or not os.path.isdir(inc_data):
        raise SystemExit(f"--full-only: {inc_lake} (golden.identity_map) or {inc_data} is missing; run part e again")
    gen_dir = os.path.join(base, "gen")
    generate(gen_dir, n, last.get("seed", args.seed), last.get("batches", args.incremental_batches), args.timeout)
    r["full_measured_separately"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    last.setdefault("environment_base_and_incremental", last.get("environment"))
    _full_beside(args, base, r, inc_data, identity_map(inc_lake), load_truth(gen_dir), len(runs) - 1)
    progress(last)
    return last


# --- medians and output --------------------------------------------------------------------------


def median_tree(runs: list[Any]) -> Any:
    """Medians of every numeric leaf over the repeats (failed repeats left out); other leaves from the last."""
    ok = [r for r in runs if isinstance(r, dict) and not r.get("error")] or runs
    if not ok:
        return None
    first = ok[-1]
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for r in ok if isinstance(r, dict) for k in r))
        return {k: median_tree([r[k] for r in ok if isinstance(r, dict) and k in r]) for k in keys}
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        return first
    vals = [v for v in ok if isinstance(v, (int, float)) and not isinstance(v, bool)]
    med = statistics.median(vals)
    return int(med) if all(isinstance(v, int) for v in vals) and float(med).is_integer() else float(med)


def finish(part: dict[str, Any]) -> dict[str, Any]:
    part["repeats"] = len(part.get("runs", []))
    part["median"] = median_tree(part.get("runs", []))
    part["measured_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return part


def _load(path: str) -> dict[str, Any]:
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    return {}


def parse_parts(text: str) -> list[str]:
    out: list[str] = []
    for p in (x.strip() for x in text.split(",") if x.strip()):
        names = LETTERS.get(p, (p,))
        for name in names:
            if name not in PARTS:
                raise SystemExit(f"--parts: unknown {p!r}; expected letters a-e or names {', '.join(PARTS)}")
            out.append(name)
    return list(dict.fromkeys(out))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_generate"]:
        return _generate_child(argv[1:])
    ap = argparse.ArgumentParser(description="scale benchmarks on generated data (bench/results/scale.json)")
    ap.add_argument("--parts", default="a,b,c,d,e", help="letters a-e or names: " + ", ".join(PARTS))
    ap.add_argument("--persons", type=int, help="one N for every part (overrides the per-part sizes)")
    ap.add_argument("--ingest-persons", type=int, default=1_000_000, help="N for a and b")
    ap.add_argument("--stability-persons", type=int, default=100_000, help="N for c")
    ap.add_argument("--erase-persons", type=int, default=100_000, help="N for d")
    ap.add_argument("--incremental-persons", type=int, default=1_000_000, help="N for e")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--new-share", type=float, default=0.01, help="e: share of new records in the incremental batch")
    ap.add_argument("--stability-batches", type=int, default=20, help="c: deliveries the generator cuts the data into")
    ap.add_argument("--stability-new-share", type=float, default=0.10,
                    help="c: share of the person records the second run adds (the trailing deliveries closest to it)")
    ap.add_argument("--incremental-batches", type=int, default=100,
                    help="e: deliveries the generator cuts the data into; the trailing ones closest to --new-share "
                         "are the incremental batch (at 1,000,000 persons the last of 100 holds 1.48%%)")
    ap.add_argument("--erase-batch", type=int, default=100, help="d: subjects in the batch erasure")
    ap.add_argument("--no-merge-batches", dest="merge_batches", action="store_false",
                    help="land every generator part as its own file instead of one file per delivery")
    ap.add_argument("--no-full", dest="full", action="store_false",
                    help="e: skip the full run over all of it (the full run of the first part stands beside the incremental run)")
    ap.add_argument("--full-only", action="store_true",
                    help="e: only the full run over all of it, beside the last e run in scale.json at this N, whose "
                         "incremental lake is still in --work (an earlier --no-full run)")
    ap.add_argument("--resume-base", action="store_true",
                    help="e: finish a base run in --work that was cut off after some stages (one cdp process per stage "
                         "left), then the incremental batch and, unless --no-full, the full run")
    ap.add_argument("--work", default=os.path.join(BENCH, "work", "scale"))
    ap.add_argument("--results", default=os.path.join(BENCH, "results"))
    ap.add_argument("--docs", default=os.path.join(REPO, "docs", "benchmarks.md"))
    ap.add_argument("--timeout", type=float, default=6 * 3600, help="seconds per child process")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    if args.persons:
        args.ingest_persons = args.stability_persons = args.erase_persons = args.incremental_persons = args.persons
    args.work = os.path.abspath(args.work)
    path = os.path.join(args.results, "scale.json")
    t0 = time.perf_counter()
    if not args.report_only:
        from bench.run_all import environment

        parts = set(parse_parts(args.parts))
        doc = _load(path)
        doc.setdefault("parts", {})

        def save(name: str, part: dict[str, Any]) -> None:
            part["environment"] = env
            doc["parts"][name] = finish(part)
            doc["environment"] = env
            os.makedirs(args.results, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2, default=str)
            os.replace(tmp, path)

        env = environment()
        if parts & {"generate", "ingest", "standardize"}:
            for name, part in part_generate_ingest(args, parts).items():
                save(name, part)
        full_run = None
        if "stability" in parts:
            part, full_run = part_stability(args)
            save("stability", part)
        if "erase" in parts:
            reuse = full_run if args.erase_persons == args.stability_persons else None
            save("erase", part_erase(args, reuse))
        if "incremental" in parts:
            # one result per size: a run at another size keeps the last one as incremental-p<N>
            last = doc["parts"].get("incremental")
            if last and last.get("persons") != args.incremental_persons:
                doc["parts"][f"incremental-p{last.get('persons')}"] = doc["parts"].pop("incremental")
            if args.resume_base:
                save("incremental", part_incremental_resume(args, lambda part: save("incremental", part)))
            elif args.full_only:
                save("incremental", part_incremental_full_only(args, doc["parts"].get("incremental"),
                                                               lambda part: save("incremental", part)))
            else:
                save("incremental", part_incremental(args, lambda part: save("incremental", part)))
    from bench.run_all import write_outputs

    write_outputs(args.results, args.docs)
    print(f"scale done in {time.perf_counter() - t0:.0f} s; {os.path.relpath(path, REPO)}, {os.path.relpath(args.docs, REPO)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
