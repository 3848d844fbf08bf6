"""HTTPS host for the sandbox CRMs, with the ``/__sandbox/`` control plane.

One :class:`SandboxServer` hosts one or more CRM apps, **each on its own HTTPS port** on
127.0.0.1 (port 0 = pick a free one), because the real client libraries address a CRM by host and
port only.  Every port also serves the control plane (not part of any CRM API) under
``/__sandbox/``.

Writing a CRM app (the :class:`CrmApp` protocol)
------------------------------------------------
An app is any object with these members; the server never looks inside it otherwise::

    name: str                                   # "salesforce", "hubspot": used in URLs/filters/logs
    bind(base_url) -> None                      # told "https://127.0.0.1:<port>" once bound
    handle(request) -> Response                 # the CRM API itself (sandbox.http Request/Response)
    reset() -> None                             # back to the freshly seeded org, tokens, budgets
    requires_auth(request) -> bool              # does this call need a session? (expired_session
                                                #   faults only hit such calls)
    rate_limit_response(request) -> Response    # body/status of a rate-limit-storm fault
    expired_session_response(request) -> Response  # revoke the caller's token, answer as expired
    server_error_response(request, status) -> Response  # body of an injected 5xx
    edit_record(object_name, record_id, fields) -> dict # edit as a CRM user would (bumps modstamp)
    delete_record(object_name, record_id) -> dict       # delete to the recycle bin / archive
    configure(settings: dict) -> dict           # app-specific knobs (e.g. API budget); {} = read
    connection_info() -> dict                   # what ``kpisync sandbox serve`` prints for it

``edit_record``/``delete_record``/``configure`` raise ``KeyError`` for an unknown object or record
(control plane answers 404) and ``ValueError`` for bad input (400).

Per-record faults: batch handlers call ``request.record_fault("lock_error")`` (or
``"partial_batch_failure"``) once per record and fail that record when it returns True.  All
request-level faults (latency, 5xx, rate-limit storms, expired sessions, dropped connections) are
applied by the server; see ``sandbox.faults``.

Control plane (JSON; on every port; ``?crm=NAME`` targets another app where it matters)
---------------------------------------------------------------------------------------------
* ``GET  /__sandbox/health``                   ``{"status": "ok", "crms": {name: base_url}}``
* ``GET  /__sandbox/requests[?crm=&limit=]``   newest-last request log
* ``GET  /__sandbox/counts``                   ``{crm: {"GET /route/pattern": n}}``
* ``GET|POST|DELETE /__sandbox/faults``        list / add one rule (body) / clear (``?id=`` one)
* ``POST /__sandbox/reset``                    reset apps, faults, log and counts
* ``POST|DELETE /__sandbox/records/{object}/{id}``  edit (body = fields) / delete a record
* ``POST /__sandbox/raw/{object}``             write records as an import would, past the API's
                                               checks (body ``{"records": [...]}``; the app's
                                               ``raw_put``; 404 if the app has none)
* ``GET|POST /__sandbox/config``               read / change app knobs (``app.configure``)
"""

from __future__ import annotations

import collections
import contextlib
import gc
import json
import logging
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs, urlsplit

from sandbox.faults import FaultInjector, FaultSpecError, RequestFault, RequestFaults
from sandbox.http import Headers, MethodNotAllowed, Request, Response, Router, json_response
from sandbox.tls import SandboxTLS

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/__sandbox/"
#: Longest request target we accept; longer ones get 414 as a real front end would
#: (dlt-hub/verified-sources#305).
MAX_URL_LENGTH = 16_384


