"""The canonical contract checked at sync time, so a bad record is quarantined with its reason.

The normalisers turn CRM values into canonical text; what the KPI engine would refuse later
(``kpis.validate``: a required column empty, a negative or non-finite amount, a date outside
1900..2199, a text longer than 10,000 characters, ``is_won`` without ``is_closed``...) is found
here, page by page, with the same rules, so the record lands in the store's quarantine with the
column and the problem named — instead of being dropped silently when the KPIs are read.

Two checks the engine cannot make are added: text a database cannot hold (a NUL character, which
PostgreSQL refuses in ``text``; a lone UTF-16 surrogate, which is no Unicode at all and cannot be
encoded as UTF-8), and an id that a record of another object already holds in the same canonical
table (a HubSpot email claiming a call's id would otherwise overwrite the call).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl
import sqlalchemy as sa

from connectors import schema as db
from connectors.store import CanonicalRow, Store
from kpis.tables import TABLES, CanonicalTables
from kpis.validate import validate_table, validate_tables


def text_problem(column: str, value: str | None) -> str | None:
    """Why ``value`` cannot be stored as text, or None."""
    if value is None:
        return None
    if "\x00" in value:
        return f"{column} contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{column} is not valid Unicode (a lone surrogate)"
    return None


def row_problems(table: str, rows: Sequence[CanonicalRow], *, partial: bool) -> dict[int, str]:
    """Reasons, by position in ``rows``, of the rows the canonical contract refuses.

    ``partial``: the rows fill only some columns of rows another object owns (an
    OpportunityCompetitor's ``competitor``/``competitor_price``); only their values are checked,
    not the required columns they do not carry.
    """
    problems = _text_problems(rows)
    spec = TABLES[table]
    columns = list(spec.columns)
    if not rows:
        return problems
    schema = {c: pl.String for c in columns}
    if not problems and not partial:
        # The common case, built in one call (a page is thousands of rows).
        frame = pl.from_dicts(rows, schema=schema)
        return _engine_problems(table, frame, problems)
    data = {c: [None if i in problems else r.get(c) for i, r in enumerate(rows)] for c in columns}
    if partial:
        # Stand-ins for the owner's columns, so only the given values can fail.
        filler = {
            "id": "x", "created_at": "2000-01-01T00:00:00Z", "is_closed": "false",
            "is_won": "false", "kind": "task", "occurred_at": "2000-01-01T00:00:00Z",
        }  # fmt: skip
        given = {c for r in rows for c in r}
        for c in columns:
            if c not in given and c in filler:
                data[c] = [filler[c]] * len(rows)
        if "id" in columns:
            # Many rows of one object may fill one owner row: no duplicate-id check here.
            data["id"] = [str(i) for i in range(len(rows))]
    return _engine_problems(table, pl.DataFrame(data, schema=schema), problems)


def _text_problems(rows: Sequence[CanonicalRow]) -> dict[int, str]:
    """:func:`text_problem` of every value, by position of the row (its first problem)."""
    try:
        # Nearly every page is clean: one look at all its text at once says so. Joining keeps a
        # lone surrogate lone (two halves from two values never pair up in a ``str``).
        joined = "".join([value for row in rows for value in row.values() if value is not None])
        if "\x00" not in joined:
            joined.encode("utf-8")
            return {}
    except (UnicodeEncodeError, TypeError):
        pass
    problems: dict[int, str] = {}
    for i, row in enumerate(rows):
        for column, value in row.items():
            problem = text_problem(column, value)
            if problem is not None:
                problems[i] = problem
                break
    return problems


def _engine_problems(table: str, frame: pl.DataFrame, problems: dict[int, str]) -> dict[int, str]:
    """``problems`` plus what the KPI engine refuses in ``frame`` (one row per position)."""
    _, bad = validate_table(table, frame)
    for line, reason in bad.select("line", "reason").iter_rows():
        problems.setdefault(int(line) - 2, str(reason))
    return problems


def safe_text(text: str) -> str:
    """``text`` with what a database cannot store escaped (reasons may quote a bad value)."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def claimed_ids(
    store: Store, connection: str, objects: Sequence[str], ids: Sequence[str]
) -> dict[str, str]:
    """Of ``ids``, those a record of one of ``objects`` already holds (and that record is not in
    quarantine): id -> that object."""
    if not objects or not ids:
        return {}
    raw, q = db.raw_records, db.quarantine
    held: dict[str, str] = {}
    with store.engine.connect() as conn:
        anything = conn.execute(
            sa.select(sa.literal(1))
            .where(raw.c.connection == connection, raw.c.object.in_(list(objects)))
            .limit(1)
        ).first()
        if anything is None:
            return held  # the other objects hold nothing yet (the first of them in a full pull)
        for i in range(0, len(ids), 500):
            chunk = list(ids[i : i + 500])
            quarantined = (
                sa.select(q.c.record_id)
                .where(
                    q.c.connection == connection,
                    q.c.object == raw.c.object,
                    q.c.record_id == raw.c.record_id,
                )
                .exists()
            )
            rows = conn.execute(
                sa.select(raw.c.record_id, raw.c.object).where(
                    raw.c.connection == connection,
                    raw.c.object.in_(list(objects)),
                    raw.c.record_id.in_(chunk),
                    ~quarantined,
                )
            )
            for rid, obj in rows:
                held.setdefault(str(rid), str(obj))
    return held


#: Quarantine entries of rows the KPI engine refused (``read_checked``) are kept under
#: ``canonical.<table>``, apart from the CRM objects' own entries.
CHECKED_PREFIX = "canonical."


def read_checked(store: Store, connection: str, corporate_currency: str) -> CanonicalTables:
    """The connection's canonical tables typed for the KPI engine, with every row the engine
    refuses — those only the whole table can judge, such as a currency without an exchange
    rate — recorded in the store's quarantine (replacing the previous computation's entries)."""
    keyed = {name: store.table_text(connection, name, with_key=True) for name in TABLES}
    validated = validate_tables({n: f.drop("row_key") for n, f in keyed.items()},
                                corporate_currency)  # fmt: skip
    by_file = {spec.file_name: name for name, spec in TABLES.items()}
    now = dt.datetime.now(dt.UTC)
    entries = []
    for file_name, line, reason in validated.quarantine.select(
        "table", "line", "reason"
    ).iter_rows():
        name = by_file[str(file_name)]
        key = keyed[name]["row_key"][int(line) - 2]
        entries.append({
            "connection": connection, "object": f"{CHECKED_PREFIX}{name}", "record_id": key,
            "reason": safe_text(str(reason))[:2000], "payload": "{}", "recorded_at": now,
        })  # fmt: skip
    q = db.quarantine
    with store.engine.begin() as conn:
        conn.execute(
            sa.delete(q).where(q.c.connection == connection, q.c.object.startswith(CHECKED_PREFIX))
        )
        if entries:
            conn.execute(sa.insert(q), entries)
    return validated.tables
