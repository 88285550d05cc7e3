"""GDPR erasure, right of access and retention across every layer, with an audit trail.

Erasure (``cdp privacy erase``), for one subject or a file of them, processed as one batch:

0. Refuse, before anything is deleted, when a place the verification scan must cover cannot be
   read (an object store; an MLflow server whose API does not answer: :func:`check_scannable`), or
   when a subject named by an identifier is held by records of more than one person in
   golden.identity_map (a family e-mail address) and ``--all-holders`` was not given: such a
   subject names no single person, so the officer names the person with ``person_id:``
   (:func:`resolve_subjects`).
1. Resolve: subject -> the records carrying the identifier -> every record linked to those by
   accepted match edges inside their clusters (person id: every record of the person), plus
   records that carry the identifier but are not resolved yet; their event rows (silver.events tied
   to their identifiers, cookies or record keys, or owned by their records: ``owner_record_key``). Identifier edges of a type the match config
   conflict-checks (``match.deterministic.conflict_check``, default e-mail and loyalty card) are
   followed: such a value links nothing when its holders name different people, so an edge of it
   joins records our rules take for one person. Edges of a shareable type that is not
   conflict-checked (phone, when deterministic phone links are on: a household's landline) and
   edges across clusters (cut by the over-merge guard) are not followed; the records they link to
   the subject's stay, and are counted (``linked_records_kept``) and logged without values.
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
   without column statistics (jobs/common/delta.py), so no PII sits in min/max stats either, and
   without deletion vectors, so a delete rewrites the files that held the rows.
7. Verify: scan every file under the scan roots (:func:`scan_roots`: lake root with tables, logs,
   checkpoints and the MLflow store, landing folders, access documents, segment exports also
   outside the lake, extra paths), and an MLflow store elsewhere (a tracking server, Databricks)
   through its API, for the subject's values (jobs/privacy/scan.py), and write
   privacy.audit: hashed subject reference, times, tables and versions touched, rows removed,
   files rewritten, scan outcome. No PII in the audit, the run log or the logs. A failed scan, and
   a scan that read no file of the lake, fails the command (PrivacyError) after recording it.
   In a batch each request's audit row carries its own subject's records and rows removed
   (:func:`rows_per_request`); tables, versions, files and the scan are the batch's
   (``batch_requests`` says how many requests shared them).

An identifier value that also belongs to a record of another, non-erased person (a shared family
e-mail address) stays with that person, and so does a namesake's name; they are counted, not
scanned for.

Right of access (``cdp privacy export``): :func:`access_document` for one subject, recorded as a
run, a request and an audit row; an identifier several persons hold is refused as in step 0 (the
document would hand one person the others' data), without an opt-in. Retention (``cdp privacy retention``): :func:`expired_rows`,
then steps 2-7 without suppression.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
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
    from jobs.match.config import DeterministicConfig

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
class RequestShare:
    """One request's part of a batch: what its subject alone resolved to (for its audit row)."""

    kind: str
    record_keys: set[str] = field(default_factory=set)
    person_ids: set[str] = field(default_factory=set)
    linked_records_kept: set[str] = field(default_factory=set)


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
    # Records linked to the subjects' records by an edge resolution did not follow: they stay.
    linked_records_kept: set[str] = field(default_factory=set)
    # Per request of the batch, in request order (empty for retention).
    requests: list[RequestShare] = field(default_factory=list)
    # The identifiers the requests named, as written and in silver's form: always searched for
    # (unless another remaining record holds them) and suppressed, even when no record holds them.
    requested: set[tuple[str, str]] = field(default_factory=set)
    # Event key (and an event's own record key) -> the subjects' records holding what ties it.
    event_holders: dict[str, set[str]] = field(default_factory=dict)
    event_record_holders: dict[str, set[str]] = field(default_factory=dict)


def subject_hash(salt: str, kind: str, value: str) -> str:
    return salted_hash(salt, "subject", f"{kind}:{value}")


# --- resolving ---------------------------------------------------------------------------------


def _read(ctx: "Context", address: str) -> DataFrame | None:
    return ctx.lake.read(address) if ctx.lake.exists(address) else None


def _keys_df(ctx: "Context", keys: Iterable[str], column: str = "record_key") -> DataFrame:
    from pyspark.sql.types import StringType, StructField, StructType

    rows = [(k,) for k in sorted(set(keys))]
    return ctx.spark.createDataFrame(rows, StructType([StructField(column, StringType())]))


# Identifier types households share (a family e-mail address, a landline).
SHAREABLE_ID_TYPES = (S.ID_EMAIL, S.ID_PHONE)
# What resolution reports for a record linked by an edge across clusters (the over-merge guard
# split them: different persons by our rules).
ACROSS_CLUSTERS = "across clusters"


def unfollowed_edge_types(det: "DeterministicConfig") -> set[str]:
    """Identifier edge types resolution does not follow: shareable types the match config does not
    conflict-check.

    A value of a type in ``match.deterministic.conflict_check`` that records of different given-name
    initials or birth dates hold makes no edge (jobs/match/deterministic.py), so an edge of such a
    type links records our rules take for one person: it is followed, or resolution would leave
    the subject's own records behind. A shareable type without the check (phone, when deterministic
    phone links are on) links a household sharing a landline: not followed, so erasing one person
    never takes a household member along.
    """
    from jobs.match.deterministic import EDGE_PREFIX

    return {f"{EDGE_PREFIX}{t}" for t in SHAREABLE_ID_TYPES if t not in det.conflict_check}


