"""Write the analyst notebooks (``notebooks/*.ipynb``) from the cell sources in this file.

The notebooks are stored without outputs, so a diff shows code only; edit the cells here and run

    .venv/bin/python notebooks/build.py          # (re)write the .ipynb files
    .venv/bin/python notebooks/build.py --check  # exit 1 when a stored notebook differs from this file

tests/test_notebooks.py executes a copy of every notebook on a generated lake. Cells tagged
``summary`` print one JSON line of key figures; the test reads it for its value checks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# --- shared first cells ------------------------------------------------------------------------

PARAMETERS = '''\
# Parameters: where the lake and the landing data are. `make demo` writes ./lakehouse and ./data/sample.
import os
from pathlib import Path


def find_repo(start: Path) -> Path:
    """The repository root (the folder holding conf/local.yaml), from wherever the notebook runs."""
    for folder in (start, *start.parents):
        if (folder / "conf" / "local.yaml").is_file() and (folder / "jobs").is_dir():
            return folder
    return start


REPO = find_repo(Path.cwd().resolve())
LAKE_ROOT = Path(os.environ.get("CDP_LAKE_ROOT", "lakehouse"))
DATA_ROOT = Path(os.environ.get("CDP_DATA_ROOT", "data/sample"))
LAKE_ROOT = LAKE_ROOT if LAKE_ROOT.is_absolute() else REPO / LAKE_ROOT
DATA_ROOT = DATA_ROOT if DATA_ROOT.is_absolute() else REPO / DATA_ROOT
print(f"lake: {LAKE_ROOT}\\ndata: {DATA_ROOT}")
if not (LAKE_ROOT / "ops" / "runs" / "_delta_log").is_dir():  # every job writes its run there
    raise FileNotFoundError(f"no lake at {LAKE_ROOT}: run `make demo` (or `python -m jobs demo`) first, or set CDP_LAKE_ROOT")'''

HELPERS = '''\
# Reading Delta tables with delta-rs into pandas: no Spark, no JVM.
%matplotlib inline
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from deltalake import DeltaTable

pd.set_option("display.max_columns", 60)
pd.set_option("display.width", 160)


def table_path(address: str, root: Path | None = None) -> Path:
    """'golden.profiles' -> <lake>/golden/profiles (layout of jobs/common/schemas.py)."""
    layer, name = address.split(".", 1)
    return (root or LAKE_ROOT) / layer / name


def has_table(address: str, root: Path | None = None) -> bool:
    return (table_path(address, root) / "_delta_log").is_dir()


def read(address: str, version: int | None = None, root: Path | None = None) -> pd.DataFrame:
    """A Delta table as pandas, optionally as it was at an earlier version (time travel)."""
    dt = DeltaTable(str(table_path(address, root)), version=version)
    return dt.to_pandas()


def as_dict(value) -> dict:
    """Delta maps arrive in pandas as lists of (key, value) pairs; make them dicts."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return {}
    if isinstance(value, dict):
        return value
    return {k: v for k, v in value}'''


def _nb(cells: list[tuple[str, str] | tuple[str, str, list[str]]], title: str) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "title": title,
    }
    out = []
    for i, cell in enumerate(cells):
        kind, source = cell[0], cell[1]
        tags = list(cell[2]) if len(cell) > 2 else []  # type: ignore[misc]
        c = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        c["id"] = f"cell-{i:02d}"
        if tags:
            c.metadata["tags"] = tags
        out.append(c)
    nb.cells = out
    return nb


# --- 01 golden profiles --------------------------------------------------------------------------

NB01 = [
    ("md", """\
# 01 Golden profiles and households

One row of `golden.profiles` per real person: the surviving attributes with their provenance (which
source, record and survivorship rule each value came from), every known identifier, aggregates and
consent. `golden.households` ties persons to households. This notebook reads the Delta tables
directly with `deltalake` (no Spark) and shows:

1. counts: persons, source records, households; sources per person
2. the distribution of `record_count` (chart) and of household sizes (chart)
3. one profile with its provenance map and identifiers
4. the same profile as it was at an earlier Delta version (time travel)

Set `CDP_LAKE_ROOT` / `CDP_DATA_ROOT` to point it at another lake; the defaults are what `make demo` writes."""),
    ("code", PARAMETERS),
    ("code", HELPERS),
    ("md", "## Counts"),
    ("code", """\
profiles = read("golden.profiles")
identity = read("golden.identity_map")
households = read("golden.households")
members = households[households["relation"] == "household_member"]

n_persons = len(profiles)
n_records = len(identity)
n_households = profiles["household_id"].nunique()
counts = pd.Series(
    {
        "persons (golden.profiles)": n_persons,
        "source records (golden.identity_map)": n_records,
        "records per person (mean)": round(n_records / max(n_persons, 1), 2),
        "households": n_households,
        "persons in a household of 2+": int((profiles.groupby("household_id")["person_id"].transform("size") > 1).sum()),
        "persons without a household": int(profiles["household_id"].isna().sum()),
    },
    name="value",
    dtype=object,
)
counts.to_frame()"""),
    ("code", """\
# Sources per person: how many silos know each person, and which combinations are common.
profiles["n_sources"] = profiles["sources"].map(len)
sources_per_person = profiles["n_sources"].value_counts().sort_index().rename_axis("sources").to_frame("persons")
combinations = (
    profiles["sources"].map(lambda s: " + ".join(sorted(s))).value_counts().head(10).rename_axis("sources").to_frame("persons")
)
display(sources_per_person)
display(combinations)"""),
    ("md", "## How many source records make up a person\n\nA long tail is expected: most persons appear in one or two silos; a few loyal customers are everywhere."),
    ("code", """\
rc = profiles["record_count"].value_counts().sort_index()
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.bar(rc.index.astype(int), rc.values, color="#2a7ab9")
ax.set_xlabel("source records per person (record_count)")
ax.set_ylabel("persons")
ax.set_title("record_count distribution")
ax.set_xticks(rc.index.astype(int))
fig.tight_layout()
plt.show()"""),
    ("md", "## Household sizes\n\nA person with an address has a `household_id` (living alone is a household of one); persons without an address (anonymous web visitors, e-mail-only subscribers) have none."),
    ("code", """\
household_size = profiles.groupby("household_id")["person_id"].size()
sizes = household_size.value_counts().sort_index()
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.bar(sizes.index.astype(int), sizes.values, color="#d9822b")
ax.set_xlabel("persons in the household")
ax.set_ylabel("households")
ax.set_title("household sizes")
ax.set_xticks(sizes.index.astype(int))
fig.tight_layout()
plt.show()
print("relations in golden.households:", households["relation"].value_counts().to_dict())"""),
    ("md", """\
## One profile, with provenance and identifiers

We pick the person with the most source records (ties broken by person id, so the choice is stable).
Each surviving attribute carries its provenance: source, record key, the survivorship rule that
chose it, and the source timestamp."""),
    ("code", """\
SURVIVING = [
    "given_name", "initials", "name_particle", "family_name", "full_name", "gender", "birth_date",
    "email", "phone", "street", "house_number", "house_number_suffix", "postcode", "city", "country",
]
sample = profiles.sort_values(["record_count", "person_id"], ascending=[False, True]).iloc[0]
PERSON_ID = sample["person_id"]
prov = as_dict(sample["provenance"])
attributes = pd.DataFrame(
    [
        {
            "attribute": a,
            "value": sample[a],
            "source": (prov.get(a) or {}).get("source"),
            "rule": (prov.get(a) or {}).get("rule"),
            "record_key": (prov.get(a) or {}).get("record_key"),
            "source_updated_at": (prov.get(a) or {}).get("updated_at"),
        }
        for a in SURVIVING
        if sample[a] is not None and not (isinstance(sample[a], float) and np.isnan(sample[a]))
    ]
)
print(f"person {PERSON_ID}: {sample['record_count']} records from {', '.join(sample['sources'])}; household {sample['household_id']}")
attributes"""),
    ("code", """\
identifiers = pd.DataFrame(
    [{"id_type": k, "values": ", ".join(v)} for k, v in sorted(as_dict(sample["identifiers"]).items())]
)
display(identifiers)
# Its source records (golden.identity_map) and the other members of its household.
display(identity[identity["person_id"] == PERSON_ID][["record_key", "first_seen_run", "run_id"]])
display(profiles[profiles["household_id"] == sample["household_id"]][["person_id", "full_name", "city", "record_count"]])
aggregates = ["orders_count", "total_revenue", "rfm_cell", "email_opens", "page_views", "consent_email", "consent_sms"]
sample[aggregates].to_frame("value")"""),
    ("md", """\
## Time travel: the profile as it was at an earlier version

Every write to a Delta table is a new version; older versions stay readable until they are vacuumed
(erasure purges history on purpose). `DeltaTable(path, version=n)` or `dt.load_as_version(n)` (a
version number or a timestamp) reads the table as it was. On the command line the same is
`cdp profile --id person_id:<id> --as-of 2026-11-01`.

After a single `cdp run` the table has one version with data; run the pipeline again on new or
changed source files (`cdp run --incremental`) and the versions below show how profiles changed."""),
    ("code", """\
dt = DeltaTable(str(table_path("golden.profiles")))
history = pd.DataFrame(dt.history())
cols = [c for c in ("version", "timestamp", "operation", "operationMetrics") if c in history.columns]
history = history[cols].sort_values("version")
history["timestamp"] = pd.to_datetime(history["timestamp"], unit="ms", utc=True)
LATEST_VERSION = dt.version()
history"""),
    ("code", """\
# Rows per readable version (a vacuumed version can no longer be read).
per_version = []
for v in history["version"]:
    try:
        old = DeltaTable(str(table_path("golden.profiles")), version=int(v)).to_pandas(columns=["person_id"])
    except Exception as exc:  # noqa: BLE001 - vacuumed or purged versions
        per_version.append({"version": int(v), "profiles": None, "note": type(exc).__name__})
        continue
    per_version.append({"version": int(v), "profiles": len(old), "has_sample_person": bool((old["person_id"] == PERSON_ID).any())})
pd.DataFrame(per_version)"""),
    ("code", """\
# The sample person at the earliest version that holds it, next to the current profile.
earlier = [r["version"] for r in per_version if r.get("has_sample_person")]
EARLY_VERSION = min(earlier) if earlier else LATEST_VERSION
then_dt = DeltaTable(str(table_path("golden.profiles")))
then_dt.load_as_version(int(EARLY_VERSION))
then = then_dt.to_pandas()
then_row = then[then["person_id"] == PERSON_ID].iloc[0]
compare = pd.DataFrame(
    {f"version {EARLY_VERSION}": then_row[SURVIVING + ["record_count", "run_id"]], f"version {LATEST_VERSION} (now)": sample[SURVIVING + ["record_count", "run_id"]]}
)
compare["changed"] = compare.iloc[:, 0].astype(str) != compare.iloc[:, 1].astype(str)
compare"""),
    ("md", "## Key figures\n\nOne JSON line (the test suite checks these against the tables)."),
    ("code", """\
summary = {
    "profiles": n_persons,
    "records": n_records,
    "households": int(n_households),
    "sample_person": PERSON_ID,
    "latest_version": int(LATEST_VERSION),
    "early_version": int(EARLY_VERSION),
    "max_record_count": int(profiles["record_count"].max()),
}
print(json.dumps(summary))""", ["summary"]),
]

# --- 02 match quality --------------------------------------------------------------------------

NB02 = [
    ("md", """\
# 02 Match quality

How well does the Fellegi-Sunter model separate matches from non-matches, and why does a pair get
its score? This notebook reads `match.pairs` (every scored candidate pair with per-comparison levels
and weights), `match.clusters`, the registered model from the MLflow store under `<lake>/_mlflow`,
and, on generated data, the ground truth under `<data>/ground_truth/records.csv`:

1. the match-weight distribution (chart)
2. m and u per comparison level of the registered model (chart)
3. the cluster-size distribution (chart)
4. precision and recall against the threshold, against ground truth (chart)
5. examples that explain a score: levels and weights per comparison that add up to the match weight"""),
    ("code", PARAMETERS),
    ("code", HELPERS),
    ("code", """\
import math

import yaml

pairs = read("match.pairs")
clusters = read("match.clusters")
records = read("silver.records")[["record_key", "source", "source_id"]]
match_conf = yaml.safe_load((REPO / "conf" / "match.yaml").read_text(encoding="utf-8")) or {}
THRESHOLD = float(match_conf.get("threshold_probability", 0.9))
print(f"{len(pairs):,} scored pairs, {len(clusters):,} clustered records, {len(records):,} silver records; threshold {THRESHOLD}")
pairs["levels"] = pairs["levels"].map(as_dict)
pairs["weights"] = pairs["weights"].map(as_dict)
pairs[["record_key_l", "record_key_r", "match_weight", "match_probability", "blocking_rule", "model_version"]].head()"""),
    ("md", "## Match-weight distribution\n\nA good model gives two humps: non-matches far left, matches far right, few pairs in between. The dashed line is the configured threshold."),
    ("code", """\
threshold_weight = math.log2(THRESHOLD / (1 - THRESHOLD))
fig, ax = plt.subplots(figsize=(9, 3.8))
ax.hist(pairs["match_weight"], bins=60, log=True, color="#2a7ab9")
ax.axvline(threshold_weight, color="k", linestyle="--", label=f"threshold p={THRESHOLD} (w={threshold_weight:.1f})")
ax.set_xlabel("match weight (log2 Bayes factor incl. prior)")
ax.set_ylabel("candidate pairs (log)")
ax.legend()
fig.tight_layout()
plt.show()
pairs.groupby("blocking_rule")["match_probability"].agg(pairs="size", above_threshold=lambda p: int((p >= THRESHOLD).sum()))"""),
    ("md", """\
## The registered model: m and u per comparison

`cdp match train` logs the model JSON as the MLflow artifact `model/model.json` and registers a
version (jobs/match/training.py). We ask the MLflow registry for the version that scored the pairs,
and fall back to the newest `model.json` in the artifact folder when the registry cannot be read.
`m` is the chance of a level among true matches, `u` among non-matches; the weight of a level is `log2(m/u)`."""),
    ("code", """\
import glob
import tempfile

MLFLOW_DIR = LAKE_ROOT / "_mlflow"
scored_versions = sorted(pairs["model_version"].dropna().unique().tolist())
model_doc, model_source = None, None
try:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{MLFLOW_DIR / 'mlflow.db'}", registry_uri=f"sqlite:///{MLFLOW_DIR / 'mlflow.db'}")
    name = (match_conf.get("model") or {}).get("name", "cdp-match")
    versions = client.search_model_versions(f"name='{name}'")
    chosen = [v for v in versions if str(v.version) in map(str, scored_versions)] or versions
    mv = max(chosen, key=lambda v: int(v.version))
    with tempfile.TemporaryDirectory(prefix="cdp-model-") as tmp:
        local = client.download_artifacts(mv.run_id, "model/model.json", tmp)
        model_doc = json.loads(Path(local).read_text(encoding="utf-8"))
    model_source = f"MLflow registry: {name} version {mv.version} (run {mv.run_id})"
except Exception as exc:  # noqa: BLE001 - fall back to the artifact files
    files = sorted(glob.glob(str(MLFLOW_DIR / "artifacts" / "**" / "model.json"), recursive=True), key=os.path.getmtime)
    if not files:
        raise FileNotFoundError(f"no registered model and no model.json under {MLFLOW_DIR}") from exc
    model_doc = json.loads(Path(files[-1]).read_text(encoding="utf-8"))
    model_source = f"artifact file {files[-1]} (registry: {type(exc).__name__})"
PRIOR = model_doc["prior"]
PRIOR_WEIGHT = math.log2(PRIOR / (1 - PRIOR))
print(model_source)
print(f"scored by version(s) {scored_versions}; prior {PRIOR:.3g} (weight {PRIOR_WEIGHT:.2f}); trained {model_doc.get('trained_at')}")
levels = pd.DataFrame(
    [
        {"comparison": c["name"], "level": lv, "label": label, "m": c["m"][lv], "u": c["u"][lv],
         "weight": (math.log2(c["m"][lv] / c["u"][lv]) if lv and c["m"][lv] and c["u"][lv] else 0.0)}
        for c in model_doc["comparisons"]
        for lv, label in enumerate(c["labels"])
    ]
)
levels.round(4)"""),
    ("code", """\
comps = model_doc["comparisons"]
ncols = 2
nrows = (len(comps) + ncols - 1) // ncols
fig, axes = plt.subplots(nrows, ncols, figsize=(11, 2.6 * nrows), squeeze=False)
for ax, c in zip(axes.flat, comps):
    labels = c["labels"][1:]  # level 0 is 'null': either side missing, Bayes factor 1
    y = np.arange(len(labels))
    ax.barh(y - 0.2, [v or 0 for v in c["m"][1:]], height=0.4, label="m", color="#2a7ab9")
    ax.barh(y + 0.2, [v or 0 for v in c["u"][1:]], height=0.4, label="u", color="#d9822b")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_title(c["name"], fontsize=9)
for ax in list(axes.flat)[len(comps):]:
    ax.axis("off")
axes.flat[0].legend(fontsize=7)
fig.suptitle("m and u per comparison level")
fig.tight_layout()
plt.show()"""),
    ("md", "## Cluster sizes\n\nAfter the over-merge guard. Clusters far above the household size of the data deserve a look (`guard` says when the guard split one)."),
    ("code", """\
per_cluster = clusters.groupby("cluster_id")["record_key"].size()
size_dist = per_cluster.value_counts().sort_index()
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.bar(size_dist.index.astype(int), size_dist.values, color="#4c9a2a")
ax.set_yscale("log")
ax.set_xlabel("records in the cluster")
ax.set_ylabel("clusters (log)")
ax.set_title("cluster-size distribution")
fig.tight_layout()
plt.show()
print("guard decisions:", clusters["guard"].fillna("none").value_counts().to_dict())"""),
    ("md", """\
## Precision and recall against the threshold (ground truth)

The generator writes which person every source record belongs to. A true pair is two records of the
same person. For each threshold, the pairs at or above it are the predicted links:

* precision = true links / predicted links
* recall = true links / all true pairs (pairs that blocking never proposed count as missed)

The last row is the final clustering (probabilistic plus deterministic identifier links, after the
guard), judged the same way on the pairs it implies."""),
    ("code", """\
GROUND_TRUTH = DATA_ROOT / "ground_truth" / "records.csv"
truth = pd.read_csv(GROUND_TRUTH, dtype=str)
keyed = records.merge(truth, on=["source", "source_id"], how="left")
print(f"{keyed['person_id'].notna().sum():,} of {len(keyed):,} silver records have a ground-truth person; "
      f"the others (by source: {keyed[keyed['person_id'].isna()]['source'].value_counts().to_dict()}) are left out, "
      "e.g. anonymous cookies that never logged in")
person_of = keyed.dropna(subset=["person_id"]).set_index("record_key")["person_id"]
per_person = person_of.value_counts()
TRUE_PAIRS = int((per_person * (per_person - 1) // 2).sum())

judged = pairs[["record_key_l", "record_key_r", "match_probability", "match_weight"]].copy()
judged["truth_l"] = judged["record_key_l"].map(person_of)
judged["truth_r"] = judged["record_key_r"].map(person_of)
judged = judged.dropna(subset=["truth_l", "truth_r"])
judged["is_match"] = judged["truth_l"] == judged["truth_r"]
print(f"true pairs: {TRUE_PAIRS:,}; blocked and scored: {int(judged['is_match'].sum()):,} (blocking recall {judged['is_match'].sum() / max(TRUE_PAIRS, 1):.3f})")

rows = []
for t in [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]:
    predicted = judged[judged["match_probability"] >= t]
    tp = int(predicted["is_match"].sum())
    precision = tp / len(predicted) if len(predicted) else 1.0
    recall = tp / TRUE_PAIRS if TRUE_PAIRS else 1.0
    rows.append({"threshold": t, "predicted": len(predicted), "true_links": tp, "precision": precision, "recall": recall,
                 "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0})
pr = pd.DataFrame(rows)

# The final clusters, as pairs.
cl = clusters.assign(truth=clusters["record_key"].map(person_of)).dropna(subset=["truth"])
pred_pairs = int((cl.groupby("cluster_id").size().pipe(lambda s: s * (s - 1) // 2)).sum())
both = cl.groupby(["cluster_id", "truth"]).size()
tp_clusters = int((both * (both - 1) // 2).sum())
cluster_precision = tp_clusters / pred_pairs if pred_pairs else 1.0
cluster_recall = tp_clusters / TRUE_PAIRS if TRUE_PAIRS else 1.0
pr_table = pd.concat([pr, pd.DataFrame([{"threshold": "clusters", "predicted": pred_pairs, "true_links": tp_clusters,
                                          "precision": cluster_precision, "recall": cluster_recall,
                                          "f1": 2 * cluster_precision * cluster_recall / (cluster_precision + cluster_recall) if cluster_precision + cluster_recall else 0.0}])],
                     ignore_index=True)
pr_table.round(4)"""),
    ("code", """\
fig, ax = plt.subplots(figsize=(8, 3.8))
ax.plot(pr["threshold"], pr["precision"], marker="o", label="precision")
ax.plot(pr["threshold"], pr["recall"], marker="o", label="recall")
ax.plot(pr["threshold"], pr["f1"], marker=".", linestyle=":", label="F1")
ax.axvline(THRESHOLD, color="k", linestyle="--", linewidth=0.8, label=f"configured threshold {THRESHOLD}")
ax.scatter([THRESHOLD], [cluster_precision], marker="x", color="C0", label="clusters: precision")
ax.scatter([THRESHOLD], [cluster_recall], marker="x", color="C1", label="clusters: recall")
ax.set_xlabel("match probability threshold")
ax.set_ylim(0, 1.02)
ax.set_title("pairwise precision and recall against ground truth")
ax.legend(fontsize=8, loc="lower left")
fig.tight_layout()
plt.show()"""),
    ("md", """\
## Why did a pair get its score?

`match_weight = log2(prior / (1 - prior)) + sum(weights)`: the prior weight plus one weight per
comparison, each `log2(m/u)` of the level the pair reached (term-frequency adjusted where the
comparison asks for it; a missing value is level 0 with weight 0). Below: a sure match, a pair
close to the threshold, and a clear non-match, each with its levels and weights."""),
    ("code", """\
def explain(row) -> pd.DataFrame:
    names = [c["name"] for c in comps]
    labels = {c["name"]: c["labels"] for c in comps}
    out = pd.DataFrame(
        [{"comparison": n, "level": row["levels"].get(n), "label": labels[n][row["levels"][n]] if row["levels"].get(n) is not None else None,
          "weight": row["weights"].get(n)} for n in names]
    )
    total = pd.DataFrame([{"comparison": "(prior)", "level": None, "label": None, "weight": PRIOR_WEIGHT},
                          {"comparison": "= sum", "level": None, "label": None, "weight": PRIOR_WEIGHT + out["weight"].sum()}])
    return pd.concat([out, total], ignore_index=True)


ordered = judged.sort_values(["match_weight", "record_key_l", "record_key_r"]).reset_index(drop=True)
examples = {
    "sure match": ordered.iloc[-1],
    "near the threshold": ordered.iloc[(ordered["match_probability"] - THRESHOLD).abs().argsort().iloc[0]],
    "clear non-match": ordered.iloc[0],
}
show_cols = ["source", "full_name", "birth_date", "email", "phone", "postcode", "house_number", "city"]
silver_full = read("silver.records").set_index("record_key")
show_cols = [c for c in show_cols if c in silver_full.columns]
max_error = 0.0
for title, ex in examples.items():
    row = pairs[(pairs["record_key_l"] == ex["record_key_l"]) & (pairs["record_key_r"] == ex["record_key_r"])].iloc[0]
    table = explain(row)
    max_error = max(max_error, abs(table["weight"].iloc[-1] - row["match_weight"]))
    print(f"{title}: match_weight {row['match_weight']:.3f}, probability {row['match_probability']:.4f}, "
          f"same person in ground truth: {bool(ex['is_match'])}")
    display(silver_full.loc[[row["record_key_l"], row["record_key_r"]], show_cols])
    display(table.round(3))
print(f"largest difference between prior + sum(weights) and match_weight: {max_error:.2e}")"""),
    ("md", "## Key figures"),
    ("code", """\
summary = {
    "pairs": int(len(pairs)),
    "true_pairs": TRUE_PAIRS,
    "precision_recall": {str(r["threshold"]): [float(r["precision"]), float(r["recall"])] for r in pr.to_dict("records")},
    "clusters": [float(cluster_precision), float(cluster_recall)],
    "explain_max_error": float(max_error),
    "comparisons": [c["name"] for c in comps],
}
print(json.dumps(summary))""", ["summary"]),
]

# --- 03 data quality -----------------------------------------------------------------------------

NB03 = [
    ("md", """\
# 03 Data quality per source

What each silo sends, and how clean it is:

1. completeness, validity and placeholder rate per source and column (`silver.dq_metrics`; heatmaps)
2. why rows were quarantined at landing, per source (`bronze._quarantine`; bar chart)
3. the run log (`ops.runs`): every job run, its duration and row counts, and the
   "nothing lost" check rows in = rows out + rows quarantined"""),
    ("code", PARAMETERS),
    ("code", HELPERS),
    ("code", """\
dq = read("silver.dq_metrics")
# Every batch of every source; the rates are recomputed over all batches (weighted by rows).
totals = dq.groupby(["source", "column"], as_index=False)[["rows", "filled", "valid", "placeholders"]].sum(min_count=1)
totals["completeness"] = totals["filled"] / totals["rows"]
has_check = dq.groupby(["source", "column"])["valid"].apply(lambda s: s.notna().any()).reset_index(name="checked")
totals = totals.merge(has_check, on=["source", "column"])
totals["validity"] = np.where(totals["checked"], totals["valid"] / totals["filled"].where(totals["filled"] > 0), np.nan)
totals["placeholder_rate"] = totals["placeholders"] / totals["rows"]
print(f"{dq['batch_id'].nunique()} batches, {dq['source'].nunique()} sources, {dq['column'].nunique()} columns")
totals.sort_values(["source", "column"]).round(3).head(20)"""),
    ("code", """\
def heatmap(values: pd.DataFrame, title: str, cmap: str, ax, vmax: float = 1.0) -> None:
    # Rates per source (rows) and column; blank where there is nothing to measure.
    im = ax.imshow(values.to_numpy(dtype=float), aspect="auto", cmap=cmap, vmin=0, vmax=vmax)
    ax.set_xticks(range(values.shape[1]), values.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(values.shape[0]), values.index, fontsize=8)
    for (i, j), v in np.ndenumerate(values.to_numpy(dtype=float)):
        if not np.isnan(v):
            r, g, b, _ = im.cmap(im.norm(v))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color=ink)
    ax.set_title(title)
    plt.colorbar(im, ax=ax, fraction=0.025)


completeness = totals.pivot(index="source", columns="column", values="completeness")
completeness = completeness[completeness.mean().sort_values(ascending=False).index]
fig, ax = plt.subplots(figsize=(13, 0.6 * len(completeness) + 2.5))
heatmap(completeness, "completeness: filled / rows", "viridis", ax)
fig.tight_layout()
plt.show()"""),
    ("code", """\
validity = totals.pivot(index="source", columns="column", values="validity").dropna(axis=1, how="all")
placeholder = totals.pivot(index="source", columns="column", values="placeholder_rate")
placeholder = placeholder.loc[:, (placeholder.fillna(0) > 0).any()]
fig, axes = plt.subplots(1, 2, figsize=(13, 0.6 * len(validity) + 2.5), gridspec_kw={"width_ratios": [max(validity.shape[1], 1), max(placeholder.shape[1], 1)]})
heatmap(validity, "validity: valid / filled", "RdYlGn", axes[0])
if placeholder.shape[1]:
    heatmap(placeholder, "placeholder rate: placeholders / rows", "Reds", axes[1], vmax=max(0.05, float(placeholder.max().max())))
else:
    axes[1].set_axis_off()
    axes[1].set_title("no placeholders found")
fig.tight_layout()
plt.show()"""),
    ("code", """\
# The weakest cells: what to raise with the owners of each silo.
weak = totals[(totals["validity"] < 0.95) | (totals["placeholder_rate"] > 0.01)]
weak.sort_values("validity")[["source", "column", "rows", "filled", "completeness", "validity", "placeholder_rate"]].round(3).head(15)"""),
    ("md", "## Quarantine: rows that could not be landed\n\nReasons are stable strings (jobs/ingest/readers.py); the detail after a colon is dropped to group them."),
    ("code", """\
if has_table("bronze._quarantine"):
    quarantine = read("bronze._quarantine")
else:
    quarantine = pd.DataFrame(columns=["_source", "reason", "_file", "_line"])
quarantine["reason_group"] = quarantine["reason"].astype(str).str.split(":").str[0]
by_reason = pd.crosstab(quarantine["_source"], quarantine["reason_group"]) if len(quarantine) else pd.DataFrame()
fig, ax = plt.subplots(figsize=(9, 3.8))
if len(by_reason):
    by_reason.plot(kind="bar", stacked=True, ax=ax, rot=0)
    ax.legend(fontsize=8, title="reason")
else:
    ax.text(0.5, 0.5, "no quarantined rows", ha="center", va="center", transform=ax.transAxes)
ax.set_xlabel("source")
ax.set_ylabel("quarantined rows")
ax.set_title("quarantine reasons per source")
fig.tight_layout()
plt.show()
by_reason"""),
    ("code", """\
# Where they are: file and line, for the people who fix the export (the raw text holds PII; not shown).
quarantine[["_source", "_file", "_line", "reason"]].sort_values(["_source", "_file", "_line"]).head(20)"""),
    ("md", "## The run log (`ops.runs`)"),
    ("code", """\
runs = read("ops.runs")
runs["seconds"] = (runs["ended_at"] - runs["started_at"]).dt.total_seconds()
runs = runs.sort_values("started_at")
per_job = runs.groupby(["job", "status"]).agg(
    runs=("run_id", "size"), last_started=("started_at", "max"), seconds_mean=("seconds", "mean"),
    rows_in=("rows_in", "sum"), rows_out=("rows_out", "sum"), rows_quarantined=("rows_quarantined", "sum"),
).reset_index()
display(per_job.round(1))
runs[["run_id", "job", "status", "started_at", "seconds", "rows_in", "rows_out", "rows_quarantined", "error"]].tail(15)"""),
    ("code", """\
# Nothing is lost silently: for ingest, rows in = rows out + rows quarantined.
ingest = runs[(runs["job"] == "ingest") & (runs["status"] == "succeeded")].copy()
ingest["balanced"] = ingest["rows_in"] == ingest["rows_out"] + ingest["rows_quarantined"].fillna(0)
display(ingest[["run_id", "rows_in", "rows_out", "rows_quarantined", "balanced"]])
last = runs.groupby("job")["seconds"].last().sort_values()
fig, ax = plt.subplots(figsize=(8, 3))
ax.barh(last.index, last.values, color="#777777")
ax.set_xlabel("seconds (last run)")
ax.set_title("job durations")
fig.tight_layout()
plt.show()"""),
    ("md", "## Key figures"),
    ("code", """\
summary = {
    "sources": sorted(dq["source"].unique().tolist()),
    "dq_rows": int(len(dq)),
    "completeness_range": [float(np.nanmin(completeness.to_numpy(dtype=float))), float(np.nanmax(completeness.to_numpy(dtype=float)))],
    "quarantined": int(len(quarantine)),
    "quarantined_by_source": {k: int(v) for k, v in quarantine["_source"].value_counts().items()},
    "runs": int(len(runs)),
    "failed_runs": int((runs["status"] == "failed").sum()),
    "ingest_balanced": bool(ingest["balanced"].all()),
}
print(json.dumps(summary))""", ["summary"]),
]

# --- 04 privacy request ---------------------------------------------------------------------------

NB04 = [
    ("md", """\
# 04 A privacy request, step by step

A data subject asks what we hold about them (right of access, GDPR art. 15/20) and then to be
forgotten (art. 17). Both go through the `cdp` command, as a compliance officer would run them:

    cdp privacy export --subject email:<address> --out access.json
    cdp privacy erase  --subject email:<address>
    cdp profile --id email:<address>

**This notebook never touches your lake.** It copies the lake and the landing data to a temporary
folder first and points every command at the copy with `--set lake.root=... --set data.root=...`
(erasure rewrites landing files and purges table history, so on the real lake it cannot be undone).
The commands start Spark, so each takes a little while."""),
    ("code", PARAMETERS),
    ("code", HELPERS),
    ("code", """\
import shutil
import subprocess
import sys
import tempfile

import atexit

WORK = Path(tempfile.mkdtemp(prefix="cdp-privacy-nb-"))
atexit.register(shutil.rmtree, WORK, True)  # removed with the kernel, also when a cell fails
LAKE_COPY, DATA_COPY = WORK / "lake", WORK / "data"
shutil.copytree(LAKE_ROOT, LAKE_COPY, ignore=shutil.ignore_patterns("_checkpoints"))
# The generator's answer key (ground_truth/) is no landing data: it names source ids, so the
# verification scan of the data folder would find the subject in it. Leave it out of the copy.
shutil.copytree(DATA_ROOT, DATA_COPY, ignore=shutil.ignore_patterns("ground_truth"))
assert LAKE_COPY.resolve() != LAKE_ROOT.resolve()
ORIGINAL_PROFILES = len(read("golden.profiles"))
print(f"working on a copy in {WORK} ({ORIGINAL_PROFILES} profiles in the original lake)")


def cdp(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    \"\"\"Run `cdp <args>` (python -m jobs) against the COPY of the lake and data.\"\"\"
    cmd = [sys.executable, "-m", "jobs", *args, "--config", str(REPO / "conf" / "local.yaml"),
           "--set", f"lake.root={LAKE_COPY}", "--set", f"data.root={DATA_COPY}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if check and done.returncode != 0:
        # the first error lines say why (a Java error comes long before the Python trace), then the end
        first = [line for line in done.stderr.splitlines() if "Error" in line or "Exception" in line][:12]
        raise RuntimeError(f"cdp {' '.join(args[:2])} failed ({done.returncode}):\\n" + "\\n".join(first) + f"\\n...\\n{done.stderr[-3000:]}")
    return done"""),
    ("md", "## The subject\n\nA person from `golden.profiles` with an e-mail address that no other person shares and a few source records."),
    ("code", """\
profiles = read("golden.profiles", root=LAKE_COPY)
email_owners = {}
for pid, ids in zip(profiles["person_id"], profiles["identifiers"]):
    for value in as_dict(ids).get("email", []):
        email_owners.setdefault(value, set()).add(pid)
candidates = profiles[
    profiles["email"].notna()
    & profiles["email"].map(lambda e: len(email_owners.get(e, ())) == 1)
    & (profiles["record_count"] >= 2)
].assign(typical=lambda d: (d["record_count"] - 3).abs()).sort_values(["typical", "person_id"])  # a typical person: ~3 records
subject_row = candidates.iloc[0] if len(candidates) else profiles[profiles["email"].notna()].sort_values("person_id").iloc[0]
SUBJECT = f"email:{subject_row['email']}"
PERSON_ID = subject_row["person_id"]
print(f"person {PERSON_ID}: {subject_row['record_count']} records in {', '.join(subject_row['sources'])}")
print(cdp("profile", "--id", SUBJECT).stdout)"""),
    ("md", "## Right of access: `cdp privacy export`\n\nOne JSON document with everything held about the subject, per layer and table. The subject is named in it only by a salted hash."),
    ("code", """\
ACCESS_FILE = WORK / "access.json"
done = cdp("privacy", "export", "--subject", SUBJECT, "--out", str(ACCESS_FILE))
print(done.stdout.strip().splitlines()[-1])
access = json.loads(ACCESS_FILE.read_text(encoding="utf-8"))
print("subject:", access["subject"], "\\nperson ids:", access["person_ids"])
layers = pd.DataFrame(
    [{"layer": layer, "table": table, "rows": len(rows)} for layer, tables in access["layers"].items() for table, rows in tables.items()]
)
layers"""),
    ("code", """\
# For example: the source records as standardised (silver.records), a few columns.
silver_rows = pd.DataFrame(access["layers"]["silver"].get("records", []))
silver_rows[[c for c in ["source", "source_id", "full_name", "email", "phone", "postcode", "city"] if c in silver_rows.columns]]"""),
    ("md", "## Right to be forgotten: `cdp privacy erase` (on the copy)\n\nErasure deletes by key in every layer, rewrites landing files, adds the subject to the suppression list, re-resolves identities, purges table history and finally scans every file for the subject's values."),
    ("code", """\
done = cdp("privacy", "erase", "--subject", SUBJECT)
erase_result = json.loads(done.stdout.strip().splitlines()[-1].split(": ", 1)[1])
{k: v for k, v in erase_result.items() if k not in ("tables", "versions")}"""),
    ("code", """\
removed = pd.Series(erase_result["tables"], name="rows removed").sort_values()
removed = removed[removed > 0]
fig, ax = plt.subplots(figsize=(8, 0.35 * len(removed) + 1.5))
ax.barh(removed.index, removed.values, color="#b93a2a")
ax.set_xlabel("rows removed")
ax.set_title("erasure: rows removed per table")
fig.tight_layout()
plt.show()"""),
    ("md", "## The audit trail: `privacy.audit`\n\nAppend-only; it holds the salted hash of the subject reference (the same as in the access document), the tables touched, rows removed and the outcome of the verification scan. No personal data."),
    ("code", """\
audit = read("privacy.audit", root=LAKE_COPY).sort_values("completed_at")
audit["tables_touched"] = audit["tables"].map(lambda t: sorted(k for k, v in as_dict(t).items() if v))
audit_view = audit[["request_id", "kind", "subject_hash", "completed_at", "rows_removed", "files_rewritten", "scan_files", "scan_hits", "outcome", "tables_touched"]]
display(audit_view)
erasure = audit[audit["kind"] == "erasure"].iloc[-1]
print("same hashed subject as the access document:", erasure["subject_hash"] == access["subject"]["reference"])
print("suppression entries:", len(read("privacy.suppression", root=LAKE_COPY)))"""),
    ("md", "## Afterwards: the profile is unknown\n\n`cdp profile` now fails with a clear message, the copy has one person fewer (or more records fell apart), and the original lake is untouched."),
    ("code", """\
after = cdp("profile", "--id", SUBJECT, check=False)
print("exit code:", after.returncode)
print(after.stderr.strip().splitlines()[-1])
PROFILE_UNKNOWN = after.returncode != 0 and "no person" in after.stderr
profiles_after = read("golden.profiles", root=LAKE_COPY)
print(f"profiles in the copy: {len(profiles)} before, {len(profiles_after)} after; person {PERSON_ID} still there: {bool((profiles_after['person_id'] == PERSON_ID).any())}")
print(f"profiles in the original lake: {len(read('golden.profiles'))} (was {ORIGINAL_PROFILES})")"""),
    ("md", "## Key figures, and clean-up of the copy"),
    ("code", """\
summary = {
    "subject_hash": access["subject"]["reference"],
    "person_id": PERSON_ID,
    "export_layers": sorted(access["layers"]),
    "outcome": str(erasure["outcome"]),
    "scan_hits": int(erasure["scan_hits"]),
    "rows_removed": int(erasure["rows_removed"]),
    "profile_unknown": bool(PROFILE_UNKNOWN),
    "profiles_copy_before": int(len(profiles)),
    "profiles_copy_after": int(len(profiles_after)),
    "profiles_original": int(len(read("golden.profiles"))),
}
print(json.dumps(summary))
shutil.rmtree(WORK, ignore_errors=True)""", ["summary"]),
]

NOTEBOOKS: dict[str, tuple[str, list]] = {
    "01_golden_profiles.ipynb": ("Golden profiles and households", NB01),
    "02_match_quality.ipynb": ("Match quality", NB02),
    "03_data_quality.ipynb": ("Data quality per source", NB03),
    "04_privacy_request.ipynb": ("A privacy request, step by step", NB04),
}


def render(name: str) -> str:
    title, cells = NOTEBOOKS[name]
    nb = _nb(cells, title)
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a stored notebook differs from build.py")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = HERE / name
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"stale notebooks (run notebooks/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
