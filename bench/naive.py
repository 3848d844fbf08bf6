"""The sync baseline: a naive one-call-per-page sequential loop with the CRMs' own clients.

Salesforce: simple-salesforce ``query`` + ``query_more`` over REST pages of 2,000 records (the
largest ``batchSize`` the Query Options header allows: "The default is 2,000; the minimum is 200,
and the maximum is 2,000", developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/
headers_queryoptions.htm), one ``describe`` per object to learn which of the connector's fields
exist. HubSpot: hubspot-api-client ``basic_api.get_page`` at ``limit=100`` (the most a CRM v3 list
page returns, developers.hubspot.com/docs/api/crm/understanding-the-crm, "Paging": limit up to
100), the connector's properties, no associations. Nothing is mapped: each page goes into SQLite
as one ``executemany`` of (object, id, JSON) rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from connectors.config import ConnectionConfig

SALESFORCE_PAGE = 2000
HUBSPOT_PAGE = 100


@dataclass
class NaiveRun:
    records: int
    seconds: float
    pages: int


def _sqlite(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE raw (object TEXT, id TEXT, body TEXT)")
    return db


def naive_salesforce(cfg: ConnectionConfig, db_path: Path) -> NaiveRun:
    from simple_salesforce.api import Salesforce

    from connectors.salesforce import SalesforceSource
    from connectors.salesforce_map import SalesforceMapping

    session = requests.Session()
    # REQUESTS_CA_BUNDLE in the environment would override the session's CA bundle.
    session.trust_env = False
    session.verify = cfg.ca_bundle or True
    assert cfg.client_secret is not None and cfg.instance_url is not None
    started = time.perf_counter()
    token = session.post(
        cfg.token_url or f"{cfg.instance_url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(str(cfg.client_id), cfg.client_secret.get()),
        timeout=60,
    )
    token.raise_for_status()
    sf = Salesforce(instance_url=cfg.instance_url, session_id=token.json()["access_token"],
                    session=session, version=cfg.api_version)  # fmt: skip
    specs = SalesforceSource(cfg, SalesforceMapping.from_settings({})).objects()
    db = _sqlite(db_path)
    records = pages = 0
    try:
        for spec in specs:
            have = {f["name"] for f in getattr(sf, spec.name).describe()["fields"]}
            fields = [f for f in dict.fromkeys(spec.fields) if f in have]
            result: dict[str, Any] = sf.query(
                f"SELECT {', '.join(fields)} FROM {spec.name}",
                headers={"Sforce-Query-Options": f"batchSize={SALESFORCE_PAGE}"},
            )
            while True:
                rows = result.get("records", [])
                db.executemany("INSERT INTO raw VALUES (?, ?, ?)",
                               [(spec.name, r.get("Id"), json.dumps(r)) for r in rows])  # fmt: skip
                db.commit()
                records += len(rows)
                pages += 1
                if result.get("done", True):
                    break
                result = sf.query_more(result["nextRecordsUrl"], identifier_is_url=True)
    finally:
        db.close()
    return NaiveRun(records, time.perf_counter() - started, pages)


def naive_hubspot(cfg: ConnectionConfig, db_path: Path) -> NaiveRun:
    from hubspot import HubSpot

    from connectors.hubspot_mapping import OBJECTS, HubSpotMapping

    assert cfg.access_token is not None
    client = HubSpot(access_token=cfg.access_token.get(), host=cfg.base_url,
                     base_url=cfg.base_url, ssl_ca_cert=cfg.ca_bundle)  # fmt: skip
    mapping = HubSpotMapping.from_settings({})
    db = _sqlite(db_path)
    records = pages = 0
    started = time.perf_counter()
    try:
        for obj in OBJECTS:
            props = obj.all_properties(mapping)
            after = None
            while True:
                page = client.crm.objects.basic_api.get_page(
                    obj.name, limit=HUBSPOT_PAGE, after=after, properties=props
                )
                db.executemany("INSERT INTO raw VALUES (?, ?, ?)",
                               [(obj.name, r.id, json.dumps(r.properties, default=str))
                                for r in page.results])  # fmt: skip
                db.commit()
                records += len(page.results)
                pages += 1
                if page.paging is None or page.paging.next is None:
                    break
                after = page.paging.next.after
    finally:
        db.close()
    return NaiveRun(records, time.perf_counter() - started, pages)


def naive_sync(cfg: ConnectionConfig, db_path: Path) -> NaiveRun:
    if cfg.crm == "salesforce":
        return naive_salesforce(cfg, db_path)
    return naive_hubspot(cfg, db_path)