def tune_collector() -> None:
    """Collector settings for a sandbox holding a large org: call once the org is built.

    The org's rows and indexes are millions of objects that live as long as the process; at
    Python's default thresholds every full collection walks them all again while a writeback
    creates records. They are moved out of the collector's sight (``gc.freeze``) and
    collections run less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


@runtime_checkable
class CrmApp(Protocol):
    """A sandbox CRM; see the module docstring."""

    name: str

    def bind(self, base_url: str) -> None: ...

    def handle(self, request: Request) -> Response: ...

    def reset(self) -> None: ...

    def requires_auth(self, request: Request) -> bool: ...

    def rate_limit_response(self, request: Request) -> Response: ...

    def expired_session_response(self, request: Request) -> Response: ...

    def server_error_response(self, request: Request, status: int) -> Response: ...

    def edit_record(
        self, object_name: str, record_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]: ...

    def delete_record(self, object_name: str, record_id: str) -> dict[str, Any]: ...

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]: ...

    def connection_info(self) -> dict[str, Any]: ...


class _Stats:
    """Request log and per-endpoint counts, shared by every port."""

    def __init__(self, max_log: int = 20_000) -> None:
        self._lock = threading.Lock()
        self.log: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_log)
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.log.append(entry)
            self.counts[entry["crm"]][f"{entry['method']} {entry['endpoint']}"] += 1

    def clear(self) -> None:
        with self._lock:
            self.log.clear()
            self.counts.clear()

    def entries(self, crm: str | None, limit: int | None) -> list[dict[str, Any]]:
        with self._lock:
            items = [e for e in self.log if crm is None or e["crm"] == crm]
        return items[-limit:] if limit else items

    def count_map(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {crm: dict(c) for crm, c in self.counts.items()}


class _HTTPSServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default of 5 refuses connections when a client opens several at once.
    request_queue_size = 128

    def __init__(
        self, addr: tuple[str, int], sandbox: SandboxServer, app: CrmApp, ctx: ssl.SSLContext
    ) -> None:
        self.sandbox = sandbox
        self.app = app
        self.ssl_context = ctx
        super().__init__(addr, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        # Headers and body go out in separate writes; without NODELAY, Nagle + delayed ACK add
        # ~40 ms to every response.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Handshake lazily in the worker thread so one slow client cannot stall accept().
        return self.ssl_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that refuses our certificate, or dies mid-request (a killed process, a
        # dropped connection), is what a real front end shrugs off: one debug line, not a
        # traceback on stderr. Anything else is a sandbox bug and keeps the full report.
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError | ConnectionError | TimeoutError):
            log.debug("client %s went away: %s", client_address, exc)
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPSServer
    # Idle keep-alive connections are dropped after this long.
    timeout = 120

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib access log: the control plane has the request log."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        started = time.perf_counter()
        app = self.server.app
        sandbox = self.server.sandbox
        body = self._read_body()
        split = urlsplit(self.path)
        request = Request(
            method=self.command.upper(),
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=Headers(self.headers.items()),
            body=body,
            base_url=sandbox.url(app.name),
        )
        fault = RequestFault()
        if len(self.path) > MAX_URL_LENGTH:
            response = json_response(414, {"message": "URI Too Long"})
            request.route = "(uri too long)"
        elif split.path.startswith(CONTROL_PREFIX):
            response = sandbox._control(app, request)
        else:
            response, fault = self._crm_call(app, request)
        # Logged before the answer goes out: once a client holds the answer, the log has it.
        if not split.path.startswith(CONTROL_PREFIX):
            fired = fault.describe()
            if request.faults is not None:
                fired += request.faults.fired
            sandbox._stats.record(
                {
                    "crm": app.name,
                    "time": time.time(),
                    "method": request.method,
                    "path": request.path,
                    "query": {k: v for k, v in request.query.items()},
                    "endpoint": request.route or request.path,
                    "status": response.status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "faults": fired,
                }
            )
        self._send(response, drop=fault.drop_connection, head=request.method == "HEAD")

    def _crm_call(self, app: CrmApp, request: Request) -> tuple[Response, RequestFault]:
        injector = self.server.sandbox.faults
        try:
            auth = app.requires_auth(request)
        except Exception:
            auth = False
        fault = injector.for_request(app.name, request.method, request.path, auth)
        request.faults = RequestFaults(injector, app.name, request.method, request.path)
        if fault.latency_ms:
            time.sleep(fault.latency_ms / 1000)
        try:
            if fault.status is not None:
                return app.server_error_response(request, fault.status), fault
            if fault.rate_limited:
                return app.rate_limit_response(request), fault
            if fault.expired_session:
                return app.expired_session_response(request), fault
            return app.handle(request), fault
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return app.server_error_response(request, 500), fault

    def _send(self, response: Response, *, drop: bool, head: bool) -> None:
        self.send_response(response.status)
        streaming = response.is_streaming
        for name, value in response.headers.items():
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            self.send_header(name, value)
        if streaming:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            assert isinstance(response.body, bytes | bytearray)
            self.send_header("Content-Length", str(len(response.body)))
        if drop:
            self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return
        try:
            if drop:
                self._send_truncated(response.chunks(), streaming)
                self.close_connection = True
                return
            if not streaming:
                assert isinstance(response.body, bytes | bytearray)
                self.wfile.write(response.body)
                return
            for chunk in response.chunks():
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def _send_truncated(self, chunks: Iterator[bytes], streaming: bool) -> None:
        """Send about half of the first chunk of the body, then let the connection close."""
        first = next(chunks, b"")
        part = first[: max(1, len(first) // 2)]
        if streaming:
            self.wfile.write(b"%x\r\n%s" % (len(first), part))
        else:
            self.wfile.write(part)
        self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class SandboxServer:
    """Runs CRM apps over HTTPS, each on its own port; see the module docstring."""

    def __init__(
        self,
        apps: Sequence[CrmApp],
        *,
        host: str = "127.0.0.1",
        ports: dict[str, int] | None = None,
        latency_ms: int = 0,
        tls: SandboxTLS | None = None,
    ) -> None:
        if not apps:
            raise ValueError("a SandboxServer needs at least one CRM app")
        names = [a.name for a in apps]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate CRM app names: {names}")
        self.apps: dict[str, CrmApp] = {a.name: a for a in apps}
        self.host = host
        self._ports = dict(ports or {})
        self.faults = FaultInjector(base_latency_ms=latency_ms)
        self._stats = _Stats()
        self._tls = tls
        self._owns_tls = tls is None
        self._servers: dict[str, _HTTPSServer] = {}
        self._threads: list[threading.Thread] = []
        self._urls: dict[str, str] = {}
        self._control = _ControlPlane(self).dispatch

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def tls(self) -> SandboxTLS:
        if self._tls is None:
            raise RuntimeError("server not started")
        return self._tls

    @property
    def ca_bundle(self) -> str:
        return str(self.tls.ca_bundle)

    def url(self, crm: str) -> str:
        """``https://127.0.0.1:<port>`` of one CRM app."""
        return self._urls[crm]

    def control_url(self, crm: str | None = None) -> str:
        return self.url(crm or next(iter(self.apps))) + "/__sandbox"

    def start(self) -> SandboxServer:
        """Bind every app and serve in background threads; returns once all accept connections."""
        if self._tls is None:
            self._tls = SandboxTLS.create()
        ctx = self._tls.server_context()
        for name, app in self.apps.items():
            srv = _HTTPSServer((self.host, self._ports.get(name, 0)), self, app, ctx)
            port = srv.server_address[1]
            self._urls[name] = f"https://{self.host}:{port}"
            app.bind(self._urls[name])
            self._servers[name] = srv
            t = threading.Thread(
                target=srv.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"sandbox-{name}",
                daemon=True,
            )
            t.start()
            self._threads.append(t)
        for name in self.apps:
            self._wait_accepting(name)
        return self

    def _wait_accepting(self, name: str, timeout: float = 10.0) -> None:
        port = self._servers[name].server_address[1]
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        for srv in self._servers.values():
            srv.shutdown()
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        if self._owns_tls and self._tls is not None:
            self._tls.cleanup()
            self._tls = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_until_signal(self) -> None:
        """Block until SIGTERM or SIGINT, then stop (used by ``kpisync sandbox serve``)."""
        done = threading.Event()

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            done.set()

        old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not done.wait(0.5):
                pass
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.stop()

    # -- helpers for in-process use (tests) ------------------------------------------------------

    def reset(self, crm: str | None = None) -> None:
        for name, app in self.apps.items():
            if crm is None or crm == name:
                app.reset()
        self.faults.clear()
        self._stats.clear()

    def requests_log(self, crm: str | None = None) -> list[dict[str, Any]]:
        return self._stats.entries(crm, None)

    def counts(self) -> dict[str, dict[str, int]]:
        return self._stats.count_map()


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


