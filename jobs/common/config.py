"""Loading and validating configuration, before Spark starts (STYLE.md 5).

An environment file (``conf/local.yaml`` is the embedded default) holds the engine settings and an
``include`` section naming the stage files (sources, standardize, match, golden, segments,
privacy). They are merged into one document, ``${ENV_VAR}`` references are substituted, command
line overrides (``--set lake.root=out/lake``) are applied, and the result is validated by the
pydantic models. Every problem is collected and reported together, each with its file, YAML path,
the value given and what was expected.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
SECTION_FILES = ("sources", "standardize", "match", "golden", "segments", "privacy")


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SparkConfig(Strict):
    master: str = "local[2]"
    app_name: str = "cdp"
    shuffle_partitions: int = Field(8, ge=1, le=100_000)
    driver_memory: str | None = Field(None, pattern=r"^\d+[kmgt]$")
    jars: list[str] = Field(default_factory=list, description="local jar files put on the classpath")
    conf: dict[str, str] = Field(default_factory=dict, description="more Spark settings")


class LakeConfig(Strict):
    root: str = "lakehouse"
    engine: Literal["auto", "delta-rs", "delta-spark"] = "auto"
    arrow_merge_limit: int = Field(2_000_000, ge=0, description="rows above which merges rewrite in Spark")


class DataConfig(Strict):
    root: str = Field("data/sample", description="folder that relative source locations are read from")


class MlflowConfig(Strict):
    tracking_uri: str | None = Field(None, description="default: a SQLite store under the lake root")
    experiment: str = "cdp-match"


class RunConfig(Strict):
    date: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="run date (default: today, UTC)")

    @field_validator("date", mode="before")
    @classmethod
    def _date_text(cls, v: Any) -> Any:
        # YAML (and --set run.date=2026-11-25) reads an unquoted date as a date object.
        import datetime as _dt

        return v.isoformat() if isinstance(v, _dt.date) else v
    demo_persons: int = Field(2000, ge=10)
    demo_seed: int = 42


@dataclass
class LoadedConfig:
    """A validated config and where each part came from."""

    model: Any
    files: dict[str, str]
    base_dir: str
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def hash(self) -> str:
        return config_hash(self.model)


def config_hash(model: BaseModel) -> str:
    dumped = json.dumps(model.model_dump(mode="json"), sort_keys=True, default=str)
    return hashlib.sha256(dumped.encode()).hexdigest()[:16]


def _read_yaml(path: str, problems: list[str], shown: str | None = None) -> Any:
    shown = shown or os.path.relpath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        problems.append(f"{shown}: file not found")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.append(f"{shown}:{where} not valid YAML: {getattr(exc, 'problem', exc)}")
    return None


def _substitute_env(value: Any, path: str, file: str, problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute_env(v, f"{path}.{k}" if path else str(k), file, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, f"{path}[{i}]", file, problems) for i, v in enumerate(value)]
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            problems.append(
                f"{file}: {path}: got '${{{name}}}'; expected environment variable {name} to be set"
            )
            return m.group(0)

        return ENV_REF.sub(repl, value)
    return value


def _split_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in path.split("."):
        m = re.fullmatch(r"([^\[\]]*)((?:\[\d+\])*)", piece)
        if not m:
            parts.append(piece)
            continue
        if m.group(1):
            parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return parts


def apply_override(doc: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b[0].c=value`` to ``doc``; a list of named items may be indexed by name."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment}: expected KEY=VALUE, for example lake.root=out/lake")
    key, _, raw = assignment.partition("=")
    value = yaml.safe_load(raw) if raw.strip() else ""
    parts = _split_path(key.strip())
    node: Any = doc
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if isinstance(part, str):
                named = [item for item in node if isinstance(item, dict) and item.get("name") == part]
                if not named:
                    raise ConfigError(f"--set {key}: no item named {part!r} in that list")
                idx = node.index(named[0])
            else:
                idx = part
            if idx >= len(node):
                raise ConfigError(f"--set {key}: index {idx} is out of range (the list has {len(node)} items)")
            if last:
                node[idx] = value
            else:
                node = node[idx]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {'.'.join(map(str, parts[:i]))} is not a mapping")
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]


def _loc_to_path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The pydantic model class reached by following ``loc`` from ``model``."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        fld = current.model_fields.get(part)
        if fld is None:
            return None
        current = _unwrap(fld.annotation, typing)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any, typing: Any) -> Any:
    args = typing.get_args(annotation)
    if not args:
        return annotation
    for arg in args:
        inner = _unwrap(arg, typing)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def _shorten(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def format_validation_errors(
    exc: ValidationError, root_model: type[BaseModel], origin: dict[str, str], default_file: str
) -> list[str]:
    """One line per error: file, YAML path, value given, what was expected."""
    lines = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tagged-union")))]
        # pydantic puts the union member name into loc for some unions; keep only real keys.
        path = _loc_to_path(loc)
        file = _origin_file(loc, origin, default_file)
        etype = err["type"]
        given = "nothing" if etype == "missing" else _shorten(err.get("input"))
        if etype == "missing":
            expected = "a value (this key is required)"
        elif etype == "extra_forbidden":
            parent = _model_at(root_model, loc[:-1])
            allowed = sorted(parent.model_fields) if parent else []
            expected = "no such key; allowed keys: " + ", ".join(allowed) if allowed else "no such key"
            given = f"key {loc[-1]!r}"
        elif etype == "literal_error":
            expected = "one of " + str(err.get("ctx", {}).get("expected", ""))
        elif etype == "value_error":
            expected = str(err.get("ctx", {}).get("error", err["msg"]))
            expected = expected[len("Value error, ") :] if expected.startswith("Value error, ") else expected
        else:
            expected = err["msg"][0].lower() + err["msg"][1:] if err["msg"] else etype
            expected = expected.replace("input should be ", "").replace("Input should be ", "")
        lines.append(f"{file}: {path or '(top level)'}: got {given}; expected {expected}")
    return lines


def _origin_file(loc: Sequence[Any], origin: dict[str, str], default_file: str) -> str:
    if not loc:
        return default_file
    head = str(loc[0])
    if head == "sources" and len(loc) > 1 and isinstance(loc[1], int):
        return origin.get(f"sources[{loc[1]}]", origin.get("sources", default_file))
    return origin.get(head, default_file)


def load_documents(config_path: str, problems: list[str]) -> tuple[dict[str, Any], dict[str, str], str]:
    """Read the environment file and the stage files it includes into one document."""
    shown_env = os.path.relpath(config_path)
    env_doc = _read_yaml(config_path, problems, shown_env)
    base_dir = str(Path(config_path).resolve().parent)
    if env_doc is None:
        return {}, {}, base_dir
    if not isinstance(env_doc, dict):
        problems.append(f"{shown_env}: (top level): got {_shorten(env_doc)}; expected a mapping")
        return {}, {}, base_dir
    env_doc = _substitute_env(env_doc, "", shown_env, problems)
    origin: dict[str, str] = {}
    include = env_doc.pop("include", None) or {}
    if not isinstance(include, dict):
        problems.append(f"{shown_env}: include: got {_shorten(include)}; expected a mapping of section -> file")
        include = {}
    doc: dict[str, Any] = dict(env_doc)
    for section, rel in include.items():
        if section not in SECTION_FILES:
            problems.append(
                f"{shown_env}: include.{section}: got key {section!r}; expected one of {', '.join(SECTION_FILES)}"
            )
            continue
        pattern = rel if os.path.isabs(str(rel)) else os.path.join(base_dir, str(rel))
        if section == "sources":
            files = sorted(glob.glob(pattern))
            if not files:
                problems.append(f"{shown_env}: include.sources: got {rel!r}; expected a file or glob that matches source files")
            sources = []
            for f in files:
                shown = os.path.relpath(f)
                data = _read_yaml(f, problems)
                if data is None:
                    continue
                data = _substitute_env(data, "", shown, problems)
                items = data if isinstance(data, list) else [data]
                for item in items:
                    origin[f"sources[{len(sources)}]"] = shown
                    sources.append(item)
            doc["sources"] = sources
            origin["sources"] = os.path.relpath(os.path.dirname(pattern)) if files else shown_env
        else:
            shown = os.path.relpath(pattern)
            data = _read_yaml(pattern, problems)
            if data is None:
                continue
            doc[section] = _substitute_env(data, section, shown, problems)
            origin[section] = shown
    for key in doc:
        origin.setdefault(key, shown_env)
    return doc, origin, base_dir


def load_config(
    config_path: str,
    overrides: Iterable[str] = (),
    model: type[BaseModel] | None = None,
) -> LoadedConfig:
    """Load, merge, override and validate; raise ConfigError listing every problem."""
    if model is None:
        from .settings import CdpConfig

        model = CdpConfig
    problems: list[str] = []
    doc, origin, base_dir = load_documents(config_path, problems)
    raw = copy.deepcopy(doc)
    for assignment in overrides:
        try:
            apply_override(doc, assignment)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems and not doc:
        raise ConfigError(problems)
    try:
        validated = model.model_validate(doc)
    except ValidationError as exc:
        problems.extend(format_validation_errors(exc, model, origin, os.path.relpath(config_path)))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    semantic = getattr(validated, "semantic_problems", None)
    if semantic is not None:
        found = [
            f"{_origin_file(_split_path(path), origin, os.path.relpath(config_path))}: {path}: got {_shorten(given)}; expected {expected}"
            for path, given, expected in semantic()
        ]
        if found:
            raise ConfigError(found)
    return LoadedConfig(validated, origin, base_dir, raw)
