"""`token_signing_alg` end to end (issue 18): a server started with ES256 issues ES256 access
tokens (code and refresh), publishes the P-256 key in its JWKS and its guard admits them at
/mcp; restarted on the default RS256, it signs with a new RSA key at once while the retired EC
key stays published and the ES256 token it signed still opens /mcp. A token re-signed with
HS256 keyed by the public key, or sent with `alg: none`, is refused at /mcp.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from support import headless
from support import requirements as req
from support.authgate_server import AuthgateServer
from support.flow_load import INITIALIZE, MCP_HEADERS, pkce_pair

CALLBACK = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    srv = AuthgateServer(
        tmp_path_factory.mktemp("es256"),
        extra_env={"AUTHGATE_TOKEN_SIGNING_ALG": "ES256", "AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000"},
    )
    srv.add_user()
    srv.start()
    yield srv
    srv.stop()


def _header(token: str) -> dict[str, Any]:
    head = token.split(".", 1)[0]
    parsed: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return parsed


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _tokens(server: AuthgateServer) -> dict[str, Any]:
    body = {"client_name": "alg", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"}
    r = httpx.post(server.endpoint("register"), json=body, timeout=10)
    assert r.status_code == 201, r.text
    client_id = r.json()["client_id"]
    verifier, challenge = pkce_pair()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "state": "s",
        "scope": "mcp offline_access",
        "resource": server.mcp_url,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    answer = headless.authorize(server.endpoint("authorize") + "?" + urlencode(query), server.username, server.password)
    assert answer.code, answer
    form = {"grant_type": "authorization_code", "code": answer.code, "code_verifier": verifier}
    r = httpx.post(
        server.endpoint("token"), data={**form, "redirect_uri": CALLBACK, "client_id": client_id}, timeout=10
    )
    assert r.status_code == 200, r.text
    return {**r.json(), "client_id": client_id}


def _mcp(server: AuthgateServer, token: str) -> httpx.Response:
    return httpx.post(
        server.mcp_url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}, timeout=10
    )


def _jwks(server: AuthgateServer) -> list[dict[str, Any]]:
    meta = httpx.get(server.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    keys: list[dict[str, Any]] = httpx.get(meta["jwks_uri"], timeout=10).json()["keys"]
    return keys


@pytest.mark.requirement(req.RFC8725_3_1_ALGORITHM_PINNED)
def test_es256_tokens_are_issued_published_and_admitted_and_survive_a_switch_back(server: AuthgateServer) -> None:
    tokens = _tokens(server)
    es_token = tokens["access_token"]
    assert _header(es_token)["alg"] == "ES256"
    assert _mcp(server, es_token).status_code == 200
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": tokens["client_id"]}
    refreshed = httpx.post(server.endpoint("token"), data=form, timeout=10)
    assert refreshed.status_code == 200, refreshed.text
    assert _header(refreshed.json()["access_token"])["alg"] == "ES256"
    published = {k["kid"]: k for k in _jwks(server)}
    assert published[_header(es_token)["kid"]]["kty"] == "EC" and "d" not in published[_header(es_token)["kid"]]

    # forged from the ES256 token: HS256 keyed with the published public key, and `none`
    head, body, _ = es_token.split(".")
    header = _header(es_token)
    public = json.dumps(published[header["kid"]]).encode()
    hs_head = _b64(json.dumps({**header, "alg": "HS256"}).encode())
    forged = f"{hs_head}.{body}.{_b64(hmac.new(public, f'{hs_head}.{body}'.encode(), hashlib.sha256).digest())}"
    unsigned = f"{_b64(json.dumps({**header, 'alg': 'none'}).encode())}.{body}."
    for token in (forged, unsigned):
        r = _mcp(server, token)
        assert r.status_code == 401 and "invalid_token" in r.headers.get("www-authenticate", ""), r.text

    server.env.pop("AUTHGATE_TOKEN_SIGNING_ALG")  # the default, RS256, at the next start
    server.restart()
    rs_token = _tokens(server)["access_token"]
    assert _header(rs_token)["alg"] == "RS256"
    assert {(k["alg"], k["kty"]) for k in _jwks(server)} >= {("ES256", "EC"), ("RS256", "RSA")}
    assert _mcp(server, rs_token).status_code == 200
    assert _mcp(server, es_token).status_code == 200  # the retired EC key still verifies its tokens
