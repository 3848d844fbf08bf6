"""Private-app tokens and the OAuth 2.0 token endpoint (``/oauth/v1/token``).

Private-app tokens (``pat-na1-…``) never expire.  OAuth access tokens last ``expires_in`` = 1800 s
and are refreshed with the refresh token (grant ``refresh_token``); authorization codes are
exchanged once (grant ``authorization_code``).  Token-endpoint errors use the OAuth error
statuses of HubSpot's OAuth docs (``BAD_CLIENT_ID``, ``BAD_CLIENT_SECRET``, ``BAD_REFRESH_TOKEN``,
``BAD_AUTH_CODE``, ``BAD_GRANT_TYPE``, ``BAD_REDIRECT_URI``) in a 400.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox.hubspot.errors import (
    HubSpotError,
    correlation_id,
    expired_authentication,
    invalid_authentication,
)

ACCESS_TOKEN_TTL_S = 1800
SCOPES = [
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.owners.read",
    "crm.schemas.custom.read",
    "crm.objects.custom.read",
    "crm.objects.custom.write",
    "crm.objects.goals.read",
    "settings.currencies.read",
    "settings.users.teams.read",
]


class OAuthError(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "correlationId": correlation_id()}


@dataclass
class _Access:
    token: str
    expires_at: float
    oauth: bool
    refresh_token: str | None = None


@dataclass
class AuthConfig:
    private_app_token: str = field(default_factory=lambda: "pat-na1-" + secrets.token_hex(16))
    client_id: str = field(default_factory=lambda: secrets.token_hex(8) + "-sandbox-client")
    client_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    redirect_uri: str = "http://localhost:8080/oauth-callback"
    #: One authorization code a test or demo can exchange (there is no consent screen here).
    authorization_code: str = field(default_factory=lambda: "code-" + secrets.token_hex(8))
    #: A refresh token issued up front, so clients can start with grant_type=refresh_token.
    refresh_token: str = field(default_factory=lambda: "rt-" + secrets.token_hex(16))


class Auth:
    """Token registry; thread-safe."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._tokens: dict[str, _Access] = {
                self.config.private_app_token: _Access(
                    self.config.private_app_token, float("inf"), False
                )
            }
            self._refresh: set[str] = {self.config.refresh_token}
            self._codes: set[str] = {self.config.authorization_code}

    def check(self, header: str | None) -> _Access:
        """The caller's token, or a 401 with HubSpot's body."""
        if not header or not header.lower().startswith("bearer "):
            raise invalid_authentication()
        token = header[7:].strip()
        with self._lock:
            acc = self._tokens.get(token)
        if acc is None:
            raise invalid_authentication()
        remaining = acc.expires_at - time.time()
        if remaining <= 0:
            raise expired_authentication(int(-remaining // 60))
        return acc

    def expire(self, header: str | None) -> None:
        """Expire the caller's OAuth token now (the control plane's expired-session fault).

        Private-app tokens cannot be refreshed, so they are left valid: the fault answers this
        one call with the expired body and the next call succeeds, like a transient 401."""
        if not header or not header.lower().startswith("bearer "):
            return
        token = header[7:].strip()
        with self._lock:
            acc = self._tokens.get(token)
            if acc is not None and acc.oauth:
                acc.expires_at = time.time() - 60

    def token_info(self, token: str) -> dict[str, Any]:
        with self._lock:
            acc = self._tokens.get(token)
        if acc is None or not acc.oauth:
            raise HubSpotError(404, "Token not found", "OBJECT_NOT_FOUND")
        return {
            "token": token,
            "user": "sandbox-admin@example.com",
            "hub_domain": "sandbox.kpisync.test",
            "scopes": SCOPES,
            "hub_id": 24_681_357,
            "app_id": 1_000_001,
            "expires_in": max(0, int(acc.expires_at - time.time())),
            "user_id": 8_000_001,
            "token_type": "access",
        }

    def token_endpoint(self, form: dict[str, str]) -> dict[str, Any]:
        grant = form.get("grant_type", "")
        if grant not in ("authorization_code", "refresh_token"):
            raise OAuthError("BAD_GRANT_TYPE", f"Unsupported grant_type: {grant!r}")
        if form.get("client_id") != self.config.client_id:
            raise OAuthError("BAD_CLIENT_ID", "missing or unknown client id")
        if form.get("client_secret") != self.config.client_secret:
            raise OAuthError("BAD_CLIENT_SECRET", "missing or invalid client secret")
        with self._lock:
            if grant == "authorization_code":
                if form.get("redirect_uri") != self.config.redirect_uri:
                    raise OAuthError("BAD_REDIRECT_URI", "redirect_uri does not match")
                code = form.get("code", "")
                if code not in self._codes:
                    raise OAuthError("BAD_AUTH_CODE", "missing or unknown auth code")
                self._codes.discard(code)
                refresh = "rt-" + secrets.token_hex(16)
                self._refresh.add(refresh)
            else:
                refresh = form.get("refresh_token", "")
                if refresh not in self._refresh:
                    raise OAuthError("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
            token = "oat-na1-" + secrets.token_hex(16)
            self._tokens[token] = _Access(token, time.time() + ACCESS_TOKEN_TTL_S, True, refresh)
        return {
            "token_type": "bearer",
            "refresh_token": refresh,
            "access_token": token,
            "expires_in": ACCESS_TOKEN_TTL_S,
        }
