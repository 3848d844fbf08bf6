"""A protocol-faithful HubSpot CRM v3 sandbox (issue 4).

``create_app(...)`` builds a :class:`HubSpotApp` (the ``sandbox.server.CrmApp`` protocol) seeded
with the generated org in HubSpot's shape (``sandbox.hubspot.seed`` documents the mapping).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from sandbox.hubspot.app import HubSpotApp
from sandbox.hubspot.auth import AuthConfig
from sandbox.hubspot.seed import HubSpotSeed, build_seed

__all__ = ["AuthConfig", "HubSpotApp", "HubSpotSeed", "build_seed", "create_app"]


def create_app(
    size: str | int | None = "small",
    seed: int = 0,
    *,
    org: Any = None,
    tables: dict[str, pl.DataFrame] | None = None,
    company_currency: str | None = None,
    tier: str = "enterprise",
    access_token: str | None = None,
    **_: Any,
) -> HubSpotApp:
    """A HubSpot app over one org.

    Give ``tables`` (canonical frames with HubSpot ids), or ``org`` (a ``CanonicalOrg``, with or
    without HubSpot ids), or ``size``/``seed`` to generate one.  ``tier`` picks the rate limits
    (``starter``, ``professional``, ``enterprise`` or ``unlimited`` for load tests).
    """
    if tables is None:
        from sandbox.generator import generate_org, spec_for, with_crm_ids

        if org is None:
            org = generate_org(spec_for(size if size is not None else "small", seed))
        first_rep = org.tables["reps"]["id"][0] if org.tables["reps"].height else "1"
        if not str(first_rep).isdigit():
            org = with_crm_ids(org, "hubspot")
        tables = org.tables
        company_currency = company_currency or org.spec.corporate_currency
    auth = AuthConfig()
    if access_token:
        auth.private_app_token = access_token
    return HubSpotApp(build_seed(tables, company_currency or "EUR"), tier=tier, auth=auth)
