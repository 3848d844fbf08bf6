"""A SOQL subset: tokenizer and recursive-descent parser producing a small AST.

Grammar (keywords case-insensitive)::

    query      := SELECT select FROM ident [WHERE or]
                  [WITH (SECURITY_ENFORCED|USER_MODE|SYSTEM_MODE)] [GROUP BY path (, path)*]
                  [ORDER BY order (, order)*]
                  [LIMIT int] [OFFSET int]
    select     := COUNT '(' ')' | item (, item)*
    item       := path | agg '(' [path] ')' [alias]     agg: COUNT COUNT_DISTINCT SUM MIN MAX AVG
    path       := ident ('.' ident)?                          one-level relationships (Owner.Email)
                | datefn '(' path ')' [alias]       CALENDAR_YEAR(CloseDate), DAY_ONLY(CreatedDate)
    or         := and (OR and)*
    and        := not (AND not)*
    not        := NOT not | '(' or ')' | cond
    cond       := path op value | path [NOT] IN '(' value (, value)* ')' | path [NOT] LIKE string
    op         := = | != | <> | < | <= | > | >=
    value      := string | number | TRUE | FALSE | NULL | date | datetime | date-literal[:n]
    order      := (path | agg '(' [path] ')') [ASC|DESC] [NULLS (FIRST|LAST)]

Date and datetime literals are written without quotes (``2024-01-01``,
``2024-01-01T00:00:00Z``), and relative literals such as ``LAST_N_DAYS:30`` resolve against the
current UTC day (developer.salesforce.com ... sforce_api_calls_soql_select_dateformats.htm;
``LAST_N_DAYS:n`` covers today and the n days before it).  Errors mimic Salesforce's
``MALFORMED_QUERY`` text with a row/column pointer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sandbox.salesforce.errors import SalesforceError, malformed_query


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, date, datetime, op, punct, eof
    text: str
    pos: int
    value: Any = None


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\dT])
  | (?P<number>[+-]?\d+(?:\.\d+)?)
  | (?P<string>')
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),.:])
    """,
    re.VERBOSE,
)

# SOQL "Quoted String Escape Sequences": \n \r \t \b \f in either case, \" \' \\, \uXXXX;
# \% and \_ mean something in LIKE only; any other backslash is an error.
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}
_ESCAPES.update({k.upper(): v for k, v in _ESCAPES.items() if k.isalpha()})
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")


def _error_at(text: str, pos: int, message: str) -> SalesforceError:
    # Salesforce prints the statement, a caret under the offending column, then the reason.
    line_start = text.rfind("\n", 0, pos) + 1
    row = text.count("\n", 0, pos) + 1
    col = pos - line_start + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    return malformed_query(
        f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{message}"
    )


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise _error_at(text, pos, f"unexpected token: '{text[pos]}'")
        kind = m.lastgroup
        assert kind is not None
        if kind == "ws":
            pos = m.end()
            continue
        if kind == "string":
            sval, end = _read_string(text, pos)
            tokens.append(Token("string", text[pos:end], pos, sval))
            pos = end
            continue
        tok_text = m.group()
        value: Any = tok_text
        if kind == "number":
            value = float(tok_text) if "." in tok_text else int(tok_text)
        elif kind == "date":
            try:
                value = date.fromisoformat(tok_text)
            except ValueError as exc:
                raise _error_at(text, pos, f"invalid date: {tok_text}") from exc
        elif kind == "datetime":
            value = _parse_datetime(text, pos, tok_text)
        tokens.append(Token(kind, tok_text, pos, value))
        pos = m.end()
    tokens.append(Token("eof", "", len(text)))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text):
                break
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            elif nxt == "u" and _HEX4.fullmatch(text, i + 2, i + 6):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            elif nxt in "%_":
                out.append("\\" + nxt)  # kept escaped: only LIKE interprets them
            else:
                raise _error_at(text, i, f"Invalid string literal: unknown escape \\{nxt}")
            i += 2
            continue
        if ch == "'":
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise _error_at(text, start, "unexpected token: unterminated string literal")


