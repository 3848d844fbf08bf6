"""A protocol-faithful Salesforce sandbox org over HTTPS (see ``sandbox.salesforce.app``)."""

from __future__ import annotations

from sandbox.salesforce.app import SalesforceApp

__all__ = ["SalesforceApp"]
