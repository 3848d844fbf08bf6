"""The service's /metrics and /healthz endpoint and its JSON logs, in-process."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from service import journal
from service.observability import setup_logging
from service.runner import Runner
from tests.service.conftest import Sandbox, install, write_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("kpisync").setLevel(logging.NOTSET)


def test_metrics_health_and_json_logs(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    port = _free_port()
    file = tmp_path / "settings.toml"
    store = f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"'
    service = f'interval_s = 3600\nmetrics_port = {port}\nlog_format = "json"\n'
    settings = write_settings(file, sandbox, store, service)
    install(file, "--crm", "salesforce")
    setup_logging(settings.service.log_format, settings.service.log_level)
    runner = Runner(settings, ["salesforce"])
    thread = threading.Thread(target=runner.serve)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not journal.cycles(runner.store, "salesforce") or journal.cycles(
            runner.store, "salesforce")[0].outcome == "running":  # fmt: skip
            assert time.monotonic() < deadline, "no cycle finished"
            time.sleep(0.2)
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        runner.stopping.set()
        thread.join(30)
    assert health.status_code == 200
    assert health.json()["connections"] == {"salesforce": "ok"}
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in metrics.splitlines() if line and not line.startswith("#")}  # fmt: skip
    assert samples['kpisync_cycles_total{connection="salesforce",outcome="ok"}'] == 1
    assert samples['kpisync_api_calls_total{connection="salesforce",step="sync"}'] > 0
    assert samples['kpisync_api_calls_total{connection="salesforce",step="writeback"}'] > 0
    assert samples['kpisync_records_total{connection="salesforce",kind="read"}'] > 100
    assert samples['kpisync_writeback_rows_total{connection="salesforce",result="written"}'] > 100
    assert samples['kpisync_api_budget_limit{connection="salesforce"}'] == 1_000_000
    assert samples['kpisync_api_budget_used{connection="salesforce"}'] > 0
    assert samples['kpisync_step_duration_seconds_count{connection="salesforce",step="sync"}'] == 1
    assert samples['kpisync_next_run_timestamp_seconds{connection="salesforce"}'] > time.time()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    done = [x for x in lines if x.get("outcome") == "ok"]
    assert done and done[0]["connection"] == "salesforce" and done[0]["level"] == "info"
    secret = settings.connections["salesforce"].client_secret
    assert secret is not None and secret.get() not in json.dumps(lines)
    assert not thread.is_alive()
    assert not runner.health()[0]  # stopped: a supervisor sees 503