def _expand(ctx: "Context", starts: Sequence[set[str]], follow: Sequence[bool]) -> list[tuple[set[str], dict[str, str]]]:
    """Per start set: (its records, {record linked to them by an edge not followed: why}).

    With ``follow``, the records reached from the start over accepted match edges inside their
    clusters, except edges of :func:`unfollowed_edge_types`; else the start itself. A record that
    an edge links to what was reached, but is not reached itself (a landline edge, an edge the
    over-merge guard cut), stays and is reported. One collect of the clusters' edges for the
    whole batch; the walks run on the driver.
    """
    clusters = _read(ctx, S.MATCH_CLUSTERS.address)
    edges = _read(ctx, S.MATCH_EDGES.address)
    every = set().union(*starts) if starts else set()
    if clusters is None or edges is None or not every:
        return [(set(s), {}) for s in starts]
    skip = unfollowed_edge_types(ctx.cfg.match.deterministic)
    start_df = _keys_df(ctx, every)
    ids = clusters.join(start_df, "record_key", "left_semi").select("cluster_id").distinct()
    members = clusters.join(ids, "cluster_id", "left_semi").select("record_key", "cluster_id")
    cluster_of = {r.record_key: r.cluster_id for r in members.collect()}
    near = start_df.unionByName(members.select("record_key")).distinct()
    touching = (
        edges.join(near.withColumnRenamed("record_key", "record_key_l"), "record_key_l", "left_semi")
        .unionByName(edges.join(near.withColumnRenamed("record_key", "record_key_r"), "record_key_r", "left_semi"))
        .select("record_key_l", "record_key_r", "edge_type")
        .distinct()
        .collect()
    )
    adjacency: dict[str, set[str]] = {}
    links: dict[str, list[tuple[str, str]]] = {}
    for e in touching:
        l, r, kind = e.record_key_l, e.record_key_r, e.edge_type
        same = cluster_of.get(l) is not None and cluster_of.get(l) == cluster_of.get(r)
        if kind in skip:
            why = kind
        elif not same:
            why = ACROSS_CLUSTERS
        else:
            why = f"{kind} (subject named by person id)"  # followed when walking
            adjacency.setdefault(l, set()).add(r)
            adjacency.setdefault(r, set()).add(l)
        links.setdefault(l, []).append((r, why))
        links.setdefault(r, []).append((l, why))
    out = []
    for start, walk in zip(starts, follow):
        seen = set(start)
        todo = list(start) if walk else []
        while todo:
            for nxt in adjacency.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        kept: dict[str, str] = {}
        for k in sorted(seen):
            for other, why in links.get(k, ()):
                if other not in seen:
                    kept.setdefault(other, why)
        out.append((seen, kept))
    return out


def _subject_reference(ctx: "Context", kind: str, value: str) -> str:
    """How errors and logs name a subject: its salted hash, cut to 16 characters."""
    return subject_hash(ctx.cfg.privacy.salt, kind, value)[:16]


def silver_form_subjects(ctx: "Context", parsed: Sequence[tuple[str, str]]) -> list[tuple[str, str | None]]:
    """Subjects as silver.identifiers holds their values, one per subject in order: silver's own
    transform (:func:`~jobs.standardize.transforms.silver_identifier_forms`), so that a request
    written as the person sent it (``jan@gmial.com``, a loyalty card with spaces, a customer
    number in lower case) finds the records silver normalised. None where silver holds no such
    identifier (a placeholder such as ``test@test.nl``, an invalid address or number): such a
    value names no one and :func:`refuse_unheld` refuses it. A person id passes through."""
    from jobs.standardize.transforms import silver_identifier_forms

    named = [(k, v, None) for k, v in parsed if k != S.ID_PERSON]
    forms = silver_identifier_forms(ctx.spark, named, ctx.cfg.standardize) if named else {}
    return [(k, v if k == S.ID_PERSON else forms.get((k, v, None))) for k, v in parsed]


def as_requested(written: Sequence[tuple[str, str]], forms: Sequence[tuple[str, str | None]]) -> list[tuple[str, str]]:
    """Each subject in silver's form (:func:`silver_form_subjects`), or as written where silver holds
    none (:func:`refuse_unheld` refuses those before anything is done)."""
    return [f if f[1] is not None else w for w, f in zip(written, forms)]


def refuse_unheld(ctx: "Context", written: Sequence[tuple[str, str]], forms: Sequence[tuple[str, str | None]], command: str) -> None:
    """PrivacyError naming every subject silver holds no identifier for (:func:`silver_form_subjects`
    gave None) by number, kind and hashed reference. Erasing a placeholder would delete other
    people's rows that carry it and suppress it for everyone; it names no one, so nothing is done."""
    bad = [
        f"subject #{i} ({kind}, reference {_subject_reference(ctx, kind, value)})"
        for i, ((kind, value), (_, form)) in enumerate(zip(written, forms), start=1)
        if form is None
    ]
    if bad:
        raise PrivacyError(
            f"{command}: {len(bad)} subject(s) name a value silver keeps for no one, a placeholder (test@test.nl, "
            f"0000000000, onbekend) or an invalid e-mail address or phone number: {'; '.join(bad)}; nothing was "
            "changed. Expected an identifier as one person holds it (a phone in E.164, +32..., or Dutch national "
            "form), or the person's person_id:P... (`cdp profile --id TYPE:VALUE` finds it)"
        )


