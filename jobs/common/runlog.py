"""The run log (ops.runs): one row per job run, written on success and on failure.

A run starts with a ``running`` row and ends with the same run id updated to ``succeeded`` or
``failed`` with its counts, so a run killed halfway still shows up (as ``running``).
Rows in = rows out + rows quarantined is checked by the jobs that read rows; this module only
records what they report.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .schemas import OPS_RUNS

if TYPE_CHECKING:
    from .delta import Lake

log = logging.getLogger(__name__)


def new_run_id(job: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{job}-{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass
class Run:
    """Counts and metrics a job reports while it runs."""

    run_id: str
    job: str
    config_hash: str
    parent_run_id: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    metrics: dict[str, str] = field(default_factory=dict)
    _t0: float = field(default_factory=time.monotonic, repr=False)

    def metric(self, name: str, value: Any) -> None:
        self.metrics[name] = str(value)

    def stage(self, name: str, rows: int | None = None) -> None:
        """Log a stage boundary with its row count and the elapsed time (progress on a terminal)."""
        elapsed = time.monotonic() - self._t0
        if rows is None:
            log.info("[%s] %s (%.1fs)", self.job, name, elapsed)
        else:
            log.info("[%s] %s: %s rows (%.1fs)", self.job, name, f"{rows:,}", elapsed)

    def row(self, status: str, error: str | None = None, ended: bool = True) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job": self.job,
            "parent_run_id": self.parent_run_id,
            "config_hash": self.config_hash,
            "started_at": self.started_at,
            "ended_at": datetime.now(timezone.utc) if ended else None,
            "status": status,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_quarantined": self.rows_quarantined,
            "metrics": dict(self.metrics),
            "error": error,
        }


def _write(lake: "Lake", row: dict[str, Any], update: bool) -> None:
    if update:
        lake.upsert_rows(OPS_RUNS.address, [row], OPS_RUNS.schema, ["run_id"])
    else:
        lake.append_rows(OPS_RUNS.address, [row], OPS_RUNS.schema)


@contextmanager
def record_run(
    lake: "Lake", job: str, config_hash: str, parent_run_id: str | None = None, run_id: str | None = None
) -> Iterator[Run]:
    """Record a job run in ops.runs, on success and on failure (the error's first line is kept)."""
    run = Run(run_id or new_run_id(job), job, config_hash, parent_run_id)
    _write(lake, run.row("running", ended=False), update=False)
    log.info("[%s] run %s started", job, run.run_id)
    try:
        yield run
    except BaseException as exc:
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        try:
            _write(lake, run.row("failed", error=message[:1000]), update=True)
        except Exception:  # noqa: BLE001 - never hide the original error
            log.exception("could not record the failed run %s", run.run_id)
        raise
    _write(lake, run.row("succeeded"), update=True)
    run.stage(
        f"done (in {run.rows_in:,}, out {run.rows_out:,}, quarantined {run.rows_quarantined:,})"
    )


def is_terminal() -> bool:
    return sys.stderr.isatty()
