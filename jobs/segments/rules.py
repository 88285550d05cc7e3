"""Segment rules: a small, closed expression language over golden profile columns.

Marketers write rules such as ``last_order_at > run_date - 90 days and total_revenue >= 100``.
The rule text is tokenised and parsed here by hand (recursive descent) into a tiny AST, checked
against the table schema, and turned into a pyspark ``Column`` with ``F.col``/``F.lit`` and Column
methods. The text never reaches Spark SQL as a string (no ``F.expr``, no ``spark.sql``), so a rule
cannot smuggle SQL: everything outside the allow-list below is refused with its position
(ARCHITECTURE.md, Invariants: "Segment rules are parsed against an allow-list").

Grammar (EBNF; keywords are case-insensitive, column names are exact)::

    rule      = or_expr EOF ;
    or_expr   = and_expr { "or" and_expr } ;
    and_expr  = not_expr { "and" not_expr } ;
    not_expr  = "not" not_expr | predicate ;
    predicate = "(" or_expr ")"
              | operand [ compare_op operand
                        | "is" [ "not" ] "null"
                        | [ "not" ] "in" "(" value { "," value } ")"
                        | [ "not" ] "between" operand "and" operand
                        | [ "not" ] "contains" operand ] ;
    compare_op = "=" | "!=" | "<>" | "<" | "<=" | ">" | ">=" ;
    operand   = column [ "[" string "]" ] | value ;
    value     = string | [ "-" ] number | "true" | "false" | "date" string | relative_date ;
    relative_date = "run_date" [ ( "+" | "-" ) integer unit ] ;
    unit      = "day" | "days" | "week" | "weeks" | "month" | "months" | "year" | "years" ;
    string    = "'" { character | "''" } "'" ;
    number    = digit { digit } [ "." digit { digit } ] ;

A bare operand is a condition only when it is boolean (``consent_sms``, ``not consent_sms``).

Semantics, chosen so that a rule means what a marketer reads:

- SQL three-valued logic, but the compiled rule is ``coalesce(rule, false)``: a person whose value
  is missing is not in the segment (``city != 'Utrecht'`` does not select people without a city).
- A timestamp column compared with a date (``date '...'``, a date string, ``run_date ...``) is
  compared by its calendar date (UTC session time zone): ``last_order_at <= date '2024-01-31'``
  includes the whole of 31 January, and ``between`` on dates includes both end days.
- ``run_date - 6 months`` is calendar arithmetic clamped to the month end, like Spark's
  ``add_months`` (31 March - 1 month = 28/29 February); ``1 year`` is 12 months.
- String comparison is exact (case-sensitive), as the golden profile stores cleaned values.
"""

from __future__ import annotations

import calendar
import datetime as dt
import difflib
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Union

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    ByteType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    ShortType,
    StringType,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from jobs.common.errors import ConfigError

if TYPE_CHECKING:
    from jobs.segments.config import SegmentsConfig

__all__ = [
    "check_rule", "check_segments", "compile_rule", "export_consent_problems", "parse_rule", "relative_date", "RFM_PREFIX",
]

# Names starting with this prefix are the RFM micro-segments (transforms.RFM_GRID).
RFM_PREFIX = "rfm_"

KEYWORDS = frozenset({"and", "or", "not", "in", "between", "is", "null", "true", "false", "date", "contains", "run_date"})
UNITS = {"day": "days", "days": "days", "week": "weeks", "weeks": "weeks", "month": "months", "months": "months",
         "year": "years", "years": "years"}
