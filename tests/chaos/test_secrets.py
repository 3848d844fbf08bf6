"""Secrets never leave kpisync: not in logs, CLI output, exceptions, the store, ``status`` or
the metrics and health endpoint.

The module makes up unique credentials (Salesforce client secret, HubSpot private-app token,
HubSpot OAuth client secret and refresh token, a PostgreSQL password in the store URL and one in
``PGPASSWORD``, and wrong ones for failed logins), starts both sandbox CRMs accepting them, hands
them to kpisync the documented ways (``*_env`` variables and ``*_file`` secrets files), runs every
command of the job — ``install``, ``sync``, ``compute``, ``writeback``, ``check``, ``status``
(table and JSON), ``run --once``, and ``kpisync run`` as a process with its endpoint up — plus
failed logins, with every logger at DEBUG, and then searches everything it captured for every
secret in every spelling a client could produce (raw, URL-encoded, base64 as in HTTP Basic).
The access tokens the sandboxes issued during the run are searched for too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from typer.testing import CliRunner

from service.cli import app
from service.settings import load_settings
from tests.chaos.security_support import (
    Credentials,
    build_server,
    connection_toml,
    find_leaks,
    issued_tokens,
    leak_forms,
    settings_toml,
    write_secret_file,
)
from tests.connectors.conftest import PG_ENV

KPISYNC = str(Path(sys.executable).parent / "kpisync")
#: Environment variables the settings name in their ``*_env`` keys.
SF_SECRET_ENV = "KPISYNC_TEST_SF_CLIENT_SECRET"
HS_SECRET_ENV = "KPISYNC_TEST_HS_CLIENT_SECRET"
WRONG_SF_SECRET_ENV = "KPISYNC_TEST_WRONG_SF_CLIENT_SECRET"


class _Capture(logging.Handler):
    """Every log record of every logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def _everything_at_debug(capture: _Capture) -> Iterator[None]:
    """Every logger at DEBUG, and kept there: ``setLevel`` is pinned to DEBUG, because the
    service's ``setup_logging`` and every hubspot-api-client ``Configuration`` (which sets
    ``urllib3`` back to WARNING) would otherwise lower it again."""
    root = logging.getLogger()
    saved_handlers, saved_root = list(root.handlers), root.level
    loggers = [x for x in logging.root.manager.loggerDict.values() if isinstance(x, logging.Logger)]
    saved = {lg.name: lg.level for lg in loggers}
    set_level = logging.Logger.setLevel
    for lg in loggers:
        set_level(lg, logging.DEBUG)
    set_level(root, logging.DEBUG)
    root.handlers[:] = [capture]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(logging.Logger, "setLevel", lambda self, level: set_level(self, logging.DEBUG))
        try:
            yield
        finally:
            root.handlers[:] = saved_handlers
    set_level(root, saved_root)
    for lg in loggers:
        set_level(lg, saved.get(lg.name, logging.NOTSET))
    logging.getLogger("kpisync").setLevel(logging.NOTSET)


@dataclass
class Run:
    """Everything one module run produced, by where it was seen."""

    creds: Credentials
    exit_codes: dict[str, int] = field(default_factory=dict)
    cli_output: dict[str, bytes] = field(default_factory=dict)
    status_output: dict[str, bytes] = field(default_factory=dict)
    exceptions: dict[str, bytes] = field(default_factory=dict)
    store: dict[str, bytes] = field(default_factory=dict)
    endpoint: dict[str, bytes] = field(default_factory=dict)
    logs: bytes = b""
    issued: list[str] = field(default_factory=list)

    def secrets(self) -> dict[str, str]:
        out = self.creds.values()
        out.update({f"issued access token {i}": t for i, t in enumerate(self.issued)})
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dump_tables(engine: sa.Engine, schema: str | None = None) -> dict[str, bytes]:
    """Every row of every table, as text."""
    out: dict[str, bytes] = {}
    meta = sa.MetaData(schema=schema)
    meta.reflect(engine)
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            out[f"table {table.name}"] = repr(rows).encode()
    return out


