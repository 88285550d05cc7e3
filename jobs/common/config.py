"""Loading and validating configuration, before Spark starts (STYLE.md 5).

An environment file (``conf/local.yaml`` is the embedded default) holds the engine settings and an
``include`` section naming the stage files (sources, standardize, match, golden, segments,
privacy). They are merged into one document, ``${ENV_VAR}`` references are substituted, command
line overrides (``--set lake.root=out/lake``) are applied, and the result is validated by the
pydantic models. Every problem is collected and reported together, each with its file, YAML path,
the value given and what was expected.

Cross-field checks are methods marked with :func:`check`, each returning :class:`Problem` objects
with paths relative to its model. Pydantic runs a model's after-validators only when all of its
fields validated, so the loader does not rely on them: it validates the whole document with the
checks deferred (field errors), then walks the document model by model, validating field by
field, and runs every check whose inputs did validate (on the partially validated data). A check
that touches a part that did not validate is skipped; that part has its own field error.
Constructing a model directly (``SourceConfig(...)``) still runs its checks and raises.
"""

from __future__ import annotations

import copy
import functools
import glob
import hashlib
import inspect
import json
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import ConfigError

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
SECTION_FILES = ("sources", "standardize", "match", "golden", "segments", "privacy")


# Validation context keys. DEFER_CHECKS: collect cross-field problems instead of raising (the loader
# runs them itself). PARTIAL: validating field by field into a partial model; side effects are off.
DEFER_CHECKS = "cdp_defer_checks"
PARTIAL = "cdp_partial"

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Problem:
    """One problem found by a check: YAML path (relative to the checking model), value, expectation.

    ``given_text`` is shown instead of the value's repr where a repr would mislead (``key 'x'``
    for an unknown key, ``nothing`` for a missing value).
    """

    path: str
    given: Any
    expected: str
    given_text: str | None = None

    def shown(self) -> str:
        return self.given_text if self.given_text is not None else _shorten(self.given)

    def under(self, prefix: str) -> "Problem":
        """The same problem with its path below ``prefix``."""
        return Problem(join_path(prefix, self.path), self.given, self.expected, self.given_text)

    def __str__(self) -> str:
        return f"{self.path or '(top level)'}: got {self.shown()}; expected {self.expected}"


def join_path(prefix: str, rest: str | int) -> str:
    """``a.b`` + ``c`` -> ``a.b.c``; ``a`` + ``[0]`` (or 0) -> ``a[0]``."""
    if isinstance(rest, int):
        rest = f"[{rest}]"
    if not prefix:
        return rest
    if not rest:
        return prefix
    return f"{prefix}{rest}" if rest.startswith("[") else f"{prefix}.{rest}"


class SkipCheck(Exception):
    """Raised inside a check that cannot be evaluated because a value it needs did not validate."""


class _Invalid:
    """Stands for a value that did not validate; any use of it skips the check that uses it."""

    __slots__ = ()

    def _skip(self, *_: Any, **__: Any) -> Any:
        raise SkipCheck

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _skip  # type: ignore[assignment]
    __hash__ = __bool__ = __len__ = __iter__ = __contains__ = __getitem__ = _skip  # type: ignore[assignment]
    __str__ = __format__ = __float__ = __int__ = __add__ = __radd__ = _skip  # type: ignore[assignment]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise SkipCheck

    def __repr__(self) -> str:
        return "<invalid>"


INVALID: Any = _Invalid()


def is_invalid(value: Any) -> bool:
    return value is INVALID


def valid_items(seq: Sequence[Any]) -> Iterator[tuple[int, Any]]:
    """``enumerate(seq)`` without the items that did not validate (partially validated lists)."""
    return ((i, v) for i, v in enumerate(seq) if v is not INVALID)


def valid_attrs(seq: Sequence[Any], attr: str) -> Iterator[tuple[int, Any]]:
    """(index, item.attr) of the items whose ``attr`` validated."""
    for i, item in valid_items(seq):
        value = getattr(item, attr, INVALID)
        if value is not INVALID:
            yield i, value


