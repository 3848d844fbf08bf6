"""``kpisync sandbox seed`` and ``kpisync sandbox serve`` as an admin would run them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import polars as pl
from simple_salesforce import Salesforce
from typer.testing import CliRunner

from sandbox.salesforce.testing import https_session
from service.cli import app as kpisync


def test_seed_writes_canonical_csvs_with_salesforce_ids(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        kpisync,
        [
            "sandbox",
            "seed",
            "--size",
            "small",
            "--seed",
            "4",
            "--crm",
            "salesforce",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    for table in (
        "teams",
        "reps",
        "accounts",
        "leads",
        "opportunities",
        "activities",
        "quotas",
        "fx_rates",
        "costs",
    ):
        assert (tmp_path / f"{table}.csv").exists()
    opps = pl.read_csv(tmp_path / "opportunities.csv")
    assert opps["id"].str.starts_with("006").all() and opps["id"].str.len_chars().eq(18).all()
    hub = CliRunner().invoke(
        kpisync, ["sandbox", "seed", "--crm", "hubspot", "--out", str(tmp_path / "hs")]
    )
    assert hub.exit_code == 0
    assert (
        pl.read_csv(tmp_path / "hs" / "reps.csv", infer_schema=False)["id"]
        .str.contains(r"^\d+$")
        .all()
    )


def test_serve_prints_one_json_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    settings = tmp_path / "kpisync.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--size", "small", "--seed", "2",
         "--write-settings", str(settings), "--salesforce-api-budget", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        info = json.loads(line)
        sf_info = info["salesforce"]
        for key in ("instance_url", "token_url", "client_id", "client_secret"):
            assert sf_info[key]
        assert {"ca_bundle", "control_url"} <= set(info)
        conf = tomllib.loads(settings.read_text())
        assert conf["kpi"] == {"corporate_currency": "EUR", "timezone": "UTC"}
        assert conf["connections"]["salesforce"]["instance_url"] == sf_info["instance_url"]
        assert conf["connections"]["salesforce"]["crm"] == "salesforce"
        if "hubspot" in info:
            assert conf["connections"]["hubspot"]["access_token"] == info["hubspot"]["access_token"]

        session = https_session(info["ca_bundle"])
        token = session.post(
            sf_info["token_url"],
            data={"grant_type": "client_credentials"},
            auth=(sf_info["client_id"], sf_info["client_secret"]),
        ).json()
        sf = Salesforce(
            instance_url=token["instance_url"], session_id=token["access_token"], session=session
        )
        assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 300
        assert sf.limits()["DailyApiRequests"]["Max"] == 1000
        health = session.get(info["control_url"] + "/health").json()
        assert health["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0


def test_shared_fixture_serves_every_crm(sandbox_server: object) -> None:
    from sandbox.server import SandboxServer

    assert isinstance(sandbox_server, SandboxServer)
    session = https_session(sandbox_server.ca_bundle)
    health = session.get(sandbox_server.control_url() + "/health").json()
    assert set(health["crms"]) == set(sandbox_server.apps) and "salesforce" in health["crms"]
    info = sandbox_server.apps["salesforce"].connection_info()
    token = session.post(
        info["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(info["client_id"], info["client_secret"]),
    ).json()
    assert token["instance_url"] == sandbox_server.url("salesforce")