def _pg_store(tmp: Path, creds: Credentials) -> tuple[str, str | None, Callable[[], None]]:
    """(store URL with the password in it, schema, cleanup) on PostgreSQL when configured;
    otherwise a SQLite file (the PostgreSQL password is then only in ``PGPASSWORD``)."""
    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{PG_ENV} must be set under CI=true")
        return f"sqlite:///{tmp / 'run.db'}", None, lambda: None
    # Trust authentication ignores the password, so a made-up one connects and can be searched.
    url = (
        sa.make_url(base.replace("postgresql://", "postgresql+psycopg://", 1))
        .set(password=creds.pg_password)
        .render_as_string(hide_password=False)
    )
    schema = f"kpisync_sec_{uuid.uuid4().hex[:12]}"

    def drop() -> None:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()

    return url, schema, drop


def _serve(run: Run, settings_file: Path, env: dict[str, str], port: int, names: list[str]) -> None:
    """``kpisync run`` as its own process until every connection finished a cycle; reads
    ``/metrics`` and ``/healthz`` meanwhile, then stops it with SIGTERM."""
    crm = [a for name in names for a in ("--crm", name)]
    proc = subprocess.Popen(
        [KPISYNC, "run", "--settings", str(settings_file), *crm],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        health: requests.Response | None = None
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(requests.ConnectionError):
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                if set(health.json().get("connections", {})) >= set(names):
                    break
            time.sleep(0.3)
        assert health is not None and proc.poll() is None, "kpisync run never served /healthz"
        assert set(health.json()["connections"]) >= set(names), health.text
        run.endpoint["/healthz"] = health.content
        run.endpoint["/metrics"] = requests.get(
            f"http://127.0.0.1:{port}/metrics", timeout=5
        ).content
        run.endpoint["/health"] = requests.get(f"http://127.0.0.1:{port}/health", timeout=5).content
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    run.exit_codes["run (process)"] = proc.returncode
    run.cli_output["run (process) stdout"] = out
    run.cli_output["run (process) stderr"] = err


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    creds = Credentials.generate()
    run = Run(creds)
    tmp = tmp_path_factory.mktemp("secrets")
    server, currency = build_server(creds)
    secret_dir = tmp / "secrets"
    hs_token_file = write_secret_file(secret_dir, "hubspot.token", creds.hs_private_app_token)
    hs_refresh_file = write_secret_file(secret_dir, "hubspot.refresh", creds.hs_refresh_token)
    wrong_token_file = write_secret_file(
        secret_dir, "wrong.token", creds.wrong_hs_private_app_token
    )
    wrong_refresh_file = write_secret_file(
        secret_dir, "wrong.refresh", creds.wrong_hs_refresh_token
    )
    env = {
        SF_SECRET_ENV: creds.sf_client_secret,
        HS_SECRET_ENV: creds.hs_client_secret,
        WRONG_SF_SECRET_ENV: creds.wrong_sf_client_secret,
        "PGPASSWORD": creds.pg_env_password,
    }
    capture = _Capture()
    run_url, run_schema, drop_schema = _pg_store(tmp, creds)
    with server, _everything_at_debug(capture):
        good = tmp / "good.toml"
        good.write_text(
            settings_toml(
                currency,
                f"sqlite:///{tmp / 'good.db'}",
                [
                    connection_toml(
                        server, "salesforce", "salesforce", {"client_secret_env": SF_SECRET_ENV}
                    ),
                    connection_toml(
                        server, "hubspot", "hubspot", {"access_token_file": str(hs_token_file)}
                    ),
                ],
                'log_level = "DEBUG"',
            ),
            encoding="utf-8",
        )
        bad = tmp / "bad.toml"
        bad.write_text(
            settings_toml(
                currency,
                f"sqlite:///{tmp / 'bad.db'}",
                [
                    connection_toml(
                        server,
                        "sf_wrong_secret",
                        "salesforce",
                        {"client_secret_env": WRONG_SF_SECRET_ENV},
                    ),
                    connection_toml(
                        server,
                        "hs_wrong_token",
                        "hubspot",
                        {"access_token_file": str(wrong_token_file)},
                    ),
                    connection_toml(
                        server,
                        "hs_wrong_refresh",
                        "hubspot",
                        {
                            "client_secret_env": HS_SECRET_ENV,
                            "refresh_token_file": str(wrong_refresh_file),
                        },
                    ),
                ],
                'log_level = "DEBUG"',
            ),
            encoding="utf-8",
        )
        runner = CliRunner()

        def kpisync(label: str, *args: str) -> None:
            capture_root = logging.getLogger()
            capture_root.handlers[:] = [capture]
            result = runner.invoke(app, list(args), env=env)
            capture_root.handlers[:] = [capture]  # drop the stream handler `run` set up
            run.exit_codes[label] = result.exit_code
            target = run.status_output if args[0] == "status" else run.cli_output
            target[f"{label} stdout"] = result.stdout_bytes
            target[f"{label} stderr"] = result.stderr_bytes or b""
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                run.exceptions[f"{label} (uncaught)"] = "".join(
                    traceback.format_exception(result.exception)
                ).encode()

        # ``run --once`` of one connection (the process below runs the other): each cycle costs
        # seconds, and the path to the CRM is the same.
        for command in (
            ["install"],
            ["sync"],
            ["compute"],
            ["writeback"],
            ["check"],
            ["status"],
            ["status", "--format", "json"],
            ["run", "--once", "--crm", "salesforce"],
        ):
            kpisync(" ".join(command), *command, "--settings", str(good))
        for command in (
            ["sync"],
            ["install"],
            ["run", "--once"],
            ["status"],
            ["status", "--format", "json"],
        ):
            kpisync(f"{' '.join(command)} (wrong secrets)", *command, "--settings", str(bad))
        run.exceptions.update(_failed_logins(bad, env))

        served = tmp / "served.toml"
        port = _free_port()
        schema = f"\nschema = {json.dumps(run_schema)}" if run_schema else ""
        served.write_text(
            settings_toml(
                currency,
                run_url,
                [
                    connection_toml(
                        server, "salesforce", "salesforce", {"client_secret_env": SF_SECRET_ENV}
                    ),
                    connection_toml(
                        server,
                        "hubspot",
                        "hubspot",
                        {
                            "client_secret_env": HS_SECRET_ENV,
                            "refresh_token_file": str(hs_refresh_file),
                        },
                    ),
                ],
                f'log_level = "DEBUG"\nlog_format = "json"\nmetrics_port = {port}\n'
                "interval_s = 3600",
            ).replace(f"url = {json.dumps(run_url)}", f"url = {json.dumps(run_url)}{schema}"),
            encoding="utf-8",
        )
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("KPISYNC")}
        try:
            _serve(run, served, {**child_env, **env}, port, ["hubspot"])
            run.issued = issued_tokens(server)
            for db in ("good.db", "bad.db"):
                for suffix in ("", "-wal", "-journal", "-shm"):
                    path = tmp / f"{db}{suffix}"
                    if path.exists():
                        run.store[f"{db}{suffix} (file bytes)"] = path.read_bytes()
                engine = sa.create_engine(f"sqlite:///{tmp / db}")
                run.store.update({f"{db} {k}": v for k, v in _dump_tables(engine).items()})
                engine.dispose()
            engine = sa.create_engine(run_url)
            run.store.update(
                {f"run store {k}": v for k, v in _dump_tables(engine, run_schema).items()}
            )
            engine.dispose()
        finally:
            drop_schema()
    run.logs = "\n".join(capture.lines).encode()
    yield run


