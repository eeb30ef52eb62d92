"""What authgate refuses in external mode, against the real IdP (oidc-provider, Keycloak-like).

Tokens come from the IdP itself where it can make them wrong (another `resource`, an ID token);
where only one claim must be wrong (issuer, expiry, an unpublished key) they are signed with
the IdP's own private key, which the test generated and handed to it.

The Keycloak-like shape (`support.idp_peers.keycloak_like`) is the fast path, without Java: it
stands in for Keycloak's issuer path, endpoint paths and DCR endpoint only — it honours `resource`
instead of an audience mapper, has no registration policies or client scopes, and types its tokens
`at+jwt`. The same things against a real Keycloak: tests/idp/keycloak/test_external_keycloak.py
and test_seed_003_keycloak.py (another audience, `aud: account`, another issuer spelling,
Keycloak's own ID token).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from support import requirements as req
from support.external_gate import ExternalAuthgate
from support.idp_peers import (
    RS_ID,
    RS_SECRET,
    WEBAPP_ID,
    OidcProvider,
    keycloak_like,
    signing_key,
    webapp_tokens,
)
from support.ports import free_port

POLL_TIMEOUT = 10.0


def mcp_post(gate: ExternalAuthgate, token: str | None) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "refusals", "version": "0"},
        },
    }
    return httpx.post(gate.mcp_url, headers=headers, json=body, timeout=10.0)


def assert_refused(response: httpx.Response, words: str) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert "resource_metadata=" in challenge
    assert words in response.json()["error_description"], response.json()


@pytest.fixture
def keycloak_idp(idp: Callable[..., OidcProvider], mcp_port: int) -> OidcProvider:
    return idp(keycloak_like(free_port(), f"http://127.0.0.1:{mcp_port}/mcp"))


def valid_claims(provider: OidcProvider, audience: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "sub": "alice",
        "aud": audience,
        "client_id": "some-client",
        "scope": "mcp",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_hex(8),
    }
    claims.update(changes)
    return claims


@pytest.mark.requirement(req.RFC9068_4_AUD)
def test_a_token_from_the_idp_is_accepted_and_one_for_another_resource_is_not(
    keycloak_idp: OidcProvider,
    external_authgate: Callable[..., ExternalAuthgate],
) -> None:
    gate = external_authgate(issuer=keycloak_idp.issuer)
    assert mcp_post(gate, keycloak_idp.client_credentials(gate.mcp_url)["access_token"]).status_code == 200
    other = keycloak_idp.client_credentials("http://127.0.0.1:9/other-mcp")["access_token"]
    assert_refused(mcp_post(gate, other), "none of this resource's audiences")
    assert_refused(mcp_post(gate, "not-a-token"), "not a JWT")


@pytest.mark.requirement(req.RFC9068_4_ISS)
@pytest.mark.requirement(req.RFC9068_4_EXP)
def test_wrong_issuer_and_expired_tokens_are_refused(
    keycloak_idp: OidcProvider,
    external_authgate: Callable[..., ExternalAuthgate],
) -> None:
    gate = external_authgate(issuer=keycloak_idp.issuer)
    assert mcp_post(gate, keycloak_idp.forge(valid_claims(keycloak_idp, gate.mcp_url))).status_code == 200
    other_issuer = keycloak_idp.forge(valid_claims(keycloak_idp, gate.mcp_url, iss=keycloak_idp.issuer + "-other"))
    assert_refused(mcp_post(gate, other_issuer), "issuer")
    slash = keycloak_idp.forge(valid_claims(keycloak_idp, gate.mcp_url, iss=keycloak_idp.issuer + "/"))
    assert_refused(mcp_post(gate, slash), "issuer")  # exact: a trailing slash is another issuer
    past = int(time.time()) - 3600
    expired = keycloak_idp.forge(valid_claims(keycloak_idp, gate.mcp_url, iat=past - 300, nbf=past - 300, exp=past))
    assert_refused(mcp_post(gate, expired), "expired")
    future = int(time.time()) + 3600
    early = keycloak_idp.forge(valid_claims(keycloak_idp, gate.mcp_url, nbf=future, exp=future + 300))
    assert_refused(mcp_post(gate, early), "not valid yet")


@pytest.mark.requirement(req.RFC8725_3_1_ALGORITHM_PINNED)
def test_unsigned_symmetric_and_unlisted_algorithms_are_refused(
    keycloak_idp: OidcProvider,
    external_authgate: Callable[..., ExternalAuthgate],
) -> None:
    gate = external_authgate(issuer=keycloak_idp.issuer, jwt_algorithms=["RS256"])
    claims = valid_claims(keycloak_idp, gate.mcp_url)

    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    unsigned = f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{b64(claims)}."
    assert_refused(mcp_post(gate, unsigned), "algorithm 'none'")
    hs = f"{b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': 'k1'})}.{b64(claims)}.c2ln"
    assert_refused(mcp_post(gate, hs), "algorithm 'HS256'")
    ps = f"{b64({'alg': 'PS256', 'typ': 'at+jwt', 'kid': 'k1'})}.{b64(claims)}.c2ln"
    assert_refused(mcp_post(gate, ps), "algorithm 'PS256'")  # not on this jwt_algorithms list
    tampered = keycloak_idp.forge(claims).rsplit(".", 1)[0] + ".c2lnbmF0dXJl"
    assert_refused(mcp_post(gate, tampered), "signature")


@pytest.mark.requirement(req.RFC9068_2_1_TYP_AT_JWT)
@pytest.mark.requirement(req.OIDC_CORE_2_ID_TOKEN_NOT_ACCESS_TOKEN)
@pytest.mark.parametrize("profile, reason", [("generic", "typ must be at+jwt"), ("keycloak", "ID token")])
def test_an_id_token_presented_as_an_access_token_is_refused(
    keycloak_idp: OidcProvider,
    external_authgate: Callable[..., ExternalAuthgate],
    mcp_port: int,
    profile: str,
    reason: str,
) -> None:
    # The client id is an accepted audience too (seed 003's legacy audience): the ID token, whose
    # `aud` is that client id, gets past the audience check and must be refused for what it is.
    gate = external_authgate(
        issuer=keycloak_idp.issuer, idp_profile=profile, audiences=[f"http://127.0.0.1:{mcp_port}/mcp", WEBAPP_ID]
    )
    tokens = webapp_tokens(keycloak_idp, gate.mcp_url, scope="openid mcp", nonce=True)  # with an ID token
    assert mcp_post(gate, tokens["access_token"]).status_code == 200
    assert_refused(mcp_post(gate, tokens["id_token"]), reason)
    # Without the RFC 9068 typ check, the ID-token-only claims still give it away.
    forged = keycloak_idp.forge(valid_claims(keycloak_idp, gate.mcp_url, at_hash="abc"), typ="JWT")
    assert_refused(mcp_post(gate, forged), "typ must be at+jwt" if profile == "generic" else "ID token")


def poll_status(gate: ExternalAuthgate, token: str, status: int) -> httpx.Response:
    deadline = time.monotonic() + POLL_TIMEOUT
    while True:
        response = mcp_post(gate, token)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.25)


@pytest.mark.requirement(req.RFC7517_4_5_KID_REFETCH)
def test_a_token_signed_by_an_unpublished_key_is_refused_until_the_idp_publishes_it(
    keycloak_idp: OidcProvider,
    external_authgate: Callable[..., ExternalAuthgate],
) -> None:
    gate = external_authgate(issuer=keycloak_idp.issuer, jwks_refetch_seconds=1)
    assert mcp_post(gate, keycloak_idp.client_credentials(gate.mcp_url)["access_token"]).status_code == 200
    new_key = signing_key("k2")
    rotated = keycloak_idp.forge(valid_claims(keycloak_idp, gate.mcp_url), key=new_key)
    assert_refused(mcp_post(gate, rotated), "does not publish")
    keycloak_idp.restart(keys=[new_key, *keycloak_idp.keys])  # the IdP rotates: k2 signs, k1 still published
    assert poll_status(gate, rotated, 200).status_code == 200
    fresh = keycloak_idp.client_credentials(gate.mcp_url)["access_token"]
    assert mcp_post(gate, fresh).status_code == 200


@pytest.mark.requirement(req.AUTHGATE_CACHED_KEYS_OUTLIVE_IDP)
def test_idp_down_with_keys_cached_still_accepts_tokens(
    keycloak_idp: OidcProvider,
    external_authgate: Callable[..., ExternalAuthgate],
) -> None:
    gate = external_authgate(issuer=keycloak_idp.issuer, jwks_refetch_seconds=1)
    first, second = (keycloak_idp.client_credentials(gate.mcp_url)["access_token"] for _ in range(2))
    assert mcp_post(gate, first).status_code == 200  # keys fetched and cached
    keycloak_idp.stop()
    assert mcp_post(gate, second).status_code == 200  # a token never seen, verified with the cached key
    with httpx.Client(timeout=10.0) as http:
        assert http.get(gate.url + "/health/ready").json()["status"] == "ready"
    unknown = keycloak_idp.forge(valid_claims(keycloak_idp, gate.mcp_url), key=signing_key("k9"))
    time.sleep(1.1)  # past the refetch interval: authgate tries the IdP and cannot reach it
    down = mcp_post(gate, unknown)
    assert down.status_code == 503 and "www-authenticate" not in down.headers


@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_NO_SIGN_IN_LOOP)
def test_idp_down_and_no_key_cached_answers_503_with_retry_after_and_no_challenge(
    keycloak_idp: OidcProvider,
    external_authgate: Callable[..., ExternalAuthgate],
    mcp_port: int,
) -> None:
    token = keycloak_idp.client_credentials(f"http://127.0.0.1:{mcp_port}/mcp")
    keycloak_idp.stop()
    gate = external_authgate(issuer=keycloak_idp.issuer)
    response = mcp_post(gate, token["access_token"])
    assert response.status_code == 503, response.text
    assert "www-authenticate" not in response.headers
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"] == "temporarily_unavailable"
    no_token = mcp_post(gate, None)  # discovery still starts from a 401 challenge
    assert no_token.status_code == 401 and "resource_metadata=" in no_token.headers["www-authenticate"]
    with httpx.Client(timeout=10.0) as http:
        ready = http.get(gate.url + "/health/ready")
    assert ready.status_code == 503 and "retry-after" in ready.headers


@pytest.mark.requirement(req.RFC7662_2_INTROSPECTION)
def test_opaque_tokens_are_checked_by_introspection(
    idp: Callable[..., OidcProvider],
    external_authgate: Callable[..., ExternalAuthgate],
    mcp_port: int,
) -> None:
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    shape = keycloak_like(free_port(), mcp_url)
    shape.opaque_resources = [mcp_url, "http://127.0.0.1:9/other-mcp"]
    provider = idp(shape)
    gate = external_authgate(
        issuer=provider.issuer,
        introspection_endpoint=provider.discovery()["introspection_endpoint"],
        introspection_client_id=RS_ID,
        introspection_client_secret=RS_SECRET,
    )
    token = provider.client_credentials(mcp_url)["access_token"]
    assert token.count(".") == 0  # opaque
    assert mcp_post(gate, token).status_code == 200
    assert_refused(
        mcp_post(gate, provider.client_credentials("http://127.0.0.1:9/other-mcp")["access_token"]),
        "none of this resource's audiences",
    )
    assert_refused(mcp_post(gate, "opaque-but-unknown"), "not active")
    provider.stop()
    assert mcp_post(gate, token).status_code == 200  # answered from the short cache
    down = mcp_post(gate, secrets.token_urlsafe(32))
    assert down.status_code == 503 and "www-authenticate" not in down.headers
