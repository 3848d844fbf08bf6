"""Query-parameter and response helpers shared by the HubSpot handlers."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sandbox.http import Request, Response, json_response
from sandbox.hubspot.errors import validation


def multi(request: Request, name: str) -> list[str] | None:
    """Array parameters: repeated (``?properties=a&properties=b``, how hubspot-api-client sends
    them) or comma-separated (``?properties=a,b``, also accepted by the real API)."""
    raw = request.query.get(name)
    if not raw:
        return None
    out = [p.strip() for v in raw for p in v.split(",") if p.strip()]
    return out or None


def flag(request: Request, name: str, default: bool = False) -> bool:
    """Booleans as ``true``/``false`` or Python's ``True``/``False`` (the client's spelling)."""
    v = request.arg(name)
    if v is None or v == "":
        return default
    low = v.lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise validation(f"Invalid boolean value for {name}: {v}")


def integer(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    v = request.arg(name)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError as exc:
        raise validation(f"Invalid value for {name}: {v}") from exc
    if n < lo or n > hi:
        raise validation(f"{name} must be between {lo} and {hi}, got {n}", context={name: [str(n)]})
    return n


def next_link(request: Request, after: str, extra: dict[str, str] | None = None) -> str:
    params = [(k, v) for k, vs in request.query.items() if k != "after" for v in vs]
    params.append(("after", after))
    for k, v in (extra or {}).items():
        params.append((k, v))
    return f"{request.base_url}{request.path}?{urlencode(params)}"


def ok(obj: Any, status: int = 200) -> Response:
    # HubSpot answers application/json;charset=utf-8.
    return json_response(status, obj, {"Content-Type": "application/json;charset=utf-8"})