def _failed_logins(settings_file: Path, env: dict[str, str]) -> dict[str, bytes]:
    """The exceptions a wrong secret raises in each client, with their whole chain."""
    from connectors.errors import AuthError
    from connectors.salesforce import SalesforceClient
    from writeback.hubspot import hubspot_http

    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        settings = load_settings(settings_file)
    out: dict[str, bytes] = {}
    attempts: dict[str, Callable[[], Any]] = {
        "salesforce login": lambda: SalesforceClient(settings.connections["sf_wrong_secret"]).sf,
        "hubspot private app call": lambda: hubspot_http(
            settings.connections["hs_wrong_token"]
        ).call("settings.users.teams_api.get_all", obj="teams"),
        "hubspot OAuth refresh": lambda: hubspot_http(settings.connections["hs_wrong_refresh"]),
    }
    for label, attempt in attempts.items():
        with pytest.raises(AuthError) as info:
            attempt()
        text = "".join(traceback.format_exception(info.value))
        out[label] = (text + repr(info.value) + str(vars(info.value))).encode()
    return out


# -- the commands really ran, and the failures really failed -------------------------------------
def test_the_commands_ran_with_the_secrets_and_failed_without(leak_run: Run) -> None:
    codes = leak_run.exit_codes
    for label in (
        "install",
        "sync",
        "compute",
        "writeback",
        "check",
        "status",
        "status --format json",
        "run --once --crm salesforce",
        "run (process)",
    ):
        assert codes[label] == 0, (label, leak_run.cli_output.get(f"{label} stderr"))
    for label in ("sync (wrong secrets)", "install (wrong secrets)", "run --once (wrong secrets)"):
        assert codes[label] == 1, (label, leak_run.cli_output.get(f"{label} stderr"))
    for command in ("sync", "install"):
        failed = leak_run.cli_output[f"{command} (wrong secrets) stderr"].decode()
        for name in ("sf_wrong_secret", "hs_wrong_token", "hs_wrong_refresh"):
            assert f"{name}: failed" in failed, (command, failed)
    # A refused login is reported per connection, never as a crash with a traceback.
    assert [k for k in leak_run.exceptions if k.endswith("(uncaught)")] == []
    status = json.loads(leak_run.status_output["status --format json stdout"])
    assert status["salesforce"]["records"] and status["hubspot"]["records"]
    assert leak_run.issued, "the sandboxes issued no access token: nothing logged in"


