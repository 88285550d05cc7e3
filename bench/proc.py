"""Run a command and measure it from outside: wall time and peak resident memory of its process tree.

Both tools run as child processes so that one measurement covers everything they start: the
Python driver, the JVM that PySpark launches, Python workers, DuckDB's threads. Memory is the sum
of RSS over the tree, sampled in a background thread (default every 0.1 s); the peak of the sums
is reported. RSS counts shared library pages once per process, so the figure is slightly high,
never low; short spikes between two samples can be missed.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Measured:
    """Outcome of one measured command."""

    command: list[str]
    returncode: int
    wall_s: float
    peak_rss_bytes: int
    log_path: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def log_tail(self, lines: int = 25) -> str:
        """Last lines of the command's combined output, for error reports."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return ""


def tree_rss(root: psutil.Process) -> int:
    """Current RSS of a process and all its descendants, in bytes (vanished processes count 0)."""
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class PeakSampler:
    """Background thread that tracks the peak tree RSS of one process until stopped."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self._proc = psutil.Process(pid)
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self._proc))
            self._stop.wait(self._interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(
    command: Sequence[str],
    log_path: str,
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    interval_s: float = 0.1,
) -> Measured:
    """Run ``command`` to completion with stdout+stderr in ``log_path``; never raises on failure.

    A timed-out command is killed with its whole tree (only the processes it started).
    """
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    full_env = dict(os.environ if env is None else env)
    timed_out = False
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(command), cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        with PeakSampler(proc.pid, interval_s) as sampler:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_tree(proc.pid)
                proc.wait()
        wall = time.perf_counter() - t0
    return Measured(list(command), proc.returncode, wall, sampler.peak, log_path, timed_out)


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)