def resolve_subjects(
    ctx: "Context", subjects: Sequence[tuple[str, str]], all_holders: bool = False, command: str = "privacy erase"
) -> Subject:
    """Every record, person and event of the subjects (see the module docstring, step 1).

    A subject named by an identifier owns the records carrying it, and the records linked to those
    by accepted match edges inside their clusters, except edges of :func:`unfollowed_edge_types`; a
    subject named by person id owns every record of that person. Records an unfollowed edge links
    to the subject's stay, counted in ``linked_records_kept`` and logged without values.

    An identifier that records of more than one person (golden.identity_map) hold, such as a
    family e-mail address, names no single person: the request is refused with a
    :class:`PrivacyError` (every such subject named by kind and hashed reference, with the number
    of persons), unless ``all_holders``, which erases every holder. Identifier values that other
    records also carry stay with them (``shared_values``) and are neither deleted through events
    nor suppressed.
    """
    found = Subject()
    identifiers = _read(ctx, S.SILVER_IDENTIFIERS.address)
    identity = _read(ctx, S.GOLDEN_IDENTITY_MAP.address)
    direct: list[set[str]] = [set() for _ in subjects]
    holders: list[set[str]] = [set() for _ in subjects]
    named = [(i, kind, value) for i, (kind, value) in enumerate(subjects) if kind != S.ID_PERSON]
    if named and identifiers is not None:
        wanted = ctx.spark.createDataFrame(named, f"{S.TMP}i int, id_type string, id_value string")
        rows = identifiers.join(wanted, ["id_type", "id_value"]).select(f"{S.TMP}i", "record_key")
        if identity is not None:
            rows = rows.join(identity.select("record_key", "person_id"), "record_key", "left")
        else:
            rows = rows.withColumn("person_id", F.lit(None).cast("string"))
        for r in rows.select(f"{S.TMP}i", "record_key", "person_id").distinct().collect():
            direct[r[0]].add(r[1])
            if r[2]:
                holders[r[0]].add(r[2])
    persons = {v for kind, v in subjects if kind == S.ID_PERSON}
    if persons and identity is not None:
        by_person: dict[str, set[str]] = {}
        for r in identity.where(F.col("person_id").isin(*sorted(persons))).select("person_id", "record_key").collect():
            by_person.setdefault(r.person_id, set()).add(r.record_key)
        for i, (kind, value) in enumerate(subjects):
            if kind == S.ID_PERSON:
                direct[i] = by_person.get(value, set())
    refused = [
        f"the {kind} subject (reference {_subject_reference(ctx, kind, value)}) is held by records of {len(holders[i])} persons"
        for i, (kind, value) in enumerate(subjects)
        if len(holders[i]) > 1
    ]
    if refused and not all_holders:
        opt_in = ", or pass --all-holders to erase every holder" if command == "privacy erase" else ""
        raise PrivacyError(
            f"{command}: {len(refused)} subject(s) name an identifier that more than one person in "
            f"{S.GOLDEN_IDENTITY_MAP.address} holds (a family e-mail address, a shared card): {'; '.join(refused)}; "
            f"nothing was changed. Expected an identifier of one person: name the person with a person_id:P... "
            f"subject (`cdp profile --id TYPE:VALUE` lists the holders' person ids){opt_in}"
        )
    for i in range(len(subjects)):
        if len(holders[i]) > 1:
            log.warning("%s: subject #%d is held by %d persons; erasing every holder (--all-holders)", command, i + 1, len(holders[i]))
    expanded = _expand(ctx, direct, [kind != S.ID_PERSON for kind, _ in subjects])
    for (kind, value), (keys, kept) in zip(subjects, expanded):
        share = RequestShare(kind, record_keys=keys, linked_records_kept=set(kept))
        if kind == S.ID_PERSON:
            share.person_ids.add(value)
        found.requests.append(share)
        found.record_keys |= keys
        found.person_ids |= share.person_ids
    if identity is not None and found.record_keys:
        pid = {r.record_key: r.person_id for r in identity.join(_keys_df(ctx, found.record_keys), "record_key", "left_semi").select("record_key", "person_id").collect()}
        for share in found.requests:
            share.person_ids |= {pid[k] for k in share.record_keys if k in pid}
            found.person_ids |= share.person_ids
    kept_why: dict[str, str] = {}
    for (_keys, kept) in expanded:
        for k, why in kept.items():
            if k not in found.record_keys:
                kept_why.setdefault(k, why)
    found.linked_records_kept = set(kept_why)
    if kept_why:
        counts = Counter(kept_why.values())
        log.info(
            "resolution: %d record(s) linked to the subjects' records stay (edges not followed): %s",
            len(kept_why), ", ".join(f"{why}: {n}" for why, n in sorted(counts.items())),
        )
    if not found.record_keys and not found.person_ids:
        return found
    attach_identifiers_and_events(ctx, found)
    return found


