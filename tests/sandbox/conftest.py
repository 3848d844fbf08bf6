"""Salesforce sandbox fixtures (defined in ``sandbox.salesforce.testing``)."""

from __future__ import annotations

from sandbox.salesforce.testing import (  # noqa: F401 - fixtures are registered by import
    fresh_salesforce,
    salesforce,
    sf,
    sf_sandbox,
)