def _parse_datetime(text: str, pos: int, s: str) -> datetime:
    norm = s.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", norm):
        norm = norm[:-2] + ":" + norm[-2:]
    try:
        return datetime.fromisoformat(norm).astimezone(UTC)
    except ValueError as exc:
        raise _error_at(text, pos, f"invalid datetime: {s}") from exc


# ---- AST ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldPath:
    parts: tuple[str, ...]
    pos: int = 0
    #: A date function applied to the field (``CALENDAR_YEAR(CloseDate)``), upper case.
    func: str | None = None
    alias: str | None = None

    @property
    def text(self) -> str:
        inner = ".".join(self.parts)
        return f"{self.func}({inner})" if self.func else inner


#: Date functions (sforce_api_calls_soql_select_date_functions.htm), allowed in WHERE, GROUP BY,
#: ORDER BY and, in grouped queries, SELECT.  The sandbox evaluates them in UTC (the API user's
#: time zone) with a fiscal year that starts in January, the default.
DATE_FUNCTIONS = frozenset({
    "CALENDAR_MONTH", "CALENDAR_QUARTER", "CALENDAR_YEAR", "DAY_IN_MONTH", "DAY_IN_WEEK",
    "DAY_IN_YEAR", "DAY_ONLY", "FISCAL_MONTH", "FISCAL_QUARTER", "FISCAL_YEAR", "HOUR_IN_DAY",
    "WEEK_IN_MONTH", "WEEK_IN_YEAR",
})  # fmt: skip


@dataclass(frozen=True)
class Aggregate:
    func: str  # COUNT, COUNT_DISTINCT, SUM, MIN, MAX, AVG
    field: FieldPath | None
    alias: str | None
    pos: int = 0


@dataclass(frozen=True)
class Literal:
    kind: str  # string number boolean null date datetime range
    value: Any
    pos: int = 0
    #: For ``range`` literals (LAST_N_DAYS:n, THIS_MONTH...): [start, end) as dates.
    end: Any = None


@dataclass(frozen=True)
class Comparison:
    field: FieldPath
    op: str
    value: Literal


@dataclass(frozen=True)
class InList:
    field: FieldPath
    values: tuple[Literal, ...]
    negate: bool


@dataclass(frozen=True)
class Like:
    field: FieldPath
    pattern: str
    negate: bool


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND, OR
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Comparison | InList | Like | BoolOp | Not


@dataclass(frozen=True)
class OrderItem:
    field: FieldPath | Aggregate  # an aggregate only in GROUP BY queries
    descending: bool
    nulls_last: bool


@dataclass
class Query:
    sobject: str
    fields: list[FieldPath | Aggregate] = field(default_factory=list)
    count_only: bool = False
    where: Condition | None = None
    group_by: list[FieldPath] = field(default_factory=list)
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    sobject_pos: int = 0
    text: str = ""

    @property
    def is_aggregate(self) -> bool:
        return any(isinstance(f, Aggregate) for f in self.fields)


_AGGREGATES = {"COUNT", "COUNT_DISTINCT", "SUM", "MIN", "MAX", "AVG"}
_RESERVED = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "ORDER", "BY", "LIMIT", "OFFSET", "IN",
    "LIKE", "NULL", "TRUE", "FALSE", "ASC", "DESC", "NULLS", "FIRST", "LAST", "GROUP",
    "HAVING", "WITH", "FOR", "USING", "INCLUDES", "EXCLUDES",
}  # fmt: skip