def duplicates(pairs: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any, int]]:
    """(index, value, index of its first occurrence) of every repeated value."""
    first: dict[Any, int] = {}
    for i, value in pairs:
        if value in first:
            yield i, value, first[value]
        else:
            first[value] = i


def check(fn: _F | None = None, *, at_load: bool = False) -> Any:
    """Mark a model method as a cross-field check returning an iterable of :class:`Problem`.

    Checks run when a model is constructed directly (and raise) and when a config file is loaded
    (and are collected). ``at_load=True``: only when a config file is loaded (checks against the
    table schemas that would make constructing test fixtures awkward).
    """

    def mark(f: _F) -> _F:
        f.__cdp_check__ = "load" if at_load else "always"  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


_CHECKS: dict[type, list[tuple[str, str]]] = {}


def _check_methods(cls: type) -> list[tuple[str, str]]:
    """(method name, when) of every check of ``cls``, base classes first, in definition order."""
    found = _CHECKS.get(cls)
    if found is None:
        marked: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                when = getattr(value, "__cdp_check__", None)
                if when:
                    marked[name] = when
        found = _CHECKS[cls] = list(marked.items())
    return found


def _context_flag(info: ValidationInfo | None, key: str) -> bool:
    ctx = info.context if info is not None else None
    return bool(isinstance(ctx, dict) and ctx.get(key))


def is_partial(info: ValidationInfo | None) -> bool:
    """True while the loader builds a partial model: validators with side effects should do nothing."""
    return _context_flag(info, PARTIAL)


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="after")
    def _run_checks(self, info: ValidationInfo) -> "Strict":
        if _context_flag(info, DEFER_CHECKS):
            return self
        problems = self.check_problems()
        if problems:
            raise ValueError("; ".join(str(p) for p in problems))
        return self

    def check_problems(self, at_load: bool = False, partial: bool = False) -> list[Problem]:
        """Problems found by this model's own checks (not its nested models'), paths relative to it.

        ``partial``: the model holds values that did not validate; a check tripping over one of
        them (``SkipCheck``, or a type error on an odd value) is skipped.
        """
        found: list[Problem] = []
        tolerated: tuple[type[BaseException], ...] = (
            (SkipCheck, TypeError, AttributeError, KeyError, ValueError) if partial else (SkipCheck,)
        )
        for name, when in _check_methods(type(self)):
            if when == "load" and not at_load:
                continue
            try:
                found.extend(list(getattr(self, name)()))
            except tolerated:
                continue
        return found


class SparkConfig(Strict):
    """The Spark session: settings for the local session cdp starts; spark-submit's own win there."""

    master: str = Field(
        "local[2]",
        description="master of a session cdp starts itself (local[N]: N cores); not used under spark-submit, "
        "on Databricks, with an active session or over Spark Connect, whose own master applies",
    )
    app_name: str = Field(
        "cdp",
        description="Spark application name of a session cdp starts itself (Spark UI, cluster manager); under "
        "spark-submit its --name applies (by default the script's name)",
    )
    shuffle_partitions: int = Field(
        8,
        ge=1,
        le=100_000,
        description="spark.sql.shuffle.partitions: tasks per shuffle, small for a laptop; a session whose "
        "launcher or cluster set it (spark-submit --conf, a cluster's Spark config) keeps its own value",
    )
    driver_memory: str | None = Field(
        None,
        pattern=r"^\d+[kmgt]$",
        description="driver JVM heap of a session cdp starts itself, e.g. 6g; null: Spark's default (1g). "
        "Under spark-submit use --driver-memory",
    )
    jars: list[str] = Field(default_factory=list, description="local jar files put on the classpath")
    conf: dict[str, str] = Field(default_factory=dict, description="more Spark settings")


