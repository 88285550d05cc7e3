"""Verification scan: do any bytes of an erased subject remain in any file we control?

Walks every file under the given roots (lake, landing folders, exports, the MLflow store) and looks
for the subject's values:

* Parquet files (table data and Delta checkpoints) are read with pyarrow; every string value,
  including those nested in structs, lists and maps (``_extra``, ``extensions``, the ``stats`` of a
  checkpoint's ``add`` actions), is lower-cased and searched. A *needle group* such as
  (given name, family name) counts as a hit only when all its needles occur in the same row, so a
  household member who shares the family name is not mistaken for the subject.
* Every other file (Delta JSON logs, CSV/NDJSON landing files, export files and manifests, the
  MLflow SQLite database and artifacts) is searched as bytes, decompressed when gzip/zstd, in
  UTF-8 and Latin-1; groups of several needles are checked per line.
* An MLflow store that is not a local folder (a tracking server, Databricks) is read through the
  MLflow API into a scratch folder and scanned there (:func:`scan_mlflow_store`).

The result holds counts and file paths only, never the values (it goes into privacy.audit), and
the files scanned under each root: a root that does not exist counts 0 files, so a caller can tell
a clean scan from one that read nothing (jobs/privacy/job.py ``unverified_reason``).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ScanResult:
    files: int = 0
    hits: int = 0
    hit_files: list[str] = field(default_factory=list)
    # root -> files scanned under it (a file under two roots counts for the first)
    root_files: dict[str, int] = field(default_factory=dict)
    # files that could not be decoded (a broken gzip/zstd stream, a Parquet file pyarrow cannot
    # read): their raw bytes are compressed, so a search of them proves nothing
    unreadable: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.hits == 0 and not self.unreadable


class UnreadableFile(Exception):
    """A file whose content cannot be decoded for the search."""


def _groups(groups: Iterable[Sequence[str]]) -> list[tuple[str, ...]]:
    """Lower-cased needle groups; a lone needle must be 5+ characters, a group member 2+."""
    out = set()
    for g in groups:
        needles = tuple(sorted({n.strip().lower() for n in g if n and n.strip()}))
        if not needles or any(len(x) < 2 for x in needles):
            continue
        if len(needles) == 1 and len(needles[0]) < 5:
            continue
        out.add(needles)
    return sorted(out)


def _string_leaves(arr, parents: np.ndarray | None):  # noqa: ANN001, ANN202
    """Yield (string array, row index per value) for every string leaf of an Arrow array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
        t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        yield arr, parents
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        yield arr, parents
    elif pa.types.is_struct(t):
        for i in range(t.num_fields):
            yield from _string_leaves(arr.field(i), parents)
    elif pa.types.is_map(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        off = np.asarray(arr.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        idx = np.repeat(np.arange(len(arr)), np.diff(off))
        p = idx if parents is None else parents[idx]
        children = [arr.keys, arr.items] if pa.types.is_map(t) else [arr.values]
        for child in children:
            if len(child) != len(idx):
                child = child.slice(int(off[0]), int(off[-1] - off[0]))
            yield from _string_leaves(child, p)


def _word_regex(needle: str) -> str:
    """RE2 pattern: the needle as a whole word (so 'jan' does not match inside 'jansen')."""
    import re

    return r"(?:^|[^\pL\pN])" + re.escape(needle) + r"(?:$|[^\pL\pN])"


_SEPARATORS = r"[^\pL\pN]+"


def first_words(needles: Sequence[str]) -> dict[str, list[str]]:
    """Needles by their first word (split as values are: RE2, letters and digits); '' = none."""
    import pyarrow as pa
    import pyarrow.compute as pc

    by_first: dict[str, list[str]] = {}
    for x, words in zip(needles, pc.split_pattern_regex(pa.array(list(needles), pa.large_string()), _SEPARATORS).to_pylist()):
        first = next((w for w in words if w), "")
        by_first.setdefault(first, []).append(x)
    return by_first


def row_mask(table, groups: Sequence[tuple[str, ...]]) -> np.ndarray:  # noqa: ANN001
    """Rows of an Arrow table where every needle of some group occurs (in any string value)."""
    mask_all = np.zeros(table.num_rows, dtype=bool)
    if table.num_rows == 0 or not groups:
        return mask_all
    found = needle_rows(table, sorted({x for g in groups for x in g}))
    for g in groups:
        mask_all |= group_rows(found, g, table.num_rows)
    return mask_all


def group_rows(found: dict[str, np.ndarray], group: Sequence[str], n: int) -> np.ndarray:
    """Rows holding every needle of ``group``, from :func:`needle_rows`."""
    mask = np.ones(n, dtype=bool)
    for x in group:
        mask &= found[x]
    return mask


def needle_rows(table, needles: Sequence[str]) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Per needle, the rows of an Arrow table where it occurs as a whole word in a string value.

    A needle occurs as a whole word (not inside a longer word), so the value holds the needle's
    first word as one of its words: values are split into words once (vectorised), looked up in
    the set of first words, and only the values holding one are searched for the needles that
    start with it. Cost grows with the data, not with data x needles (a batch erasure of 100
    subjects carries hundreds of needles).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    found = {x: np.zeros(n, dtype=bool) for x in needles}
    if n == 0 or not needles:
        return found
    by_first = first_words(needles)
    keyless = by_first.pop("", [])
    keys = sorted(by_first)
    key_set = pa.array(keys, type=pa.large_string())
    for col in table.columns:
        for leaf, parents in _string_leaves(col, None):
            if pa.types.is_large_binary(leaf.type) or pa.types.is_binary(leaf.type):
                try:
                    leaf = leaf.cast(pa.large_string())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    continue
            if len(leaf) == 0:
                continue
            low = pc.utf8_lower(leaf.cast(pa.large_string()))
            work: list[tuple[str, np.ndarray]] = []
            if keys:
                words = pc.split_pattern_regex(low, _SEPARATORS)
                flat = pc.list_flatten(words)
                if len(flat):
                    idx = pc.index_in(flat, value_set=key_set)
                    hit = np.flatnonzero(pc.is_valid(idx).to_numpy(zero_copy_only=False))
                    if len(hit):
                        owner = pc.list_parent_indices(words).to_numpy(zero_copy_only=False)[hit]
                        key_of = pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)[hit]
                        order = np.argsort(key_of, kind="stable")
                        key_of, owner = key_of[order], owner[order]
                        bounds = np.flatnonzero(np.diff(key_of)) + 1
                        for ks, rows in zip(np.split(key_of, bounds), np.split(owner, bounds)):
                            rows = np.unique(rows)
                            work.extend((x, rows) for x in by_first[keys[int(ks[0])]])
            if keyless:
                everything = np.arange(len(low))
                work.extend((x, everything) for x in keyless)
            for x, rows in work:
                candidates = low.take(pa.array(rows))
                m = pc.fill_null(pc.match_substring_regex(candidates, _word_regex(x)), False).to_numpy(zero_copy_only=False)
                if not m.any():
                    continue
                at = rows[np.nonzero(m)[0]]
                found[x][at if parents is None else parents[at]] = True
    return found


def _parquet_hits(path: str, groups: list[tuple[str, ...]]) -> int:
    import pyarrow.parquet as pq

    return int(row_mask(pq.read_table(path), groups).sum())


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise UnreadableFile(f"gzip: {exc}") from None
    if data[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        out, rest = [], data
        while rest:  # frame by frame: concatenated frames are one valid stream
            frame = zstandard.ZstdDecompressor().decompressobj()
            try:
                out.append(frame.decompress(rest))
            except zstandard.ZstdError as exc:
                raise UnreadableFile(f"zstd: {exc}") from None
            if not frame.eof:
                raise UnreadableFile("zstd: the stream ends inside a frame")
            rest = frame.unused_data
        return b"".join(out)
    return data


def byte_forms(needle: str) -> set[bytes]:
    """The byte spellings a file may hold a (lower-cased) needle in: UTF-8 and Latin-1."""
    return {needle.encode("utf-8"), needle.encode("latin-1", errors="ignore")} - {b""}


def line_starts(data: bytes) -> list[int]:
    """Offset of each line's first byte (lines as ``data.split(b"\\n")`` gives them)."""
    import re

    return [0, *(m.end() for m in re.finditer(b"\n", data))]


# bytes that continue a word: a needle next to one is inside a longer word (ASCII letters and
# digits, and every byte of a multi-byte UTF-8 or a Latin-1 letter)
_WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") | frozenset(range(0x80, 0x100))


class TextNeedles:
    """Every needle of some groups found in lower-cased bytes in one pass (Aho-Corasick).

    A batch erasure of 100 subjects carries hundreds of needles; searching a large landing file
    once per needle (as a substring test, then a regex) cost minutes per file. The automaton
    (pyahocorasick) holds each needle's UTF-8 and Latin-1 spellings, read as Latin-1 text, which
    maps every byte to one character, so offsets are byte offsets. Built once per scan.
    """

    def __init__(self, groups: Sequence[Sequence[str]]) -> None:
        import ahocorasick

        self.groups = [tuple(g) for g in groups]
        owners: dict[str, set[str]] = {}
        for g in self.groups:
            for x in g:
                for form in byte_forms(x):
                    owners.setdefault(form.decode("latin-1"), set()).add(x)
        self._automaton = ahocorasick.Automaton()
        for key, xs in owners.items():
            self._automaton.add_word(key, (len(key), tuple(sorted(xs))))
        self._empty = not owners
        if not self._empty:
            self._automaton.make_automaton()

    def offsets(self, low: bytes) -> dict[str, list[int]]:
        """Start offsets of each needle where it occurs as a whole word in ``low``."""
        out: dict[str, list[int]] = {}
        if self._empty or not low:
            return out
        n = len(low)
        for end, (length, xs) in self._automaton.iter(low.decode("latin-1")):
            start = end - length + 1
            if (start > 0 and low[start - 1] in _WORD_BYTES) or (end + 1 < n and low[end + 1] in _WORD_BYTES):
                continue
            for x in xs:
                out.setdefault(x, []).append(start)
        return out

    def lines(self, low: bytes, found: dict[str, list[int]] | None = None) -> dict[tuple[str, ...], set[int]]:
        """Per group, the line numbers (from 1) of ``low`` that hold every needle of it
        (``found``: the offsets when already searched)."""
        import bisect

        found = self.offsets(low) if found is None else found
        starts = line_starts(low)
        line_of = {x: {bisect.bisect_right(starts, o) for o in at} for x, at in found.items()}
        out: dict[tuple[str, ...], set[int]] = {}
        for g in self.groups:
            at: set[int] | None = None
            for x in g:
                at = line_of.get(x, set()) if at is None else at & line_of.get(x, set())
                if not at:
                    break
            if at:
                out[g] = at
        return out

    def hits(self, low: bytes) -> int:
        """Occurrences of lone needles, plus lines holding every needle of a larger group."""
        found = self.offsets(low)
        if not found:
            return 0
        hits = sum(len(found.get(g[0], ())) for g in self.groups if len(g) == 1)
        if any(len(g) > 1 and all(x in found for x in g) for g in self.groups):
            hits += sum(len(v) for g, v in self.lines(low, found=found).items() if len(g) > 1)
        return hits


def _text_hits(path: str, needles: TextNeedles) -> int:
    return needles.hits(_read_bytes(path).lower())


def scan_for_values(roots: Sequence[str], groups: Iterable[Sequence[str]]) -> ScanResult:
    """Search every file under ``roots`` for the needle groups; see the module docstring."""
    result = ScanResult()
    needle_groups = _groups(groups)
    text_needles = TextNeedles(needle_groups)
    seen: set[str] = set()
    for root in roots:
        if not root:
            continue
        result.root_files.setdefault(root, 0)
        if not os.path.exists(root):
            continue
        walker = [(os.path.dirname(root), [], [os.path.basename(root)])] if os.path.isfile(root) else os.walk(root)
        for folder, _dirs, files in walker:
            for name in files:
                path = os.path.realpath(os.path.join(folder, name))
                if path in seen:
                    continue
                seen.add(path)
                result.files += 1
                result.root_files[root] += 1
                if not needle_groups:
                    continue
                try:
                    if name.endswith(".parquet"):
                        try:
                            hits = _parquet_hits(path, needle_groups)
                        except Exception as exc:  # noqa: BLE001 - pyarrow's errors vary by damage
                            raise UnreadableFile(f"parquet: {exc}") from None
                    else:
                        hits = _text_hits(path, text_needles)
                except UnreadableFile:
                    result.unreadable.append(path)
                    continue
                if hits:
                    result.hits += hits
                    result.hit_files.append(path)
    return result


def _pages(fetch):  # noqa: ANN001, ANN202
    """Every item of a paged MLflow search (``fetch(page_token)`` returns a PagedList)."""
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def scan_mlflow_store(
    uri: str,
    groups: Iterable[Sequence[str]],
    scratch: str,
    label: str | None = None,
    experiments: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
) -> ScanResult:
    """Search an MLflow tracking store through its API: for a store that is not a local folder (a
    tracking server, Databricks), which :func:`scan_for_values` cannot walk.

    Everything the store holds for us is written into ``scratch`` and scanned as files: per
    experiment its name and tags; per run (deleted ones too) its name, parameters, tags and metric
    names, and its artifacts (downloaded); per registered model and version their descriptions and
    tags. ``experiments`` and ``models`` (names) limit the scan to what the CDP writes
    (``mlflow.experiment``, ``match.model.name``): a shared workspace holds other teams' runs,
    which are neither ours to read nor to download; None scans every one. ``hit_files`` name the
    store (``label``, default the URI) and what held the value, not the scratch copy.
    """
    import json

    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    names: dict[str, str] = {}

    def dump(what: str, obj: dict) -> None:
        path = os.path.join(scratch, "metadata", f"{len(names):06d}.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, ensure_ascii=False, sort_keys=True, default=str)
        names[os.path.realpath(path)] = what

    if experiments is None:
        exps = list(_pages(lambda t: client.search_experiments(view_type=ViewType.ALL, page_token=t)))
    else:
        exps = [e for e in (client.get_experiment_by_name(n) for n in dict.fromkeys(experiments)) if e is not None]
    for exp in exps:
        dump(f"experiment {exp.experiment_id}", {"name": exp.name, "tags": exp.tags})
        runs = _pages(lambda t, e=exp.experiment_id: client.search_runs([e], run_view_type=ViewType.ALL, max_results=1000, page_token=t))
        for run in runs:
            run_id = run.info.run_id
            dump(f"run {run_id}", {"name": run.info.run_name, "params": run.data.params, "tags": run.data.tags, "metrics": sorted(run.data.metrics)})
            if client.list_artifacts(run_id):
                target = os.path.join(scratch, "artifacts", run_id)
                os.makedirs(target, exist_ok=True)
                client.download_artifacts(run_id, "", target)
                for folder, _dirs, files in os.walk(target):
                    for f in files:
                        full = os.path.join(folder, f)
                        names[os.path.realpath(full)] = f"run {run_id} artifact {os.path.relpath(full, target)}"
    if models is None:
        registered = list(_pages(lambda t: client.search_registered_models(page_token=t)))
    else:
        registered = [m for m in (_registered_model(client, n) for n in dict.fromkeys(models)) if m is not None]
    for model in registered:
        dump(f"registered model {model.name}", {"description": model.description, "tags": model.tags})
        quoted = model.name.replace("\\", "\\\\").replace("'", "\\'")
        for v in _pages(lambda t, m=quoted: client.search_model_versions(f"name='{m}'", page_token=t)):
            dump(f"registered model {model.name} version {v.version}", {"description": v.description, "tags": v.tags})
    result = scan_for_values([scratch], groups)
    label = label or uri
    result.hit_files = [f"{label}: {names.get(p, p)}" for p in result.hit_files]
    result.unreadable = [f"{label}: {names.get(p, p)}" for p in result.unreadable]
    result.root_files = {label: result.files}
    return result


def _registered_model(client: Any, name: str) -> Any:
    """The registered model ``name``, or None when the store has none of that name."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException:
        return None