def attach_identifiers_and_events(ctx: "Context", found: Subject) -> None:
    """The identifiers only ``found.record_keys`` hold, and the events tied to them or owned by them.

    An identifier another (remaining) record also carries is shared (``shared_values``): it stays,
    and so do the events tied to it, because they are that record's events too. Cookie ids tie
    web events to the cookie's record as well. Each tied event remembers the subject records
    holding what ties it (``event_holders``), so a batch can count it for their request. An event whose
    ``owner_record_key`` is one of ``found.record_keys`` (the order an erased account placed) goes
    whatever identifier it carries: it is that record's own event.
    """
    identifiers = _read(ctx, S.SILVER_IDENTIFIERS.address)
    if identifiers is None or not found.record_keys:
        return
    keys = _keys_df(ctx, found.record_keys)
    own_rows = identifiers.join(keys, "record_key", "left_semi").select("record_key", "id_type", "id_value").distinct()
    own = own_rows.select("id_type", "id_value").distinct()
    shared = (
        identifiers.join(keys, "record_key", "left_anti")
        .join(own, ["id_type", "id_value"], "left_semi")
        .select("id_type", "id_value")
        .distinct()
        .collect()
    )
    shared_set = {(r.id_type, r.id_value) for r in shared}
    found.shared_values += len(shared_set)
    holding: dict[tuple[str, str], set[str]] = {}
    for r in own_rows.collect():
        holding.setdefault((r.id_type, r.id_value), set()).add(r.record_key)
    mine = set(holding) - shared_set
    found.identifiers |= mine
    events = _read(ctx, S.SILVER_EVENTS.address)
    if events is None:
        return
    owned = "owner_record_key" in events.columns  # a lake written before the column has no owners
    parts = []
    if owned:
        parts.append(events.join(_keys_df(ctx, found.record_keys, "owner_record_key"), "owner_record_key", "left_semi"))
    if mine:
        ids = ctx.spark.createDataFrame(sorted(mine), "id_type string, id_value string")
        parts.append(events.join(ids, ["id_type", "id_value"], "left_semi"))
        cookies = sorted(v for t, v in mine if t == S.ID_COOKIE)
        if cookies:
            parts.append(events.join(_keys_df(ctx, cookies, "cookie_id"), "cookie_id", "left_semi"))
    if not parts:
        return
    tied = functools.reduce(lambda a, b: a.unionByName(b), parts)
    columns = ["event_key", "record_key", "id_type", "id_value", "cookie_id", *(["owner_record_key"] if owned else [])]
    for r in tied.select(*columns).distinct().collect():
        by = holding.get((r.id_type, r.id_value), set()) if (r.id_type, r.id_value) in mine else set()
        if r.cookie_id and (S.ID_COOKIE, r.cookie_id) in mine:
            by = by | holding[(S.ID_COOKIE, r.cookie_id)]
        if owned and r.owner_record_key in found.record_keys:
            by = by | {r.owner_record_key}
        found.event_keys.add(r.event_key)
        found.event_holders.setdefault(r.event_key, set()).update(by)
        if r.record_key:
            found.event_record_keys.add(r.record_key)
            found.event_record_holders.setdefault(r.record_key, set()).update(by)


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
    for kind, value in found.identifiers | found.requested:
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


def _quarantine_ids(ctx: "Context", found: Subject) -> dict[str, str | None]:
    """Quarantine rows of the subjects: id -> the record key they were found by (None: found by
    the subjects' values in their raw text)."""
    q = _read(ctx, S.BRONZE_QUARANTINE.address)
    if q is None:
        return {}
    keys = found.record_keys | found.event_record_keys
    ids: dict[str, str | None] = {}
    table = q.select("quarantine_id", "raw").toArrow()
    if table.num_rows and found.needles:
        from .scan import row_mask

        mask = row_mask(table.select(["raw"]), found.needles)
        qids = table.column("quarantine_id").to_pylist()
        ids.update((qids[i], None) for i in np.nonzero(mask)[0])
    if keys:
        rows = q.join(_keys_df(ctx, keys, S.RECORD_KEY), S.RECORD_KEY, "left_semi").select("quarantine_id", S.RECORD_KEY).collect()
        ids.update((r.quarantine_id, r[S.RECORD_KEY]) for r in rows)
    return ids


def _landing_path(ctx: "Context", named: str) -> str:
    """Absolute path of a file named in bronze lineage (relative to data.root, or absolute)."""
    return named if os.path.isabs(named) else os.path.join(ctx.data_root, named)


def landing_lines(ctx: "Context", found: Subject, quarantine_ids: Collection[str]) -> dict[str, set[int]]:
    """file -> lines (rows for Parquet) that landed the subject's rows."""
    out: dict[str, set[int]] = {}
    raw = landing_lines_named(ctx, found, quarantine_ids)
    for named, lines in raw.items():
        out.setdefault(_landing_path(ctx, named), set()).update(lines)
    return out


def landing_lines_named(ctx: "Context", found: Subject, quarantine_ids: Collection[str]) -> dict[str, set[int]]:
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


def _delete_columns(address: str, columns: Iterable[str]) -> list[str]:
    """The key columns by which erasure deletes from a table, in the order it tries them."""
    have = set(columns)
    out = []
    for column in KEY_COLUMNS:
        if column not in have:
            continue
        if address == S.BRONZE_QUARANTINE.address and column == S.RECORD_KEY:
            continue  # quarantine rows go by quarantine_id (found by key and by raw text)
        if address == S.SILVER_EVENTS.address and column == "record_key":
            continue  # events go by event_key
        out.append(column)
    return out


def _keys_by_column(found: Subject, quarantine_ids: Iterable[str]) -> dict[str, set[str]]:
    return {
        S.RECORD_KEY: found.record_keys | found.event_record_keys,
        "record_key": found.record_keys,
        "record_key_l": found.record_keys,
        "record_key_r": found.record_keys,
        "event_key": found.event_keys,
        "person_id": found.person_ids,
        "quarantine_id": set(quarantine_ids),
    }


def delete_everywhere(ctx: "Context", found: Subject, quarantine_ids: Collection[str]) -> dict[str, int]:
    """Delete the subject's rows from every table by key; table -> rows removed."""
    removed: dict[str, int] = {}
    frames = {c: _keys_df(ctx, v, c) for c, v in _keys_by_column(found, quarantine_ids).items() if v}
    for address in ctx.lake.tables():
        if address in KEEP_TABLES:
            continue
        total = 0
        for column in _delete_columns(address, ctx.lake.schema(address).fieldNames()):
            if column in frames:
                total += ctx.lake.delete_keys(address, column, frames[column])
        if total:
            removed[address] = total
    return removed