# -- nothing leaks -------------------------------------------------------------------------------
def test_no_secret_in_logs_or_command_output(leak_run: Run) -> None:
    assert b"DEBUG" in leak_run.logs and b"urllib3" in leak_run.logs  # DEBUG really captured
    places = {"captured logs": leak_run.logs, **leak_run.cli_output}
    assert find_leaks(leak_run.secrets(), places) == []


def test_no_secret_in_exceptions_and_tracebacks(leak_run: Run) -> None:
    assert set(leak_run.exceptions) >= {
        "salesforce login",
        "hubspot private app call",
        "hubspot OAuth refresh",
    }
    assert b"login refused" in leak_run.exceptions["salesforce login"]
    assert find_leaks(leak_run.secrets(), leak_run.exceptions) == []


def test_no_secret_in_the_store(leak_run: Run) -> None:
    assert any("file bytes" in k for k in leak_run.store)
    assert any(k.startswith("run store table") for k in leak_run.store)
    assert find_leaks(leak_run.secrets(), leak_run.store) == []


def test_no_secret_in_status_output(leak_run: Run) -> None:
    assert b"salesforce" in leak_run.status_output["status stdout"]
    assert b"login refused" in leak_run.status_output["status (wrong secrets) stdout"]
    assert find_leaks(leak_run.secrets(), leak_run.status_output) == []


def test_no_secret_in_metrics_or_health(leak_run: Run) -> None:
    assert b"kpisync_cycles_total" in leak_run.endpoint["/metrics"]
    assert find_leaks(leak_run.secrets(), leak_run.endpoint) == []


def test_the_search_finds_every_spelling_of_a_secret() -> None:
    """The leak search itself: a secret planted raw, URL-encoded, form-encoded or inside an HTTP
    Basic header is found."""
    import base64
    import urllib.parse

    creds = Credentials.generate()
    secret = creds.sf_client_secret
    basic = base64.b64encode(f"3MVG9.client:{secret}".encode())
    plants = {
        "raw": f"token={secret};".encode(),
        "quoted": urllib.parse.quote(secret, safe="").encode(),
        "form": urllib.parse.urlencode({"client_secret": secret}).encode(),
        "basic": b"Authorization: Basic " + basic,
        "base64": base64.b64encode(secret.encode()),
    }
    for where, blob in plants.items():
        assert find_leaks({"s": secret}, {where: blob}), where
    assert find_leaks({"s": secret}, {"clean": b"Secret('**********')"}) == []
    assert all(len(f) >= 16 for f in leak_forms(secret))
