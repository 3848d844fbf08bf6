"""Malformed settings: every broken file stops each command with one clear error line naming the
offending key (or the file), exit code 2, no traceback, and nothing written — no store file, no
call to either CRM.

Each case starts from a working settings file for both sandbox CRMs and breaks one thing. The
commands run in-process through Typer's runner (one sandbox for the module; its request log
shows whether any CRM was called).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox.server import SandboxServer
from service.cli import app
from tests.service.conftest import Sandbox

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("sync",),
    ("compute",),
    ("writeback",),
    ("run", "--once"),
    ("status",),
)


@dataclass(frozen=True)
class Case:
    """One broken settings file: how to break the working text, and what the error names."""

    name: str
    names: str
    #: working text -> broken content (str, or bytes for binary garbage)
    breaks: Callable[[str], str | bytes]
    env: dict[str, str] = field(default_factory=dict)
    #: "file": ``breaks`` is applied; "dir": the settings path is a directory;
    #: "missing": no file; "loop": a symlink to itself (exists as a name, cannot be read).
    kind: str = "file"


def _replace(old: str, new: str) -> Callable[[str], str]:
    def apply(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return apply


def _append(extra: str) -> Callable[[str], str]:
    return lambda text: text + "\n" + extra + "\n"


def _drop_line(prefix: str, section: str) -> Callable[[str], str]:
    def apply(text: str) -> str:
        out, inside = [], False
        for line in text.splitlines():
            if line.startswith("["):
                inside = line.strip() == section
            if inside and line.startswith(prefix):
                continue
            out.append(line)
        assert len(out) < len(text.splitlines()), prefix
        return "\n".join(out) + "\n"

    return apply


SF = "[connections.salesforce]"
HS = "[connections.hubspot]"
CASES = [
    Case("toml syntax error", "(syntax)", _append("[sync\nrate_per_s = 1")),
    Case("unterminated string", "(syntax)", _replace('period = "year"', 'period = "year')),
    Case(
        "duplicate key",
        "(syntax)",
        _replace('period = "year"', 'period = "year"\nperiod = "month"'),
    ),
    Case("duplicate section", "(syntax)", _append(f'{SF}\ncrm = "salesforce"')),
    Case("empty file", "no [connections.NAME] configured", lambda text: ""),
    Case("binary garbage", "(file)", lambda text: bytes(range(256)) * 4),
    Case("a directory, not a file", "(file)", lambda text: text, kind="dir"),
    Case("file missing", "(file)", lambda text: text, kind="missing"),
    Case("file unreadable (a symlink loop)", "(file)", lambda text: text, kind="loop"),
    Case("unknown section", "pipelines", _append("[pipelines]\nfoo = 1")),
    Case(
        "unknown key in sync",
        "sync.rate_per_second",
        _replace("rate_per_s = 0", "rate_per_second = 0"),
    ),
    Case(
        "unknown key in a connection",
        "connections.salesforce.instance",
        _replace(f"{SF}\n", f'{SF}\ninstance = "x"\n'),
    ),
    Case("unknown kpi key", "kpi.currency", _replace('period = "year"', 'currency = "EUR"')),
    Case(
        "wrong type: number as text",
        "sync.retry_base_s",
        _replace("retry_base_s = 0.05", 'retry_base_s = "fast"'),
    ),
    Case(
        "wrong type: value for a table",
        "store",
        lambda t: (
            'store = "sqlite:///kpisync.db"\n'
            + t.replace("[store]\n", "[sync]\n", 1).replace("[sync]\nrate_per_s", "rate_per_s", 1)
        ),
    ),
    Case(
        "wrong type: bool for integer",
        "service.interval_s",
        _replace("[service]\n", "[service]\ninterval_s = true\n"),
    ),
    Case("negative number", "sync.retry_cap_s", _replace("retry_cap_s = 0.2", "retry_cap_s = -1")),
    Case(
        "share out of range",
        "sync.budget_share",
        _replace("rate_per_s = 0", "rate_per_s = 0\nbudget_share = 1.5"),
    ),
    Case(
        "port out of range",
        "service.metrics_port",
        _replace("[service]\n", "[service]\nmetrics_port = 70000\n"),
    ),
    Case(
        "zero interval",
        "service.interval_s",
        _replace("[service]\n", "[service]\ninterval_s = 0\n"),
    ),
    Case(
        "bad cron line", "service.cron", _replace("[service]\n", '[service]\ncron = "*/15 * * *"\n')
    ),
    Case(
        "bad cron field",
        "service.cron",
        _replace("[service]\n", '[service]\ncron = "61 * * * *"\n'),
    ),
    Case("bad period", "kpi.period", _replace('period = "year"', 'period = "fortnight"')),
    Case("bad timezone", "kpi.timezone", _replace('timezone = "UTC"', 'timezone = "Mars/Olympus"')),
    Case(
        "bad currency",
        "kpi.corporate_currency",
        _replace('corporate_currency = "EUR"', 'corporate_currency = "EURO"'),
    ),
    Case(
        "bad log level",
        "service.log_level",
        _replace("[service]\n", '[service]\nlog_level = "LOUD"\n'),
    ),
    Case(
        "unknown crm kind",
        "connections.hubspot.crm",
        _replace('crm = "hubspot"', 'crm = "pipedrive"'),
    ),
    Case("missing crm kind", "connections.hubspot.crm", _drop_line("crm =", HS)),
    Case("missing client_id", "connections.salesforce.client_id", _drop_line("client_id =", SF)),
    Case(
        "missing instance_url",
        "connections.salesforce.instance_url",
        lambda t: _drop_line("token_url =", SF)(_drop_line("instance_url =", SF)(t)),
    ),
    Case(
        "missing access token", "connections.hubspot.access_token", _drop_line("access_token =", HS)
    ),
    Case(
        "plain http URL",
        "connections.hubspot.base_url",
        _replace('base_url = "https://', 'base_url = "http://'),
    ),
    Case(
        "unknown auth",
        "connections.salesforce.auth",
        _replace(f"{SF}\n", f'{SF}\nauth = "magic"\n'),
    ),
    Case("bad store URL scheme", "store.url", _replace('url = "sqlite:///', 'url = "mysql:///')),
    Case("schema on SQLite", "store.schema", _replace("[store]\n", '[store]\nschema = "kpis"\n')),
    Case(
        "secret in an unset variable",
        "connections.hubspot.access_token_env",
        _replace("access_token = ", "access_token_env = "),
    ),
    Case(
        "secret file missing",
        "connections.salesforce.client_secret_file",
        lambda t: _drop_line("client_secret =", SF)(t).replace(
            f"{SF}\n", f'{SF}\nclient_secret_file = "nope.txt"\n', 1
        ),
    ),
    Case(
        "secret file unreadable (a directory)",
        "connections.salesforce.client_secret_file",
        lambda t: _drop_line("client_secret =", SF)(t).replace(
            f"{SF}\n", f'{SF}\nclient_secret_file = "."\n', 1
        ),
    ),
    Case(
        "secret given twice",
        "connections.salesforce.client_secret_env",
        _replace(f"{SF}\n", f'{SF}\nclient_secret_env = "X"\n'),
    ),
    Case(
        "env override: bad value",
        "sync.rate_per_s",
        lambda t: t,
        env={"KPISYNC__SYNC__RATE_PER_S": "fast"},
    ),
    Case("env override: unknown key", "sync.speed", lambda t: t, env={"KPISYNC__SYNC__SPEED": "1"}),
    Case(
        "env override: malformed name", "$KPISYNC__STORE", lambda t: t, env={"KPISYNC__STORE": "x"}
    ),
    Case(
        "bad mapping key",
        "mappings.salesforce.stage_field",
        _append('[mappings.salesforce]\nstage_field = "X"'),
    ),
    Case(
        "bad hubspot mapping key",
        "mappings.hubspot.dealstage_map",
        _append("[mappings.hubspot]\ndealstage_map = 1"),
    ),
    Case("unknown mappings crm", "mappings.pipedrive", _append("[mappings.pipedrive]\nx = 1")),
    Case("bad writeback key", "writeback.speed", _append("[writeback]\nspeed = 1")),
]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    from sandbox.cli import build_apps

    apps, currency = build_apps(20, 1)
    with SandboxServer(apps) as server:
        yield Sandbox(server, currency)


def _write_case(case: Case, sandbox: Sandbox, tmp: Path) -> Path:
    path = tmp / "settings.toml"
    text = sandbox.settings_toml(f'[store]\nurl = "sqlite:///{tmp / "store.db"}"')
    if case.kind == "missing":
        return path
    if case.kind == "dir":
        path.mkdir()
        return path
    if case.kind == "loop":
        path.symlink_to(path)
        return path
    content = case.breaks(text)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_broken_settings_file_stops_every_command_cleanly(
    case: Case, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("KPISYNC")]:
        monkeypatch.delenv(key)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    path = _write_case(case, sandbox, tmp_path)
    sandbox.server._stats.clear()
    for command in COMMANDS:
        result = CliRunner().invoke(app, [*command, "--settings", str(path)])
        lines = [line for line in result.output.splitlines() if line.strip()]
        where = (case.name, command, result.output[-600:])
        assert result.exit_code == 2, where
        assert result.exception is None or isinstance(result.exception, SystemExit), where
        assert "Traceback" not in result.output, where
        assert len(lines) == 1, where
        assert lines[0].startswith("error: "), where
        assert case.names in lines[0], where
        assert str(path) in lines[0], where
    # Nothing written: no store file (SQLite's or its journals), no call to either CRM.
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        [] if case.kind == "missing" else ["settings.toml"]
    )
    assert sandbox.server.requests_log() == []


def test_the_cases_cover_every_kind_of_break() -> None:
    assert len(CASES) >= 30
    assert len({c.names for c in CASES}) >= 30
