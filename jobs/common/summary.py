"""A short summary of the lakehouse for people at a terminal (``cdp demo``)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import Context

log = logging.getLogger(__name__)


def table_counts(ctx: "Context") -> dict[str, int]:
    counts: dict[str, int] = {}
    for address in ctx.lake.tables():
        try:
            counts[address] = int(ctx.lake.read(address).count())
        except Exception:  # noqa: BLE001 - a summary must not fail the demo
            log.debug("could not count %s", address, exc_info=True)
    return counts


def _figures(ctx: "Context") -> dict[str, Any]:
    from pyspark.sql import functions as F

    from . import schemas as S

    lake = ctx.lake
    out: dict[str, Any] = {}
    if lake.exists(S.SILVER_RECORDS.address):
        rows = lake.read(S.SILVER_RECORDS.address).groupBy("source").count().collect()
        out["records per source"] = {r.source: r["count"] for r in sorted(rows)}
    if lake.exists(S.BRONZE_QUARANTINE.address):
        rows = lake.read(S.BRONZE_QUARANTINE.address).groupBy(F.split("reason", ":")[0].alias("reason")).count().collect()
        out["quarantined"] = {r.reason: r["count"] for r in sorted(rows)}
    if lake.exists(S.GOLDEN_PROFILES.address):
        profiles = lake.read(S.GOLDEN_PROFILES.address)
        out["persons"] = profiles.count()
        out["households (2+ persons)"] = (
            profiles.where("household_id is not null").groupBy("household_id").count().where("count > 1").count()
        )
    if lake.exists(S.GOLDEN_ID_CHANGES.address):
        rows = lake.read(S.GOLDEN_ID_CHANGES.address).groupBy("change").count().collect()
        out["id changes"] = {r.change: r["count"] for r in sorted(rows)}
    if lake.exists(S.SEGMENT_MEMBERSHIP.address):
        rows = (
            lake.read(S.SEGMENT_MEMBERSHIP.address).where("exited_at is null").groupBy("segment").count().collect()
        )
        out["segment members"] = {r.segment: r["count"] for r in sorted(rows)}
    return out


def print_summary(ctx: "Context", seconds: float) -> None:
    """Where the tables are and what is in them (stdout: this is the CLI's output)."""
    write = sys.stdout.write
    write(f"\nLakehouse: {ctx.lake_root} (Delta engine: {ctx.lake.engine.name})\n")
    write(f"Sample data: {ctx.data_root}\n")
    write("Tables:\n")
    for address, n in table_counts(ctx).items():
        write(f"  {address:<28} {n:>10,} rows   {ctx.lake.path(address)}\n")
    for name, value in _figures(ctx).items():
        if isinstance(value, dict):
            write(f"{name}:\n")
            for k, v in value.items():
                write(f"  {k:<28} {v:>10,}\n")
        else:
            write(f"{name}: {value:,}\n")
    write(f"Done in {seconds:.0f}s. Try: cdp profile --id person_id:<id from golden.profiles>\n")
