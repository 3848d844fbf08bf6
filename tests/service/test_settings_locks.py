"""``[service]`` settings, environment overrides, and the connection locks on their own."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.store import Store
from service.locks import FileLock, PgAdvisoryLock
from service.settings import SettingsError, load_settings, parse_settings
from tests.service.conftest import pg_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"service": {"interval_s": 0}}, "service.interval_s"),
        ({"service": {"cron": "every day"}}, "service.cron"),
        ({"service": {"log_format": "xml"}}, "service.log_format"),
        ({"service": {"metrics_port": 70000}}, "service.metrics_port"),
        ({"service": {"lock_retry_s": "5"}}, "service.lock_retry_s"),
        ({"service": {"colour": "red"}}, "service.colour"),
        ({"store": {"schema": "s"}}, "store.schema"),
        ({"store": {"url": "postgresql+psycopg://h/db", "schema": "bad name"}}, "store.schema"),
    ],
)
def test_errors_name_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError) as exc:
        parse_settings(data)
    assert exc.value.key == key


def test_example_documents_the_defaults() -> None:
    data = tomllib.loads((ROOT / "settings.example.toml").read_text())
    parsed = parse_settings(data)
    assert parsed.service == parse_settings({}).service
    assert set(data["service"]) == set(parsed.service.__dataclass_fields__)


def test_environment_overrides_and_names_the_variable(tmp_path: Path) -> None:
    file = tmp_path / "settings.toml"
    file.write_text('[service]\ninterval_s = 60\n[store]\nurl = "sqlite:///x.db"\n')
    env = {"KPISYNC__SERVICE__INTERVAL_S": "30", "KPISYNC__SERVICE__CRON": "*/5 * * * *",
           "KPISYNC__STORE__URL": "postgresql+psycopg://db/kpisync"}  # fmt: skip
    s = load_settings(file, env)
    assert (s.service.interval_s, s.service.cron) == (30, "*/5 * * * *")
    assert s.store.url == "postgresql+psycopg://db/kpisync"
    with pytest.raises(SettingsError) as exc:
        load_settings(file, {"KPISYNC__SERVICE__METRICS_PORT": "port"})
    assert exc.value.key == "service.metrics_port"
    assert "$KPISYNC__SERVICE__METRICS_PORT" in str(exc.value)


def test_file_lock_is_exclusive_until_released(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    first, second = FileLock(store, "sf"), FileLock(store, "sf")
    assert first.acquire()
    assert not second.acquire()
    assert FileLock(store, "hs").acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_advisory_lock_frees_when_its_session_dies() -> None:
    url = pg_url()
    a, b = Store(url, schema="kpisync_lock_a"), Store(url, schema="kpisync_lock_a")
    other_schema = Store(url, schema="kpisync_lock_b")
    first, second = PgAdvisoryLock(a, "sf"), PgAdvisoryLock(b, "sf")
    try:
        assert first.acquire() and first.alive()
        assert not second.acquire()
        assert PgAdvisoryLock(other_schema, "sf").acquire()  # another deployment's lock
        assert first._conn is not None
        pid = first._conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with b.engine.begin() as conn:  # what a dead process amounts to: its session ends
            conn.execute(sa.text(f"SELECT pg_terminate_backend({int(pid or 0)})"))
        assert not first.alive()
        assert second.acquire()
    finally:
        first.release()
        second.release()
        for s in (a, b, other_schema):
            s.close()
