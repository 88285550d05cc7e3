"""The ``cdp`` command: one verb per job, plus ``run``, ``demo`` and ``validate-config``.

Command functions stay thin: parse, load config (validated before Spark starts), build the
context, call the stage's ``run()``. Logging is configured here and nowhere else. A failing job
exits non-zero with one clear line; ``--verbose`` adds the stack trace.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("cdp")

STAGES = ("ingest", "standardize", "match", "golden", "segments")


def _setup_logging(verbose: bool) -> None:
    """Logging and progress, configured here once: on a terminal short lines under a live status
    line (stage, rows, elapsed; jobs.common.runlog), elsewhere plain lines with the logger name."""
    from jobs.common.runlog import TerminalHandler, configure_progress

    level = logging.DEBUG if verbose else logging.INFO
    terminal = configure_progress(sys.stderr).enabled
    handler: logging.Handler = TerminalHandler(sys.stderr) if terminal else logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s %(levelname)-7s %(message)s" if terminal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("py4j", "pyspark", "urllib3", "alembic", "mlflow", "matplotlib", "git", "faker", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(args: argparse.Namespace) -> Any:
    from jobs.common.config import load_config

    overrides = list(args.set or [])
    if getattr(args, "run_date", None):
        overrides.append(f"run.date={args.run_date}")
    return load_config(args.config, overrides)


def _context(args: argparse.Namespace) -> Any:
    from jobs.common.context import build_context

    return build_context(_load(args))


def cmd_validate_config(args: argparse.Namespace) -> int:
    loaded = _load(args)
    cfg = loaded.model
    print(
        f"{args.config}: valid ({len(cfg.sources)} sources, {len(cfg.match.comparisons)} comparisons, "
        f"{len(cfg.segments.segments)} segments; config hash {loaded.hash})"
    )
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from jobs.ingest.generate import generate_sample_data

    out = args.out
    if out is None:
        out = _load(args).model.data.root if args.config and os.path.exists(args.config) else "data/sample"
    summary = generate_sample_data(args.persons, args.seed, out)
    print(json.dumps({"out": os.path.abspath(out), **{k: v for k, v in summary.items() if k != "files"}}, indent=2, default=str))
    return 0


def _stage_runner(name: str) -> Callable[..., Any]:
    import importlib

    return importlib.import_module(f"jobs.{name}.job").run


def cmd_stage(args: argparse.Namespace) -> int:
    ctx = _context(args)
    kwargs: dict[str, Any] = {}
    if args.command == "ingest" and args.source:
        kwargs["sources"] = args.source
    if args.command in ("standardize", "match", "golden", "segments") and getattr(args, "incremental", False):
        kwargs["incremental"] = True
    result = _stage_runner(args.command)(ctx, **kwargs)
    _print_result(args.command, result)
    return 0


def _print_result(stage: str, result: Any) -> None:
    if result is None:
        return
    print(f"{stage}: " + json.dumps(result, default=str, sort_keys=True))


def run_pipeline(ctx: Any, incremental: bool = False, stages: Sequence[str] = STAGES) -> dict[str, Any]:
    """All stages in order under one parent run id."""
    from jobs.common.runlog import new_run_id

    ctx.parent_run_id = new_run_id("run")
    ctx.state.clear()
    results: dict[str, Any] = {}
    t0 = time.monotonic()
    for stage in stages:
        t = time.monotonic()
        kwargs = {"incremental": incremental} if stage != "ingest" else {}
        results[stage] = _stage_runner(stage)(ctx, **kwargs)
        log.info("stage %s finished in %.1fs", stage, time.monotonic() - t)
    log.info("pipeline finished in %.1fs", time.monotonic() - t0)
    return results


def _run_all(ctx: Any, incremental: bool) -> dict[str, Any]:
    """``cdp run`` and ``cdp demo``: every stage in order, each stage's result printed."""
    results = run_pipeline(ctx, incremental=incremental)
    for stage, result in results.items():
        _print_result(stage, result)
    return results


