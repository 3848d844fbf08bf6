"""``kpisync sandbox serve`` hosts the HubSpot portal next to Salesforce on the shared server: the
printed connection info (``base_url``, private-app token, OAuth client, CA bundle) is all the
unmodified hubspot-api-client needs, and the portal holds the same generated org."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import requests
from hubspot import HubSpot


def test_serve_exposes_hubspot_to_the_client(tmp_path: Path) -> None:
    settings = tmp_path / "kpisync.toml"
    kpisync = Path(sys.executable).parent / "kpisync"
    cmd = [str(kpisync), "sandbox"] if kpisync.exists() else [sys.executable, "-m", "sandbox"]
    proc = subprocess.Popen(
        [*cmd, "serve", "--size", "small", "--seed", "4", "--write-settings", str(settings)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        hs = info["hubspot"]
        assert hs["base_url"].startswith("https://127.0.0.1:")
        assert hs["access_token"].startswith("pat-na1-") and hs["tier"] == "enterprise"
        conf = tomllib.loads(settings.read_text())["connections"]["hubspot"]
        assert conf["base_url"] == hs["base_url"] and conf["ca_bundle"] == info["ca_bundle"]

        client = HubSpot(
            access_token=hs["access_token"],
            host=hs["base_url"],
            base_url=hs["base_url"],
            ssl_ca_cert=info["ca_bundle"],
        )
        # The same org as the Salesforce side: 300 opportunities at size "small".
        deals = client.crm.deals.search_api.do_search({"limit": 1})
        assert deals.total == 300
        owners = client.crm.owners.owners_api.get_page(limit=100).results
        assert owners and all(o.id.isdigit() for o in owners)
        pipelines = client.crm.pipelines.pipelines_api.get_all("deals").results
        assert pipelines[0].stages[0].metadata["probability"].replace(".", "").isdigit()

        # OAuth on the same port: refresh grant with the printed client credentials.
        tokens = client.oauth.tokens_api.create(
            grant_type="refresh_token",
            client_id=hs["client_id"],
            client_secret=hs["client_secret"],
            refresh_token=hs["refresh_token"],
        )
        oauth = HubSpot(
            access_token=tokens.access_token,
            host=hs["base_url"],
            ssl_ca_cert=info["ca_bundle"],
        )
        assert len(oauth.crm.deals.basic_api.get_page(limit=5).results) == 5

        # The shared control plane on the HubSpot port.
        s = requests.Session()
        s.trust_env = False
        s.verify = info["ca_bundle"]
        health = s.get(f"{hs['base_url']}/__sandbox/health").json()
        assert health["crms"]["hubspot"] == hs["base_url"]
        assert "salesforce" in health["crms"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0