def _date_range(name: str, n: int | None, today: date) -> tuple[date, date]:
    """[start, end) of a relative date literal (UTC; weeks start on Sunday, the en_US locale)."""

    def month_start(d: date, delta: int) -> date:
        m = d.month - 1 + delta
        return date(d.year + m // 12, m % 12 + 1, 1)

    def quarter_start(d: date, delta: int) -> date:
        q0 = date(d.year, (d.month - 1) // 3 * 3 + 1, 1)
        return month_start(q0, 3 * delta)

    week0 = today - timedelta(days=(today.weekday() + 1) % 7)
    one = timedelta(days=1)
    simple: dict[str, tuple[date, date]] = {
        "TODAY": (today, today + one),
        "YESTERDAY": (today - one, today),
        "TOMORROW": (today + one, today + 2 * one),
        "THIS_WEEK": (week0, week0 + 7 * one),
        "LAST_WEEK": (week0 - 7 * one, week0),
        "NEXT_WEEK": (week0 + 7 * one, week0 + 14 * one),
        "THIS_MONTH": (month_start(today, 0), month_start(today, 1)),
        "LAST_MONTH": (month_start(today, -1), month_start(today, 0)),
        "NEXT_MONTH": (month_start(today, 1), month_start(today, 2)),
        "THIS_QUARTER": (quarter_start(today, 0), quarter_start(today, 1)),
        "LAST_QUARTER": (quarter_start(today, -1), quarter_start(today, 0)),
        "NEXT_QUARTER": (quarter_start(today, 1), quarter_start(today, 2)),
        "THIS_YEAR": (date(today.year, 1, 1), date(today.year + 1, 1, 1)),
        "LAST_YEAR": (date(today.year - 1, 1, 1), date(today.year, 1, 1)),
        "NEXT_YEAR": (date(today.year + 1, 1, 1), date(today.year + 2, 1, 1)),
        "LAST_90_DAYS": (today - 90 * one, today + one),
        "NEXT_90_DAYS": (today + one, today + 91 * one),
    }
    if n is None:
        if name in simple:
            return simple[name]
        raise KeyError(name)
    # Built lazily: only the named literal is computed, so a large n for one unit cannot
    # overflow another unit's arithmetic.
    k: int = n
    with_n: dict[str, Callable[[], tuple[date, date]]] = {
        "LAST_N_DAYS": lambda: (today - k * one, today + one),
        "NEXT_N_DAYS": lambda: (today + one, today + (k + 1) * one),
        "N_DAYS_AGO": lambda: (today - k * one, today - (k - 1) * one),
        "LAST_N_WEEKS": lambda: (week0 - 7 * k * one, week0),
        "NEXT_N_WEEKS": lambda: (week0 + 7 * one, week0 + 7 * (k + 1) * one),
        "LAST_N_MONTHS": lambda: (month_start(today, -k), month_start(today, 0)),
        "NEXT_N_MONTHS": lambda: (month_start(today, 1), month_start(today, k + 1)),
        "N_MONTHS_AGO": lambda: (month_start(today, -k), month_start(today, -k + 1)),
        "LAST_N_QUARTERS": lambda: (quarter_start(today, -k), quarter_start(today, 0)),
        "NEXT_N_QUARTERS": lambda: (quarter_start(today, 1), quarter_start(today, k + 1)),
        "LAST_N_YEARS": lambda: (date(today.year - k, 1, 1), date(today.year, 1, 1)),
        "NEXT_N_YEARS": lambda: (date(today.year + 1, 1, 1), date(today.year + k + 1, 1, 1)),
        "N_YEARS_AGO": lambda: (date(today.year - k, 1, 1), date(today.year - k + 1, 1, 1)),
    }
    return with_n[name]()


class _Parser:
    def __init__(self, text: str, today: date) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.today = today

    # -- token helpers ---------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def at_kw(self, *words: str) -> bool:
        return self.tok.kind == "ident" and self.tok.text.upper() in words

    def advance(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def fail(self, tok: Token | None = None, message: str | None = None) -> SalesforceError:
        t = tok or self.tok
        what = t.text or "<EOF>"
        return _error_at(self.text, t.pos, message or f"unexpected token: '{what}'")

    def expect_kw(self, word: str) -> Token:
        if not self.at_kw(word):
            raise self.fail()
        return self.advance()

    def expect_punct(self, p: str) -> Token:
        if self.tok.kind != "punct" or self.tok.text != p:
            raise self.fail()
        return self.advance()

    # -- grammar ---------------------------------------------------------------------------------

    def parse(self) -> Query:
        self.expect_kw("SELECT")
        fields, count_only = self.select_list()
        self.expect_kw("FROM")
        if self.tok.kind != "ident":
            raise self.fail()
        obj_tok = self.advance()
        q = Query(sobject=obj_tok.text, fields=fields, count_only=count_only, text=self.text)
        q.sobject_pos = obj_tok.pos
        if self.at_kw("WHERE"):
            self.advance()
            q.where = self.or_expr()
        if self.at_kw("WITH"):
            # WITH SECURITY_ENFORCED / USER_MODE / SYSTEM_MODE: the sandbox always applies the
            # API user's field-level security (an inaccessible field is an INVALID_FIELD).
            self.advance()
            if not self.at_kw("SECURITY_ENFORCED", "USER_MODE", "SYSTEM_MODE"):
                raise self.fail()
            self.advance()
        if self.at_kw("GROUP"):
            self.advance()
            self.expect_kw("BY")
            q.group_by.append(self.path())
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.advance()
                q.group_by.append(self.path())
            if self.at_kw("HAVING"):
                raise self.fail(message="HAVING is not supported by the sandbox")
        if self.at_kw("ORDER"):
            self.advance()
            self.expect_kw("BY")
            q.order_by.append(self.order_item())
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.advance()
                q.order_by.append(self.order_item())
        if self.at_kw("LIMIT"):
            self.advance()
            q.limit = self.int_value()
        if self.at_kw("OFFSET"):
            self.advance()
            q.offset = self.int_value()
            if q.offset > 2000:
                raise SalesforceError(
                    400, "NUMBER_OUTSIDE_VALID_RANGE",
                    "Maximum SOQL offset allowed is 2000",
                )  # fmt: skip
        if self.tok.kind != "eof":
            raise self.fail()
        return q

    def int_value(self) -> int:
        t = self.tok
        if t.kind != "number" or not isinstance(t.value, int) or t.value < 0:
            raise self.fail()
        self.advance()
        return int(t.value)

    def select_list(self) -> tuple[list[FieldPath | Aggregate], bool]:
        if self.at_kw("COUNT") and self.peek().text == "(" and self.peek(2).text == ")":
            self.i += 3
            if self.at_kw("FROM"):
                return [], True
            raise self.fail()
        items: list[FieldPath | Aggregate] = [self.select_item()]
        while self.tok.kind == "punct" and self.tok.text == ",":
            self.advance()
            items.append(self.select_item())
        return items, False

    def select_item(self) -> FieldPath | Aggregate:
        t = self.tok
        if t.kind == "ident" and t.text.upper() in _AGGREGATES and self.peek().text == "(":
            self.i += 2
            path = None
            if not (self.tok.kind == "punct" and self.tok.text == ")"):
                path = self.path()
            self.expect_punct(")")
            alias = None
            if self.tok.kind == "ident" and self.tok.text.upper() not in _RESERVED:
                alias = self.advance().text
            return Aggregate(t.text.upper(), path, alias, t.pos)
        if t.kind == "ident" and t.text.upper() == "FIELDS" and self.peek().text == "(":
            raise self.fail(message="FIELDS() is not supported by the sandbox")
        p = self.path()
        if p.func and self.tok.kind == "ident" and self.tok.text.upper() not in _RESERVED:
            return FieldPath(p.parts, p.pos, p.func, self.advance().text)
        return p

    def path(self) -> FieldPath:
        t = self.tok
        if t.kind == "ident" and t.text.upper() in DATE_FUNCTIONS and self.peek().text == "(":
            self.i += 2
            inner = self.path()
            if inner.func:
                raise self.fail(t)
            self.expect_punct(")")
            return FieldPath(inner.parts, t.pos, t.text.upper())
        if t.kind != "ident" or t.text.upper() in _RESERVED:
            raise self.fail()
        self.advance()
        parts = [t.text]
        while self.tok.kind == "punct" and self.tok.text == ".":
            self.advance()
            if self.tok.kind != "ident":
                raise self.fail()
            parts.append(self.advance().text)
        return FieldPath(tuple(parts), t.pos)

    def order_item(self) -> OrderItem:
        t = self.tok
        p: FieldPath | Aggregate
        if t.kind == "ident" and t.text.upper() in _AGGREGATES and self.peek().text == "(":
            self.i += 2
            inner = None if self.tok.text == ")" else self.path()
            self.expect_punct(")")
            p = Aggregate(t.text.upper(), inner, None, t.pos)
        else:
            p = self.path()
        desc = False
        if self.at_kw("ASC", "DESC"):
            desc = self.advance().text.upper() == "DESC"
        nulls_last = False  # Salesforce sorts nulls first by default, whatever the direction.
        if self.at_kw("NULLS"):
            self.advance()
            if not self.at_kw("FIRST", "LAST"):
                raise self.fail()
            nulls_last = self.advance().text.upper() == "LAST"
        return OrderItem(p, desc, nulls_last)

    def or_expr(self) -> Condition:
        items = [self.and_expr()]
        while self.at_kw("OR"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def and_expr(self) -> Condition:
        items = [self.not_expr()]
        while self.at_kw("AND"):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def not_expr(self) -> Condition:
        if self.at_kw("NOT"):
            self.advance()
            return Not(self.not_expr())
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.advance()
            inner = self.or_expr()
            self.expect_punct(")")
            return inner
        return self.condition()

    def condition(self) -> Condition:
        p = self.path()
        negate = False
        if self.at_kw("NOT") and self.peek().text.upper() in ("IN", "LIKE"):
            self.advance()
            negate = True
        if self.at_kw("IN"):
            self.advance()
            self.expect_punct("(")
            if self.at_kw("SELECT"):
                raise self.fail(message="semi-join sub-selects are not supported by the sandbox")
            values = [self.value()]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.advance()
                values.append(self.value())
            self.expect_punct(")")
            return InList(p, tuple(values), negate)
        if self.at_kw("LIKE"):
            self.advance()
            if self.tok.kind != "string":
                raise self.fail()
            return Like(p, str(self.advance().value), negate)
        if negate:
            raise self.fail()
        if self.tok.kind != "op":
            raise self.fail()
        op = self.advance().text
        return Comparison(p, "!=" if op == "<>" else op, self.value())

    def value(self) -> Literal:
        t = self.tok
        if t.kind == "string":
            self.advance()
            return Literal("string", t.value, t.pos)
        if t.kind == "number":
            self.advance()
            return Literal("number", t.value, t.pos)
        if t.kind in ("date", "datetime"):
            self.advance()
            return Literal(t.kind, t.value, t.pos)
        if t.kind == "ident":
            up = t.text.upper()
            if up in ("TRUE", "FALSE"):
                self.advance()
                return Literal("boolean", up == "TRUE", t.pos)
            if up == "NULL":
                self.advance()
                return Literal("null", None, t.pos)
            self.advance()
            n: int | None = None
            if self.tok.kind == "punct" and self.tok.text == ":":
                self.advance()
                n = self.int_value()
            try:
                start, end = _date_range(up, n, self.today)
            except KeyError:
                raise self.fail(t) from None
            except (ValueError, OverflowError):
                raise SalesforceError(
                    400, "NUMBER_OUTSIDE_VALID_RANGE",
                    f"Invalid date literal: {up}:{n} is outside the supported date range",
                ) from None  # fmt: skip
            return Literal("range", start, t.pos, end)
        raise self.fail()


def parse(text: str, today: date | None = None) -> Query:
    """Parse one SOQL statement (raises ``SalesforceError`` MALFORMED_QUERY)."""
    return _Parser(text, today or datetime.now(UTC).date()).parse()
