"""Segments job: golden.profiles -> segments.membership (history), segments.exports, audience files.

read profiles, suppression and the membership history -> evaluate the configured rules and the
RFM micro-segments (jobs.segments.transforms) -> merge the changes into segments.membership
(entered / exited rows; never an overwrite) -> write the audience files of every segment that asks
for them, each with a JSON manifest next to it and a row in segments.exports -> record the run.

Full and incremental runs (``incremental=True``, from `cdp run --incremental`) are the same run:
every profile is evaluated, and only the membership rows that change are written (MERGE of new
open rows and newly closed rows; untouched history is never rewritten). Evaluating everyone is
one projection over golden.profiles, and it is what correctness needs: membership changes for
persons whose profile did not change at all, when the run date moves a rule such as
``last_order_at > run_date - 90 days``, when a person is suppressed (erased) or when the config
changes. So after an incremental golden run the membership rows written are those of the persons
whose profile changed (the affected persons, and those whose RFM recency moved with the run date)
plus those whose run-date rules flipped, and the result equals a full run on the same date.
A person who has no profile any more (erased, merged away) leaves every segment.

Exports are always of the whole current membership, so a file is complete whatever kind of run
wrote it. Suppressed (erased) persons are left out of the membership and, again, of every export.
A hashed ad audience holds only persons with the consent named by ``hashed_audience_consent``;
a config that exports one without it is refused before anything is read or written, inside the
run record (like a missing golden.profiles), so the refusal is a failed row in ops.runs.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common import schemas as S
from jobs.common.config import Problem
from jobs.common.errors import ConfigError, DataError
from jobs.common.runlog import Run, record_run
from jobs.segments.rules import export_consent_problems

from .transforms import (
    email_export,
    evaluate_segments,
    export_manifest,
    hash_method_for,
    hashed_audience,
    membership_changes,
    membership_counts,
    open_members,
    segment_names,
    suppressed_persons,
)

if TYPE_CHECKING:
    from jobs.common.context import Context

log = logging.getLogger(__name__)

JOB = "segments"


def export_folder(ctx: "Context") -> str:
    """<lake.root>/<segments.export_dir>: where audience files are written."""
    folder = ctx.cfg.segments.export_dir
    return folder if os.path.isabs(folder) else os.path.join(ctx.lake_root, folder)


def export_path(ctx: "Context", segment: str, run_id: str, target: str) -> str:
    """<export folder>/<segment>/<run_id>/<target>.csv (the manifest is <target>.manifest.json)."""
    return os.path.join(export_folder(ctx), segment, run_id, f"{target}.csv")


def manifest_path(path: str) -> str:
    return os.path.splitext(path)[0] + ".manifest.json"


def write_csv(df: DataFrame, path: str) -> int:
    """Write ``df`` as one CSV file with a header (streamed through the driver); returns the rows.

    One file, not a Spark output folder, because e-mail tools and ad platforms take one file per
    upload. Written to a temporary name and renamed, so a reader never sees half a file.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    rows = 0
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(df.columns)
        for row in df.toLocalIterator():
            writer.writerow(["" if v is None else v for v in row])
            rows += 1
    os.replace(tmp, path)
    return rows


def write_manifest(manifest: dict[str, Any], path: str) -> None:
    data = dict(manifest)
    data["created_at"] = manifest["created_at"].isoformat()
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def _suppressed(ctx: "Context", profiles: DataFrame) -> DataFrame | None:
    if not ctx.lake.exists(S.PRIVACY_SUPPRESSION.address):
        return None
    suppression = ctx.lake.read(S.PRIVACY_SUPPRESSION.address)
    return suppressed_persons(profiles, suppression, ctx.cfg.privacy.salt).localCheckpoint()


def write_exports(ctx: "Context", profiles: DataFrame, members: DataFrame, run: Run) -> list[dict[str, Any]]:
    """Every configured export of every segment; returns the manifests (also in segments.exports)."""
    cfg = ctx.cfg.segments
    manifests: list[dict[str, Any]] = []
    for seg in cfg.segments:
        for target in seg.exports:
            if target == "email_csv":
                rows_df = email_export(profiles, members, seg.name)
            else:
                rows_df = hashed_audience(
                    profiles, members, seg.name, consent=cfg.hashed_audience_consent,
                    phone_format=cfg.hashed_phone_format,
                )
            path = export_path(ctx, seg.name, run.run_id, target)
            rows = write_csv(rows_df, path)
            manifest = export_manifest(
                seg.name, run.run_id, target, path, rows, hash_method_for(target, cfg.hashed_phone_format)
            )
            write_manifest(manifest, manifest_path(path))
            manifests.append(manifest)
            run.metric(f"export_rows.{seg.name}.{target}", rows)
            run.stage(f"export {seg.name} {target}", rows)
    if manifests:
        ctx.lake.upsert_rows(S.SEGMENT_EXPORTS.address, manifests, S.SEGMENT_EXPORTS.schema, ["export_id"])
    return manifests