def _request_owners(found: Subject, quarantine_ids: dict[str, str | None]) -> dict[str, set[tuple[str, int]]]:
    """Key column -> (key, request index) for every key a request's subject owns.

    Records and persons belong to the request that resolved them; events (and an event's own
    record) to the requests whose records hold what tied them; quarantine rows found by record
    key to that record's requests. Quarantine rows found only by raw text belong to none.
    """
    by_record: dict[str, set[int]] = {}
    by_person: dict[str, set[int]] = {}
    for i, share in enumerate(found.requests):
        for k in share.record_keys:
            by_record.setdefault(k, set()).add(i)
        for p in share.person_ids:
            by_person.setdefault(p, set()).add(i)

    def of(holders: set[str]) -> set[int]:
        return set().union(*(by_record.get(k, set()) for k in holders)) if holders else set()

    raw = {k: set(v) for k, v in by_record.items()}
    for k, holders in found.event_record_holders.items():
        raw.setdefault(k, set()).update(of(holders))
    owners: dict[str, set[tuple[str, int]]] = {
        S.RECORD_KEY: {(k, i) for k, ix in raw.items() for i in ix},
        "record_key": {(k, i) for k, ix in by_record.items() for i in ix},
        "person_id": {(p, i) for p, ix in by_person.items() for i in ix},
        "event_key": {(e, i) for e, holders in found.event_holders.items() for i in of(holders)},
        "quarantine_id": {(q, i) for q, k in quarantine_ids.items() if k for i in raw.get(k, set())},
    }
    owners["record_key_l"] = owners["record_key_r"] = owners["record_key"]
    return owners


def rows_per_request(ctx: "Context", found: Subject, quarantine_ids: dict[str, str | None]) -> list[int]:
    """Rows each request's subject has in the tables erasure deletes from, counted before the deletes.

    A row of two requests' subjects (a pair of their records) counts for both; a row no single
    request owns (a quarantined line found by the batch's values only) for none. One Spark job
    per table, only for a batch of several requests.
    """
    out = [0] * len(found.requests)
    owners = _request_owners(found, quarantine_ids)
    req = f"{S.TMP}request"
    frames = {
        c: ctx.spark.createDataFrame(sorted(pairs), f"{c} string, {req} int").groupBy(c).agg(F.collect_set(req).alias(f"{req}s_{i}"))
        for i, (c, pairs) in enumerate(sorted(owners.items()))
        if pairs
    }
    for address in ctx.lake.tables():
        if address in KEEP_TABLES:
            continue
        columns = [c for c in _delete_columns(address, ctx.lake.schema(address).fieldNames()) if c in frames]
        if not columns:
            continue
        df = ctx.lake.read(address).select(*columns)
        lists = []
        for c in columns:
            frame = frames[c]
            df = df.join(F.broadcast(frame), c, "left")
            lists.append(F.coalesce(F.col(frame.columns[1]), F.array().cast("array<int>")))
        both = F.array_distinct(F.concat(*lists)) if len(lists) > 1 else lists[0]
        counts = df.select(F.explode(both).alias(req)).groupBy(req).count().collect()
        for r in counts:
            out[r[req]] += int(r["count"])
    return out


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

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def _scheme(location: str) -> str | None:
    """A location's URI scheme, lower-cased; None for a plain path (one letter is a drive)."""
    m = _SCHEME.match(location.strip())
    return m.group(1).lower() if m else None


_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]*@")
_WEB_USER = re.compile(r"(?i)\b(https?://)[^/\s:@]+@")


def _shown(text: str) -> str:
    """A location, or a message naming one, as errors show it: a password in a URI, and a web URI's
    user (often a token), left out. (In abfss://container@account... the part before '@' names a
    container: kept.)"""
    return _WEB_USER.sub(r"\1***@", _PASSWORD.sub(r"\1:***@", text))


def _mlflow_folder(uri: str) -> str | None:
    """The local folder of an MLflow tracking URI's store; None when it is not on this machine."""
    text = uri.strip()
    if text.lower().startswith("databricks"):
        return None  # 'databricks', 'databricks-uc', 'databricks://profile': a hosted server
    scheme = _scheme(text)
    if scheme == "sqlite":
        return os.path.abspath(os.path.dirname(text[len("sqlite:///") :]) or ".") if text.startswith("sqlite:///") else None
    if scheme == "file":
        return os.path.abspath(urlparse(text).path)
    if scheme is None:
        return os.path.abspath(text)  # a plain path is an MLflow file store
    return None  # http(s), postgresql, ...: a tracking server or database elsewhere


def unscannable_locations(ctx: "Context") -> list[str]:
    """The configured places erasure must scan that are not local paths, each as
    ``setting 'value' (why)`` (empty: every place can be scanned).

    The verification scan reads files (jobs/privacy/scan.py): an object store (s3a://, abfss://,
    gs://, dbfs:/) cannot be walked, and a scan that skipped it would prove nothing. A mounted path
    (/dbfs/..., /Volumes/..., a FUSE mount) and file: URIs are local. An MLflow store that is not a
    local folder (a tracking server, Databricks) is read through the MLflow API instead, so it is a
    problem only when that API cannot be read (:func:`mlflow_api_problem`).
    """
    cfg = ctx.cfg
    places = [
        ("lake.root", cfg.lake.root),
        ("data.root", cfg.data.root),
        ("privacy.export_dir", cfg.privacy.export_dir),
        ("segments.export_dir", cfg.segments.export_dir),
        *[(f"privacy.scan_extra_paths[{i}]", p) for i, p in enumerate(cfg.privacy.scan_extra_paths)],
    ]
    problems = []
    for setting, value in places:
        scheme = _scheme(value or "")
        if scheme not in (None, "file"):
            problems.append(f"{setting} {_shown(value)!r} (a {scheme}: location, not a local path)")
    uri = cfg.mlflow.tracking_uri
    if uri and _mlflow_folder(uri) is None:
        problem = mlflow_api_problem(uri)
        if problem:
            problems.append(f"mlflow.tracking_uri {_shown(uri)!r} (not a local store, and {problem})")
    return problems


