"""OAuth 2.0 token endpoint and sessions of the sandbox org.

Grants (developer.salesforce.com … remoteaccess_oauth_*_flow.htm; as simple-salesforce 1.12
``login.py`` sends them):

* ``client_credentials`` — client id/secret in HTTP Basic (as simple-salesforce sends them) or in
  the form body;
* ``password`` — client id/secret plus username/password in the form;
* ``urn:ietf:params:oauth:grant-type:jwt-bearer`` — an RS256 assertion (``iss`` = client id,
  ``sub`` = username, ``aud`` = a login host, ``exp`` in the future) verified against any
  registered public key or certificate;
* ``refresh_token`` — a refresh token the sandbox issued (``connection_info`` hands one out, as
  if the web-server flow had run once).

Failures answer 400 ``{"error", "error_description"}`` like Salesforce; simple-salesforce turns
those into ``SalesforceAuthenticationFailed``.  The token response's ``instance_url`` is this
sandbox's own ``https://127.0.0.1:<port>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.http import Headers, Request, Response, json_response


@dataclass
class Session:
    token: str
    user_id: str
    issued: float
    expires: float


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response(status, {"error": error, "error_description": description})


def generate_jwt_keypair() -> tuple[bytes, bytes]:
    """(private key PEM, public key PEM) for the sandbox's own connected-app certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def _load_public_key(pem: bytes) -> Any:
    if b"BEGIN CERTIFICATE" in pem:
        return x509.load_pem_x509_certificate(pem).public_key()
    return serialization.load_pem_public_key(pem)