class LakeConfig(Strict):
    """Where the Delta tables live and which engine writes them."""

    root: str = Field(
        "lakehouse",
        description="folder every Delta table lives under, as <root>/<layer>/<name> (relative: to the working "
        "directory), also holding _checkpoints and, by default, the MLflow store; a URI (s3a://, abfss://) "
        "needs engine delta-spark",
    )
    engine: Literal["auto", "delta-rs", "delta-spark"] = Field(
        "auto",
        description="Delta engine: delta-rs (embedded, no JVM jars; local paths and mounts only), delta-spark "
        "(the Delta jars and SQL extensions in the session), auto: delta-spark when the session has the Delta "
        "SQL extensions, else delta-rs",
    )
    arrow_merge_limit: int = Field(
        2_000_000, ge=0, description="rows above which merges rewrite in Spark (so do merges whose Arrow size is estimated above 256 MiB)"
    )
    merge_rewrite_bytes: int = Field(
        8 * 2**30,
        ge=0,
        description=(
            "estimated Arrow size of a target table above which merges and deletes by key rewrite it in Spark "
            "(delta-rs holds what a merge rewrites in memory; delta-rs engine)"
        ),
    )

    @check
    def _delta_rs_needs_a_local_root(self) -> Iterator[Problem]:
        from .delta import delta_rs_root_problem

        problem = delta_rs_root_problem(self.root) if self.engine == "delta-rs" else None
        if problem:
            yield Problem("root", self.root, problem)


class DataConfig(Strict):
    """Where the sources' files are."""

    root: str = Field("data/sample", description="folder that relative source locations are read from")


class MlflowConfig(Strict):
    """Where match model training is tracked and its model registered."""

    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI (databricks, http://host:5000, sqlite:///...); null: a SQLite store "
        "under <lake.root>/_mlflow (a local lake.root only)",
    )
    experiment: str = Field("cdp-match", description="MLflow experiment the training runs are logged to")


