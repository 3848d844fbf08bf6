"""OAuth grants, TLS and re-login, through simple-salesforce and plain requests."""

from __future__ import annotations

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession

from sandbox.salesforce.testing import SalesforceSandbox


def test_password_grant_points_the_client_back_at_the_sandbox(
    salesforce: SalesforceSandbox,
) -> None:
    sf = salesforce.client()
    assert sf.sf_instance == salesforce.host
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == salesforce.canonical["reps"].height


def test_client_credentials_grant_with_http_basic(salesforce: SalesforceSandbox) -> None:
    i = salesforce.info
    sf = Salesforce(
        consumer_key=i["client_id"],
        consumer_secret=i["client_secret"],
        domain=f"{salesforce.host}/x",
        session=salesforce.session(),
    )
    assert sf.query("SELECT Id FROM UserRole LIMIT 1")["totalSize"] == 1
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        Salesforce(
            consumer_key=i["client_id"],
            consumer_secret="wrong",
            domain=f"{salesforce.host}/x",
            session=salesforce.session(),
        )
    assert exc.value.code == "invalid_client"


def test_jwt_bearer_accepts_registered_keys_only(salesforce: SalesforceSandbox) -> None:
    i = salesforce.info
    key = salesforce.app.auth.jwt_private_key.decode()
    sf = Salesforce(
        username=i["username"],
        consumer_key=i["client_id"],
        privatekey=key,
        domain=f"{salesforce.host}/x",
        session=salesforce.session(),
    )
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] > 0

    from sandbox.salesforce.auth import generate_jwt_keypair

    other_private, other_public = generate_jwt_keypair()
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        Salesforce(
            username=i["username"],
            consumer_key=i["client_id"],
            privatekey=other_private.decode(),
            domain=f"{salesforce.host}/x",
            session=salesforce.session(),
        )
    assert exc.value.code == "invalid_grant"
    # Registering the certificate's public key through the control plane makes it acceptable.
    salesforce.control("POST", "config", {"jwt_public_key": other_public.decode()})
    sf2 = Salesforce(
        username=i["username"],
        consumer_key=i["client_id"],
        privatekey=other_private.decode(),
        domain=f"{salesforce.host}/x",
        session=salesforce.session(),
    )
    assert sf2.session_id != sf.session_id


def test_refresh_token_grant_and_token_response_shape(salesforce: SalesforceSandbox) -> None:
    i = salesforce.info
    r = salesforce.session().post(
        i["token_url"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": i["refresh_token"],
            "client_id": i["client_id"],
            "client_secret": i["client_secret"],
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["instance_url"] == salesforce.instance_url
    assert body["token_type"] == "Bearer" and body["id"].endswith("/" + salesforce.app.auth.user_id)
    bad = salesforce.session().post(
        i["token_url"], data={"grant_type": "refresh_token", "refresh_token": "nope"}
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    unsupported = salesforce.session().post(i["token_url"], data={"grant_type": "magic"})
    assert unsupported.json()["error"] == "unsupported_grant_type"


def test_tls_is_real_and_verified(salesforce: SalesforceSandbox) -> None:
    plain = requests.Session()
    plain.trust_env = False  # no CA bundle from the environment: the default store must refuse
    with pytest.raises(requests.exceptions.SSLError):
        plain.get(salesforce.instance_url + "/services/data/")
    ok = salesforce.session().get(salesforce.instance_url + "/services/data/")
    assert ok.status_code == 200 and ok.json()[-1]["version"] == "62.0"
    # The versions list is not an API call: no Sforce-Limit-Info there (headers_api_usage.htm).
    assert "Sforce-Limit-Info" not in ok.headers


def test_invalid_session_is_a_json_list_and_the_client_logs_in_again(
    salesforce: SalesforceSandbox,
) -> None:
    r = salesforce.session().get(
        salesforce.instance_url + "/services/data/v59.0/limits/",
        headers={"Authorization": "Bearer bogus"},
    )
    assert r.status_code == 401
    assert r.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}
    ]

    sf = salesforce.client()
    first = sf.session_id
    salesforce.control("POST", "config", {"expire_sessions": True})
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == salesforce.canonical["leads"].height
    assert sf.session_id != first  # simple-salesforce re-logged in after the 401

    # A client built from a bare session id cannot log in again: the 401 reaches the caller.
    direct = Salesforce(
        instance_url=salesforce.instance_url, session_id=sf.session_id, session=salesforce.session()
    )
    salesforce.control("POST", "config", {"expire_sessions": True})
    with pytest.raises(SalesforceExpiredSession):
        direct.query("SELECT Id FROM Lead LIMIT 1")


def test_soap_login(salesforce: SalesforceSandbox) -> None:
    i = salesforce.info
    sf = Salesforce(
        username=i["username"],
        password=i["password"],
        security_token="",
        domain=f"{salesforce.host}/x",
        session=salesforce.session(),
    )
    assert sf.sf_instance == salesforce.host
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] > 0
    with pytest.raises(SalesforceAuthenticationFailed):
        Salesforce(
            username=i["username"],
            password="wrong",
            security_token="",
            domain=f"{salesforce.host}/x",
            session=salesforce.session(),
        )


def test_identity_url_and_revoke(salesforce: SalesforceSandbox) -> None:
    token = salesforce.token()
    s = salesforce.api(token)
    r = s.post(
        salesforce.info["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(salesforce.info["client_id"], salesforce.info["client_secret"]),
    )
    ident = s.get(r.json()["id"]).json()
    assert ident["user_id"] == salesforce.app.auth.user_id
    revoked = salesforce.session().post(
        salesforce.instance_url + "/services/oauth2/revoke", data={"token": token}
    )
    assert revoked.status_code == 200
    after = s.get(salesforce.instance_url + "/services/data/v59.0/limits")
    assert after.status_code == 401