def mlflow_api_problem(uri: str) -> str | None:
    """Why an MLflow store cannot be read through its API (None: it can), asked once without
    retries: a store that is not a local folder is scanned that way (:func:`scan_mlflow_store`)."""
    from mlflow.tracking import MlflowClient

    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
    saved = {k: os.environ.get(k) for k in quick}
    os.environ.update(quick)
    try:
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any failure means the scan could not read the store
        first = (str(exc).strip().splitlines() or [""])[0]
        return f"its API cannot be read: {type(exc).__name__}: {_shown(first[:200])}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return None


def check_scannable(ctx: "Context", command: str) -> None:
    """Refuse, before anything is deleted, an erasure whose verification scan could not read every
    place it must cover (:func:`unscannable_locations`)."""
    problems = unscannable_locations(ctx)
    if problems:
        raise PrivacyError(
            f"{command}: nothing was deleted: the verification scan cannot read {'; '.join(problems)}. "
            "Expected every place erasure scans (lake.root, data.root, privacy.export_dir, segments.export_dir, "
            "privacy.scan_extra_paths) to be a local or mounted path (e.g. /Volumes/... or /dbfs/... on Databricks) "
            "or a file: URI, and mlflow.tracking_uri a local store or one whose API answers"
        )


def scan_roots(ctx: "Context") -> list[str]:
    """Every place erasure verification scans: the lake, the landing data, access documents,
    segment exports (an absolute export_dir may lie outside the lake), the MLflow store and the
    configured extra paths. Folders inside another root are scanned once (the scan dedups).
    :func:`check_scannable` has refused the places that are not local."""
    roots = [ctx.lake_root, ctx.data_root, _access_dir(ctx), _export_root(ctx)]
    for p in ctx.cfg.privacy.scan_extra_paths:
        roots.append(os.path.abspath(urlparse(p).path) if _scheme(p) == "file" else os.path.abspath(p))
    uri = ctx.cfg.mlflow.tracking_uri
    folder = _mlflow_folder(uri) if uri else None
    if folder:
        roots.append(folder)
    return list(dict.fromkeys(roots))


def scan_everything(ctx: "Context", groups: list[tuple[str, ...]]) -> ScanResult:
    """The verification scan: every file under :func:`scan_roots`, and an MLflow store that is
    not a local folder through its API (jobs/privacy/scan.py ``scan_mlflow_store``)."""
    import tempfile

    from .scan import scan_mlflow_store

    result = scan_for_values(scan_roots(ctx), groups)
    uri = ctx.cfg.mlflow.tracking_uri
    if uri and _mlflow_folder(uri) is None:
        with tempfile.TemporaryDirectory(prefix="cdp-mlflow-scan-") as scratch:
            store = scan_mlflow_store(
                uri, groups, scratch, label=_shown(uri), experiments=[ctx.cfg.mlflow.experiment], models=[ctx.cfg.match.model.name]
            )
        result.files += store.files
        result.hits += store.hits
        result.hit_files += store.hit_files
        result.unreadable += store.unreadable
        result.root_files.update(store.root_files)
    return result


def unverified_reason(ctx: "Context", scan: ScanResult) -> str | None:
    """Why a scan does not verify an erasure (None: it does). A scan that found nothing but read
    no file of the lake proves nothing, so it fails too."""
    lake_files = scan.root_files.get(ctx.lake_root, 0)
    if scan.files == 0 or lake_files == 0:
        return f"the scan covered {scan.files} file(s), none under lake.root {ctx.lake_root}; expected the lake's table files"
    if scan.hits:
        return f"the scan found {scan.hits} value(s) in {len(scan.hit_files)} file(s), first: {scan.hit_files[:3]}; expected none"
    if scan.unreadable:
        return (
            f"the scan could not decode {len(scan.unreadable)} file(s), first: {scan.unreadable[:3]}; expected every "
            "file readable (a compressed file searched as raw bytes proves nothing)"
        )
    return None


def _access_dir(ctx: "Context") -> str:
    d = ctx.cfg.privacy.export_dir
    return d if os.path.isabs(d) else os.path.join(ctx.lake_root, d)


def _export_root(ctx: "Context") -> str:
    d = ctx.cfg.segments.export_dir
    return d if os.path.isabs(d) else os.path.join(ctx.lake_root, d)


def _audit_row(request: dict[str, Any], requested: datetime, done: datetime, batch: int, **values: Any) -> dict[str, Any]:
    row = {
        "request_id": request["request_id"], "kind": request["kind"], "subject_hash": request["subject_hash"],
        "requested_at": requested, "completed_at": done, "tables": {}, "versions": {}, "rows_removed": 0,
        "files_rewritten": 0, "scan_files": 0, "scan_hits": 0, "outcome": None, "run_id": request["run_id"],
        "records": 0, "linked_records_kept": 0, "batch_requests": batch,
    }
    row.update(values)
    return row