def run(ctx: "Context", incremental: bool = False) -> dict[str, Any]:
    """Evaluate every segment, merge membership history, write exports; returns the counts.

    ``incremental`` is accepted for the pipeline's common interface: an incremental run is the
    full evaluation with a merge of the changed rows (module docstring).
    """
    lake = ctx.lake
    cfg = ctx.cfg.segments
    with record_run(lake, JOB, ctx.config_hash, ctx.parent_run_id) as r:
        # Preconditions inside the run record, so a run refused here is a failed row in ops.runs.
        unconsented = export_consent_problems(cfg)
        if unconsented:
            raise ConfigError([str(Problem(path, given, expected)) for path, given, expected in unconsented])
        if not lake.exists(S.GOLDEN_PROFILES.address):
            raise DataError(
                f"segments: table {S.GOLDEN_PROFILES.address} does not exist under {ctx.lake_root}; "
                "expected the golden stage to have run first"
            )
        run_at = ctx.run_at
        profiles = lake.read(S.GOLDEN_PROFILES.address)
        suppressed = _suppressed(ctx, profiles)
        evaluated = profiles.count()
        r.rows_in = evaluated
        r.stage("profiles evaluated", evaluated)

        members = evaluate_segments(profiles, cfg, ctx.run_date, suppressed).localCheckpoint()
        current = lake.read_or_empty(S.SEGMENT_MEMBERSHIP.address, S.SEGMENT_MEMBERSHIP.schema)
        changes = membership_changes(current, members, run_at, r.run_id, segments=segment_names(cfg)).localCheckpoint()
        per_change = {
            (row["segment"], row["change"]): int(row["n"])
            for row in changes.groupBy("segment", "change").agg(F.count(F.lit(1)).alias("n")).collect()
        }
        entered = sum(n for (_, c), n in per_change.items() if c == "entered")
        exited = sum(n for (_, c), n in per_change.items() if c == "exited")
        if not lake.exists(S.SEGMENT_MEMBERSHIP.address):
            lake.create(S.SEGMENT_MEMBERSHIP.address, S.SEGMENT_MEMBERSHIP.schema)
        if entered or exited:
            lake.merge(S.SEGMENT_MEMBERSHIP.address, changes.drop("change"), list(S.SEGMENT_MEMBERSHIP.key))
        r.rows_out = entered + exited
        r.stage(f"membership merged (entered {entered:,}, exited {exited:,})", entered + exited)

        membership = lake.read(S.SEGMENT_MEMBERSHIP.address)
        counts = {row["segment"]: int(row["members"]) for row in membership_counts(membership).collect()}
        names = segment_names(cfg)
        for name in sorted(set(names) | set(counts)):
            if name in names or counts.get(name):
                r.metric(f"members.{name}", counts.get(name, 0))
        for (segment, change), n in sorted(per_change.items()):
            r.metric(f"{change}.{segment}", n)
        r.metric("entered", entered)
        r.metric("exited", exited)

        exporting = [s for s in cfg.segments if s.exports]
        manifests: list[dict[str, Any]] = []
        if exporting:
            current_members = open_members(membership)
            export_profiles = profiles
            if suppressed is not None:
                export_profiles = profiles.join(suppressed, on=S.ID_PERSON, how="left_anti")
            manifests = write_exports(ctx, export_profiles, current_members, r)
        export_rows = sum(m["rows"] for m in manifests)
        r.metric("export_rows", export_rows)
        summary: dict[str, Any] = {
            "evaluated": evaluated,
            "entered": entered,
            "exited": exited,
            "members": {k: v for k, v in sorted(counts.items())},
            "exports": {f"{m['segment']}.{m['target']}": m["rows"] for m in manifests},
            "export_rows": export_rows,
            "run_id": r.run_id,
        }
    return summary
