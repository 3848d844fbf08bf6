"""A small SOSL subset for ``GET /services/data/vXX.X/search/?q=`` (simple-salesforce ``search``).

Supported (sforce_api_calls_sosl_syntax.htm)::

    FIND {term} [IN ALL|NAME|EMAIL|PHONE FIELDS]
        [RETURNING Object [(field, ... [WHERE cond] [ORDER BY ...] [LIMIT n])] [, ...]]
        [LIMIT n]

The term matches case-insensitively anywhere in the searched text fields (``*`` and ``?`` are
wildcards).  Each RETURNING item is turned into a SOQL query whose WHERE gains an OR of LIKE
conditions, so the SOQL engine does the work.  The response is ``{"searchRecords": [...]}``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sandbox.http import Request, Response, json_response
from sandbox.salesforce.errors import SalesforceError
from sandbox.salesforce.query import execute, render_records
from sandbox.salesforce.schema import ObjectDef
from sandbox.salesforce.soql import parse

if TYPE_CHECKING:
    from sandbox.salesforce.org import Org

_SOSL = re.compile(
    r"^\s*FIND\s*\{(?P<term>(?:[^}\\]|\\.)*)\}\s*"
    r"(?:IN\s+(?P<scope>ALL|NAME|EMAIL|PHONE)\s+FIELDS\s*)?"
    r"(?:RETURNING\s+(?P<returning>.*?))?\s*(?:LIMIT\s+(?P<limit>\d+))?\s*$",
    re.I | re.S,
)
_CLAUSE = re.compile(r"\b(WHERE|ORDER\s+BY|LIMIT)\b", re.I)
#: Objects searched when there is no RETURNING clause.
DEFAULT_OBJECTS = ("Account", "Lead", "Opportunity", "User")
MAX_SEARCH_RESULTS = 2000


def _malformed(message: str) -> SalesforceError:
    return SalesforceError(400, "MALFORMED_SEARCH", message)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    out: list[str] = []
    cur: list[str] = []
    depth, quote = 0, False
    for i, ch in enumerate(text):
        if ch == "'" and (i == 0 or text[i - 1] != "\\"):
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _searched_fields(obj: ObjectDef, scope: str, org: Org) -> list[str]:
    fields = [f for f in org.visible_fields(obj)
              if f.type in ("string", "email", "phone", "textarea", "picklist", "url")]  # fmt: skip
    if scope == "NAME":
        fields = [f for f in fields if f.name in ("Name", "LastName", "FirstName", "Company")]
    elif scope == "EMAIL":
        fields = [f for f in fields if f.type == "email"]
    elif scope == "PHONE":
        fields = [f for f in fields if f.type == "phone"]
    return [f.name for f in fields]


def _like_term(term: str) -> str:
    t = term.strip().strip('"')
    t = t.replace("\\", "\\\\").replace("'", "\\'").replace("%", "\\%").replace("_", "\\_")
    return "%" + t.replace("*", "%").replace("?", "_") + "%"


def search(org: Org, request: Request, version: str) -> Response:
    q = request.arg("q")
    if not q:
        raise _malformed("A search string must be provided.")
    m = _SOSL.match(q)
    if not m:
        raise _malformed(f"unexpected token in search: {q[:60]}")
    term = re.sub(r"\\(.)", r"\1", m.group("term"))
    if len(term.strip().strip('"').replace("*", "")) < 2:
        raise SalesforceError(400, "INVALID_SEARCH",
                              "search term must be longer than one character")  # fmt: skip
    scope = (m.group("scope") or "ALL").upper()
    items = _split_top(m.group("returning") or "") or list(DEFAULT_OBJECTS)
    total_limit = int(m.group("limit")) if m.group("limit") else MAX_SEARCH_RESULTS
    like = _like_term(term)
    records: list[dict[str, Any]] = []
    for item in items:
        name, _, inner = item.partition("(")
        obj = org.object(name.strip())
        inner = inner.rstrip().removesuffix(")")
        cm = _CLAUSE.search(inner)
        fields_txt = (inner[: cm.start()] if cm else inner).strip() or "Id"
        clause = inner[cm.start() :] if cm else ""
        searched = _searched_fields(obj, scope, org)
        if not searched:
            continue
        match = " OR ".join(f"{f} LIKE '{like}'" for f in searched)
        where = re.match(r"\s*WHERE\s+(.*?)(\s+(ORDER\s+BY|LIMIT)\b.*)?$", clause, re.I | re.S)
        if where:
            soql_tail = f"WHERE ({match}) AND ({where.group(1)}) {where.group(2) or ''}"
        else:
            soql_tail = f"WHERE ({match}) {clause}"
        soql = f"SELECT {fields_txt} FROM {obj.name} {soql_tail}"
        with org.lock:
            result = execute(parse(soql), org.catalog(), include_deleted=False)
        room = total_limit - len(records)
        records += render_records(result, 0, min(result.total_size, max(0, room)), version)
        if len(records) >= total_limit:
            break
    return json_response(200, {"searchRecords": records})
