"""The CLI's own behaviour: progress on a terminal, plain lines elsewhere, one error line unless --verbose."""

from __future__ import annotations

import io
import logging
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobs.cli as cli
from jobs.common import runlog
from jobs.common.delta import DeltaRsEngine, Lake
from jobs.common.errors import DataError
from jobs.common.runlog import Run, TerminalHandler, configure_progress, record_run

VALID = Path(__file__).parent / "fixtures" / "valid" / "local.yaml"
CLEAR = "\r\x1b[2K"


class FakeTTY(io.StringIO):
    """A terminal as far as the CLI can tell."""

    def isatty(self) -> bool:
        return True



def _statuses(text: str, job: str, stage: str) -> list[float]:
    """Elapsed seconds of every status line drawn for ``stage``."""
    pattern = re.escape(CLEAR) + re.escape(f"[{job}] {stage}: ") + r"[\d,]+ rows \((\d+\.\d)s\)"
    return [float(m) for m in re.findall(pattern, text)]


def test_a_terminal_shows_stage_rows_and_a_running_clock(spark, tmp_path: Path, restore_logging: None) -> None:  # noqa: ANN001
    tty = FakeTTY()
    assert configure_progress(tty, interval=0.05).enabled
    lake = Lake(spark, str(tmp_path / "lake"), DeltaRsEngine(spark))
    with record_run(lake, "standardize", "h") as run:
        run.stage("read bronze", rows=12345)
        deadline = time.monotonic() + 10
        while len(set(_statuses(tty.getvalue(), "standardize", "read bronze"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the line is redrawn while the stage runs
        shown = tty.getvalue()
        assert f"{CLEAR}[standardize] read bronze: 12,345 rows (" in shown
        clock = _statuses(shown, "standardize", "read bronze")
        assert len(set(clock)) >= 2 and clock == sorted(clock), clock
        assert not shown.endswith(CLEAR)  # still showing
    after = tty.getvalue()
    assert re.search(re.escape(CLEAR) + r"\[standardize\] done \(in 0, out 0, quarantined 0\) \(\d+\.\ds\)" + re.escape(CLEAR) + "$", after)
    size = len(after)
    time.sleep(0.2)
    assert len(tty.getvalue()) == size  # the clock stopped with the run


def test_log_lines_go_above_the_status_line(restore_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    cli._setup_logging(verbose=False)  # what main() does first
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, TerminalHandler) and runlog.progress().enabled
    run = Run("r1", "match", "h")
    runlog.progress().start(run)
    try:
        run.stage("scored pairs", rows=4200)
        logging.getLogger("jobs.match.job").warning("a warning while the stage runs")
    finally:
        runlog.progress().finish(run)
    text = tty.getvalue()
    # the status line cleared, the log line, then the status line again
    assert re.search(
        re.escape("[match] scored pairs: 4,200 rows (") + r"\d+\.\ds\)" + re.escape(CLEAR) + r"\d\d:\d\d:\d\d WARNING a warning while the stage runs\n"
        + re.escape(f"{CLEAR}[match] scored pairs: 4,200 rows ("),
        text,
    ), text
    assert text.endswith(CLEAR)


def test_no_terminal_plain_log_lines_and_no_status_line(restore_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    cli._setup_logging(verbose=False)
    (handler,) = logging.getLogger().handlers
    assert type(handler) is logging.StreamHandler and not runlog.progress().enabled
    run = Run("r2", "golden", "h")
    runlog.progress().start(run)
    run.stage("profiles", rows=7)
    runlog.progress().finish(run)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO jobs\.common\.runlog: \[golden\] profiles: 7 rows \(\d+\.\ds\)", lines[0])


def _fail_with(exc: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(args: object) -> int:
        raise exc

    monkeypatch.setattr(cli, "cmd_validate_config", boom)


@pytest.mark.parametrize(
    ("exc", "line", "code"),
    [
        (DataError("silver.records: got 3 rows; expected 4"), "error: silver.records: got 3 rows; expected 4", 1),
        (KeyError("bad"), "error: KeyError: 'bad' (run with --verbose for the stack trace)", 1),
    ],
)
def test_errors_print_one_line_and_the_stack_trace_only_with_verbose(
    exc: Exception, line: str, code: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
) -> None:  # fmt: skip
    _fail_with(exc, monkeypatch)
    assert cli.main(["validate-config", "--config", str(VALID)]) == code
    assert capsys.readouterr().err == line + "\n"
    for argv in (["--verbose", "validate-config", "--config", str(VALID)], ["validate-config", "-v", "--config", str(VALID)]):
        assert cli.main(argv) == code
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):\n"), err[:200]
        assert "in boom\n    raise exc\n" in err
        assert err.endswith(f"\n{line}\n")


def test_run_verb_runs_every_stage_through_the_demos_path_and_checks_config_first(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """`cdp run` is cmd_run -> _run_all, which `cdp demo` (the pipeline fixture) runs end to end;
    here: the verb's parsing and a broken config refused before Spark starts."""
    args = cli.build_parser().parse_args(["run", "--incremental", "--config", "x.yaml"])
    assert args.func is cli.cmd_run and args.incremental is True and args.config == "x.yaml"
    assert cli.build_parser().parse_args(["run"]).incremental is False
    broken = Path(__file__).parent / "fixtures" / "broken" / "local.yaml"
    assert cli.main(["run", "--config", str(broken)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: invalid configuration (") and "lake.engine: got 'duckdb'" in err