class AuthService:
    """Credentials of the sandbox's one connected app and its API user."""

    def __init__(
        self,
        *,
        org_id: str,
        user_id: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        username: str = "integration@kpisync-sandbox.example",
        password: str | None = None,
        session_ttl_s: float = 7200.0,
    ) -> None:
        self.org_id = org_id
        self.user_id = user_id
        self.client_id = client_id or "3MVG9sandbox." + secrets.token_urlsafe(24)
        self.client_secret = client_secret or secrets.token_hex(32)
        self.username = username
        self.password = password or secrets.token_urlsafe(16)
        self.session_ttl_s = session_ttl_s
        self.refresh_token = "5Aep861sandbox." + secrets.token_urlsafe(32)
        self._sessions: dict[str, Session] = {}
        self._keys: list[Any] = []
        self._lock = threading.Lock()
        self.base_url = ""
        self.jwt_private_key, public = generate_jwt_keypair()
        self.register_jwt_key(public)

    def register_jwt_key(self, pem: bytes | str) -> None:
        """Accept JWT assertions signed by the key behind this public key or certificate."""
        raw = pem.encode() if isinstance(pem, str) else pem
        key = _load_public_key(raw)
        with self._lock:
            self._keys.append(key)

    def reset(self) -> None:
        with self._lock:
            self._sessions.clear()

    # -- sessions --------------------------------------------------------------------------------

    def _issue(self) -> Session:
        token = f"{self.org_id[:15]}!{secrets.token_urlsafe(48)}"
        now = time.time()
        s = Session(token, self.user_id, now, now + self.session_ttl_s)
        with self._lock:
            self._sessions[token] = s
        return s

    def session_for(self, request: Request) -> Session | None:
        """The session named by the request's Authorization (or X-SFDC-Session) header."""
        token = None
        auth = request.headers.get("Authorization") or ""
        for scheme in ("Bearer ", "OAuth "):
            if auth.startswith(scheme):
                token = auth[len(scheme) :].strip()
        if token is None:
            token = request.headers.get("X-SFDC-Session")
        if not token:
            return None
        with self._lock:
            s = self._sessions.get(token)
            if s is not None and s.expires < time.time():
                del self._sessions[token]
                return None
            return s

    def revoke(self, request: Request) -> None:
        s = self.session_for(request)
        if s is not None:
            with self._lock:
                self._sessions.pop(s.token, None)

    def expire_all(self) -> None:
        with self._lock:
            self._sessions.clear()

    # -- token endpoint --------------------------------------------------------------------------

    def token_response(self, session: Session) -> Response:
        issued_ms = str(int(session.issued * 1000))
        ident = f"{self.base_url}/id/{self.org_id}/{self.user_id}"
        sig = base64.b64encode(
            hmac.new(
                self.client_secret.encode(), (ident + issued_ms).encode(), hashlib.sha256
            ).digest()
        ).decode()
        return json_response(
            200,
            {
                "access_token": session.token,
                "instance_url": self.base_url,
                "id": ident,
                "token_type": "Bearer",
                "issued_at": issued_ms,
                "signature": sig,
                "scope": "api refresh_token",
            },
        )

    def token(self, request: Request) -> Response:
        if request.method != "POST":
            return _oauth_error("invalid_request", "must use HTTP POST", 405)
        form = request.form()
        grant = form.get("grant_type", "")
        basic = self._basic_credentials(request)
        client_id = form.get("client_id") or (basic[0] if basic else None)
        client_secret = form.get("client_secret") or (basic[1] if basic else None)
        if grant == "client_credentials":
            if client_id != self.client_id:
                return _oauth_error("invalid_client_id", "client identifier invalid")
            if client_secret != self.client_secret:
                return _oauth_error("invalid_client", "invalid client credentials")
            return self.token_response(self._issue())
        if grant == "password":
            if client_id != self.client_id:
                return _oauth_error("invalid_client_id", "client identifier invalid")
            if client_secret != self.client_secret:
                return _oauth_error("invalid_client", "invalid client credentials")
            if form.get("username") != self.username or form.get("password") != self.password:
                return _oauth_error("invalid_grant", "authentication failure")
            return self.token_response(self._issue())
        if grant == "refresh_token":
            if client_id is not None and client_id != self.client_id:
                return _oauth_error("invalid_client_id", "client identifier invalid")
            if form.get("refresh_token") != self.refresh_token:
                return _oauth_error("invalid_grant", "expired access/refresh token")
            return self.token_response(self._issue())
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_grant(form.get("assertion", ""))
        return _oauth_error("unsupported_grant_type", "grant type not supported")

    @staticmethod
    def _basic_credentials(request: Request) -> tuple[str, str] | None:
        auth = request.headers.get("Authorization") or ""
        if not auth.startswith("Basic "):
            return None
        try:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return None
        return user, pw

    def _jwt_grant(self, assertion: str) -> Response:
        if not assertion:
            return _oauth_error("invalid_grant", "invalid assertion")
        with self._lock:
            keys = list(self._keys)
        claims: dict[str, Any] | None = None
        for key in keys:
            try:
                claims = jwt.decode(
                    assertion,
                    key,
                    algorithms=["RS256"],
                    options={"verify_aud": False, "require": ["exp", "iss", "sub", "aud"]},
                )
                break
            except jwt.ExpiredSignatureError:
                return _oauth_error("invalid_grant", "expired authorization code")
            except jwt.InvalidTokenError:
                continue
        if claims is None:
            return _oauth_error("invalid_grant", "invalid assertion")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if not any(self._audience_ok(str(a)) for a in auds):
            return _oauth_error("invalid_grant", "audience is invalid")
        if claims.get("iss") != self.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if claims.get("sub") != self.username:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self.token_response(self._issue())

    def _audience_ok(self, aud: str) -> bool:
        # Salesforce accepts the login hosts (login/test) or the org's My Domain; simple-
        # salesforce sends https://{domain}.salesforce.com, whatever domain it was given.
        aud = aud.rstrip("/")
        return aud.endswith(".salesforce.com") or aud == self.base_url

    def revoke_token(self, request: Request) -> Response:
        """``/services/oauth2/revoke``: end a session (or forget the refresh token's sessions)."""
        token = request.form().get("token") or request.arg("token") or ""
        with self._lock:
            if self._sessions.pop(token, None) is None and token != self.refresh_token:
                return _oauth_error("unsupported_token_type", "this token type is not supported")
        return Response(200, Headers(), b"")

    def userinfo(self, request: Request) -> Response:
        s = self.session_for(request)
        if s is None:
            return json_response(403, "Bad_OAuth_Token")
        return json_response(
            200,
            {
                "sub": f"{self.base_url}/id/{self.org_id}/{self.user_id}",
                "user_id": self.user_id,
                "organization_id": self.org_id,
                "preferred_username": self.username,
                "email": self.username,
            },
        )

    def soap_login(self, request: Request, version: str) -> Response:
        """Partner SOAP ``login`` (optional in the issue; simple-salesforce's default flow)."""
        text = request.body.decode("utf-8", "replace")
        user = re.search(r"<(?:\w+:)?username>(.*?)</(?:\w+:)?username>", text, re.S)
        pw = re.search(r"<(?:\w+:)?password>(.*?)</(?:\w+:)?password>", text, re.S)
        if not user or not pw or user.group(1) != self.username or pw.group(1) != self.password:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
                'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                'xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault>'
                "<faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid "
                "username, password, security token; or user locked out.</faultstring><detail>"
                "<sf:LoginFault><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>"
                "<sf:exceptionMessage>Invalid username, password, security token; or user "
                "locked out.</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault>"
                "</soapenv:Body></soapenv:Envelope>"
            )
            return Response(500, body=body.encode(), headers=_xml_headers())
        s = self._issue()
        server_url = f"{self.base_url}/services/Soap/u/{version}/{self.org_id[:15]}"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns="urn:partner.soap.sforce.com"><soapenv:Body><loginResponse><result>'
            f"<metadataServerUrl>{escape(server_url)}</metadataServerUrl>"
            "<passwordExpired>false</passwordExpired><sandbox>true</sandbox>"
            f"<serverUrl>{escape(server_url)}</serverUrl><sessionId>{escape(s.token)}</sessionId>"
            f"<userId>{self.user_id}</userId></result></loginResponse></soapenv:Body>"
            "</soapenv:Envelope>"
        )
        return Response(200, body=body.encode(), headers=_xml_headers())


def _xml_headers() -> Headers:
    return Headers({"Content-Type": "text/xml;charset=UTF-8"})
