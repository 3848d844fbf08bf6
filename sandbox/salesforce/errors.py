"""Salesforce-shaped errors: ``[{"message", "errorCode", "fields"}]`` (REST error envelope).

Follows developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm:
the REST API answers errors as a JSON *list*; simple-salesforce 1.12 (``api.py``) reads
``response.json()[0]['errorCode']`` on a 401 to decide whether to log in again.
"""

from __future__ import annotations

from typing import Any

from sandbox.http import Response, json_response


class SalesforceError(Exception):
    """An API error that becomes one REST error response."""

    def __init__(
        self, status: int, error_code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields or []

    def body(self) -> list[dict[str, Any]]:
        return [{"message": self.message, "errorCode": self.error_code, "fields": self.fields}]

    def response(self) -> Response:
        return json_response(self.status, self.body())


class RecordError(Exception):
    """A per-record DML failure (collections/composite use ``statusCode``, not ``errorCode``)."""

    def __init__(self, status_code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.fields = fields or []

    def as_collection_error(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "message": self.message, "fields": self.fields}

    def as_rest_error(self, status: int = 400) -> SalesforceError:
        return SalesforceError(status, self.status_code, self.message, self.fields)


def not_found(message: str = "The requested resource does not exist") -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", message)


def invalid_session() -> SalesforceError:
    return SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def malformed_query(message: str) -> SalesforceError:
    return SalesforceError(400, "MALFORMED_QUERY", message)


def invalid_field(message: str) -> SalesforceError:
    return SalesforceError(400, "INVALID_FIELD", message)


def invalid_type(name: str) -> SalesforceError:
    return SalesforceError(
        400,
        "INVALID_TYPE",
        f"sObject type '{name}' is not supported. If you are attempting to use a custom object, "
        "be sure to append the '__c' after the entity name. Please reference your WSDL or the "
        "describe call for the appropriate names.",
    )


def no_such_column(field: str, obj: str) -> SalesforceError:
    return invalid_field(
        f"No such column '{field}' on entity '{obj}'. If you are attempting to use a custom "
        "field, be sure to append the '__c' after the custom field name. Please reference your "
        "WSDL or the describe call for the appropriate names."
    )
