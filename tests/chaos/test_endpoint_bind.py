"""The metrics and health endpoint of ``kpisync run`` listens on 127.0.0.1 unless the settings
say otherwise: the default settings, and the socket the running service really bound (read from
the kernel's table of listening sockets), not just the value in a dataclass."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from service.runner import Runner
from service.settings import ServiceSettings, Settings, load_settings, parse_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port`` (``/proc/net/tcp``, state 0A)."""
    out = set()
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for line in table:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                out.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return out


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A settings file with the endpoint on a free port and no connection (nothing to sync)."""
    port = _free_port()
    file = tmp_path / "settings.toml"
    file.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n\n[service]\nmetrics_port = {port}\n',
        encoding="utf-8",
    )
    yield file, port


def _bound(settings: Settings, port: int) -> set[str]:
    """Run the service until its endpoint answers; the addresses it listens on."""
    runner = Runner(settings)
    thread = threading.Thread(target=runner.serve, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not _listening(port):
            assert time.monotonic() < deadline and thread.is_alive(), "the endpoint never bound"
            time.sleep(0.05)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        return _listening(port)
    finally:
        runner.stopping.set()
        thread.join(20)


def test_the_default_is_loopback() -> None:
    assert ServiceSettings().metrics_host == "127.0.0.1"
    assert parse_settings({"service": {"metrics_port": 9464}}, env={}).service.metrics_host == (
        "127.0.0.1"
    )


def test_the_running_endpoint_listens_on_loopback_only(serving: tuple[Path, int]) -> None:
    file, port = serving
    assert _bound(load_settings(file, env={}), port) == {"127.0.0.1"}


def test_another_address_takes_an_explicit_setting(
    serving: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    file, port = serving
    monkeypatch.setenv("KPISYNC__SERVICE__METRICS_HOST", "0.0.0.0")
    settings = load_settings(file)
    assert settings.service.metrics_host == "0.0.0.0"
    assert _bound(settings, port) == {"0.0.0.0"}