class RunConfig(Strict):
    """The run itself: its date, and what `cdp demo` generates."""

    date: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="run date (default: today, UTC)")

    @field_validator("date", mode="before")
    @classmethod
    def _date_text(cls, v: Any) -> Any:
        # YAML (and --set run.date=2026-11-25) reads an unquoted date as a date object.
        import datetime as _dt

        return v.isoformat() if isinstance(v, _dt.date) else v
    demo_persons: int = Field(2000, ge=10, description="persons `cdp demo` generates sample data for (`--persons` overrides)")
    demo_seed: int = Field(42, description="seed of `cdp demo`'s sample data: the same seed gives the same files")


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
    """A short rendering of a value given, YAML-like: never a whole mapping or a long list."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, dict):
        if not value:
            return "an empty mapping"
        keys = ", ".join(str(k) for k in list(value)[:6]) + (", ..." if len(value) > 6 else "")
        return f"a mapping with keys {keys}"
    text = repr(value)
    if len(text) <= 80:
        return text
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} items"
    return text[:77] + "..."


def registry_problems(
    registry: Any, name: Any, args: dict[str, Any], skip: int = 0, name_path: str = "name", args_path: str = "args"
) -> list[Problem]:
    """Problems with a registered name and its keyword arguments, each at its own path.

    ``skip`` leading positional parameters are supplied by the caller (columns, frames).
    """
    if name not in registry:
        return [Problem(name_path, name, f"a registered {registry.kind}: {', '.join(registry.names())}")]
    params = list(inspect.signature(registry.get(name)).parameters.values())[skip:]
    known = sorted(p.name for p in params)
    problems = [
        Problem(
            join_path(args_path, str(k)),
            k,
            f"an argument of {registry.kind} {name!r}: {', '.join(known) or 'none'}",
            given_text=f"key {k!r}",
        )
        for k in args
        if k not in known
    ]
    for p in params:
        if p.default is inspect.Parameter.empty and p.name not in args and p.kind in (
            p.POSITIONAL_OR_KEYWORD,
            p.KEYWORD_ONLY,
        ):
            problems.append(
                Problem(args_path, args, f"argument {p.name!r} for {registry.kind} {name!r} (it has no default)")
            )
    return problems


def format_validation_errors(
    exc: ValidationError, root_model: type[BaseModel], origin: dict[str, str], default_file: str
) -> list[str]:
    """One line per error: file, YAML path, value given, what was expected."""
    return [line for _, line, _ in _validation_problems(exc, root_model, origin, default_file)]


def _validation_problems(
    exc: ValidationError, root_model: type[BaseModel], origin: dict[str, str], default_file: str
) -> list[tuple[str, str, str]]:
    """(file, line, YAML path) per field error."""
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
        lines.append((file, f"{file}: {path or '(top level)'}: got {given}; expected {expected}", path))
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


# --- cross-field checks on the (partially) validated document ---------------------------------


def _model_class(annotation: Any) -> type[Strict] | None:
    """The Strict model of ``Model`` or ``Model | None``; None for anything else."""
    if isinstance(annotation, type) and issubclass(annotation, Strict):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _model_class(members[0])
    return None


@functools.lru_cache(maxsize=256)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _validate_alone(annotation: Any, value: Any, context: dict[str, Any]) -> Any:
    """``value`` validated as ``annotation``; raises ValidationError."""
    try:
        adapter = _adapter(annotation)
    except TypeError:  # an unhashable annotation
        adapter = TypeAdapter(annotation)
    return adapter.validate_python(value, context=context)


def _checks_in(value: Any, path: str) -> list[Problem]:
    """Every check of every model inside a validated value, paths below ``path``."""
    if isinstance(value, Strict):
        found = [p.under(path) for p in value.check_problems(at_load=True)]
        for name in type(value).model_fields:
            found.extend(_checks_in(getattr(value, name, None), join_path(path, name)))
        return found
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _checks_in(v, join_path(path, i))]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _checks_in(v, join_path(path, str(k)))]
    return []


def _partial(annotation: Any, raw: Any, path: str, context: dict[str, Any]) -> tuple[Any, list[Problem]]:
    """A value that did not validate as a whole: (what of it validated, problems of checks in it).

    Models are validated field by field, lists and mappings item by item; what does not validate
    is INVALID, so checks reading it are skipped while every other check still runs.
    """
    model = _model_class(annotation)
    if model is not None:
        if not isinstance(raw, dict):
            return INVALID, []
        return _partial_model(model, raw, path, context)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and args and isinstance(raw, list):
        items, found = [], []
        for i, item in enumerate(raw):
            value, problems = _value_or_partial(args[0], item, join_path(path, i), context)
            items.append(value)
            found.extend(problems)
        return items, found
    if origin is dict and len(args) == 2 and isinstance(raw, dict):
        entries, found = {}, []
        for k, item in raw.items():
            try:
                key = _validate_alone(args[0], k, context)
            except ValidationError:
                continue  # reported as a field error; nothing can be checked about it
            value, problems = _value_or_partial(args[1], item, join_path(path, str(k)), context)
            entries[key] = value
            found.extend(problems)
        return entries, found
    return INVALID, []


def _value_or_partial(annotation: Any, raw: Any, path: str, context: dict[str, Any]) -> tuple[Any, list[Problem]]:
    try:
        value = _validate_alone(annotation, raw, context)
    except ValidationError:
        return _partial(annotation, raw, path, context)
    return value, _checks_in(value, path)


def _partial_model(
    model: type[Strict], raw: dict[str, Any], path: str, context: dict[str, Any]
) -> tuple[Strict, list[Problem]]:
    """A model built field by field from ``raw``; fields that do not validate are INVALID."""
    instance = model.model_construct()  # defaults for the keys not given
    for name, info in model.model_fields.items():
        if info.is_required():
            instance.__dict__[name] = INVALID
    nested: list[Problem] = []
    for name, info in model.model_fields.items():
        if name not in raw:
            continue
        where = join_path(path, name)
        try:
            # validates like the model does: constraints, field validators (short forms) included
            model.__pydantic_validator__.validate_assignment(instance, name, raw[name], context=context)
        except ValidationError:
            value, problems = _partial(info.annotation, raw[name], where, context)
            instance.__dict__[name] = value
            nested.extend(problems)
        else:
            nested.extend(_checks_in(getattr(instance, name), where))
    own = [p.under(path) for p in instance.check_problems(at_load=True, partial=True)]
    return instance, own + nested


def check_document(
    model: type[BaseModel], doc: dict[str, Any]
) -> tuple[BaseModel | None, ValidationError | None, list[Problem]]:
    """Validate ``doc``: (the model or None, the field errors, every problem the checks found).

    Every cross-field check runs, also where other parts of the document are invalid.
    """
    errors: ValidationError | None = None
    validated: BaseModel | None = None
    try:
        validated = model.model_validate(doc, context={DEFER_CHECKS: True})
    except ValidationError as exc:
        errors = exc
    if validated is not None:
        root: Any = validated
        problems = _checks_in(validated, "") if isinstance(validated, Strict) else []
        partial = False
    elif issubclass(model, Strict):
        root, problems = _partial_model(model, doc, "", {DEFER_CHECKS: True, PARTIAL: True})
        partial = True
    else:
        root, problems, partial = None, [], True
    hook = getattr(root, "semantic_problems", None)
    if callable(hook):
        # A root model may add checks through a hook returning (full path, value, expected).
        tolerated: tuple[type[BaseException], ...] = (
            (SkipCheck, TypeError, AttributeError, KeyError, ValueError) if partial else (SkipCheck,)
        )
        try:
            problems.extend(Problem(path, given, expected) for path, given, expected in hook())
        except tolerated:
            pass
    return validated, errors, problems


def _field_error_lines(
    errors: ValidationError | None, model: type[BaseModel], origin: dict[str, str], default_file: str
) -> list[tuple[str, str, str]]:
    """(file, line, YAML path) per field error."""
    if errors is None:
        return []
    return _validation_problems(errors, model, origin, default_file)


def _document_positions(doc: Any, path: str = "", positions: dict[str, int] | None = None) -> dict[str, int]:
    """YAML path -> position in the document (mappings keep the order of the file)."""
    positions = {} if positions is None else positions
    positions.setdefault(path, len(positions))
    if isinstance(doc, dict):
        for k, v in doc.items():
            _document_positions(v, join_path(path, str(k)), positions)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            _document_positions(v, join_path(path, i), positions)
    return positions


def _position(path: str, positions: dict[str, int]) -> int:
    """Position of ``path``, or of its nearest ancestor in the document (a missing key's parent)."""
    while path not in positions and path:
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return positions.get(path, 0)


def load_config(
    config_path: str,
    overrides: Iterable[str] = (),
    model: type[BaseModel] | None = None,
) -> LoadedConfig:
    """Load, merge, override and validate; raise ConfigError listing every problem.

    Problems are grouped by file (the environment file first, then the included files in the
    order they were read); within a file, field errors come before cross-field problems.
    """
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
    env_file = os.path.relpath(config_path)
    validated, errors, checked = check_document(model, doc)
    found = _field_error_lines(errors, model, origin, env_file)
    for p in checked:
        file = _origin_file(_split_path(p.path), origin, env_file)
        found.append((file, f"{file}: {p}", p.path))
    # Group by file (the environment file first, then the included files as read), and within a
    # file follow the document, so the list reads like the files top to bottom.
    file_order = {f: i for i, f in enumerate(dict.fromkeys([env_file, *origin.values()]))}
    positions = _document_positions(doc)
    found.sort(key=lambda item: (file_order.get(item[0], len(file_order)), _position(item[2], positions)))
    for _, line, _ in found:
        if line not in problems:  # a hook may repeat a check's problem
            problems.append(line)
    if problems or validated is None:
        raise ConfigError(problems)
    return LoadedConfig(validated, origin, base_dir, raw)
