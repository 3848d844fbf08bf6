"""CRM values → canonical text (the CSV conventions of CANONICAL.md), shared by both CRMs.

Each helper accepts what either API hands out — JSON natives from REST, strings from CSV (Bulk
API) or HubSpot properties — and returns canonical text or ``None``. Unreadable values raise
``ValueError``, which the extract loop turns into a quarantine entry with the reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def text(value: Any) -> str | None:
    # Spelled out rather than through is_blank: it runs for most fields of every record.
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    return str(value)


def timestamp(value: Any) -> str | None:
    """``2025-03-01T09:30:00Z`` from ISO text (any offset; a bare date means midnight UTC)."""
    if is_blank(value):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):  # epoch milliseconds
        parsed = dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    else:
        raw = str(value).strip()
        if raw.isdigit():
            parsed = dt.datetime.fromtimestamp(int(raw) / 1000, dt.UTC)
        else:
            parsed = dt.datetime.fromisoformat(raw)
    if parsed.tzinfo is not None and parsed.utcoffset():
        parsed = parsed.astimezone(dt.UTC)
    # isoformat() writes four-digit years always (strftime's %Y writes year 1 as "1" on glibc)
    # and is cheaper: this runs for every timestamp of every record.
    return parsed.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def date(value: Any) -> str | None:
    """``YYYY-MM-DD`` from a date or the date part of a timestamp."""
    if is_blank(value):
        return None
    raw = str(value).strip()
    return dt.date.fromisoformat(raw[:10]).isoformat()


def boolean(value: Any) -> str | None:
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    lowered = str(value).strip().lower()
    if lowered in ("true", "1", "yes"):
        return "true"
    if lowered in ("false", "0", "no"):
        return "false"
    raise ValueError(f"cannot read {str(value)[:40]!r} as a boolean")


def number(value: Any) -> str | None:
    """Decimal text; the KPI engine types it (integers stay integers, no float noise added)."""
    if is_blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"cannot read {value!r} as a number")
    if isinstance(value, int | float):
        return repr(value)
    raw = str(value).strip()
    float(raw)  # validates; raises ValueError with the text
    return raw


def add_months(day: str, months: int) -> str:
    """``YYYY-MM-DD`` plus whole months (the day is clamped to the month's length)."""
    d = dt.date.fromisoformat(day)
    month0 = d.month - 1 + months
    year, month = d.year + month0 // 12, month0 % 12 + 1
    for dd in (d.day, 30, 29, 28):
        try:
            return dt.date(year, month, dd).isoformat()
        except ValueError:
            continue
    raise ValueError(f"cannot add {months} months to {day}")
