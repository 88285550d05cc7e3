"""The run log (ops.runs): one row per job run, written on success and on failure.

A run starts with a ``running`` row and ends with the same run id updated to ``succeeded`` or
``failed`` with its counts, so a run killed halfway still shows up (as ``running``).
Rows in = rows out + rows quarantined is checked by the jobs that read rows; this module only
records what they report.

Progress: every stage boundary (:meth:`Run.stage`) is a log line with its rows and the time since
the run started. On a terminal (:func:`configure_progress`, called once by the CLI) a status line
at the bottom of stderr also shows the running job's last stage, its rows and the elapsed time,
redrawn every second while the stage runs, so a long stage visibly lives; log lines are written
above it (:class:`TerminalHandler`). Anywhere else (a file, a scheduler's log, tests) only the
plain log lines are written.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

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

    last_stage: str = "started"
    last_rows: int | None = None

    def stage(self, name: str, rows: int | None = None) -> None:
        """Log a stage boundary with its row count and the elapsed time (and update the status line)."""
        self.last_stage, self.last_rows = name, rows
        log.info("%s", self.status())
        _progress.draw()

    def status(self) -> str:
        """``[job] stage: rows rows (elapsed)``: the last stage boundary, timed now."""
        elapsed = time.monotonic() - self._t0
        if self.last_rows is None:
            return f"[{self.job}] {self.last_stage} ({elapsed:.1f}s)"
        return f"[{self.job}] {self.last_stage}: {self.last_rows:,} rows ({elapsed:.1f}s)"

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


def error_text(exc: BaseException, limit: int = 2000) -> str:
    """What ops.runs keeps of a failure: our own errors whole (a ConfigError's first line only
    counts its problems), any other error's first line (a Java exception's further lines are its
    stack); at most ``limit`` characters."""
    from .errors import CdpError

    text = str(exc)
    if not isinstance(exc, CdpError):
        text = text.splitlines()[0] if text else ""
    message = f"{type(exc).__name__}: {text}"
    return message if len(message) <= limit else message[: limit - 3] + "..."


@contextmanager
def record_run(
    lake: "Lake", job: str, config_hash: str, parent_run_id: str | None = None, run_id: str | None = None
) -> Iterator[Run]:
    """Record a job run in ops.runs, on success and on failure (:func:`error_text` of the error)."""
    run = Run(run_id or new_run_id(job), job, config_hash, parent_run_id)
    _write(lake, run.row("running", ended=False), update=False)
    log.info("[%s] run %s started", job, run.run_id)
    _progress.start(run)
    try:
        try:
            yield run
        except BaseException as exc:
            try:
                _write(lake, run.row("failed", error=error_text(exc)), update=True)
            except Exception:  # noqa: BLE001 - never hide the original error
                log.exception("could not record the failed run %s", run.run_id)
            raise
        _write(lake, run.row("succeeded"), update=True)
        run.stage(
            f"done (in {run.rows_in:,}, out {run.rows_out:,}, quarantined {run.rows_quarantined:,})"
        )
    finally:
        _progress.finish(run)


# --- progress on a terminal --------------------------------------------------------------------

_CLEAR = "\r\x1b[2K"  # carriage return, erase the line


class Progress:
    """The status line of the running job(s) on a terminal; does nothing without a stream.

    Runs nest (``cdp run`` runs stages, a stage may record a run of its own): the innermost is
    shown. A daemon thread redraws it every ``interval`` seconds so the elapsed time moves while
    a stage runs; :class:`TerminalHandler` clears it before a log line and draws it again after.
    """

    def __init__(self, stream: TextIO | None = None, interval: float = 1.0) -> None:
        self.stream = stream
        self.interval = interval
        self.lock = threading.RLock()
        self._runs: list[Run] = []
        self._shown = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.stream is not None

    def start(self, run: Run) -> None:
        if not self.enabled:
            return
        with self.lock:
            self._runs.append(run)
            self.draw()
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._tick, name="cdp-progress", daemon=True)
                self._thread.start()

    def finish(self, run: Run) -> None:
        if not self.enabled:
            return
        with self.lock:
            if run in self._runs:
                self._runs.remove(run)
            if self._runs:
                self.draw()
                return
            self.clear()
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def draw(self) -> None:
        """Show the innermost run's status (replacing what the line showed)."""
        if not self.enabled:
            return
        with self.lock:
            if not self._runs:
                return
            self._write(_CLEAR + self._runs[-1].status())
            self._shown = True

    def clear(self) -> None:
        if not self.enabled:
            return
        with self.lock:
            if self._shown:
                self._write(_CLEAR)
                self._shown = False

    def _write(self, text: str) -> None:
        assert self.stream is not None
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal must not fail the job
            pass

    def finish_all(self) -> None:
        """Stop showing anything (a new configuration replaces this one)."""
        with self.lock:
            runs = list(self._runs)
        for run in runs:
            self.finish(run)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self.draw()


_progress = Progress()


def configure_progress(stream: TextIO | None, interval: float = 1.0) -> Progress:
    """Show progress on ``stream`` when it is a terminal; otherwise (or with None) show none.

    Called once, by the CLI, with stderr. Returns the configured :class:`Progress`.
    """
    global _progress
    _progress.finish_all()
    tty = stream is not None and hasattr(stream, "isatty") and stream.isatty()
    _progress = Progress(stream if tty else None, interval)
    return _progress


def progress() -> Progress:
    """The progress display in use (for the CLI's log handler)."""
    return _progress


class TerminalHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A log handler for a terminal: writes each record above the status line."""

    def emit(self, record: logging.LogRecord) -> None:
        shown = _progress
        with shown.lock:
            shown.clear()
            super().emit(record)
            shown.draw()
