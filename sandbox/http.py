"""Tiny HTTP vocabulary shared by the sandbox CRMs: request, response, router.

Deliberately framework-free (stdlib only) so the sandbox behaves like a plain HTTPS server to the
unmodified client libraries.  A CRM app receives a :class:`Request` and returns a :class:`Response`;
the server (``sandbox.server``) does the socket work, fault injection and bookkeeping.

Routing: ``Router.add("GET", "/services/data/v{version}/sobjects/{sobject}/{record_id}", fn)``.
A ``{name}`` segment matches one path segment (no ``/``); ``{name:path}`` matches the rest of the
path.  Handlers are called as ``fn(request, **params)``.  ``Router.dispatch`` returns ``None`` when
no pattern matches the path, so the app can shape its own 404 body; a path that matches with the
wrong method yields a 405 via ``method_not_allowed``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from sandbox.faults import RequestFaults


class Headers:
    """Case-insensitive, single-valued header map that keeps the original spelling."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        if items is None:
            return
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self[name] = value

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._items[name.lower()] = (name, value)

    def __delitem__(self, name: str) -> None:
        del self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, name: str, default: str | None = None) -> str | None:
        item = self._items.get(name.lower())
        return item[1] if item else default

    def setdefault(self, name: str, value: str) -> str:
        if name not in self:
            self[name] = value
        return self[name]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items.values())

    def to_dict(self) -> dict[str, str]:
        return dict(self._items.values())

    def __repr__(self) -> str:
        return f"Headers({self.to_dict()!r})"


@dataclass
class Request:
    """One parsed HTTP request as a CRM app sees it."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    #: ``scheme://host:port`` of the server that received the request (for absolute URLs).
    base_url: str = ""
    #: Router pattern that matched, set by ``Router.dispatch``; used for per-endpoint counts.
    route: str | None = None
    #: Per-record fault hooks for batch handlers (lock errors, partial failures); set by the server.
    faults: RequestFaults | None = None
    #: Free-form per-request scratch space (e.g. the authenticated session, set by the app).
    context: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` when it is not JSON)."""
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default

    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded`` (first value per key)."""
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    def record_fault(self, kind: str) -> bool:
        """True when a per-record fault of ``kind`` should hit the record being processed now."""
        return self.faults.record_fault(kind) if self.faults is not None else False


@dataclass
class Response:
    """An HTTP response.  ``body`` may be an iterator of chunks to stream large payloads."""

    status: int = 200
    headers: Headers = field(default_factory=Headers)
    body: bytes | Iterable[bytes] = b""

    def chunks(self) -> Iterator[bytes]:
        if isinstance(self.body, bytes | bytearray):
            yield bytes(self.body)
        else:
            yield from self.body

    @property
    def is_streaming(self) -> bool:
        return not isinstance(self.body, bytes | bytearray)

    def json(self) -> Any:
        """The body parsed as JSON (only for non-streaming responses; used by composite calls)."""
        assert isinstance(self.body, bytes | bytearray)
        return json.loads(self.body) if self.body else None


def _dumps(obj: Any) -> bytes:
    # Compact separators: large query pages are serialised often and size matters for speed.
    return json.dumps(obj, separators=(",", ":"), default=str).encode("utf-8")


def json_response(status: int, obj: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response with ``Content-Type: application/json;charset=UTF-8`` (as SF sends)."""
    h = Headers(headers or {})
    h.setdefault("Content-Type", "application/json;charset=UTF-8")
    return Response(status=status, headers=h, body=_dumps(obj))


def text_response(
    status: int,
    text: str,
    content_type: str = "text/plain; charset=utf-8",
    headers: Mapping[str, str] | None = None,
) -> Response:
    h = Headers(headers or {})
    h.setdefault("Content-Type", content_type)
    return Response(status=status, headers=h, body=text.encode("utf-8"))


def empty(status: int = 204, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status=status, headers=Headers(headers or {}), body=b"")


Handler = Callable[..., Response]

_PARAM = re.compile(r"\{(\w+)(?::(path))?\}")


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler


class MethodNotAllowed(Exception):
    """A route matched the path but not the method."""

    def __init__(self, allowed: list[str]) -> None:
        super().__init__(", ".join(allowed))
        self.allowed = allowed


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Turn ``/a/{x}/{rest:path}`` into an anchored regex with named groups."""
    out: list[str] = []
    pos = 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("^" + "".join(out) + "$")


class Router:
    """Method + path pattern → handler.  First registered match wins."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        for m in method.upper().split("|"):
            self._routes.append(_Route(m, pattern, compile_pattern(pattern), handler))

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def deco(fn: Handler) -> Handler:
            self.add(method, pattern, fn)
            return fn

        return deco

    def dispatch(self, request: Request) -> Response | None:
        """Run the matching handler; ``None`` if no pattern matches the path.

        Raises :class:`MethodNotAllowed` when the path is known but the method is not.
        """
        allowed: list[str] = []
        for r in self._routes:
            m = r.regex.match(request.path)
            if not m:
                continue
            if r.method != request.method.upper():
                allowed.append(r.method)
                continue
            request.route = r.pattern
            return r.handler(request, **m.groupdict())
        if allowed:
            raise MethodNotAllowed(sorted(set(allowed)))
        return None