def cmd_run(args: argparse.Namespace) -> int:
    _run_all(_context(args), args.incremental)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Sample data into data.root, every stage (as ``cdp run``), then where the tables are and what they hold."""
    from jobs.common.summary import print_summary
    from jobs.ingest.generate import generate_sample_data

    loaded = _load(args)
    cfg = loaded.model
    persons = args.persons or cfg.run.demo_persons
    t0 = time.monotonic()
    log.info("generating %s sample persons into %s", persons, cfg.data.root)
    generate_sample_data(persons, cfg.run.demo_seed, cfg.data.root)
    from jobs.common.context import build_context

    ctx = build_context(loaded)
    _run_all(ctx, incremental=False)
    print_summary(ctx, time.monotonic() - t0)
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    ctx = _context(args)
    from jobs.match import job

    if args.action == "train":
        result = job.train(ctx)
    elif args.action == "analyse-blocking":
        result = job.analyse(ctx)
        print(result["table"])
        return 0
    else:
        result = job.run(ctx, incremental=args.incremental, retrain=args.retrain)
    _print_result("match", result)
    return 0


def cmd_privacy(args: argparse.Namespace) -> int:
    if args.all_holders and args.action != "erase":
        from jobs.common.errors import ConfigError

        raise ConfigError(f"privacy {args.action}: got --all-holders; expected it with erase only")
    ctx = _context(args)
    from jobs.privacy import job

    if args.action == "erase":
        subjects = _subjects(args)
        result = job.erase(ctx, subjects, all_holders=args.all_holders)
    elif args.action == "export":
        result = job.export_subject(ctx, args.subject, args.out)
    else:
        result = job.retention(ctx)
    _print_result(f"privacy {args.action}", result)
    return 0


def _subjects(args: argparse.Namespace) -> list[str]:
    """Every --subject and every line of --file (blank lines and '#' comments skipped), checked.

    A malformed subject fails without repeating it (it is personal data); a line of the file is
    named by file and line number. All problems are reported together.
    """
    from jobs.common.errors import ConfigError
    from jobs.golden.lookup import parse_subject

    problems: list[str] = []
    subjects: list[str] = []
    for i, subject in enumerate(args.subject or [], start=1):
        try:
            parse_subject(subject)
        except ConfigError as exc:
            problems += [f"--subject #{i}: {p}" for p in exc.problems]
        subjects.append(subject)
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(
                f"privacy erase --file {args.file}: cannot be read ({reason}); expected a UTF-8 file with one TYPE:VALUE per line"
            ) from None
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                parse_subject(text)
            except ConfigError as exc:
                problems += [f"{args.file} line {number}: {p}" for p in exc.problems]
            subjects.append(text)
    if problems:
        raise ConfigError(problems)
    if not subjects:
        raise ConfigError("privacy erase: got no subject; expected --subject TYPE:VALUE or --file FILE")
    return subjects


def cmd_profile(args: argparse.Namespace) -> int:
    ctx = _context(args)
    from jobs.golden.lookup import find_profile, format_profile

    profile = find_profile(ctx, args.id, as_of=args.as_of)
    print(format_profile(profile) if not args.json else json.dumps(profile, default=str, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdp", description="Customer data platform jobs")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging and stack traces")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, config_required: bool = True) -> None:
        p.add_argument("--config", "-c", default="conf/local.yaml", help="environment file (default conf/local.yaml)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. lake.root=out/lake")
        p.add_argument("--run-date", help="run date YYYY-MM-DD (default today, UTC)")
        p.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS)

    p = sub.add_parser("validate-config", help="validate the configuration and report every problem")
    common(p)
    p.set_defaults(func=cmd_validate_config)

    p = sub.add_parser("generate", help="generate sample data with ground truth")
    common(p)
    p.add_argument("--persons", type=int, default=2000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=None, help="output folder (default: the config's data.root)")
    p.set_defaults(func=cmd_generate)

    for stage in ("ingest", "standardize", "golden", "segments"):
        p = sub.add_parser(stage, help=f"run the {stage} job")
        common(p)
        if stage == "ingest":
            p.add_argument("--source", action="append", help="only this source (repeatable)")
        else:
            p.add_argument("--incremental", action="store_true", help="only new or changed records")
        p.set_defaults(func=cmd_stage)

    p = sub.add_parser("match", help="score pairs and resolve identities; or train / analyse-blocking")
    common(p)
    p.add_argument("action", nargs="?", choices=["score", "train", "analyse-blocking"], default="score")
    p.add_argument("--incremental", action="store_true")
    p.add_argument("--retrain", action="store_true", help="train a new model version first and score with it")
    p.set_defaults(func=cmd_match)

    p = sub.add_parser("run", help="all stages in order")
    common(p)
    p.add_argument("--incremental", action="store_true", help="only new or changed records")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="generate sample data and run the whole pipeline")
    common(p)
    p.add_argument("--persons", type=int, default=None)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("privacy", help="erasure, access export and retention")
    common(p)
    p.add_argument("action", choices=["erase", "export", "retention"])
    p.add_argument("--subject", action="append", help="TYPE:VALUE, e.g. email:jan@example.nl or person_id:P...")
    p.add_argument("--file", help="file with one subject per line (erase)")
    p.add_argument(
        "--all-holders",
        action="store_true",
        help="erase: also erase a subject whose identifier several persons hold (a family e-mail address), "
        "erasing every holder; without it such a request is refused and nothing is deleted",
    )
    p.add_argument("--out", help="output file (export)")
    p.set_defaults(func=cmd_privacy)

    p = sub.add_parser("profile", help="print a golden profile with provenance")
    common(p)
    p.add_argument("--id", required=True, help="TYPE:VALUE, e.g. email:jan@example.nl, phone:+316..., person_id:P...")
    p.add_argument("--as-of", help="the profile as it was on this date/time (Delta time travel)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    _setup_logging(verbose)
    from jobs.common.errors import CdpError

    try:
        return int(args.func(args) or 0)
    except CdpError as exc:
        if verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line, the trace only with --verbose
        if verbose:
            traceback.print_exc()
        print(f"error: {type(exc).__name__}: {_first_line(exc)} (run with --verbose for the stack trace)", file=sys.stderr)
        return 1


def _first_line(exc: BaseException) -> str:
    """The exception's first message line; a Java exception whose JVM has gone cannot say it."""
    try:
        text = str(exc).strip()
    except Exception:  # noqa: BLE001 - py4j asks the (dead) JVM for the message
        return (
            "the Spark JVM stopped while it raised this (the Java messages above say why; an "
            "OutOfMemoryError there means spark.driver_memory is too small for this run)"
        )
    return text.splitlines()[0] if text else ""


if __name__ == "__main__":
    sys.exit(main())
