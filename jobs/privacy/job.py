"""GDPR erasure, right of access and retention across every layer, with an audit trail.

Erasure (``cdp privacy erase``), for one subject or a file of them, processed as one batch:

1. Resolve: subject -> person ids (golden.identity_map via silver.identifiers) -> every record key
   of those persons, plus records that carry the identifier but are not resolved yet; their event
   rows (silver.events tied to their identifiers, cookies or record keys).
2. Delete by key, never by value (delta-rs writes a delete predicate into the log): every table of
   every layer is visited and rows are removed through its key columns (``_record_key``,
   ``record_key``, ``record_key_l/r``, ``event_key``, ``person_id``, ``quarantine_id``).
   Quarantined rows are found by record key and by the subject's values in their raw text.
3. Rewrite landing files (the exact lines and Parquet rows that landed the deleted rows, plus any
   line still holding the subject's values) and register the rewritten file as landed, so ingest
   does not land its other rows twice; rewrite export files the same way. Earlier access
   documents that hold the subject are removed whole.
4. Suppression: salted hashes of the subject's identifiers and record keys go to
   privacy.suppression; ingest quarantines rows that would bring the person back ("suppressed").
5. Re-resolve: clusters are recomputed from the remaining edges (so records that were only joined
   through the subject fall apart correctly), then golden profiles, households and segments. The
   golden run is incremental: it rebuilds the persons the deletes and the new clusters touch
   (:func:`golden_scope`), which gives the tables a full golden run would give.
6. Purge history of every touched table: vacuum with retention 0, checkpoint, expire old log
   entries (the Delta log of a deleted row's file could otherwise keep it). Tables are created
   without column statistics (jobs/common/delta.py), so no PII sits in min/max stats either.
7. Verify: scan every file under the scan roots (:func:`scan_roots`: lake root with tables, logs,
   checkpoints and the MLflow store, landing folders, access documents, segment exports also
   outside the lake, extra paths) for the subject's values (jobs/privacy/scan.py), and write
   privacy.audit: hashed subject reference, times, tables and versions touched, rows removed,
   files rewritten, scan outcome. No PII in the audit, the run log or the logs. A failed scan
   fails the command (PrivacyError) after recording it.

An identifier value that also belongs to a record of another, non-erased person (a shared family
e-mail address) stays with that person, and so does a namesake's name; they are counted, not
scanned for.

Right of access (``cdp privacy export``): :func:`access_document` for one subject, recorded as a
run, a request and an audit row. Retention (``cdp privacy retention``): :func:`expired_rows`,
then steps 2-7 without suppression.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.errors import DataError, PrivacyError
from jobs.common.keys import salted_hash
from jobs.common.runlog import record_run
from jobs.golden.lookup import parse_subject

from .scan import ScanResult, _groups, scan_for_values

if TYPE_CHECKING:
    from pyspark.sql import Column

    from jobs.common.context import Context

    from .scan import TextNeedles

log = logging.getLogger(__name__)

# Key columns by which rows are deleted, in the order they are tried.
KEY_COLUMNS = (S.RECORD_KEY, "record_key", "record_key_l", "record_key_r", "event_key", "person_id", "quarantine_id")
# Tables erasure never deletes from: the audit trail and suppression list hold hashes only.
KEEP_TABLES = {S.PRIVACY_AUDIT.address, S.PRIVACY_SUPPRESSION.address, S.PRIVACY_REQUESTS.address, S.OPS_RUNS.address, S.OPS_BATCHES.address}
ID_COLUMNS = ("email", "phone", "customer_number", "loyalty_card", "cookie_id", "device_id")
# Source fields whose values the scan looks for (identifiers and names).
NEEDLE_FIELDS = (*ID_COLUMNS, "given_name", "family_name", "full_name")
TMP_VALUE = f"{S.TMP}value"


@dataclass
class Subject:
    """What erasure found for a batch of requests (values stay in memory, never logged)."""

    record_keys: set[str] = field(default_factory=set)
    person_ids: set[str] = field(default_factory=set)
    event_keys: set[str] = field(default_factory=set)
    event_record_keys: set[str] = field(default_factory=set)
    identifiers: set[tuple[str, str]] = field(default_factory=set)
    needles: list[tuple[str, ...]] = field(default_factory=list)
    shared_values: int = 0


def subject_hash(salt: str, kind: str, value: str) -> str:
    return salted_hash(salt, "subject", f"{kind}:{value}")


# --- resolving ---------------------------------------------------------------------------------


def _read(ctx: "Context", address: str) -> DataFrame | None:
    return ctx.lake.read(address) if ctx.lake.exists(address) else None


def _keys_df(ctx: "Context", keys: Iterable[str], column: str = "record_key") -> DataFrame:
    from pyspark.sql.types import StringType, StructField, StructType

    rows = [(k,) for k in sorted(set(keys))]
    return ctx.spark.createDataFrame(rows, StructType([StructField(column, StringType())]))


# Identifier links that households share (a family e-mail address, a landline): resolution does
# not follow them, so erasing one person never takes a household member's records along.
SHAREABLE_LINKS = ("identifier:email", "identifier:phone")


def _expand(ctx: "Context", start: set[str]) -> set[str]:
    """Records linked to ``start`` by match edges, inside their clusters, not over shareable links."""
    clusters = _read(ctx, S.MATCH_CLUSTERS.address)
    edges = _read(ctx, S.MATCH_EDGES.address)
    if clusters is None or edges is None or not start:
        return set(start)
    ids = clusters.join(_keys_df(ctx, start), "record_key", "left_semi").select("cluster_id").distinct()
    members = clusters.join(ids, "cluster_id", "left_semi").select("record_key")
    local = (
        edges.where(~F.col("edge_type").isin(*SHAREABLE_LINKS))
        .join(members.withColumnRenamed("record_key", "record_key_l"), "record_key_l", "left_semi")
        .select("record_key_l", "record_key_r")
        .collect()
    )
    adjacency: dict[str, set[str]] = {}
    for e in local:
        adjacency.setdefault(e.record_key_l, set()).add(e.record_key_r)
        adjacency.setdefault(e.record_key_r, set()).add(e.record_key_l)
    seen = set(start)
    todo = list(start)
    while todo:
        for nxt in adjacency.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def resolve_subjects(ctx: "Context", subjects: Sequence[tuple[str, str]]) -> Subject:
    """Every record, person and event of the subjects (see the module docstring, step 1).

    A subject named by an identifier owns the records carrying it, and the records linked to those
    by accepted match edges other than shareable identifiers (see :data:`SHAREABLE_LINKS`); a subject
    named by person id owns every record of that person. Identifier values that other records also
    carry stay with them (``shared_values``) and are neither deleted through events nor suppressed.
    """
    found = Subject()
    identifiers = _read(ctx, S.SILVER_IDENTIFIERS.address)
    identity = _read(ctx, S.GOLDEN_IDENTITY_MAP.address)
    direct: set[str] = set()
    for kind, value in subjects:
        if kind == S.ID_PERSON:
            if identity is not None:
                rows = identity.where(F.col("person_id") == F.lit(value)).select("record_key").collect()
                found.record_keys.update(r.record_key for r in rows)
            found.person_ids.add(value)
            continue
        if identifiers is not None:
            rows = identifiers.where((F.col("id_type") == F.lit(kind)) & (F.col("id_value") == F.lit(value))).select("record_key").collect()
            direct.update(r.record_key for r in rows)
    found.record_keys |= _expand(ctx, direct)
    if not found.record_keys and not found.person_ids:
        return found
    if identity is not None:
        keys = _keys_df(ctx, found.record_keys)
        found.person_ids.update(r.person_id for r in identity.join(keys, "record_key").select("person_id").distinct().collect())
    attach_identifiers_and_events(ctx, found)
    return found


def attach_identifiers_and_events(ctx: "Context", found: Subject) -> None:
    """The identifiers only ``found.record_keys`` hold, and the events tied to them.

    An identifier another (remaining) record also carries is shared (``shared_values``): it stays,
    and so do the events tied to it, because they are that record's events too. Cookie ids tie
    web events to the cookie's record as well.
    """
    identifiers = _read(ctx, S.SILVER_IDENTIFIERS.address)
    if identifiers is None or not found.record_keys:
        return
    keys = _keys_df(ctx, found.record_keys)
    own = identifiers.join(keys, "record_key", "left_semi").select("id_type", "id_value").distinct()
    shared = (
        identifiers.join(keys, "record_key", "left_anti")
        .join(own, ["id_type", "id_value"], "left_semi")
        .select("id_type", "id_value")
        .distinct()
        .collect()
    )
    shared_set = {(r.id_type, r.id_value) for r in shared}
    found.shared_values += len(shared_set)
    found.identifiers |= {(r.id_type, r.id_value) for r in own.collect()} - shared_set
    events = _read(ctx, S.SILVER_EVENTS.address)
    if events is None or not found.identifiers:
        return
    ids = ctx.spark.createDataFrame(sorted(found.identifiers), "id_type string, id_value string")
    cookies = sorted(v for t, v in found.identifiers if t == S.ID_COOKIE)
    tied = events.join(ids, ["id_type", "id_value"], "left_semi")
    if cookies:
        tied = tied.unionByName(events.join(_keys_df(ctx, cookies, "cookie_id"), "cookie_id", "left_semi"))
    for r in tied.select("event_key", "record_key").distinct().collect():
        found.event_keys.add(r.event_key)
        if r.record_key:
            found.event_record_keys.add(r.record_key)


def _bronze_addresses(ctx: "Context") -> list[str]:
    return [t for t in ctx.lake.tables() if t.startswith("bronze.") and t != S.BRONZE_QUARANTINE.address]


def collect_needles(ctx: "Context", found: Subject, keep_values_of_remaining_rows: bool = False) -> None:
    """The values the scan must not find: identifiers, names, raw values as received, hashes.

    Values other, remaining records also hold stay theirs (a shared family e-mail, a namesake's
    full name). With ``keep_values_of_remaining_rows`` (retention: the rows removed are old, not a
    person's) so do values any remaining bronze row or event still holds (a live member's loyalty
    card on an expired receipt, a cookie's device id on newer page views).
    """
    single: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for kind, value in found.identifiers:
        single.add(value)
    records = _read(ctx, S.SILVER_RECORDS.address)
    keys = _keys_df(ctx, found.record_keys)
    if records is not None and found.record_keys:
        for r in records.join(keys, "record_key").select("given_name", "family_name", "full_name", *ID_COLUMNS).collect():
            for c in ID_COLUMNS:
                if r[c]:
                    single.add(r[c])
            if r.full_name and len(r.full_name.split()) >= 2:
                single.add(r.full_name)
            if r.given_name and r.family_name:
                pairs.add((r.given_name, r.family_name))
    # Values as received: identifier fields of every bronze row of the subject.
    for src in ctx.cfg.sources:
        address = f"bronze.{src.name}"
        if not ctx.lake.exists(address):
            continue
        wanted = {k: v for k, v in src.mapping.items() if k in NEEDLE_FIELDS}
        if not wanted:
            continue
        from jobs.ingest.job import bronze_column

        bronze = ctx.lake.read(address)
        subject_keys = found.record_keys | found.event_record_keys
        if not subject_keys:
            continue
        cols = {k: bronze_column(v) for k, v in wanted.items() if bronze_column(v) in bronze.columns}
        rows = bronze.join(_keys_df(ctx, subject_keys, S.RECORD_KEY), S.RECORD_KEY, "left_semi").select(*set(cols.values())).collect()
        for r in rows:
            for k, c in cols.items():
                v = r[c]
                if not v:
                    continue
                if k in ID_COLUMNS or k == "full_name":
                    single.add(v)
            g, fam = cols.get("given_name"), cols.get("family_name")
            if g and fam and r[g] and r[fam]:
                pairs.add((r[g], r[fam]))
    held = _values_held_elsewhere(ctx, found, single, keep_values_of_remaining_rows)
    found.shared_values += len(held - {v for _, v in found.identifiers})  # own identifiers are never held elsewhere
    single -= held
    if records is not None and pairs:
        names = ctx.spark.createDataFrame(sorted(pairs), "g string, f string")
        # Sources send the particle with the family name ('de Bruyn'); silver splits it off.
        family = F.lower(F.col("f"))
        same_name = (F.lower("given_name") == F.lower("g")) & (
            (F.lower("family_name") == family) | (F.lower(F.concat_ws(" ", "name_particle", "family_name")) == family)
        )
        others = (
            records.join(_keys_df(ctx, found.record_keys), "record_key", "left_anti")
            .join(names, same_name | (F.lower("full_name") == F.lower(F.concat_ws(" ", "g", "f"))))
            .select("g", "f")
            .distinct()
            .collect()
        )
        namesakes = {(r.g, r.f) for r in others}
        found.shared_values += len(namesakes)
        pairs -= namesakes
    needles = _groups([(v,) for v in single | identifier_hashes(single)] + [p for p in pairs])
    shared = _groups_held_elsewhere(records, ctx, found, needles)
    found.shared_values += len(shared)
    found.needles = [g for g in needles if g not in shared]


def _groups_held_elsewhere(records: DataFrame | None, ctx: "Context", found: Subject, groups: list[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """The needle groups that remaining rows match the way the scan matches (whole words, every
    needle of a group in one row).

    The exact comparisons above miss values held *inside* another record's: a record whose full
    name is only the family name ('van Dijk', a 'fam.' record) is held by every household member
    called '... van Dijk', and a given and family name pair may be spelled by another record's
    name and e-mail address. A golden profile spells more, from several records at once: at
    100,000 persons the pair ('sam', 'willem') of an erased subject was spelled by another
    person's profile with the e-mail address willem....@live.nl and a cat called Sam. So both
    the remaining silver records (every column, extensions too) and the profiles of the persons
    who stay are searched. Those groups stay with the remaining rows (``shared_values``), and the
    scan, which would find them there, does not look for them.
    """
    if not groups:
        return set()
    needles = sorted({x for g in groups for x in g})
    frames = []
    if records is not None:
        frames.append(records.join(_keys_df(ctx, found.record_keys), "record_key", "left_anti"))
    profiles = _read(ctx, S.GOLDEN_PROFILES.address)
    if profiles is not None:
        # not the profiles that hold a removed record (a retention run's live persons too): they
        # hold the very values being removed until the re-resolving rebuilds them
        leaving = _keys_df(ctx, found.person_ids, "person_id")
        identity = _read(ctx, S.GOLDEN_IDENTITY_MAP.address)
        if identity is not None:
            leaving = leaving.unionByName(
                identity.join(_keys_df(ctx, found.record_keys), "record_key", "left_semi").select("person_id")
            )
        frames.append(profiles.join(leaving, "person_id", "left_anti"))
    held: set[tuple[str, ...]] = set()
    for rest in frames:
        held |= _groups_in_rows(rest, groups, needles)
    return held


def _groups_in_rows(rest: DataFrame, groups: list[tuple[str, ...]], needles: list[str]) -> set[tuple[str, ...]]:
    """The groups some row of ``rest`` holds as the scan finds them (jobs/privacy/scan.py)."""
    from .scan import first_words, group_rows, needle_rows

    by_first = first_words(needles)
    if "" not in by_first:
        # only rows holding some needle's first word come to the driver (the same word split as
        # the scan's, over every value of the row; a row that slips through here keeps its
        # needle in the scan)
        words = F.split(F.lower(F.to_json(F.struct(*[F.col(f"`{c}`") for c in rest.columns]))), r"[^\p{L}\p{N}]+")
        rest = rest.where(F.arrays_overlap(words, F.array(*[F.lit(w) for w in sorted(by_first)])))
    table = rest.toArrow()
    if table.num_rows == 0:
        return set()
    hits = needle_rows(table, needles)
    return {g for g in groups if group_rows(hits, g, table.num_rows).any()}


def _values_held_elsewhere(ctx: "Context", found: Subject, values: set[str], remaining_rows: bool) -> set[str]:
    """Those of ``values`` that rows outside the ones being removed still hold (compared lower-cased).

    Always: identifiers and full names of other records. With ``remaining_rows`` also the mapped
    identifier and name fields of remaining bronze rows and the identifiers of remaining events.
    """
    if not values:
        return set()
    wanted = ctx.spark.createDataFrame(sorted({(v.strip().lower(),) for v in values}), f"{TMP_VALUE} string")
    probes: list[DataFrame] = []
    identifiers = _read(ctx, S.SILVER_IDENTIFIERS.address)
    if identifiers is not None:
        rest = identifiers.join(_keys_df(ctx, found.record_keys), "record_key", "left_anti")
        probes.append(rest.select(F.col("id_value").alias(TMP_VALUE)))
    records = _read(ctx, S.SILVER_RECORDS.address)
    if records is not None:
        rest = records.join(_keys_df(ctx, found.record_keys), "record_key", "left_anti")
        probes.append(rest.select(F.col("full_name").alias(TMP_VALUE)))
    if remaining_rows:
        events = _read(ctx, S.SILVER_EVENTS.address)
        if events is not None:
            rest = events.join(_keys_df(ctx, found.event_keys, "event_key"), "event_key", "left_anti")
            probes += [rest.select(F.col(c).alias(TMP_VALUE)) for c in ("id_value", "cookie_id", "login_customer_number")]
        from jobs.ingest.job import bronze_column

        gone = _keys_df(ctx, found.record_keys | found.event_record_keys, S.RECORD_KEY)
        for src in ctx.cfg.sources:
            address = f"bronze.{src.name}"
            if not ctx.lake.exists(address):
                continue
            bronze = ctx.lake.read(address)
            columns = sorted({bronze_column(v) for k, v in src.mapping.items() if k in NEEDLE_FIELDS} & set(bronze.columns))
            if columns:
                rest = bronze.join(gone, S.RECORD_KEY, "left_anti")
                probes += [rest.select(F.col(c).alias(TMP_VALUE)) for c in columns]
    if not probes:
        return set()
    union = functools.reduce(DataFrame.unionByName, probes)
    lowered = union.select(F.lower(F.trim(F.col(TMP_VALUE))).alias(TMP_VALUE))
    held = {r[0] for r in lowered.join(wanted, TMP_VALUE, "left_semi").distinct().collect()}
    return {v for v in values if v.strip().lower() in held}


# --- deleting ----------------------------------------------------------------------------------


def _quarantine_ids(ctx: "Context", found: Subject) -> set[str]:
    q = _read(ctx, S.BRONZE_QUARANTINE.address)
    if q is None:
        return set()
    keys = found.record_keys | found.event_record_keys
    ids: set[str] = set()
    if keys:
        ids.update(r.quarantine_id for r in q.join(_keys_df(ctx, keys, S.RECORD_KEY), S.RECORD_KEY, "left_semi").select("quarantine_id").collect())
    table = q.select("quarantine_id", "raw").toArrow()
    if table.num_rows and found.needles:
        from .scan import row_mask

        mask = row_mask(table.select(["raw"]), found.needles)
        qids = table.column("quarantine_id").to_pylist()
        ids.update(qids[i] for i in np.nonzero(mask)[0])
    return ids


def _landing_path(ctx: "Context", named: str) -> str:
    """Absolute path of a file named in bronze lineage (relative to data.root, or absolute)."""
    return named if os.path.isabs(named) else os.path.join(ctx.data_root, named)


def landing_lines(ctx: "Context", found: Subject, quarantine_ids: set[str]) -> dict[str, set[int]]:
    """file -> lines (rows for Parquet) that landed the subject's rows."""
    out: dict[str, set[int]] = {}
    raw = landing_lines_named(ctx, found, quarantine_ids)
    for named, lines in raw.items():
        out.setdefault(_landing_path(ctx, named), set()).update(lines)
    return out


def landing_lines_named(ctx: "Context", found: Subject, quarantine_ids: set[str]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    keys = found.record_keys | found.event_record_keys
    if keys:
        kdf = _keys_df(ctx, keys, S.RECORD_KEY)
        for address in _bronze_addresses(ctx):
            for r in ctx.lake.read(address).join(kdf, S.RECORD_KEY, "left_semi").select(S.FILE, S.LINE).collect():
                if r[S.FILE] and r[S.LINE]:
                    out.setdefault(r[S.FILE], set()).add(int(r[S.LINE]))
    if quarantine_ids:
        q = ctx.lake.read(S.BRONZE_QUARANTINE.address)
        for r in q.join(_keys_df(ctx, quarantine_ids, "quarantine_id"), "quarantine_id", "left_semi").select(S.FILE, S.LINE).collect():
            if r[S.FILE] and r[S.LINE]:
                out.setdefault(r[S.FILE], set()).add(int(r[S.LINE]))
    return out


def delete_everywhere(ctx: "Context", found: Subject, quarantine_ids: set[str]) -> dict[str, int]:
    """Delete the subject's rows from every table by key; table -> rows removed."""
    removed: dict[str, int] = {}
    by_column = {
        S.RECORD_KEY: found.record_keys | found.event_record_keys,
        "record_key": found.record_keys,
        "record_key_l": found.record_keys,
        "record_key_r": found.record_keys,
        "event_key": found.event_keys,
        "person_id": found.person_ids,
        "quarantine_id": quarantine_ids,
    }
    frames = {c: _keys_df(ctx, v, c) for c, v in by_column.items() if v}
    for address in ctx.lake.tables():
        if address in KEEP_TABLES:
            continue
        columns = set(ctx.lake.schema(address).fieldNames())
        total = 0
        for column in KEY_COLUMNS:
            if column not in columns or column not in frames:
                continue
            if address == S.BRONZE_QUARANTINE.address and column == S.RECORD_KEY:
                continue  # quarantine rows go by quarantine_id (found by key and by raw text)
            if address == S.SILVER_EVENTS.address and column == "record_key":
                continue  # events go by event_key
            total += ctx.lake.delete_keys(address, column, frames[column])
        if total:
            removed[address] = total
    return removed


# --- files -------------------------------------------------------------------------------------


def _rewrite_text(path: str, drop_lines: set[int], needles: "TextNeedles", keep_first: bool) -> int:
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    hit_lines = set(drop_lines).union(*needles.lines(data.lower()).values())
    kept: list[bytes] = []
    dropped = 0
    for number, line in enumerate(lines, start=1):
        if number in hit_lines and not (keep_first and number == 1) and line.strip():
            dropped += 1
            continue
        kept.append(line)
    if dropped:
        tmp = f"{path}.cdp-tmp"
        with open(tmp, "wb") as fh:
            fh.write(b"\n".join(kept))
        os.replace(tmp, path)
    return dropped


def _rewrite_parquet(path: str, drop_rows: set[int], needles: list[tuple[str, ...]]) -> int:
    import pyarrow.parquet as pq

    from .scan import row_mask

    table = pq.read_table(path)
    mask = row_mask(table, needles) if needles else np.zeros(table.num_rows, dtype=bool)
    for r in drop_rows:
        if 1 <= r <= table.num_rows:
            mask[r - 1] = True
    dropped = int(mask.sum())
    if dropped:
        import pyarrow as pa

        tmp = f"{path}.cdp-tmp"
        pq.write_table(table.filter(pa.array(~mask)), tmp)
        os.replace(tmp, path)
    return dropped


def rewrite_files(paths: Iterable[str], lines: dict[str, set[int]], needles: list[tuple[str, ...]], csv_header: bool = True) -> dict[str, int]:
    """Drop the subject's lines/rows from files; path -> lines dropped (only changed files)."""
    from .scan import TextNeedles

    text_needles = TextNeedles(needles)  # one automaton for every text file
    changed: dict[str, int] = {}
    for path in sorted(set(paths)):
        if not os.path.isfile(path) or path.endswith(".cdp-tmp"):
            continue
        drop = lines.get(path, set())
        if path.endswith(".parquet"):
            n = _rewrite_parquet(path, drop, needles)
        else:
            n = _rewrite_text(path, drop, text_needles, keep_first=csv_header and path.endswith(".csv"))
        if n:
            changed[path] = n
    return changed


def _files_under(root: str) -> list[str]:
    out = []
    if os.path.isfile(root):
        return [root]
    for folder, _dirs, files in os.walk(root):
        out.extend(os.path.join(folder, f) for f in files)
    return out


def register_rewritten(ctx: "Context", changed: Iterable[str], run_id: str) -> None:
    """A rewritten landing file is registered as landed, so ingest does not land it again."""
    from jobs.ingest.job import batch_id_for, discover_files, lineage_path

    owners: dict[str, str] = {}
    for src in ctx.cfg.sources:
        if src.format == "jdbc" or not src.location:
            continue
        try:
            files = discover_files(src, ctx.data_root)
        except DataError:
            continue
        for p in files:
            owners[os.path.abspath(p)] = src.name
    rows = []
    now = datetime.now(timezone.utc)
    for path in changed:
        source = owners.get(os.path.abspath(path))
        if source is None:
            continue
        with open(path, "rb") as fh:
            data = fh.read()
        checksum = hashlib.sha256(data).hexdigest()
        named = lineage_path(path, ctx.data_root)
        rows.append(
            {
                "batch_id": batch_id_for(source, named, len(data), checksum),
                "source": source,
                "path": named,
                "size": len(data),
                "checksum": checksum,
                "rows_read": 0,
                "rows_landed": 0,
                "rows_quarantined": 0,
                "watermark": None,
                "status": "landed",
                "run_id": run_id,
                "landed_at": now,
            }
        )
    if rows:
        ctx.lake.upsert_rows(S.OPS_BATCHES.address, rows, S.OPS_BATCHES.schema, ["batch_id"])


# --- re-resolving --------------------------------------------------------------------------------


def golden_scope(ctx: "Context", found: Subject) -> set[str]:
    """Record keys an incremental golden run after the deletes must treat as changed.

    The remaining records of every person who loses a record, and of the members of their
    households. The golden run's own diffs find the persons whose records, identifiers or events
    changed, but not these: the deleted records are gone from the identity map before and after
    (so they name no person), and a household member's address group changes although nothing of
    theirs did. Read before the deletes, which remove the rows that say who these persons are.
    """
    identity = _read(ctx, S.GOLDEN_IDENTITY_MAP.address)
    if identity is None or not (found.record_keys or found.person_ids):
        return set()
    from jobs.golden.households import RELATION_HOUSEHOLD

    keys = _keys_df(ctx, found.record_keys)
    persons = (
        identity.join(keys, "record_key", "left_semi").select("person_id")
        .unionByName(_keys_df(ctx, found.person_ids, "person_id"))
        .distinct()
    )
    households = _read(ctx, S.GOLDEN_HOUSEHOLDS.address)
    if households is not None:
        members = households.where(F.col("relation") == F.lit(RELATION_HOUSEHOLD)).select("person_id", "related_id")
        homes = members.join(persons, "person_id", "left_semi").select("related_id").distinct()
        persons = persons.unionByName(members.join(homes, "related_id", "left_semi").select("person_id")).distinct()
    rows = identity.join(persons, "person_id", "left_semi").join(keys, "record_key", "left_anti").select("record_key").collect()
    return {r.record_key for r in rows}


def reresolve(ctx: "Context", scope: set[str], golden_changed: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Re-resolve what the deleted records held together, as a full rerun over the rest would.

    With stored pairs and a registered model: an incremental match run with no new records. It
    rescores pairs whose term frequencies changed (the subject's values counted no more),
    regenerates the pairs of blocks that fell below ``max_block_size``, rewrites
    ``match.term_counts`` without the subject's values, and rebuilds edges and clusters. Without
    them: clusters from the remaining edges. Then golden profiles, households and segments.

    ``scope`` (:func:`golden_scope`) and ``golden_changed`` (the golden tables' versions before
    and after the deletes, jobs/golden/job.py ``output_versions``) make the golden run
    incremental: it rebuilds the persons the deletes and the re-clustering touched, which gives
    what a full golden run gives. When the golden tables were not as the last golden run left
    them before the deletes, the golden run falls back to a full run itself.
    """
    from jobs.match import training

    out: dict[str, Any] = {}
    if not (ctx.lake.exists(S.MATCH_EDGES.address) and ctx.lake.exists(S.SILVER_RECORDS.address)):
        return out
    if ctx.lake.exists(S.MATCH_PAIRS.address) and training.resolve_version(ctx) is not None:
        from jobs.match import job as match

        none = ctx.spark.createDataFrame([], "record_key string")
        out["match"] = match.run(ctx, incremental=True, new_keys=none)
    else:
        from jobs.match.connected_components import connected_components
        from jobs.match.guard import apply_guard

        m = ctx.cfg.match
        edges = ctx.lake.read(S.MATCH_EDGES.address)
        nodes = ctx.lake.read(S.SILVER_RECORDS.address).select("record_key")
        clusters = connected_components(edges, nodes, m.clustering, ctx.spark)
        guarded, _report = apply_guard(clusters, edges, m.guard, m.threshold_probability)
        run_id = f"privacy-{uuid.uuid4().hex[:8]}"
        guarded = guarded.withColumn("run_id", F.lit(run_id))
        ctx.lake.overwrite(S.MATCH_CLUSTERS.address, guarded.select(*S.MATCH_CLUSTERS.column_names).localCheckpoint())
    if ctx.lake.exists(S.GOLDEN_PROFILES.address) or ctx.lake.exists(S.GOLDEN_IDENTITY_MAP.address):
        from jobs.golden import job as golden

        out["golden"] = golden.run(ctx, affected_record_keys=_keys_df(ctx, scope), changed_outputs=golden_changed)
    if ctx.lake.exists(S.SEGMENT_MEMBERSHIP.address):
        from jobs.segments import job as segments

        out["segments"] = segments.run(ctx)
    return out


# --- the commands --------------------------------------------------------------------------------


def scan_roots(ctx: "Context") -> list[str]:
    """Every place erasure verification scans: the lake, the landing data, access documents,
    segment exports (an absolute export_dir may lie outside the lake), the MLflow store and the
    configured extra paths. Folders inside another root are scanned once (the scan dedups)."""
    roots = [ctx.lake_root, ctx.data_root, _access_dir(ctx), _export_root(ctx)]
    roots += [os.path.abspath(p) for p in ctx.cfg.privacy.scan_extra_paths]
    uri = ctx.cfg.mlflow.tracking_uri
    if uri and uri.startswith("sqlite:///"):
        roots.append(os.path.abspath(os.path.dirname(uri[len("sqlite:///") :]) or "."))
    elif uri and uri.startswith("file:"):
        roots.append(os.path.abspath(urlparse(uri).path))
    elif uri and "://" not in uri:
        roots.append(os.path.abspath(uri))  # a plain path is an MLflow file store
    return list(dict.fromkeys(roots))


def _access_dir(ctx: "Context") -> str:
    d = ctx.cfg.privacy.export_dir
    return d if os.path.isabs(d) else os.path.join(ctx.lake_root, d)


def _export_root(ctx: "Context") -> str:
    d = ctx.cfg.segments.export_dir
    return d if os.path.isabs(d) else os.path.join(ctx.lake_root, d)


def erase(ctx: "Context", subjects: Sequence[str], reason: str = "erasure") -> dict[str, Any]:
    """Erase subjects (``TYPE:VALUE`` each) from every layer and prove it; see the module docstring."""
    parsed = list(dict.fromkeys(parse_subject(s) for s in subjects))
    if not parsed:
        raise PrivacyError("privacy erase: got no subject; expected --subject TYPE:VALUE or --file FILE")
    salt = ctx.cfg.privacy.salt
    requested = datetime.now(timezone.utc)
    requests = [
        {"request_id": f"req-{uuid.uuid4().hex[:12]}", "kind": reason, "subject_hash": subject_hash(salt, k, v), "state": "received", "received_at": requested, "completed_at": None, "run_id": None}
        for k, v in parsed
    ]
    with record_run(ctx.lake, "privacy_erase", ctx.config_hash, ctx.parent_run_id) as run:
        for r in requests:
            r["run_id"] = run.run_id
        ctx.lake.upsert_rows(S.PRIVACY_REQUESTS.address, requests, S.PRIVACY_REQUESTS.schema, ["request_id"])
        found = resolve_subjects(ctx, parsed)
        run.stage(f"resolved {len(parsed)} subject(s): {len(found.person_ids)} persons, {len(found.record_keys)} records, {len(found.event_keys)} events")
        result = erase_found(ctx, found, run.run_id, suppress=True, request_ids=[r["request_id"] for r in requests])
        run.rows_in = len(found.record_keys) + len(found.event_keys)
        run.rows_out = result["rows_removed"]
        for k in ("rows_removed", "files_rewritten", "scan_files", "scan_hits", "persons", "records", "events", "shared_values_kept"):
            run.metric(k, result[k])
        done = datetime.now(timezone.utc)
        audit = []
        for r in requests:
            r.update(state="done" if result["outcome"] == "verified" else "failed", completed_at=done)
            audit.append(
                {
                    "request_id": r["request_id"],
                    "kind": reason,
                    "subject_hash": r["subject_hash"],
                    "requested_at": requested,
                    "completed_at": done,
                    "tables": result["tables"],
                    "versions": result["versions"],
                    "rows_removed": result["rows_removed"],
                    "files_rewritten": result["files_rewritten"],
                    "scan_files": result["scan_files"],
                    "scan_hits": result["scan_hits"],
                    "outcome": result["outcome"],
                    "run_id": run.run_id,
                }
            )
        ctx.lake.upsert_rows(S.PRIVACY_REQUESTS.address, requests, S.PRIVACY_REQUESTS.schema, ["request_id"])
        ctx.lake.append_rows(S.PRIVACY_AUDIT.address, audit, S.PRIVACY_AUDIT.schema)
        if result["outcome"] != "verified":
            raise PrivacyError(
                f"erasure of {len(parsed)} subject(s) could not be verified: the scan found {result['scan_hits']} "
                f"value(s) in {len(result['hit_files'])} file(s), first: {result['hit_files'][:3]}; expected none"
            )
    result["requests"] = [r["request_id"] for r in requests]
    result.pop("hit_files", None)
    return result


def erase_found(
    ctx: "Context", found: Subject, run_id: str, suppress: bool, request_ids: Sequence[str] = (), retention: bool = False
) -> dict[str, Any]:
    """Steps 2 to 7 of the module docstring for what :func:`resolve_subjects` found.

    ``retention`` removes old rows rather than a person: values remaining rows still hold are
    not scanned for (see :func:`collect_needles`).
    """
    from jobs.golden.job import output_versions, rebase_state

    collect_needles(ctx, found, keep_values_of_remaining_rows=retention)
    quarantine_ids = _quarantine_ids(ctx, found)
    lines = landing_lines(ctx, found, quarantine_ids)
    scope = golden_scope(ctx, found)
    golden_before = output_versions(ctx)
    removed = delete_everywhere(ctx, found, quarantine_ids)
    golden_after = output_versions(ctx)
    golden_changed = {a: (v, golden_after[a]) for a, v in golden_before.items() if golden_after[a] != v}
    # Landing files: the exact lines, plus any line that still holds the subject's values.
    landing = set(lines)
    from jobs.ingest.job import discover_files

    for src in ctx.cfg.sources:
        if src.format != "jdbc" and src.location:
            try:
                landing.update(os.path.abspath(p) for p in discover_files(src, ctx.data_root))
            except DataError:
                continue
    # Every other file under the data root too (files not yet ingested, side files).
    if os.path.isdir(ctx.data_root):
        landing.update(os.path.abspath(p) for p in _files_under(ctx.data_root))
    landing = {p for p in landing if os.path.abspath(p).startswith(ctx.data_root + os.sep)}
    changed = rewrite_files(landing, lines, found.needles) if ctx.cfg.privacy.landing_rewrite else {}
    register_rewritten(ctx, changed, run_id)
    changed.update(rewrite_files(_files_under(_export_root(ctx)) if os.path.isdir(_export_root(ctx)) else [], {}, found.needles))
    # Earlier access-request documents of the subject: the whole document is about them.
    access = _access_dir(ctx)
    if os.path.isdir(access) and found.needles:
        for path in sorted(_files_under(access)):
            if not scan_for_values([path], found.needles).clean:
                os.remove(path)
                changed[path] = 1
    if suppress:
        add_suppression(ctx, found, request_ids[0] if request_ids else run_id)
    if found.record_keys or found.person_ids or found.event_keys:
        reresolve(ctx, scope, golden_changed)  # events too: profiles aggregate them
    touched = set(removed) | {S.MATCH_CLUSTERS.address, S.MATCH_PAIRS.address, S.MATCH_EDGES.address, S.MATCH_TERM_COUNTS.address, S.MATCH_SKIPPED_BLOCKS.address, S.GOLDEN_IDENTITY_MAP.address, S.GOLDEN_PROFILES.address, S.GOLDEN_HOUSEHOLDS.address, S.GOLDEN_ID_CHANGES.address, S.SEGMENT_MEMBERSHIP.address, S.SEGMENT_EXPORTS.address}
    versions: dict[str, int] = {}
    moved: dict[str, tuple[int, int]] = {}
    for address in sorted(touched):
        if ctx.lake.exists(address):
            before = ctx.lake.version(address)
            ctx.lake.purge_history(address)
            versions[address] = ctx.lake.version(address)
            moved[address] = (before, versions[address])
    # The purge's versions change no row: the next incremental golden run starts from them.
    rebase_state(ctx, moved)
    # Spark checkpoints are transient copies of table data.
    shutil.rmtree(os.path.join(ctx.lake_root, "_checkpoints"), ignore_errors=True)
    scan: ScanResult = scan_for_values(scan_roots(ctx), found.needles)
    return {
        "persons": len(found.person_ids),
        "records": len(found.record_keys),
        "events": len(found.event_keys),
        "tables": removed,
        "versions": versions,
        "rows_removed": sum(removed.values()),
        "files_rewritten": len(changed),
        "scan_files": scan.files,
        "scan_hits": scan.hits,
        "hit_files": scan.hit_files,
        "shared_values_kept": found.shared_values,
        "outcome": "verified" if scan.clean else "failed",
    }


def add_suppression(ctx: "Context", found: Subject, request_id: str) -> int:
    salt = ctx.cfg.privacy.salt
    now = datetime.now(timezone.utc)
    rows = {(k, salted_hash(salt, k, v)) for k, v in found.identifiers}
    rows |= {("record_key", salted_hash(salt, "record_key", k)) for k in found.record_keys}
    out = [{"id_type": k, "id_hash": h, "request_id": request_id, "added_at": now} for k, h in sorted(rows)]
    if out:
        ctx.lake.upsert_rows(S.PRIVACY_SUPPRESSION.address, out, S.PRIVACY_SUPPRESSION.schema, ["id_type", "id_hash"])
    return len(out)


# --- right of access ----------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "asDict"):
        return _jsonable(value.asDict(recursive=True))
    if isinstance(value, (datetime,)):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "is_finite"):  # Decimal
        return str(value)
    return value


def _rows(df: DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts in a stable order (the same lake gives the same document)."""
    rows = [_jsonable(r.asDict(recursive=True)) for r in df.collect()]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def identifier_hashes(values: Iterable[str]) -> set[str]:
    """SHA-256 hex of values as hashed audiences carry them: trimmed, lower case; phones also without '+'."""
    out = set()
    for v in values:
        low = v.strip().lower()
        out.add(hashlib.sha256(low.encode()).hexdigest())
        if low.startswith("+"):
            out.add(hashlib.sha256(low[1:].encode()).hexdigest())
    return out


def segment_export_rows(ctx: "Context", found: Subject) -> list[dict[str, Any]]:
    """The subject's rows in the audience files of segments.exports, with the manifest they belong to.

    A row is the subject's when it names one of their person ids, or (hashed audiences carry no
    id) holds the hash of an e-mail address or phone number only they hold.
    """
    if not ctx.lake.exists(S.SEGMENT_EXPORTS.address):
        return []
    hashes = identifier_hashes(v for t, v in found.identifiers if t in (S.ID_EMAIL, S.ID_PHONE))
    out: list[dict[str, Any]] = []
    manifests = ctx.lake.read(S.SEGMENT_EXPORTS.address).orderBy("created_at", "export_id").collect()
    for m in manifests:
        if not m.path or not os.path.isfile(m.path):
            continue
        with open(m.path, encoding="utf-8", newline="") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                hashed = {v for c, v in row.items() if c and c.endswith("_sha256") and v}
                if row.get("person_id") in found.person_ids or hashed & hashes:
                    out.append(
                        {
                            "export_id": m.export_id,
                            "segment": m.segment,
                            "target": m.target,
                            "path": m.path,
                            "line": line,
                            "run_id": m.run_id,
                            "created_at": _jsonable(m.created_at),
                            "row": dict(row),
                        }
                    )
    return out


def access_document(ctx: "Context", found: Subject, kind: str, reference: str) -> dict[str, Any]:
    """Everything held about ``found``, per layer and table (bronze per source), with provenance.

    Bronze rows carry their lineage (source, file, line, batch, ingestion time), silver rows their
    source and batch, profiles the provenance of every surviving attribute, match pairs the level
    and weight of every comparison (the explanation of each score).
    """
    keys = _keys_df(ctx, found.record_keys)
    raw_keys = _keys_df(ctx, found.record_keys | found.event_record_keys, S.RECORD_KEY)
    pids = _keys_df(ctx, found.person_ids, "person_id")
    layers: dict[str, dict[str, Any]] = {"bronze": {}, "silver": {}, "match": {}, "golden": {}, "segments": {}}

    def put(layer: str, address: str, df: DataFrame | None) -> None:
        if df is not None:
            layers[layer][address.split(".", 1)[1]] = _rows(df)

    for address in _bronze_addresses(ctx):
        put("bronze", address, ctx.lake.read(address).join(raw_keys, S.RECORD_KEY, "left_semi"))
    q = _read(ctx, S.BRONZE_QUARANTINE.address)
    put("bronze", S.BRONZE_QUARANTINE.address, q.join(raw_keys, S.RECORD_KEY, "left_semi") if q is not None else None)
    for address in (S.SILVER_RECORDS.address, S.SILVER_IDENTIFIERS.address):
        df = _read(ctx, address)
        put("silver", address, df.join(keys, "record_key", "left_semi") if df is not None else None)
    events = _read(ctx, S.SILVER_EVENTS.address)
    put("silver", S.SILVER_EVENTS.address, events.join(_keys_df(ctx, found.event_keys, "event_key"), "event_key", "left_semi") if events is not None else None)
    for spec in (S.MATCH_PAIRS, S.MATCH_EDGES):
        df = _read(ctx, spec.address)
        if df is not None:
            left = df.join(keys.withColumnRenamed("record_key", "record_key_l"), "record_key_l", "left_semi")
            right = df.join(keys.withColumnRenamed("record_key", "record_key_r"), "record_key_r", "left_semi")
            put("match", spec.address, left.unionByName(right).dropDuplicates(list(spec.key)))
    clusters = _read(ctx, S.MATCH_CLUSTERS.address)
    put("match", S.MATCH_CLUSTERS.address, clusters.join(keys, "record_key", "left_semi") if clusters is not None else None)
    for address in (S.GOLDEN_PROFILES.address, S.GOLDEN_HOUSEHOLDS.address, S.GOLDEN_IDENTITY_MAP.address):
        df = _read(ctx, address)
        put("golden", address, df.join(pids, "person_id", "left_semi") if df is not None else None)
    changes = _read(ctx, S.GOLDEN_ID_CHANGES.address)
    if changes is not None:
        related = pids.withColumnRenamed("person_id", "related_person_id")
        mine = changes.join(pids, "person_id", "left_semi").unionByName(changes.join(related, "related_person_id", "left_semi"))
        put("golden", S.GOLDEN_ID_CHANGES.address, mine.dropDuplicates(list(S.GOLDEN_ID_CHANGES.key)))
    membership = _read(ctx, S.SEGMENT_MEMBERSHIP.address)
    put("segments", S.SEGMENT_MEMBERSHIP.address, membership.join(pids, "person_id", "left_semi") if membership is not None else None)
    layers["segments"]["exports"] = segment_export_rows(ctx, found)
    return {
        "subject": {"type": kind, "reference": reference},
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "person_ids": sorted(found.person_ids),
        "record_keys": sorted(found.record_keys),
        "layers": layers,
    }


def export_subject(ctx: "Context", subject: str | Sequence[str] | None, out: str | None = None) -> dict[str, Any]:
    """Right of access / portability (GDPR art. 15, 20): one JSON document with everything held.

    Recorded like every job: a run in ops.runs, a privacy.requests row (state received -> done or
    failed) and an audit row; none of them, nor the logs, hold the subject's values.
    """
    if isinstance(subject, (list, tuple)):
        if len(subject) != 1:
            raise PrivacyError(f"privacy export: got {len(subject)} subjects; expected exactly one --subject TYPE:VALUE")
        subject = subject[0]
    if not subject:
        raise PrivacyError("privacy export: got no subject; expected --subject TYPE:VALUE")
    kind, value = parse_subject(subject)
    reference = subject_hash(ctx.cfg.privacy.salt, kind, value)
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    received = datetime.now(timezone.utc)
    with record_run(ctx.lake, "privacy_export", ctx.config_hash, ctx.parent_run_id) as run:
        request = {"request_id": request_id, "kind": "access", "subject_hash": reference, "state": "received", "received_at": received, "completed_at": None, "run_id": run.run_id}
        ctx.lake.upsert_rows(S.PRIVACY_REQUESTS.address, [request], S.PRIVACY_REQUESTS.schema, ["request_id"])
        found = resolve_subjects(ctx, [(kind, value)])
        if not found.record_keys:
            request.update(state="failed", completed_at=datetime.now(timezone.utc))
            ctx.lake.upsert_rows(S.PRIVACY_REQUESTS.address, [request], S.PRIVACY_REQUESTS.schema, ["request_id"])
            raise PrivacyError(
                f"privacy export: no records found for the {kind} subject (reference {reference[:16]}); expected "
                f"{'a person id in golden.identity_map' if kind == S.ID_PERSON else f'an identifier of type {kind} in silver.identifiers'}"
            )
        run.stage(f"resolved: {len(found.person_ids)} persons, {len(found.record_keys)} records, {len(found.event_keys)} events")
        doc = access_document(ctx, found, kind, reference)
        if out is None:
            os.makedirs(_access_dir(ctx), exist_ok=True)
            out = os.path.join(_access_dir(ctx), f"access-{request_id}.json")
        tmp = f"{out}.cdp-tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, ensure_ascii=False, sort_keys=True, default=str)
        os.replace(tmp, out)
        counts = {layer: {t: len(v) for t, v in tables.items()} for layer, tables in doc["layers"].items()}
        run.rows_in = len(found.record_keys) + len(found.event_keys)
        run.rows_out = sum(n for tables in counts.values() for n in tables.values())
        for layer, tables in counts.items():
            for t, n in tables.items():
                run.metric(f"rows.{layer}.{t}", n)
        run.stage("access document written", run.rows_out)
        done = datetime.now(timezone.utc)
        request.update(state="done", completed_at=done)
        ctx.lake.upsert_rows(S.PRIVACY_REQUESTS.address, [request], S.PRIVACY_REQUESTS.schema, ["request_id"])
        ctx.lake.append_rows(
            S.PRIVACY_AUDIT.address,
            [{"request_id": request_id, "kind": "access", "subject_hash": reference, "requested_at": received, "completed_at": done, "tables": {}, "versions": {}, "rows_removed": 0, "files_rewritten": 0, "scan_files": 0, "scan_hits": 0, "outcome": "exported", "run_id": run.run_id}],
            S.PRIVACY_AUDIT.schema,
        )
    return {"out": os.path.abspath(out), "request": request_id, "run_id": run.run_id, "persons": len(found.person_ids), "records": len(found.record_keys), "counts": counts}


# --- retention ---------------------------------------------------------------------------------


def _timestamp(at: datetime) -> "Column":
    """A UTC wall-clock time as a Spark timestamp (read in the session time zone, UTC), whatever
    the driver's local time zone is."""
    return F.lit(at.strftime("%Y-%m-%d %H:%M:%S")).cast("timestamp")


def expired_rows(ctx: "Context") -> Subject:
    """Records and events older than their source's ``retention_days`` at the run date.

    A persons source's records expire by their last change (updated, else created, else ingested);
    so do the anonymous records an events source derives (``records_from``), under its
    ``records_source`` name. Then, as for a subject, the events tied to identifiers only expired
    records hold go too. An events source's own events expire by ``event_at``.
    A person id goes only when every record of the person expired, so a person who keeps a
    record keeps their id, household and segment history.
    """
    found = Subject()
    day = datetime.combine(ctx.run_date, datetime.min.time())
    record_cutoffs: dict[str, datetime] = {}
    event_cutoffs: dict[str, datetime] = {}
    for src in ctx.cfg.sources:
        if not src.retention_days:
            continue
        cutoff = day - timedelta(days=src.retention_days)
        if src.kind == "events":
            event_cutoffs[src.name] = cutoff
            if src.records_from:
                record_cutoffs[src.records_source or src.name] = cutoff
        else:
            record_cutoffs[src.name] = cutoff
    records = _read(ctx, S.SILVER_RECORDS.address)
    if records is not None and record_cutoffs:
        seen = F.coalesce("source_updated_at", "source_created_at", "ingested_at")
        cond = functools.reduce(
            lambda a, b: a | b,
            [(F.col("source") == F.lit(name)) & (seen < _timestamp(cutoff)) for name, cutoff in sorted(record_cutoffs.items())],
        )
        found.record_keys = {r.record_key for r in records.where(cond).select("record_key").collect()}
    identity = _read(ctx, S.GOLDEN_IDENTITY_MAP.address)
    if identity is not None and found.record_keys:
        expired = _keys_df(ctx, found.record_keys)
        touched = identity.join(expired, "record_key", "left_semi").select("person_id").distinct()
        keeping = identity.join(expired, "record_key", "left_anti").select("person_id").distinct()
        found.person_ids = {r.person_id for r in touched.join(keeping, "person_id", "left_anti").collect()}
    attach_identifiers_and_events(ctx, found)
    events = _read(ctx, S.SILVER_EVENTS.address)
    if events is not None and event_cutoffs:
        cond = functools.reduce(
            lambda a, b: a | b,
            [(F.col("source") == F.lit(name)) & (F.col("event_at") < _timestamp(cutoff)) for name, cutoff in sorted(event_cutoffs.items())],
        )
        for r in events.where(cond).select("event_key", "record_key").collect():
            found.event_keys.add(r.event_key)
            if r.record_key:
                found.event_record_keys.add(r.record_key)
    return found


def retention(ctx: "Context") -> dict[str, Any]:
    """Delete expired records and events (:func:`expired_rows`) through the erasure path.

    Verified like an erasure: the scan must find none of the removed rows' own values (values
    remaining rows still hold are theirs). A failed verification is recorded (audit, request,
    failed run) and raised as :class:`PrivacyError`.
    """
    with record_run(ctx.lake, "privacy_retention", ctx.config_hash, ctx.parent_run_id) as run:
        found = expired_rows(ctx)
        run.stage(f"expired: {len(found.record_keys)} records, {len(found.event_keys)} events, {len(found.person_ids)} whole persons")
        run.metric("records", len(found.record_keys))
        run.metric("events", len(found.event_keys))
        if not found.record_keys and not found.event_keys:
            return {"records": 0, "events": 0, "rows_removed": 0, "outcome": "nothing expired"}
        requested = datetime.now(timezone.utc)
        request_id = f"ret-{run.run_id}"
        request = {"request_id": request_id, "kind": "retention", "subject_hash": None, "state": "received", "received_at": requested, "completed_at": None, "run_id": run.run_id}
        ctx.lake.upsert_rows(S.PRIVACY_REQUESTS.address, [request], S.PRIVACY_REQUESTS.schema, ["request_id"])
        result = erase_found(ctx, found, run.run_id, suppress=False, retention=True)
        run.rows_in = len(found.record_keys) + len(found.event_keys)
        run.rows_out = result["rows_removed"]
        for k in ("rows_removed", "files_rewritten", "scan_files", "scan_hits"):
            run.metric(k, result[k])
        done = datetime.now(timezone.utc)
        request.update(state="done" if result["outcome"] == "verified" else "failed", completed_at=done)
        ctx.lake.upsert_rows(S.PRIVACY_REQUESTS.address, [request], S.PRIVACY_REQUESTS.schema, ["request_id"])
        ctx.lake.append_rows(
            S.PRIVACY_AUDIT.address,
            [{"request_id": request_id, "kind": "retention", "subject_hash": None, "requested_at": requested, "completed_at": done, "tables": result["tables"], "versions": result["versions"], "rows_removed": result["rows_removed"], "files_rewritten": result["files_rewritten"], "scan_files": result["scan_files"], "scan_hits": result["scan_hits"], "outcome": result["outcome"], "run_id": run.run_id}],
            S.PRIVACY_AUDIT.schema,
        )
        if result["outcome"] != "verified":
            raise PrivacyError(
                f"retention of {len(found.record_keys)} record(s) and {len(found.event_keys)} event(s) could not be verified: "
                f"the scan found {result['scan_hits']} value(s) in {len(result['hit_files'])} file(s), first: {result['hit_files'][:3]}; "
                "expected none"
            )
    result.pop("hit_files", None)
    result["request"] = request_id
    return result