def _append_audit(ctx: "Context", rows: list[dict[str, Any]]) -> None:
    """Append audit rows; an audit table from before a column was added gets the column first
    (an append keeps only the table's columns)."""
    address = S.PRIVACY_AUDIT.address
    if ctx.lake.exists(address):
        have = set(ctx.lake.schema(address).fieldNames())
        for c in S.PRIVACY_AUDIT.columns:
            if c.name not in have:
                ctx.lake.add_column(address, c.name, c.dtype)
    ctx.lake.append_rows(address, rows, S.PRIVACY_AUDIT.schema)


def erase(ctx: "Context", subjects: Sequence[str], reason: str = "erasure", all_holders: bool = False) -> dict[str, Any]:
    """Erase subjects (``TYPE:VALUE`` each) from every layer and prove it; see the module docstring.

    Refused before anything is deleted (requests failed, audit outcome ``refused``, PrivacyError):
    a place the scan must cover is not local (:func:`check_scannable`), or a subject's identifier
    is held by several persons and ``all_holders`` is off (:func:`resolve_subjects`).
    """
    written = list(dict.fromkeys(parse_subject(s) for s in subjects))
    if not written:
        raise PrivacyError("privacy erase: got no subject; expected --subject TYPE:VALUE or --file FILE")
    forms = silver_form_subjects(ctx, written)
    # One request per subject as silver holds it (a value written twice, or in two spellings of one
    # address, is one request); a value silver holds for no one keeps its written form and is refused.
    parsed = list(dict.fromkeys(as_requested(written, forms)))
    salt = ctx.cfg.privacy.salt
    requested = datetime.now(timezone.utc)
    requests = [
        {"request_id": f"req-{uuid.uuid4().hex[:12]}", "kind": reason, "subject_hash": subject_hash(salt, k, v), "state": "received", "received_at": requested, "completed_at": None, "run_id": None}
        for k, v in parsed
    ]
    batch = len(requests)
    with record_run(ctx.lake, "privacy_erase", ctx.config_hash, ctx.parent_run_id) as run:
        for r in requests:
            r["run_id"] = run.run_id
        ctx.lake.upsert_rows(S.PRIVACY_REQUESTS.address, requests, S.PRIVACY_REQUESTS.schema, ["request_id"])
        try:
            refuse_unheld(ctx, written, forms, "privacy erase")
            check_scannable(ctx, "privacy erase")
            found = resolve_subjects(ctx, parsed, all_holders=all_holders)
            found.requested = {(k, v) for k, v in (*written, *parsed) if k != S.ID_PERSON}
        except PrivacyError:
            done = datetime.now(timezone.utc)
            for r in requests:
                r.update(state="failed", completed_at=done)
            ctx.lake.upsert_rows(S.PRIVACY_REQUESTS.address, requests, S.PRIVACY_REQUESTS.schema, ["request_id"])
            _append_audit(ctx, [_audit_row(r, requested, done, batch, outcome="refused") for r in requests])
            raise
        run.stage(f"resolved {len(parsed)} subject(s): {len(found.person_ids)} persons, {len(found.record_keys)} records, {len(found.event_keys)} events")
        result = erase_found(ctx, found, run.run_id, suppress=True, request_ids=[r["request_id"] for r in requests])
        run.rows_in = len(found.record_keys) + len(found.event_keys)
        run.rows_out = result["rows_removed"]
        for k in ("rows_removed", "files_rewritten", "scan_files", "scan_hits", "persons", "records", "events", "shared_values_kept", "linked_records_kept"):
            run.metric(k, result[k])
        done = datetime.now(timezone.utc)
        audit = []
        nothing_held = 0
        for (kind, _), r, share in zip(parsed, requests, result["per_request"]):
            r.update(state="done" if result["outcome"] == "verified" else "failed", completed_at=done)
            outcome = result["outcome"]
            if outcome == "verified" and not share["records"]:
                # No record holds the subject (as written or in silver's form): nothing was erased
                # for it, which the officer must be able to tell from a typo'd request.
                outcome, nothing_held = "nothing_held", nothing_held + 1
                kept_out = "no person id is suppressed" if kind == S.ID_PERSON else f"its {kind} is suppressed, so ingest keeps it out from now on"
                log.warning("privacy erase: request %s: no record holds the subject; nothing erased (%s)", r["request_id"], kept_out)
            audit.append(
                _audit_row(
                    r, requested, done, batch,
                    tables=result["tables"], versions=result["versions"], rows_removed=share["rows_removed"],
                    files_rewritten=result["files_rewritten"], scan_files=result["scan_files"], scan_hits=result["scan_hits"],
                    outcome=outcome, records=share["records"], linked_records_kept=share["linked_records_kept"],
                )
            )
            share["request"] = r["request_id"]
            share["outcome"] = outcome
        result["nothing_held"] = nothing_held
        run.metric("nothing_held", nothing_held)
        ctx.lake.upsert_rows(S.PRIVACY_REQUESTS.address, requests, S.PRIVACY_REQUESTS.schema, ["request_id"])
        _append_audit(ctx, audit)
        if result["outcome"] != "verified":
            raise PrivacyError(f"erasure of {len(parsed)} subject(s) could not be verified: {result['unverified']}")
    result["requests"] = [r["request_id"] for r in requests]
    for k in ("hit_files", "unverified"):
        result.pop(k, None)
    return result