# run_date arithmetic reaches at most 100 years, in any unit.
MAX_SHIFT = {"days": 36525, "weeks": 5218, "months": 1200, "years": 100}
COMPARE_OPS = ("=", "!=", "<>", "<", "<=", ">", ">=")
# Words of SQL that have no meaning in a rule; refused by name so the message says why.
SQL_WORDS = frozenset(
    {
        "select", "from", "where", "union", "intersect", "except", "minus", "drop", "delete", "insert", "update",
        "merge", "create", "alter", "truncate", "table", "exec", "execute", "grant", "revoke", "into", "values",
        "join", "having", "group", "order", "by", "limit", "offset", "exists", "case", "when", "then", "else",
        "end", "cast", "as", "like", "rlike", "ilike", "regexp", "distinct", "all", "any", "some", "with", "set",
        "declare", "call", "use", "show", "describe", "database", "schema", "load", "overwrite", "sleep",
    }
)
_OP_CHARS = "=!<>&|*/%^~"
_OP_HINTS = {"==": "use =", "&&": "use 'and'", "&": "use 'and'", "||": "use 'or'", "|": "use 'or'", "!": "use 'not'"}
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = "0123456789"
_MAX_NUMBER_DIGITS = 18
MAX_NESTING = 50  # parentheses and 'not's


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # ident, keyword, string, number, op, ( ) [ ] , + - eof
    value: str  # keywords lower-cased; strings unquoted
    pos: int  # 1-based character position in the rule
    text: str  # as written


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def tokenize(text: str, columns: frozenset[str] = frozenset()) -> tuple[list[Token], list[tuple[int, str]]]:
    """Split a rule into tokens; return them with every lexical problem (position, message).

    Lexical problems are the ones that only SQL would need: statement separators, comments,
    quoted identifiers, double-quoted text, function calls and SQL words. ``columns`` lets a
    column that happens to be named like a SQL word through.
    """
    tokens: list[Token] = []
    problems: list[tuple[int, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        pos = i + 1
        if ch.isspace():
            i += 1
        elif text.startswith("--", i):
            problems.append((pos, f"comment '--' is not allowed at position {pos}"))
            break
        elif text.startswith("/*", i):
            problems.append((pos, f"comment '/*' is not allowed at position {pos}"))
            break
        elif ch == ";":
            problems.append((pos, f"';' is not allowed at position {pos} (a rule is one condition, not SQL statements)"))
            i += 1
        elif ch == "`":
            end = text.find("`", i + 1)
            problems.append((pos, f"backtick '`' is not allowed at position {pos} (write column names without quotes)"))
            i = n if end < 0 else end + 1
        elif ch == '"':
            end = text.find('"', i + 1)
            problems.append((pos, f"double quote '\"' is not allowed at position {pos} (write strings in single quotes)"))
            i = n if end < 0 else end + 1
        elif ch == "'":
            j, buf = i + 1, []
            while j < n:
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        buf.append("'")
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            if j >= n:
                problems.append((pos, f"unterminated string starting at position {pos}"))
                break
            tokens.append(Token("string", "".join(buf), pos, text[i : j + 1]))
            i = j + 1
        elif ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
            m = _NUMBER_RE.match(text, i)
            if m is None:  # pragma: no cover - the branch condition guarantees a digit
                raise RuntimeError(f"tokenizer: no number at position {pos}")
            tokens.append(Token("number", m.group(0), pos, m.group(0)))
            i = m.end()
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            m = _WORD_RE.match(text, i)
            if m is None:  # pragma: no cover - the branch condition guarantees a letter
                raise RuntimeError(f"tokenizer: no word at position {pos}")
            word = m.group(0)
            lower = word.lower()
            if lower in KEYWORDS:
                tokens.append(Token("keyword", lower, pos, word))
            else:
                tokens.append(Token("ident", word, pos, word))
            i = m.end()
        elif ch in "()[],+-":
            tokens.append(Token(ch, ch, pos, ch))
            i += 1
        elif ch in _OP_CHARS:
            j = i
            while j < n and text[j] in _OP_CHARS and not text.startswith("/*", j):
                j += 1
            op = text[i:j]
            if op in COMPARE_OPS:
                tokens.append(Token("op", op, pos, op))
            else:
                hint = _OP_HINTS.get(op, "expected one of " + ", ".join(COMPARE_OPS))
                problems.append((pos, f"bad operator '{op}' at position {pos}; {hint}"))
            i = j
        else:
            problems.append((pos, f"unexpected character {ch!r} at position {pos}"))
            i += 1
    # Function calls and SQL words, which need the token sequence.
    for k, tok in enumerate(tokens):
        nxt = tokens[k + 1] if k + 1 < len(tokens) else None
        callable_word = tok.kind == "ident" or (tok.kind == "keyword" and tok.value in ("date", "run_date"))
        if callable_word and nxt is not None and nxt.kind == "(":
            problems.append((tok.pos, f"function call '{tok.text}(...)' is not allowed at position {tok.pos}"))
        elif tok.kind == "ident" and tok.value.lower() in SQL_WORDS and tok.value not in columns:
            problems.append((tok.pos, f"SQL keyword '{tok.text}' is not allowed at position {tok.pos}"))
    tokens.append(Token("eof", "", n + 1, ""))
    problems.sort(key=lambda p: p[0])
    return tokens, problems


# --------------------------------------------------------------------------------------------
# AST
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnRef:
    name: str
    pos: int
    key: str | None = None  # map access: extensions['pet_species']

    def describe(self) -> str:
        return f"column '{self.name}'" if self.key is None else f"{self.name}[{_quote(self.key)}]"


@dataclass(frozen=True)
class Literal:
    kind: str  # string, number, boolean, date
    value: Any  # str, int | Decimal, bool, datetime.date
    pos: int
    text: str

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class RelativeDate:
    """``run_date`` shifted by ``sign * amount unit``; resolved when the rule is compiled."""

    sign: int
    amount: int
    unit: str  # days, weeks, months, years
    pos: int
    text: str

    def describe(self) -> str:
        return self.text


Operand = Union[ColumnRef, Literal, RelativeDate]


@dataclass(frozen=True)
class Compare:
    op: str
    left: Operand
    right: Operand
    pos: int  # of the operator


@dataclass(frozen=True)
class InList:
    operand: Operand
    values: tuple[Operand, ...]
    negated: bool
    pos: int


@dataclass(frozen=True)
class Between:
    operand: Operand
    low: Operand
    high: Operand
    negated: bool
    pos: int


@dataclass(frozen=True)
class IsNull:
    operand: Operand
    negated: bool
    pos: int


@dataclass(frozen=True)
class Contains:
    operand: Operand
    value: Operand
    negated: bool
    pos: int


@dataclass(frozen=True)
class Truth:
    """A bare boolean operand used as a condition."""

    operand: Operand


@dataclass(frozen=True)
class Not:
    expr: "Node"
    pos: int


@dataclass(frozen=True)
class And:
    left: "Node"
    right: "Node"


@dataclass(frozen=True)
class Or:
    left: "Node"
    right: "Node"


Node = Union[Compare, InList, Between, IsNull, Contains, Truth, Not, And, Or]


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


class RuleSyntaxError(Exception):
    """A parse error at a position; only the first one is reported (the rest would be noise)."""

    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message


def _shown(tok: Token) -> str:
    if tok.kind == "eof":
        return "end of rule"
    return f"string {tok.text}" if tok.kind == "string" else f"'{tok.text}'"


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    # -- helpers
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def is_kw(self, word: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "keyword" and tok.value == word

    def fail(self, tok: Token, expected: str) -> RuleSyntaxError:
        return RuleSyntaxError(tok.pos, f"unexpected {_shown(tok)} at position {tok.pos}; expected {expected}")

    def expect(self, kind: str, expected: str) -> Token:
        tok = self.peek()
        if tok.kind != kind:
            raise self.fail(tok, expected)
        return self.next()

    # -- grammar
    def parse(self) -> Node:
        node = self.or_expr()
        if self.peek().kind != "eof":
            raise self.fail(self.peek(), "'and', 'or' or the end of the rule")
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.is_kw("or"):
            self.next()
            node = Or(node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.is_kw("and"):
            self.next()
            node = And(node, self.not_expr())
        return node

    def nest(self, tok: Token) -> None:
        """Bound the recursion, so a hostile rule cannot exhaust the stack."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise RuleSyntaxError(tok.pos, f"rule nests deeper than {MAX_NESTING} levels at position {tok.pos}")

    def not_expr(self) -> Node:
        if self.is_kw("not"):
            tok = self.next()
            self.nest(tok)
            node = Not(self.not_expr(), tok.pos)
            self.depth -= 1
            return node
        return self.predicate()

    def predicate(self) -> Node:
        if self.peek().kind == "(":
            self.nest(self.next())
            node = self.or_expr()
            self.expect(")", "'and', 'or' or ')'")
            self.depth -= 1
            return node
        if self.peek().kind == "eof":
            raise self.fail(self.peek(), "a condition")
        left = self.operand()
        tok = self.peek()
        if tok.kind == "op":
            self.next()
            return Compare(tok.value, left, self.operand(), tok.pos)
        if self.is_kw("is"):
            self.next()
            negated = False
            if self.is_kw("not"):
                self.next()
                negated = True
            if not self.is_kw("null"):
                raise self.fail(self.peek(), "'null' after 'is'" if not negated else "'null' after 'is not'")
            self.next()
            return IsNull(left, negated, tok.pos)
        negated = False
        if self.is_kw("not") and any(self.is_kw(w, 1) for w in ("in", "between", "contains")):
            self.next()
            negated = True
        op = self.peek()
        if self.is_kw("in"):
            self.next()
            self.expect("(", "'(' after 'in'")
            values = [self.value()]
            while self.peek().kind == ",":
                self.next()
                values.append(self.value())
            self.expect(")", "',' or ')'")
            return InList(left, tuple(values), negated, op.pos)
        if self.is_kw("between"):
            self.next()
            low = self.operand()
            if not self.is_kw("and"):
                raise self.fail(self.peek(), "'and' in 'between ... and ...'")
            self.next()
            return Between(left, low, self.operand(), negated, op.pos)
        if self.is_kw("contains"):
            self.next()
            return Contains(left, self.operand(), negated, op.pos)
        return Truth(left)

    def value(self) -> Operand:
        tok = self.peek()
        if tok.kind == "ident":
            raise self.fail(tok, "a value (a list holds values, not columns)")
        return self.operand()

    def operand(self) -> Operand:
        tok = self.peek()
        if tok.kind == "ident":
            self.next()
            if self.peek().kind == "[":
                self.next()
                key = self.expect("string", "a quoted key, as in extensions['pet_species']")
                self.expect("]", "']'")
                return ColumnRef(tok.value, tok.pos, key.value)
            return ColumnRef(tok.value, tok.pos)
        if tok.kind == "string":
            self.next()
            return Literal("string", tok.value, tok.pos, tok.text)
        if tok.kind == "number" or (tok.kind == "-" and self.peek(1).kind == "number"):
            start = self.next()
            if start.kind == "-":
                return self.number("-" + self.next().value, start.pos)
            return self.number(start.value, start.pos)
        if tok.kind == "keyword":
            if tok.value in ("true", "false"):
                self.next()
                return Literal("boolean", tok.value == "true", tok.pos, tok.value)
            if tok.value == "date":
                self.next()
                s = self.expect("string", "a quoted date after 'date', as in date '2024-01-31'")
                parsed = parse_date(s.value)
                if parsed is None:
                    raise RuleSyntaxError(s.pos, f"invalid date {s.text} at position {s.pos}; expected 'YYYY-MM-DD'")
                return Literal("date", parsed, tok.pos, f"date {s.text}")
            if tok.value == "run_date":
                return self.relative_date()
            if tok.value == "null":
                raise RuleSyntaxError(
                    tok.pos,
                    f"unexpected 'null' at position {tok.pos}; test for missing values with 'is null' or 'is not null'",
                )
        raise self.fail(tok, "a column or a value")

    def number(self, text: str, pos: int) -> Literal:
        digits = text.lstrip("-").replace(".", "").lstrip("0")
        if len(digits) > _MAX_NUMBER_DIGITS:
            raise RuleSyntaxError(pos, f"number {text} at position {pos} has more than {_MAX_NUMBER_DIGITS} digits")
        value: int | Decimal = Decimal(text) if "." in text else int(text)
        return Literal("number", value, pos, text)

    def relative_date(self) -> RelativeDate:
        start = self.next()
        if self.peek().kind not in ("+", "-"):
            return RelativeDate(1, 0, "days", start.pos, "run_date")
        sign_tok = self.next()
        amount = self.peek()
        if amount.kind != "number" or "." in amount.value:
            raise self.fail(amount, f"a whole number after 'run_date {sign_tok.value}'")
        self.next()
        unit_tok = self.peek()
        unit = UNITS.get(unit_tok.value.lower()) if unit_tok.kind == "ident" else None
        if unit is None:
            raise self.fail(unit_tok, "a unit: days, weeks, months or years")
        self.next()
        count = int(amount.value)
        if count > MAX_SHIFT[unit]:
            limit = "100 years" if unit == "years" else f"{MAX_SHIFT[unit]} {unit} (100 years)"
            raise RuleSyntaxError(
                start.pos,
                f"run_date {sign_tok.value} {amount.value} {unit_tok.text} at position {start.pos} reaches too far; "
                f"expected at most {limit}",
            )
        text = f"run_date {sign_tok.value} {amount.value} {unit_tok.text}"
        return RelativeDate(1 if sign_tok.value == "+" else -1, count, unit, start.pos, text)


def parse_date(text: str) -> dt.date | None:
    """An ISO calendar date 'YYYY-MM-DD', or None."""
    if not _DATE_RE.match(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def parse_rule(text: str, columns: frozenset[str] = frozenset()) -> Node:
    """Parse a rule into its AST; raise RuleSyntaxError at the first lexical or syntax problem."""
    tokens, problems = tokenize(text, columns)
    if problems:
        pos, message = problems[0]
        raise RuleSyntaxError(pos, message)
    return _Parser(text, tokens).parse()


def relative_date(run_date: dt.date, sign: int, amount: int, unit: str) -> dt.date:
    """``run_date`` shifted by calendar units; months and years clamp to the month end (add_months)."""
    if unit == "days":
        return run_date + dt.timedelta(days=sign * amount)
    if unit == "weeks":
        return run_date + dt.timedelta(weeks=sign * amount)
    months = sign * amount * (12 if unit == "years" else 1)
    index = run_date.year * 12 + (run_date.month - 1) + months
    year, month = divmod(index, 12)
    day = min(run_date.day, calendar.monthrange(year, month + 1)[1])
    return dt.date(year, month + 1, day)


# --------------------------------------------------------------------------------------------
# Types and checks
# --------------------------------------------------------------------------------------------

_NUMERIC = (ByteType, ShortType, IntegerType, LongType, FloatType, DoubleType, DecimalType)
_TEMPORAL = ("date", "timestamp")
_ARTICLE = {
    "string": "a string",
    "number": "a number",
    "boolean": "a boolean",
    "date": "a date",
    "timestamp": "a timestamp",
    "map": "a map",
    "struct": "a struct",
}


def _kind(dtype: DataType) -> str:
    if isinstance(dtype, StringType):
        return "string"
    if isinstance(dtype, _NUMERIC):
        return "number"
    if isinstance(dtype, BooleanType):
        return "boolean"
    if isinstance(dtype, DateType):
        return "date"
    if isinstance(dtype, (TimestampType, TimestampNTZType)):
        return "timestamp"
    if isinstance(dtype, ArrayType):
        return "array<" + _kind(dtype.elementType) + ">"
    if isinstance(dtype, MapType):
        return "map"
    if isinstance(dtype, StructType):
        return "struct"
    return dtype.simpleString()


def _article(kind: str) -> str:
    if kind.startswith("array<"):
        inner = kind[len("array<") : -1]
        plural = {"string": "strings", "number": "numbers", "boolean": "booleans", "date": "dates",
                  "timestamp": "timestamps"}.get(inner, inner + " values")
        return f"an array of {plural}"
    return _ARTICLE.get(kind, f"a {kind}")


def _is_scalar(kind: str) -> bool:
    return kind in ("string", "number", "boolean", "date", "timestamp")


def _suggest(name: str, available: list[str]) -> str:
    exact = [c for c in available if c.lower() == name.lower()]
    close = exact or difflib.get_close_matches(name, available, n=3, cutoff=0.6)
    if not close:
        return ""
    quoted = [f"'{c}'" for c in close]
    joined = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f" (did you mean {joined}?)"


class _Checker:
    """Type-checks an AST against a schema; collects every problem with its position."""

    def __init__(self, schema: StructType) -> None:
        self.fields = {f.name: f.dataType for f in schema.fields}
        self.problems: list[tuple[int, str]] = []

    def add(self, pos: int, message: str) -> None:
        self.problems.append((pos, message))

    def kind(self, op: Operand) -> str | None:
        """Kind of an operand; None (with a problem recorded) when the column is unusable."""
        if isinstance(op, Literal):
            return op.kind
        if isinstance(op, RelativeDate):
            return "date"
        dtype = self.fields.get(op.name)
        if dtype is None:
            self.add(op.pos, f"unknown column '{op.name}' at position {op.pos}{_suggest(op.name, list(self.fields))}")
            return None
        if op.key is None:
            return _kind(dtype)
        if not isinstance(dtype, MapType):
            self.add(
                op.pos,
                f"type mismatch at position {op.pos}: column '{op.name}' is {_article(_kind(dtype))}, not a map; "
                f"remove [{_quote(op.key)}]",
            )
            return None
        return _kind(dtype.valueType)

    def scalar(self, op: Operand, kind: str, what: str, pos: int) -> bool:
        """Whether ``op`` may take part in ``what``; records a bad-operator problem if not."""
        if _is_scalar(kind):
            return True
        if kind.startswith("array<"):
            hint = "; use 'contains'"
        elif kind == "map" and isinstance(op, ColumnRef):
            hint = f"; use {op.name}['key']"
        else:
            hint = ""
        self.add(pos, f"bad operator '{what}' at position {pos}: {op.describe()} is {_article(kind)}{hint}")
        return False

    def mismatch(self, a: Operand, ka: str, b: Operand, kb: str) -> None:
        """Record a type mismatch between ``a`` and ``b`` (reported at ``b``), if there is one."""
        if ka in _TEMPORAL and kb in _TEMPORAL:
            return
        if ka in _TEMPORAL and isinstance(b, Literal) and b.kind == "string":
            if parse_date(b.value) is None:
                self.add(b.pos, f"type mismatch at position {b.pos}: {a.describe()} is {_article(ka)} but "
                                f"{b.describe()} is not a date (expected 'YYYY-MM-DD')")
            return
        if kb in _TEMPORAL and isinstance(a, Literal) and a.kind == "string":
            if parse_date(a.value) is None:
                self.add(a.pos, f"type mismatch at position {a.pos}: {b.describe()} is {_article(kb)} but "
                                f"{a.describe()} is not a date (expected 'YYYY-MM-DD')")
            return
        if ka != kb:
            pos = _pos(b)
            self.add(pos, f"type mismatch at position {pos}: {a.describe()} is {_article(ka)} but "
                          f"{b.describe()} is {_article(kb)}")

    def check(self, node: Node) -> None:
        if isinstance(node, (And, Or)):
            self.check(node.left)
            self.check(node.right)
        elif isinstance(node, Not):
            self.check(node.expr)
        elif isinstance(node, Truth):
            k = self.kind(node.operand)
            if k is not None and k != "boolean":
                pos = _pos(node.operand)
                self.add(pos, f"type mismatch at position {pos}: {node.operand.describe()} is {_article(k)}, "
                              "not a condition (compare it with a value)")
        elif isinstance(node, IsNull):
            self.kind(node.operand)
        elif isinstance(node, Compare):
            kl, kr = self.kind(node.left), self.kind(node.right)
            if kl is None or kr is None:
                return
            if not (self.scalar(node.left, kl, node.op, node.pos) and self.scalar(node.right, kr, node.op, node.pos)):
                return
            if node.op not in ("=", "!=", "<>") and "boolean" in (kl, kr):
                self.add(node.pos, f"bad operator '{node.op}' at position {node.pos}: booleans can only be "
                                   "compared with =, != or <>")
                return
            self.mismatch(node.left, kl, node.right, kr)
        elif isinstance(node, InList):
            what = "not in" if node.negated else "in"
            k = self.kind(node.operand)
            kinds = [self.kind(v) for v in node.values]
            if k is None or not self.scalar(node.operand, k, what, node.pos):
                return
            for v, kv in zip(node.values, kinds):
                if kv is not None:
                    self.mismatch(node.operand, k, v, kv)
        elif isinstance(node, Between):
            what = "not between" if node.negated else "between"
            k, kl, kh = self.kind(node.operand), self.kind(node.low), self.kind(node.high)
            if k is None or kl is None or kh is None:
                return
            if not all(self.scalar(o, kk, what, node.pos) for o, kk in
                       ((node.operand, k), (node.low, kl), (node.high, kh))):
                return
            if "boolean" in (k, kl, kh):
                self.add(node.pos, f"bad operator '{what}' at position {node.pos}: booleans can only be "
                                   "compared with =, != or <>")
                return
            self.mismatch(node.operand, k, node.low, kl)
            self.mismatch(node.operand, k, node.high, kh)
        elif isinstance(node, Contains):
            k, kv = self.kind(node.operand), self.kind(node.value)
            if k is None or kv is None:
                return
            if not k.startswith("array<"):
                self.add(node.pos, f"type mismatch at position {node.pos}: 'contains' needs an array column but "
                                   f"{node.operand.describe()} is {_article(k)}")
                return
            element = k[len("array<") : -1]
            if not isinstance(node.value, (Literal, RelativeDate)):
                pos = _pos(node.value)
                self.add(pos, f"type mismatch at position {pos}: 'contains' needs a value but "
                              f"{node.value.describe()} is a column")
                return
            if element in _TEMPORAL and kv == "string":
                if parse_date(node.value.value) is None:  # type: ignore[union-attr]
                    self.add(node.value.pos, f"type mismatch at position {node.value.pos}: "
                                             f"{node.operand.describe()} holds dates but {node.value.describe()} "
                                             "is not a date (expected 'YYYY-MM-DD')")
                return
            if not (element == kv or (element in _TEMPORAL and kv in _TEMPORAL)):
                self.add(node.value.pos, f"type mismatch at position {node.value.pos}: {node.operand.describe()} "
                                         f"holds {_article(k)[len('an array of '):]} but {node.value.describe()} "
                                         f"is {_article(kv)}")


def _pos(op: Operand) -> int:
    return op.pos


def _analyse(text: str, schema: StructType) -> tuple[Node | None, list[str]]:
    columns = frozenset(f.name for f in schema.fields)
    tokens, lexical = tokenize(text, columns)
    if lexical:
        return None, [m for _, m in lexical]
    try:
        node = _Parser(text, tokens).parse()
    except RuleSyntaxError as exc:
        return None, [exc.message]
    checker = _Checker(schema)
    checker.check(node)
    ordered = sorted(enumerate(checker.problems), key=lambda p: (p[1][0], p[0]))
    seen: list[str] = []
    for _, (_, message) in ordered:
        if message not in seen:
            seen.append(message)
    return node, seen


def check_rule(text: str, schema: StructType) -> list[str]:
    """Every problem of a rule against ``schema``, in order of position; empty when it is valid.

    Lexical problems (SQL smuggling, bad operators, stray characters) are all reported; parsing
    stops at the first syntax error; type problems (unknown columns, mismatches) are all reported.
    """
    return _analyse(text, schema)[1]


def check_segments(cfg: "SegmentsConfig") -> list[tuple[str, Any, str]]:
    """Config-time checks of the segments section: (YAML path, value given, what was expected).

    Rules are checked against the golden profile schema, so a typo fails before Spark starts.
    A problem of one segment names it in the expected text ("for segment 'vip'"), next to its
    YAML path (which stays a plain path: the loader finds the file and line order from it).
    A segment exporting ``hashed_audience`` needs ``hashed_audience_consent``: golden.profiles
    has no advertising consent channel, so which statement covers ad-platform matching is the
    operator's decision, and there is no default (jobs/segments/config.py).
    """
    from jobs.common.schemas import GOLDEN_PROFILES

    schema = GOLDEN_PROFILES.schema
    problems: list[tuple[str, Any, str]] = []
    first: dict[str, int] = {}
    for i, seg in enumerate(cfg.segments):
        path = f"segments.segments[{i}]"
        if seg.name in first:
            problems.append((f"{path}.name", seg.name, f"a unique segment name; '{seg.name}' is already "
                                                        f"segments.segments[{first[seg.name]}].name"))
        else:
            first[seg.name] = i
            if cfg.rfm_micro_segments and seg.name.startswith(RFM_PREFIX):
                problems.append((f"{path}.name", seg.name, f"a name that does not start with '{RFM_PREFIX}' "
                                                            "(reserved for RFM micro-segments while "
                                                            "rfm_micro_segments is true)"))
        for message in check_rule(seg.rule, schema):
            problems.append((f"{path}.rule", seg.rule, f"a valid rule for segment '{seg.name}': {message}"))
        problems.extend(export_consent_problems(cfg, only=i))
    return problems


def export_consent_problems(cfg: "SegmentsConfig", only: int | None = None) -> list[tuple[str, Any, str]]:
    """(path, exports, expected) of every segment (or segment ``only``) exporting hashed_audience
    while ``hashed_audience_consent`` is unset; the segments job checks this again before it
    writes anything, for configs built in code rather than loaded."""
    if cfg.hashed_audience_consent is not None:
        return []
    return [
        (
            f"segments.segments[{i}].exports",
            list(seg.exports),
            f"segments.hashed_audience_consent to be set before segment '{seg.name}' can export hashed_audience: "
            "the consent channel (email, sms, post or phone) whose statement covers matching with ad platforms; "
            "it has no default, because golden.profiles has no advertising consent channel",
        )
        for i, seg in enumerate(cfg.segments)
        if (only is None or i == only) and "hashed_audience" in seg.exports
    ]


# --------------------------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------------------------


class _Compiler:
    def __init__(self, schema: StructType, run_date: dt.date) -> None:
        self.fields = {f.name: f.dataType for f in schema.fields}
        self.run_date = run_date

    def kind(self, op: Operand) -> str:
        if isinstance(op, Literal):
            return op.kind
        if isinstance(op, RelativeDate):
            return "date"
        dtype = self.fields[op.name]
        return _kind(dtype.valueType if op.key is not None else dtype)  # type: ignore[attr-defined]

    def group(self, operands: list[Operand]) -> list[Column]:
        """Columns for operands compared with each other, with dates and timestamps reconciled."""
        kinds = [self.kind(o) for o in operands]
        temporal = any(k in _TEMPORAL for k in kinds)
        by_date = temporal and any(k != "timestamp" for k in kinds)
        return [self.value(o, k, temporal, by_date) for o, k in zip(operands, kinds)]

    def value(self, op: Operand, kind: str, temporal: bool = False, by_date: bool = False) -> Column:
        if isinstance(op, ColumnRef):
            col = F.col(op.name)
            if op.key is not None:
                col = col.getItem(op.key)
            return F.to_date(col) if kind == "timestamp" and by_date else col
        if isinstance(op, RelativeDate):
            return F.lit(relative_date(self.run_date, op.sign, op.amount, op.unit))
        if op.kind == "string" and temporal:
            return F.lit(parse_date(op.value))
        return F.lit(op.value)

    def compile(self, node: Node) -> Column:
        if isinstance(node, And):
            return self.compile(node.left) & self.compile(node.right)
        if isinstance(node, Or):
            return self.compile(node.left) | self.compile(node.right)
        if isinstance(node, Not):
            return ~self.compile(node.expr)
        if isinstance(node, Truth):
            return self.value(node.operand, self.kind(node.operand))
        if isinstance(node, IsNull):
            col = self.value(node.operand, self.kind(node.operand))
            return col.isNotNull() if node.negated else col.isNull()
        if isinstance(node, Compare):
            left, right = self.group([node.left, node.right])
            op = node.op
            if op == "=":
                return left == right
            if op in ("!=", "<>"):
                return left != right
            if op == "<":
                return left < right
            if op == "<=":
                return left <= right
            if op == ">":
                return left > right
            return left >= right
        if isinstance(node, InList):
            cols = self.group([node.operand, *node.values])
            cond = cols[0].isin(*cols[1:])
            return ~cond if node.negated else cond
        if isinstance(node, Between):
            col, low, high = self.group([node.operand, node.low, node.high])
            cond = col.between(low, high)
            return ~cond if node.negated else cond
        if isinstance(node, Contains):
            element = self.kind(node.operand)[len("array<") : -1]
            value = node.value
            if element in _TEMPORAL and isinstance(value, Literal) and value.kind == "string":
                lit = F.lit(parse_date(value.value))
            else:
                lit = self.value(value, self.kind(value))
            cond = F.array_contains(self.value(node.operand, "array"), lit)
            return ~cond if node.negated else cond
        raise TypeError(f"unknown rule node {type(node).__name__}")  # pragma: no cover


def compile_rule(text: str, schema: StructType, run_date: dt.date, segment: str | None = None) -> Column:
    """The rule as a boolean Column over a DataFrame with ``schema``; never null.

    Raises ConfigError listing every problem when the rule is invalid, naming ``segment`` when
    given (a column that disappeared from the table since the config was validated). Only
    ``F.col``, ``F.lit`` and Column methods are used, so no part of the text is ever parsed by
    Spark SQL.
    """
    node, problems = _analyse(text, schema)
    if problems or node is None:
        where = f" for segment '{segment}'" if segment is not None else ""
        raise ConfigError([f"invalid segment rule {_quote(text)}{where}: {p}" for p in problems])
    return F.coalesce(_Compiler(schema, run_date).compile(node), F.lit(False))
