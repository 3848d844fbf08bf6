"""The HubSpot sandbox app: routing, auth, rate limits and error rendering around the portal.

Implements the ``CrmApp`` protocol of ``sandbox.server`` (see its module docstring).  Order of
checks per call, as HubSpot applies them: route → authentication (401) → rate limit (429) →
handler.  Every response carries an ``X-HubSpot-Correlation-Id``; non-search CRM responses also
carry the ``X-HubSpot-RateLimit-*`` headers.
"""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from typing import Any
from urllib.parse import unquote

from sandbox.http import Handler, MethodNotAllowed, Request, Response, Router, json_response
from sandbox.hubspot.api_assoc import AssocApi
from sandbox.hubspot.api_meta import MetaApi
from sandbox.hubspot.api_objects import ObjectsApi
from sandbox.hubspot.auth import Auth, AuthConfig, OAuthError
from sandbox.hubspot.errors import (
    HubSpotError,
    correlation_id,
    error_body,
    expired_authentication,
)
from sandbox.hubspot.portal import Portal
from sandbox.hubspot.ratelimit import TIERS, RateLimited, RateLimiter
from sandbox.hubspot.seed import HubSpotSeed
from sandbox.hubspot.store import Row
from sandbox.hubspot.values import parse_ms, to_text
from sandbox.hubspot.writes import apply_update, invalid, normalize

_SEARCH = re.compile(r"^/crm/v3/objects/[^/]+/search/?$")
_OBJECT_PATH = re.compile(r"^/crm/v3/objects/([^/]+)")
_PUBLIC = ("/oauth/v1/token", "/oauth/v1/access-tokens/")
# Canonical table names accepted by the control plane's record edits, for convenience.
_CANONICAL = {
    "opportunities": "deals",
    "leads": "contacts",
    "accounts": "companies",
    "quotas": "goal_targets",
}


class _DecodingRouter(Router):
    """Path parameters arrive percent-encoded (the client quotes ``@`` in an email used as
    ``idProperty``); handlers get them decoded, as a real server's routing layer gives them."""

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        def decoded(request: Request, **params: str) -> Response:
            return handler(request, **{k: unquote(v) for k, v in params.items()})

        super().add(method, pattern, decoded)


