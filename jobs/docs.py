"""Generate the reference docs from the code: docs/tables.md (schemas) and docs/config.md (models).

``python -m jobs.docs`` rewrites both; ``python -m jobs.docs --check`` exits 1 when a file differs
from what the code generates (the test suite runs the check, so the docs cannot drift).
"""

from __future__ import annotations

import argparse
import logging
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

DOCS = Path(__file__).resolve().parent.parent / "docs"

log = logging.getLogger(__name__)


def _type_name(dtype: Any) -> str:
    return _cell(str(dtype.simpleString()))


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: a bare ``|`` would end the cell."""
    return text.replace("\\|", "|").replace("|", "\\|").replace("\n", " ")


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def tables_markdown() -> str:
    from jobs.common import schemas as S

    out = [
        "# Table reference",
        "",
        "Generated from `jobs/common/schemas.py` by `python -m jobs.docs`; do not edit by hand.",
        "Every table is a Delta table at `<lake.root>/<layer>/<name>`.",
        "PII columns are marked; they never get min/max statistics in the Delta log.",
        "",
        "## bronze.&lt;source&gt;",
        "",
        "One table per source: every mapped, extension and required source field as a string column",
        "(named as the source names it), plus these lineage columns:",
        "",
        "| column | type | description |",
        "|---|---|---|",
    ]
    for c in S.bronze_lineage_columns():
        out.append(f"| `{c.name}` | {_type_name(c.dtype)} | {_cell(c.doc)} |")
    out.append("")
    for t in S.ALL_TABLES:
        out += [f"## {t.address}", "", _sentence(t.doc), ""]
        if t.key:
            out += [f"Key: {', '.join(f'`{k}`' for k in t.key)}.", ""]
        out += ["| column | type | PII | description |", "|---|---|---|---|"]
        for c in t.columns:
            pii = "yes" if c.name in t.pii else ""
            out.append(f"| `{c.name}` | {_type_name(c.dtype)} | {pii} | {_cell(c.doc)} |")
        out.append("")
    out += ["## Canonical fields a person source can map", "", "| field | meaning |", "|---|---|"]
    out += [f"| `{k}` | {_cell(v)} |" for k, v in S.CANONICAL_FIELDS.items()]
    out += ["", "## Canonical fields an event source can map", "", "| field | meaning |", "|---|---|"]
    out += [f"| `{k}` | {_cell(v)} |" for k, v in S.EVENT_FIELDS.items()]
    return "\n".join(out) + "\n"


def _annotation(ann: Any) -> str:
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (list, tuple, set, frozenset):
        return f"list of {_annotation(args[0])}" if args else "list"
    if origin is dict:
        return f"map {_annotation(args[0])} -> {_annotation(args[1])}" if args else "map"
    if origin in (typing.Union, types.UnionType):
        text = " or ".join(_annotation(a) for a in args if a is not type(None))
        return text + (" (optional)" if type(None) in args else "")
    if origin is typing.Annotated:
        return _annotation(args[0])
    if isinstance(ann, type):
        return ann.__name__
    return str(ann).replace("typing.", "")


def _stable(value: Any) -> Any:
    """Sets have no stable repr across processes; sort them so the docs do not flap."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return value


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "see below"
    text = repr(_stable(value))
    return _code(text if len(text) <= 60 else f"{text[:57]}...")


def _code(text: str) -> str:
    """An inline code span; a value holding a backtick gets a double-backtick fence."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _models_in(ann: Any) -> list[tuple[type[BaseModel], str]]:
    """Models nested in an annotation, each with the path suffix of one of its items."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [(ann, "")]
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin in (list, tuple, set, frozenset):
        return [(m, "[]" + sfx) for a in args for m, sfx in _models_in(a)]
    if origin is dict and len(args) == 2:
        return [(m, ".<key>" + sfx) for m, sfx in _models_in(args[1])]
    found: list[tuple[type[BaseModel], str]] = []
    for arg in args:
        found.extend(_models_in(arg))
    return found


def config_markdown() -> str:
    from jobs.common.settings import CdpConfig

    out = [
        "# Configuration reference",
        "",
        "Generated from the pydantic models by `python -m jobs.docs`; do not edit by hand.",
        "Unknown keys are errors. Any value can be overridden with `--set path=value`",
        "(e.g. `--set lake.engine=delta-spark`); `${VAR}` and `${VAR:-default}` in a value are read",
        "from the environment. `[]` in a path is an item of a list, `<key>` a key of a map.",
        "`cdp validate-config --config conf/local.yaml` checks everything before Spark starts and",
        "reports every problem at once, one line each: file, YAML path, value given, what was expected.",
        "",
    ]
    seen: set[type] = set()

    def walk(model: type[BaseModel], path: str) -> None:
        if model in seen:
            return
        seen.add(model)
        out.extend([f"## `{path}` ({model.__name__})" if path else f"## Root ({model.__name__})", ""])
        doc = (model.__doc__ or "").strip().splitlines()
        if doc:
            out.extend([doc[0].strip(), ""])
        out.extend(["| key | type | default | description |", "|---|---|---|---|"])
        nested: list[tuple[type[BaseModel], str]] = []
        for name, field in model.model_fields.items():
            ann = field.annotation
            cells = [f"`{name}`", _annotation(ann), _default(field), field.description or ""]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
            for sub, suffix in _models_in(ann):
                nested.append((sub, f"{path}.{name}{suffix}" if path else f"{name}{suffix}"))
        out.append("")
        for sub, sub_path in nested:
            walk(sub, sub_path)

    walk(CdpConfig, "")
    return "\n".join(out) + "\n"


GENERATED = {"tables.md": tables_markdown, "config.md": config_markdown}


def stale_docs(docs_dir: Path = DOCS) -> list[str]:
    """Names of the generated files that are missing or differ from what the code generates."""
    stale = []
    for name, fn in GENERATED.items():
        path = docs_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != fn():
            stale.append(name)
    return stale


def write_docs(docs_dir: Path = DOCS) -> list[Path]:
    """Write every generated file; returns the paths written."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fn in GENERATED.items():
        path = docs_dir / name
        path.write_text(fn(), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the docs differ from the code")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.check:
        stale = stale_docs()
        if stale:
            sys.stderr.write(f"docs out of date: {', '.join(stale)}; run `python -m jobs.docs`\n")
            return 1
        log.info("docs up to date: %s", ", ".join(GENERATED))
        return 0
    for path in write_docs():
        log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
