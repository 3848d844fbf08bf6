"""The daily API budget: /limits, Sforce-Limit-Info on every response, REQUEST_LIMIT_EXCEEDED."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceRefusedRequest

from sandbox.salesforce.testing import SalesforceSandbox


def test_limits_and_usage_header(sf: Salesforce, salesforce: SalesforceSandbox) -> None:
    before = sf.limits()["DailyApiRequests"]
    assert before["Max"] == 1_000_000
    sf.query("SELECT Id FROM User LIMIT 1")
    used, total = sf.api_usage["api-usage"]
    assert total == 1_000_000 and used == before["Max"] - before["Remaining"] + 1
    after = sf.limits()["DailyApiRequests"]
    assert after["Remaining"] == before["Remaining"] - 2  # the query and this call
    for key in ("DailyBulkV2QueryJobs", "DailyBulkApiBatches"):
        assert set(sf.limits()[key]) == {"Max", "Remaining"}
    # Errors carry the header too.
    r = salesforce.api().get(salesforce.instance_url + "/services/data/v59.0/sobjects/Nope")
    assert r.status_code == 404 and r.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_request_limit_exceeded_once_the_budget_is_spent(
    sf: Salesforce, salesforce: SalesforceSandbox
) -> None:
    salesforce.control("POST", "config", {"daily_api_requests": 5, "api_usage": 3})
    sf.query("SELECT Id FROM User LIMIT 1")
    sf.query("SELECT Id FROM User LIMIT 1")
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sf.query("SELECT Id FROM User LIMIT 1")
    assert exc.value.content == [
        {
            "message": "TotalRequests Limit exceeded.",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
            "fields": [],
        }
    ]
    assert sf.api_usage["api-usage"][:2] == (5, 5)
    salesforce.control("POST", "config", {"daily_api_requests": 1_000_000, "api_usage": 0})
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] > 0