def _routes(objects: ObjectsApi, meta: MetaApi, assoc: AssocApi) -> Router:
    r = _DecodingRouter()
    o = "/crm/v3/objects/{object_type}"
    r.add("GET", o, objects.list_records)
    r.add("POST", o, objects.create)
    r.add("POST", o + "/search", objects.search)
    r.add("POST", o + "/merge", objects.merge)
    for op in ("read", "create", "update", "upsert", "archive"):
        r.add("POST", f"{o}/batch/{op}", getattr(objects, f"batch_{op}"))
    r.add("GET", o + "/{object_id}", objects.get)
    r.add("PATCH", o + "/{object_id}", objects.update)
    r.add("DELETE", o + "/{object_id}", objects.archive)

    p = "/crm/v3/properties/{object_type}"
    r.add("GET", p + "/groups", meta.list_groups)
    r.add("POST", p + "/groups", meta.create_group)
    r.add("GET", p + "/groups/{name}", meta.get_group)
    r.add("PATCH", p + "/groups/{name}", meta.update_group)
    r.add("DELETE", p + "/groups/{name}", meta.delete_group)
    r.add("POST", p + "/batch/create", meta.batch_create_properties)
    r.add("POST", p + "/batch/read", meta.batch_read_properties)
    r.add("POST", p + "/batch/archive", meta.batch_archive_properties)
    r.add("GET", p, meta.list_properties)
    r.add("POST", p, meta.create_property)
    r.add("GET", p + "/{name}", meta.get_property)
    r.add("PATCH", p + "/{name}", meta.update_property)
    r.add("DELETE", p + "/{name}", meta.delete_property)

    s = "/crm-object-schemas/v3/schemas"
    r.add("GET", s, meta.list_schemas)
    r.add("POST", s, meta.create_schema)
    r.add("POST", s + "/{object_type}/associations", meta.create_schema_association)
    r.add("GET", s + "/{object_type}", meta.get_schema)
    r.add("PATCH", s + "/{object_type}", meta.update_schema)
    r.add("DELETE", s + "/{object_type}", meta.delete_schema)

    # hubspot-api-client calls the owners list with a trailing slash; accept both spellings.
    r.add("GET", "/crm/v3/owners/", meta.list_owners)
    r.add("GET", "/crm/v3/owners", meta.list_owners)
    r.add("GET", "/crm/v3/owners/{owner_id}", meta.get_owner)
    r.add("GET", "/settings/v3/users/teams", meta.list_teams)
    r.add("GET", "/settings/v3/users/", meta.list_users)
    r.add("GET", "/settings/v3/users", meta.list_users)
    r.add("GET", "/settings/v3/users/roles", meta.list_roles)
    r.add("GET", "/settings/v3/users/{user_id}", meta.get_user)
    r.add("GET", "/settings/v3/currencies/company-currency", meta.company_currency)
    r.add("GET", "/settings/v3/currencies/exchange-rates", meta.exchange_rates)
    r.add("GET", "/calling/v1/dispositions", meta.call_dispositions)

    pl = "/crm/v3/pipelines/{object_type}"
    r.add("GET", pl, meta.list_pipelines)
    r.add("POST", pl, meta.create_pipeline)
    r.add("GET", pl + "/{pipeline_id}", meta.get_pipeline)
    r.add("PATCH", pl + "/{pipeline_id}", meta.update_pipeline)
    r.add("DELETE", pl + "/{pipeline_id}", meta.delete_pipeline)
    r.add("GET", pl + "/{pipeline_id}/stages", meta.list_stages)
    r.add("POST", pl + "/{pipeline_id}/stages", meta.create_stage)
    r.add("GET", pl + "/{pipeline_id}/stages/{stage_id}", meta.get_stage)
    r.add("PATCH", pl + "/{pipeline_id}/stages/{stage_id}", meta.update_stage)
    r.add("DELETE", pl + "/{pipeline_id}/stages/{stage_id}", meta.delete_stage)

    a = "/crm/v4/objects/{object_type}/{object_id}/associations"
    r.add(
        "PUT",
        "/crm/v4/objects/{from_object_type}/{from_object_id}/associations/default/"
        "{to_object_type}/{to_object_id}",
        assoc.create_default,
    )
    r.add("GET", a + "/{to_object_type}", assoc.list_targets)
    r.add("PUT", a + "/{to_object_type}/{to_object_id}", assoc.create)
    r.add("DELETE", a + "/{to_object_type}/{to_object_id}", assoc.delete)
    b = "/crm/v4/associations/{from_object_type}/{to_object_type}"
    r.add("POST", b + "/batch/read", assoc.batch_read)
    r.add("POST", b + "/batch/create", assoc.batch_create)
    r.add("POST", b + "/batch/associate/default", assoc.batch_default)
    r.add("POST", b + "/batch/archive", assoc.batch_archive)
    r.add("POST", b + "/batch/labels/archive", assoc.batch_archive_labels)
    r.add("GET", b + "/labels", assoc.labels)
    return r


def _error_response(err: HubSpotError) -> Response:
    return json_response(err.status, err.body(), err.headers)


