"""Value conventions of HubSpot CRM v3: every property value travels as a string.

Datetimes are ISO 8601 UTC with milliseconds (``2024-01-15T10:20:30.123Z``), dates are
``YYYY-MM-DD``, booleans ``"true"``/``"false"``, numbers as decimal text (HubSpot
OpenAPI ``SimplePublicObject``).  Writes accept epoch milliseconds or ISO text for datetimes, as
the API does.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_from_ms(ms: int) -> str:
    """Epoch ms → HubSpot's ISO form with millisecond precision and ``Z``."""
    secs, rem = divmod(int(ms), 1000)
    dt = datetime.fromtimestamp(secs, tz=UTC)
    # Four-digit years always (strftime's %Y drops the zeros of years before 1000 on glibc).
    return f"{dt.year:04d}" + dt.strftime("-%m-%dT%H:%M:%S") + f".{rem:03d}Z"


def date_from_ms(ms: int) -> str:
    return datetime.fromtimestamp(int(ms) // 1000, tz=UTC).strftime("%Y-%m-%d")


def parse_ms(value: str) -> int | None:
    """Epoch ms from ``"1700000000000"``, ISO datetime text or a ``YYYY-MM-DD`` date."""
    v = value.strip()
    if not v:
        return None
    if v.lstrip("-").isdigit():
        return int(v)
    try:
        if len(v) == 10:
            d = date.fromisoformat(v)
            return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round((dt - _EPOCH).total_seconds() * 1000)


def parse_number(value: str) -> float | None:
    try:
        f = float(value)
    except ValueError:
        return None
    return None if math.isnan(f) else f


def to_text(value: object) -> str | None:
    """A JSON input value as HubSpot stores it: strings kept, bools lower-case, numbers as text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
