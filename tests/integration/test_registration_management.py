"""RFC 7592 registration management against a real `authgate serve`: a DCR client reads,
replaces and deletes its registration with its registration access token; every other token
(missing, wrong, spent, another client's, an operator-made client's) is 401 invalid_token; a
delete ends the client's grants."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.flow_load import signed_in_code

CALLBACK = "http://127.0.0.1:9/callback"
ENV = {"AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    srv = AuthgateServer(tmp_path_factory.mktemp("rfc7592"), extra_env=ENV)
    srv.add_user()
    srv.start()
    yield srv
    srv.stop()


def _register(server: AuthgateServer, **metadata: Any) -> dict[str, Any]:
    body = {"client_name": "managed", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none", **metadata}
    r = httpx.post(server.endpoint("register"), json=body, timeout=10)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _refused(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_token"
    assert (
        r.headers["www-authenticate"].startswith("Bearer") and 'error="invalid_token"' in r.headers["www-authenticate"]
    )


@pytest.mark.requirement(req.RFC7592_3_MANAGEMENT_CREDENTIALS)
@pytest.mark.requirement(req.RFC7592_2_1_READ)
def test_registration_answer_carries_the_management_credentials_and_a_read_rotates_the_token(
    server: AuthgateServer,
) -> None:
    reg = _register(server)
    uri, token = reg["registration_client_uri"], reg["registration_access_token"]
    assert uri == f"{server.endpoint('register')}/{reg['client_id']}"
    read = httpx.get(uri, headers=_bearer(token), timeout=10)
    assert read.status_code == 200, read.text
    assert read.headers["cache-control"] == "no-store"
    body = read.json()
    assert body["client_id"] == reg["client_id"] and body["redirect_uris"] == [CALLBACK]
    assert body["registration_client_uri"] == uri and body["registration_access_token"] != token
    assert "client_secret" not in body
    _refused(httpx.get(uri, headers=_bearer(token), timeout=10))  # the old token is spent
    last = httpx.get(uri, headers=_bearer(body["registration_access_token"]), timeout=10)
    assert last.status_code == 200
    assert token not in server.logs()  # never logged
    # stored only as SHA-256: the database holds the current token's digest, never a token
    current = last.json()["registration_access_token"]
    with sqlite3.connect(server.data_dir / "authgate.db") as db:
        (held,) = db.execute(
            "SELECT registration_token_hash FROM clients WHERE client_id = ?", (reg["client_id"],)
        ).fetchone()
        dump = "\n".join(db.iterdump())
    assert held == hashlib.sha256(current.encode()).hexdigest()
    assert all(t not in dump for t in (token, body["registration_access_token"], current))


@pytest.mark.requirement(req.RFC7592_2_INVALID_TOKEN)
def test_a_missing_wrong_or_other_clients_token_is_invalid_token(server: AuthgateServer) -> None:
    a, b = _register(server), _register(server)
    uri_a = a["registration_client_uri"]
    _refused(httpx.get(uri_a, timeout=10))
    _refused(httpx.get(uri_a, headers={"Authorization": "Basic Zm9vOmJhcg=="}, timeout=10))
    _refused(httpx.get(uri_a, headers=_bearer("agr_wrong"), timeout=10))
    _refused(httpx.get(uri_a, headers=_bearer(b["registration_access_token"]), timeout=10))  # b's token, a's URI
    _refused(httpx.delete(uri_a, headers=_bearer(b["registration_access_token"]), timeout=10))
    _refused(
        httpx.put(uri_a, json={**a, "client_name": "x"}, headers=_bearer(b["registration_access_token"]), timeout=10)
    )
    unknown = httpx.get(f"{server.endpoint('register')}/no-such-client", headers=_bearer("agr_x"), timeout=10)
    _refused(unknown)
    assert unknown.json() == httpx.get(uri_a, headers=_bearer("agr_x"), timeout=10).json()  # no existence oracle
    # a's registration is untouched: its own token still works
    assert httpx.get(uri_a, headers=_bearer(a["registration_access_token"]), timeout=10).status_code == 200


@pytest.mark.requirement(req.RFC7592_3_MANAGEMENT_CREDENTIALS)
def test_an_operator_made_client_has_no_registration_management(server: AuthgateServer) -> None:
    client_id, secret = server.add_machine_client("robot", "mcp")
    for token in (secret, "agr_guess"):
        _refused(httpx.get(f"{server.endpoint('register')}/{client_id}", headers=_bearer(token), timeout=10))
        _refused(httpx.delete(f"{server.endpoint('register')}/{client_id}", headers=_bearer(token), timeout=10))


@pytest.mark.requirement(req.RFC7592_2_2_UPDATE_REPLACES)
def test_an_update_replaces_the_metadata_and_is_checked_like_a_registration(server: AuthgateServer) -> None:
    reg = _register(server, client_name="before", token_endpoint_auth_method="client_secret_basic")
    uri, secret = reg["registration_client_uri"], reg["client_secret"]
    token = reg["registration_access_token"]
    sent = {k: v for k, v in reg.items() if k != "client_secret"}  # what a read gave back, echoed
    r = httpx.put(uri, json={**sent, "client_name": "after", "redirect_uris": [CALLBACK + "2"]}, headers=_bearer(token))
    assert r.status_code == 200, r.text
    body, token = r.json(), r.json()["registration_access_token"]
    assert body["client_name"] == "after" and body["redirect_uris"] == [CALLBACK + "2"]
    assert "client_secret" not in body  # kept, not reissued
    # the secret still authenticates the client (RFC 7009 revocation authenticates it)
    ok = httpx.post(server.endpoint("revoke"), data={"token": "x"}, auth=(reg["client_id"], secret), timeout=10)
    assert ok.status_code == 200, ok.text
    base = {**sent, "client_name": "after"}
    # the registration's own refusals, with the registration's own answers
    for change in (
        {"grant_types": ["authorization_code", "client_credentials"]},
        {"redirect_uris": ["https://user@app.example/cb"]},
        {"redirect_uris": ["https://app.example/cb#frag"]},
        {"token_endpoint_auth_method": "client_secret_jwt"},
    ):
        put = httpx.put(uri, json={**base, **change}, headers=_bearer(token), timeout=10)
        posted = httpx.post(server.endpoint("register"), json={**base, **change}, timeout=10)
        assert put.status_code == posted.status_code == 400, (change, put.text)
        assert put.json() == posted.json(), change
        assert put.json()["error"] in ("invalid_client_metadata", "invalid_redirect_uri")
    assert (
        httpx.put(uri, json={**base, "grant_types": ["client_credentials"]}, headers=_bearer(token)).json()["error"]
        == "invalid_client_metadata"
    )
    # RFC 7592 §2.2: client_id must match; a client_secret sent must be the current one
    for wrong in ({"client_id": "other"}, {"client_id": None}, {"client_secret": "ags_chosen"}):
        put = httpx.put(uri, json={**base, **wrong}, headers=_bearer(token), timeout=10)
        assert put.status_code == 400 and put.json()["error"] == "invalid_client_metadata", put.text
    same = httpx.put(uri, json={**base, "client_secret": secret}, headers=_bearer(token), timeout=10)
    assert same.status_code == 200, same.text
    # a refused update changed nothing and did not spend the token; the last good one rotated it
    read = httpx.get(uri, headers=_bearer(same.json()["registration_access_token"]), timeout=10)
    assert read.json()["client_name"] == "after" and read.json()["grant_types"] == reg["grant_types"]


def test_an_update_to_a_secret_method_issues_a_secret_and_to_none_drops_it(server: AuthgateServer) -> None:
    reg = _register(server)
    uri, token = reg["registration_client_uri"], reg["registration_access_token"]
    r = httpx.put(uri, json={**reg, "token_endpoint_auth_method": "client_secret_post"}, headers=_bearer(token))
    assert r.status_code == 200, r.text
    secret, token = r.json()["client_secret"], r.json()["registration_access_token"]
    assert secret.startswith("ags_") and r.json()["client_secret_expires_at"] == 0
    form = {"token": "x", "client_id": reg["client_id"], "client_secret": secret}
    assert httpx.post(server.endpoint("revoke"), data=form, timeout=10).status_code == 200
    r = httpx.put(uri, json={**reg, "token_endpoint_auth_method": "none"}, headers=_bearer(token), timeout=10)
    assert r.status_code == 200 and "client_secret" not in r.json()
    assert r.json()["token_endpoint_auth_method"] == "none" and "client_secret_expires_at" not in r.json()


def _code_flow(server: AuthgateServer, client_id: str) -> dict[str, Any]:
    code, verifier = signed_in_code(server, client_id, CALLBACK)
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    r = httpx.post(server.endpoint("token"), data={**form, "redirect_uri": CALLBACK, "client_id": client_id})
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.requirement(req.RFC7592_2_3_DELETE)
@pytest.mark.requirement(req.ISSUE16_DELETE_ENDS_GRANTS)
def test_delete_removes_the_client_and_its_refresh_token_fails(server: AuthgateServer) -> None:
    reg = _register(server)
    client_id, uri, token = reg["client_id"], reg["registration_client_uri"], reg["registration_access_token"]
    tokens = _code_flow(server, client_id)
    gone = httpx.delete(uri, headers=_bearer(token), timeout=10)
    assert gone.status_code == 204 and gone.content == b""
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
    r = httpx.post(server.endpoint("token"), data=refresh, timeout=10)
    assert r.status_code in (400, 401) and r.json()["error"] in ("invalid_grant", "invalid_client"), r.text
    _refused(httpx.get(uri, headers=_bearer(token), timeout=10))
    _refused(httpx.delete(uri, headers=_bearer(token), timeout=10))
