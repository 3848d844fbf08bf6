"""Shared fixtures.  Sandbox: the CRMs of ``kpisync sandbox serve``, started in-process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Any]:
    """Every sandbox CRM (as ``kpisync sandbox serve --size small --seed 0``) over HTTPS.

    Yields the running ``sandbox.server.SandboxServer``; ``sandbox_server.apps[name]
    .connection_info()`` gives the credentials and ``sandbox_server.ca_bundle`` the CA to trust
    (with ``session.trust_env = False``).
    """
    from sandbox.cli import build_apps
    from sandbox.server import SandboxServer

    apps, _ = build_apps("small", 0)
    with SandboxServer(apps) as server:
        yield server