class HubSpotApp:
    """A HubSpot portal over the sandbox server (``CrmApp``)."""

    name = "hubspot"

    def __init__(
        self, seed: HubSpotSeed, *, tier: str = "enterprise", auth: AuthConfig | None = None
    ) -> None:
        self.portal = Portal(seed)
        self.auth = Auth(auth or AuthConfig())
        self._tier = tier
        self.limiter = RateLimiter(TIERS[tier])
        #: Object types the app's token lacks the read scope of (``configure``): their calls are
        #: refused 403 ``MISSING_SCOPES``, as a portal answers an app not granted that scope.
        self.unscoped_objects: set[str] = set()
        self.base_url = ""
        self.objects = ObjectsApi(self.portal)
        self.router = _routes(self.objects, MetaApi(self.portal), AssocApi(self.portal))

    # -- CrmApp protocol ---------------------------------------------------------------------------
    def bind(self, base_url: str) -> None:
        self.base_url = base_url

    def reset(self) -> None:
        self.portal.reset()
        self.auth.reset()
        self.limiter.set_tier(TIERS[self._tier])
        self.limiter.reset()
        self.unscoped_objects.clear()

    def requires_auth(self, request: Request) -> bool:
        return not request.path.startswith(_PUBLIC)

    def handle(self, request: Request) -> Response:
        response = self._handle(request)
        response.headers.setdefault("X-HubSpot-Correlation-Id", correlation_id())
        return response

    def _handle(self, request: Request) -> Response:
        if request.path == "/oauth/v1/token":
            return self._token(request)
        limit_headers: dict[str, str] = {}
        try:
            if request.path.startswith("/oauth/v1/access-tokens/"):
                token = request.path.rsplit("/", 1)[1]
                return json_response(200, self.auth.token_info(token))
            if request.query.get("hapikey"):
                # API keys were sunset in 2022; HubSpot rejects them as unauthenticated.
                raise HubSpotError(
                    401,
                    "The API key provided is invalid. View or manage your "
                    "API key here: https://app.hubspot.com/l/api-key/",
                    "INVALID_AUTHENTICATION",
                )
            access = self.auth.check(request.headers.get("Authorization"))
            is_search = bool(_SEARCH.match(request.path))
            limit_headers = self.limiter.admit(search=is_search, oauth=access.oauth)
            self._check_scope(request)
            with self.portal.lock:
                response = self.router.dispatch(request)
            if response is None:
                response = json_response(
                    404,
                    error_body(
                        f"Unable to route {request.method} {request.path}", "OBJECT_NOT_FOUND"
                    ),
                )
        except HubSpotError as exc:  # includes RateLimited (429)
            response = _error_response(exc)
        except MethodNotAllowed as exc:
            response = json_response(
                405,
                error_body(
                    f"HTTP method {request.method} is not supported by this resource",
                    "VALIDATION_ERROR",
                ),
                {"Allow": ", ".join(exc.allowed)},
            )
        # Admitted calls carry the budget headers whatever their outcome (4xx included).
        for k, v in limit_headers.items():
            response.headers[k] = v
        return response

    def _check_scope(self, request: Request) -> None:
        match = _OBJECT_PATH.match(request.path)
        if not match or match.group(1) not in self.unscoped_objects:
            return
        name = match.group(1)
        # The body HubSpot sends an app missing a scope (error-handling guide, "MISSING_SCOPES":
        # 403, the required scopes under errors[].context.requiredScopes).
        raise HubSpotError(
            403,
            "This app hasn't been granted all required scopes to make this call. Read more about "
            "required scopes here: https://developers.hubspot.com/scopes.",
            "MISSING_SCOPES",
            errors=[
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredScopes": [f"crm.objects.{name}.read"]},
                }
            ],
        )

    def _token(self, request: Request) -> Response:
        if request.method != "POST":
            return json_response(405, error_body("Use POST", "VALIDATION_ERROR"))
        try:
            return json_response(200, self.auth.token_endpoint(request.form()))
        except OAuthError as exc:
            return json_response(400, exc.body())

    def rate_limit_response(self, request: Request) -> Response:
        policy = "SECONDLY" if _SEARCH.match(request.path) else "TEN_SECONDLY_ROLLING"
        return _error_response(RateLimited(policy, 1.0))

    def expired_session_response(self, request: Request) -> Response:
        self.auth.expire(request.headers.get("Authorization"))
        return _error_response(expired_authentication(1))

    def server_error_response(self, request: Request, status: int) -> Response:
        body = {"status": "error", "message": "internal error", "correlationId": correlation_id()}
        if status != 500:
            body["message"] = {
                502: "Bad Gateway",
                503: "Service Unavailable",
                504: "Gateway Timeout",
            }.get(status, "internal error")
        return json_response(status, body)

    def _table_for(self, object_name: str) -> Any:
        name = _CANONICAL.get(object_name, object_name)
        try:
            return self.portal.table(name)
        except HubSpotError as exc:
            raise KeyError(object_name) from exc

    def _find_engagement(self, rid: int) -> Any:
        for name in ("calls", "emails", "meetings", "tasks"):
            t = self.portal.tables[name]
            if t.get(rid) is not None:
                return t
        raise KeyError(str(rid))

    def edit_record(
        self, object_name: str, record_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        with self.portal.lock:
            table = (
                self._find_engagement(_rid(record_id))
                if object_name == "activities"
                else self._table_for(object_name)
            )
            rid = _rid(record_id)
            if table.get(rid) is None:
                raise KeyError(record_id)
            values, errors = normalize(table, fields, self.portal, trusted=True)
            if errors:
                raise ValueError(invalid(errors).message)
            row = apply_update(self.portal, table, rid, values)
            assert isinstance(row, Row)
            return dict(table.render(row, list(row.props)))

    def raw_put(self, object_name: str, records: list[dict[str, Any]]) -> list[str]:
        """Store records as a data import or a broken integration leaves them: property values
        kept as given (HubSpot carries every value as a string, so a number property may hold
        any text), no option, type or required checks, no derived properties. Each record is
        ``{"id"?, "properties": {...}, "createdAt"?, "associations"?: {type: [ids]}}``; an ``id``
        that exists is overwritten property by property, any other record is created (with its
        ``id`` if given, even one another engagement type uses). Returns the ids written."""
        ids: list[str] = []
        with self.portal.lock:
            table = self._table_for(object_name)
            for rec in records:
                props = {str(k): to_text(v) for k, v in (rec.get("properties") or {}).items()}
                created = rec.get("createdAt") or props.pop(table.ot.created_property, None)
                created_ms = None if created is None else parse_ms(str(created))
                rid = None if rec.get("id") is None else _rid(str(rec["id"]))
                row = table.raw_put(rid, props, created_ms=created_ms)
                for to_type, targets in (rec.get("associations") or {}).items():
                    for target in targets:
                        self.portal.assoc.add(table.ot.name, to_type, row.id, int(target))
                ids.append(str(row.id))
        return ids

    def delete_record(self, object_name: str, record_id: str) -> dict[str, Any]:
        with self.portal.lock:
            table = (
                self._find_engagement(_rid(record_id))
                if object_name == "activities"
                else self._table_for(object_name)
            )
            if not table.archive(_rid(record_id)):
                raise KeyError(record_id)
            return {"id": record_id, "object": table.ot.name, "archived": True}

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Knobs: ``tier`` (free/starter/professional/enterprise/unlimited), budget overrides
        ``per_10s``/``daily``/``search_per_s``, ``reset_limits`` (forget calls so far) and
        ``unscoped_objects`` (object names whose read scope the app lacks: 403 MISSING_SCOPES)."""
        if "tier" in settings:
            tier = str(settings["tier"])
            if tier not in TIERS:
                raise ValueError(f"unknown tier {tier!r}; one of {sorted(TIERS)}")
            self._tier = tier
            self.limiter.set_tier(TIERS[tier])
        if any(k in settings for k in ("per_10s", "daily", "search_per_s")):
            # Budgets below the tier's, e.g. a tiny daily budget to test a connector that must
            # pause and resume when the day's allowance is spent (airbytehq/airbyte#8690).
            t = self.limiter.tier
            self.limiter.set_tier(
                replace(
                    t,
                    per_10s=int(settings.get("per_10s", t.per_10s)),
                    daily=int(settings.get("daily", t.daily)),
                    search_per_s=int(settings.get("search_per_s", t.search_per_s)),
                )
            )
        if settings.get("reset_limits"):
            self.limiter.reset()
        if "unscoped_objects" in settings:
            self.unscoped_objects = {str(o) for o in settings["unscoped_objects"]}
        return {
            "tier": self._tier,
            "limits": asdict(self.limiter.tier),
            "usage": self.limiter.usage(),
            "private_app_token": self.auth.config.private_app_token,
        }

    def connection_info(self) -> dict[str, Any]:
        c = self.auth.config
        return {
            "base_url": self.base_url,
            "access_token": c.private_app_token,
            "token_url": f"{self.base_url}/oauth/v1/token",
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "refresh_token": c.refresh_token,
            "redirect_uri": c.redirect_uri,
            "authorization_code": c.authorization_code,
            "tier": self._tier,
            "company_currency": self.portal.seed.company_currency,
        }


def _rid(record_id: str) -> int:
    if not record_id.isdigit():
        raise KeyError(record_id)
    return int(record_id)


__all__ = ["HubSpotApp"]