class _ControlPlane:
    """Handlers of ``/__sandbox/...`` (JSON in, JSON out)."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        r = Router()
        p = CONTROL_PREFIX.rstrip("/")
        r.add("GET", f"{p}/health", self.health)
        r.add("GET", f"{p}/requests", self.requests)
        r.add("DELETE", f"{p}/requests", self.clear_requests)
        r.add("GET", f"{p}/counts", self.counts)
        r.add("GET", f"{p}/faults", self.list_faults)
        r.add("POST", f"{p}/faults", self.add_fault)
        r.add("DELETE", f"{p}/faults", self.clear_faults)
        r.add("POST", f"{p}/reset", self.reset)
        r.add("POST|PATCH", f"{p}/records/{{object_name}}/{{record_id}}", self.edit_record)
        r.add("DELETE", f"{p}/records/{{object_name}}/{{record_id}}", self.delete_record)
        r.add("POST", f"{p}/raw/{{object_name}}", self.raw_put)
        r.add("GET|POST", f"{p}/config", self.config)
        self.router = r
        self._app: CrmApp | None = None

    def dispatch(self, app: CrmApp, request: Request) -> Response:
        crm = request.arg("crm")
        if crm is not None and crm not in self.sandbox.apps:
            return _error(404, f"no CRM named {crm!r}")
        target = self.sandbox.apps[crm] if crm else app
        try:
            request.route = None
            response = self.router.dispatch(_with_app(request, target))
        except MethodNotAllowed as exc:
            return _error(405, f"allowed: {', '.join(exc.allowed)}")
        except FaultSpecError as exc:
            return _error(400, str(exc))
        except KeyError as exc:
            return _error(404, f"not found: {exc.args[0] if exc.args else ''}")
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        return response if response is not None else _error(404, "unknown control endpoint")

    # The target app travels on the request object to keep handler signatures uniform.
    def health(self, request: Request) -> Response:
        return json_response(
            200,
            {"status": "ok", "crms": {n: self.sandbox.url(n) for n in self.sandbox.apps}},
        )

    def requests(self, request: Request) -> Response:
        limit = request.arg("limit")
        return json_response(
            200, self.sandbox._stats.entries(request.arg("crm"), int(limit) if limit else None)
        )

    def clear_requests(self, request: Request) -> Response:
        self.sandbox._stats.clear()
        return json_response(200, {"cleared": True})

    def counts(self, request: Request) -> Response:
        return json_response(200, self.sandbox._stats.count_map())

    def list_faults(self, request: Request) -> Response:
        return json_response(200, self.sandbox.faults.rules())

    def add_fault(self, request: Request) -> Response:
        rule = self.sandbox.faults.add_json(request.json())
        return json_response(201, rule.to_json())

    def clear_faults(self, request: Request) -> Response:
        rule_id = request.arg("id")
        n = self.sandbox.faults.clear(int(rule_id) if rule_id else None)
        return json_response(200, {"removed": n})

    def reset(self, request: Request) -> Response:
        self.sandbox.reset(request.arg("crm"))
        return json_response(200, {"reset": True})

    def edit_record(self, request: Request, object_name: str, record_id: str) -> Response:
        fields = request.json() or {}
        if not isinstance(fields, dict):
            raise ValueError("body must be a JSON object of field values")
        return json_response(200, _target(request).edit_record(object_name, record_id, fields))

    def delete_record(self, request: Request, object_name: str, record_id: str) -> Response:
        return json_response(200, _target(request).delete_record(object_name, record_id))

    def raw_put(self, request: Request, object_name: str) -> Response:
        body = request.json() or {}
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ValueError('body must be {"records": [JSON objects]}')
        put = getattr(_target(request), "raw_put", None)
        if put is None:
            raise KeyError("raw writes (this sandbox CRM has none)")
        return json_response(200, {"ids": put(object_name, records)})

    def config(self, request: Request) -> Response:
        settings = request.json() if request.method == "POST" else {}
        if not isinstance(settings, dict):
            raise ValueError("body must be a JSON object")
        return json_response(200, _target(request).configure(settings or {}))


def _with_app(request: Request, app: CrmApp) -> Request:
    request.context["sandbox_app"] = app
    return request


def _target(request: Request) -> CrmApp:
    app: CrmApp = request.context["sandbox_app"]
    return app


def dump_json_line(obj: Any) -> str:
    """One compact JSON line (the ``serve`` handshake)."""
    return json.dumps(obj, separators=(",", ":"))
