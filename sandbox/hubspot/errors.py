"""HubSpot's error bodies, raised as :class:`HubSpotError` and rendered in one place.

Shapes follow HubSpot's published OpenAPI ``Error`` schema (``status``, ``message``,
``correlationId``, ``category``, optional ``subCategory``/``context``/``errors``/``links``) and,
for 429s, the body quoted in HubSpot/hubspot-api-python#117 (``errorType: RATE_LIMIT`` with a
``policyName``).
"""

from __future__ import annotations

import uuid
from typing import Any


def correlation_id() -> str:
    """A fresh correlation id: HubSpot sends a UUID on every error body and response header."""
    return str(uuid.uuid4())


def error_body(
    message: str,
    category: str,
    *,
    context: dict[str, Any] | None = None,
    sub_category: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    corr: str | None = None,
) -> dict[str, Any]:
    """The v3 error body; optional keys appear only when set, as HubSpot omits them."""
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": corr or correlation_id(),
        "category": category,
    }
    if sub_category is not None:
        body["subCategory"] = sub_category
    if context is not None:
        body["context"] = context
    if errors is not None:
        body["errors"] = errors
    return body


class HubSpotError(Exception):
    """An API error with its HTTP status; handlers raise it, the app renders it."""

    def __init__(
        self,
        status: int,
        message: str,
        category: str,
        *,
        context: dict[str, Any] | None = None,
        sub_category: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.context = context
        self.sub_category = sub_category
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(
            self.message,
            self.category,
            context=self.context,
            sub_category=self.sub_category,
            errors=self.errors,
        )


def validation(message: str, **kw: Any) -> HubSpotError:
    return HubSpotError(400, message, "VALIDATION_ERROR", **kw)


def not_found(message: str = "resource not found", **kw: Any) -> HubSpotError:
    return HubSpotError(404, message, "OBJECT_NOT_FOUND", **kw)


def conflict(message: str, **kw: Any) -> HubSpotError:
    return HubSpotError(409, message, "CONFLICT", **kw)


def non_unique_id_property(table: Any, id_property: str) -> HubSpotError:
    """The 400 for an ``idProperty`` whose values are not unique, in HubSpot's wording as quoted
    from live responses (hubspot-api-nodejs#548; segmentio/action-destinations#3957, which also
    shows ``hs_object_id`` rejected this way: record ids go in ``id`` without ``idProperty``)."""
    return validation(
        f"Unable to perform update/upsert by non-unique {table.ot.type_id} property {id_property}",
        context={"idProperty": [id_property]},
    )


# 401 bodies.  The "credentials not found" text is the one HubSpot returns for a missing/unknown
# token (quoted in HubSpot/hubspot-api-nodejs#148 and #432); the expired text follows the
# "The OAuth token used to make this call expired N minute(s) ago." wording of the OAuth docs.
AUTH_MISSING_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


def invalid_authentication() -> HubSpotError:
    return HubSpotError(401, AUTH_MISSING_MESSAGE, "INVALID_AUTHENTICATION")


def expired_authentication(minutes_ago: int = 1) -> HubSpotError:
    return HubSpotError(
        401,
        f"The OAuth token used to make this call expired {max(minutes_ago, 1)} minute(s) ago.",
        "EXPIRED_AUTHENTICATION",
    )


# policyName → the wording HubSpot uses in the message ("You have reached your
# ten_secondly_rolling limit." in hubspot-api-python#117; secondly/daily by analogy).
_POLICY_WORDS = {
    "TEN_SECONDLY_ROLLING": "ten_secondly_rolling",
    "SECONDLY": "secondly",
    "DAILY": "daily",
}


def rate_limit_body(policy: str, group: str = "publicapi:private-app") -> dict[str, Any]:
    """The 429 body: ``errorType: RATE_LIMIT`` plus the policy that tripped."""
    return {
        "status": "error",
        "message": f"You have reached your {_POLICY_WORDS.get(policy, policy.lower())} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
        "groupName": group,
    }