def erase_found(
    ctx: "Context", found: Subject, run_id: str, suppress: bool, request_ids: Sequence[str] = (), retention: bool = False
) -> dict[str, Any]:
    """Steps 2 to 7 of the module docstring for what :func:`resolve_subjects` found.

    ``retention`` removes old rows rather than a person: values remaining rows still hold are
    not scanned for (see :func:`collect_needles`). The caller refuses, before it resolves, a place
    the scan must cover that is not local (:func:`check_scannable`, as :func:`erase` and
    :func:`retention` run it), so an MLflow API is probed once. ``per_request`` in the result: records,
    rows removed and linked records kept of each of ``found.requests`` (rows counted per request
    by :func:`rows_per_request` when there are several).
    """
    from jobs.golden.job import output_versions, rebase_state

    collect_needles(ctx, found, keep_values_of_remaining_rows=retention)
    quarantine_ids = _quarantine_ids(ctx, found)
    lines = landing_lines(ctx, found, quarantine_ids)
    scope = golden_scope(ctx, found)
    shares = rows_per_request(ctx, found, quarantine_ids) if len(found.requests) > 1 else None
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
    scan = scan_everything(ctx, found.needles)
    unverified = unverified_reason(ctx, scan)
    rows_removed = sum(removed.values())
    per_request = [
        {
            "records": len(share.record_keys),
            "rows_removed": shares[i] if shares is not None else rows_removed,
            "linked_records_kept": len(share.linked_records_kept - found.record_keys),
        }
        for i, share in enumerate(found.requests)
    ]
    return {
        "persons": len(found.person_ids),
        "records": len(found.record_keys),
        "events": len(found.event_keys),
        "tables": removed,
        "versions": versions,
        "rows_removed": rows_removed,
        "files_rewritten": len(changed),
        "scan_files": scan.files,
        "scan_hits": scan.hits,
        "hit_files": scan.hit_files,
        "shared_values_kept": found.shared_values,
        "linked_records_kept": len(found.linked_records_kept),
        "per_request": per_request,
        "outcome": "verified" if unverified is None else "failed",
        "unverified": unverified,
    }


def add_suppression(ctx: "Context", found: Subject, request_id: str) -> int:
    salt = ctx.cfg.privacy.salt
    now = datetime.now(timezone.utc)
    rows = {(k, salted_hash(salt, k, v)) for k, v in found.identifiers | found.requested}
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
    written = [parse_subject(subject)]
    forms = silver_form_subjects(ctx, written)
    ((kind, value),) = as_requested(written, forms)
    reference = subject_hash(ctx.cfg.privacy.salt, kind, value)
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    received = datetime.now(timezone.utc)
    with record_run(ctx.lake, "privacy_export", ctx.config_hash, ctx.parent_run_id) as run:
        request = {"request_id": request_id, "kind": "access", "subject_hash": reference, "state": "received", "received_at": received, "completed_at": None, "run_id": run.run_id}
        ctx.lake.upsert_rows(S.PRIVACY_REQUESTS.address, [request], S.PRIVACY_REQUESTS.schema, ["request_id"])
        try:
            refuse_unheld(ctx, written, forms, "privacy export")
            found = resolve_subjects(ctx, [(kind, value)], command="privacy export")
        except PrivacyError:
            request.update(state="failed", completed_at=datetime.now(timezone.utc))
            ctx.lake.upsert_rows(S.PRIVACY_REQUESTS.address, [request], S.PRIVACY_REQUESTS.schema, ["request_id"])
            raise
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
        _append_audit(ctx, [_audit_row(request, received, done, 1, outcome="exported", records=len(found.record_keys))])
    return {"out": os.path.abspath(out), "request": request_id, "run_id": run.run_id, "persons": len(found.person_ids), "records": len(found.record_keys), "counts": counts}


# --- retention ---------------------------------------------------------------------------------


def _timestamp(at: datetime) -> "Column":
    """A UTC wall-clock time as a Spark timestamp (read in the session time zone, UTC), whatever
    the driver's local time zone is."""
    return F.lit(at.strftime("%Y-%m-%d %H:%M:%S")).cast("timestamp")


def expired_rows(ctx: "Context") -> Subject:
    """Records and events older than their source's ``retention_days`` at the run date.

    A persons source's records expire by their last activity: their last change (updated, else
    created, else ingested) or the last event they own (silver.events ``owner_record_key``: an
    account's order, a subscriber's opened mailing), whichever is later, so an old account that
    still orders stays; so do the anonymous records an events source derives (``records_from``),
    under its ``records_source`` name. Then, as for a subject, the events tied to identifiers only expired
    records hold, and the events expired records own, go too. An events source's own events expire by ``event_at``.
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
    events = _read(ctx, S.SILVER_EVENTS.address)
    if records is not None and record_cutoffs:
        seen = F.coalesce("source_updated_at", "source_created_at", "ingested_at")
        if events is not None:
            last_owned = (
                events.where(F.col("owner_record_key").isNotNull())
                .groupBy(F.col("owner_record_key").alias("record_key"))
                .agg(F.max("event_at").alias(f"{S.TMP}last_owned"))
            )
            records = records.join(last_owned, "record_key", "left")
            seen = F.greatest(seen, F.col(f"{S.TMP}last_owned"))  # greatest skips nulls
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
        check_scannable(ctx, "privacy retention")
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
        _append_audit(
            ctx,
            [
                _audit_row(
                    request, requested, done, 1, tables=result["tables"], versions=result["versions"],
                    rows_removed=result["rows_removed"], files_rewritten=result["files_rewritten"],
                    scan_files=result["scan_files"], scan_hits=result["scan_hits"], outcome=result["outcome"],
                    records=result["records"],
                )
            ],
        )
        if result["outcome"] != "verified":
            raise PrivacyError(
                f"retention of {len(found.record_keys)} record(s) and {len(found.event_keys)} event(s) could not be verified: "
                f"{result['unverified']}"
            )
    for k in ("hit_files", "unverified", "per_request"):
        result.pop(k, None)
    result["request"] = request_id
    return result
