"""DPoP (RFC 9449) end to end through a real `authgate serve`: a client holding an EC P-256 key
(joserfc) gets DPoP-bound tokens from the embedded AS and calls /mcp with a proof per request;
each way a proof or a bound token can be misused is refused with the right error and challenge;
server nonces round-trip; `dpop_required` turns Bearer off."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import JWKRegistry, OctKey

from support import headless
from support import requirements as req
from support.authgate_server import AuthgateServer
from support.dpop import DpopKey, b64, claims_of
from support.flow_load import INITIALIZE, MCP_HEADERS, pkce_pair
from support.needs import require_node_files

CALLBACK = "http://127.0.0.1:9/callback"
ENV = {"AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000"}


def _start(tmp: pytest.TempPathFactory, name: str, **env: str) -> AuthgateServer:
    srv = AuthgateServer(tmp.mktemp(name), extra_env={**ENV, **env})
    srv.add_user()
    srv.start()
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    srv = _start(tmp_path_factory, "dpop")
    yield srv
    srv.stop()


def _register(server: AuthgateServer, **metadata: Any) -> str:
    body = {"client_name": "dpop", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none", **metadata}
    r = httpx.post(server.endpoint("register"), json=body, timeout=10)
    assert r.status_code == 201, r.text
    return str(r.json()["client_id"])


def _code(server: AuthgateServer, client_id: str) -> dict[str, str]:
    """A signed-in user's authorization code and its PKCE verifier: the token request's form."""
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
    return {
        "grant_type": "authorization_code",
        "code": answer.code,
        "code_verifier": verifier,
        "redirect_uri": CALLBACK,
        "client_id": client_id,
    }


def _token(server: AuthgateServer, form: dict[str, str], proof: str | None) -> httpx.Response:
    headers = {"DPoP": proof} if proof is not None else {}
    return httpx.post(server.endpoint("token"), data=form, headers=headers, timeout=10)


def _public_tokens(server: AuthgateServer, key: DpopKey) -> dict[str, Any]:
    form = _code(server, _register(server))
    r = _token(server, form, key.proof("POST", server.endpoint("token")))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _machine_token(server: AuthgateServer, key: DpopKey) -> str:
    client_id, secret = server.add_machine_client(f"dpop-{secrets.token_hex(4)}", "mcp")
    form = {"grant_type": "client_credentials", "resource": server.mcp_url}
    r = httpx.post(
        server.endpoint("token"),
        data=form,
        auth=(client_id, secret),
        headers={"DPoP": key.proof("POST", server.endpoint("token"))},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    return str(r.json()["access_token"])


def _mcp(server: AuthgateServer, token: str, proof: str | None, *, scheme: str = "DPoP") -> httpx.Response:
    headers = {**MCP_HEADERS, "Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return httpx.post(server.mcp_url, json=INITIALIZE, headers=headers, timeout=10)


def _refused(r: httpx.Response, error: str, server: AuthgateServer) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"] == error
    challenges = r.headers.get_list("www-authenticate")
    dpop = [c for c in challenges if c.startswith("DPoP ")]
    assert len(dpop) == 1, challenges
    assert f'error="{error}"' in dpop[0] and "algs=" in dpop[0]
    resource_metadata = f'resource_metadata="{server.url}/.well-known/oauth-protected-resource'
    assert all(resource_metadata in c for c in challenges), challenges


@pytest.fixture(scope="module")
def bound(server: AuthgateServer) -> tuple[DpopKey, str]:
    """A machine client's DPoP-bound access token and its key."""
    key = DpopKey()
    return key, _machine_token(server, key)


@pytest.mark.requirement(req.RFC9449_5_DPOP_BOUND_TOKENS)
@pytest.mark.requirement(req.RFC9449_7_RESOURCE_ACCESS)
def test_a_dpop_bound_token_calls_mcp_with_a_proof_per_request(server: AuthgateServer) -> None:
    key = DpopKey()
    body = _public_tokens(server, key)
    assert body["token_type"] == "DPoP"
    token = body["access_token"]
    assert claims_of(token)["cnf"] == {"jkt": key.jkt}
    r = _mcp(server, token, key.proof("POST", server.mcp_url, token=token))
    assert r.status_code == 200, r.text
    # htu normalized (RFC 3986 §6.2.2/§6.2.3: scheme and host case, default-free port, dot
    # segments) and compared without its query (RFC 9449 §4.3)
    odd = server.mcp_url.replace("http://127.0.0.1", "HTTP://127.0.0.1").replace("/mcp", "/x/../mcp") + "?q=1"
    r = _mcp(server, token, key.proof("POST", odd, token=token))
    assert r.status_code == 200, r.text


@pytest.mark.requirement(req.RFC9449_7_RESOURCE_ACCESS)
def test_a_bound_token_without_a_proof_or_as_bearer_is_refused(
    server: AuthgateServer, bound: tuple[DpopKey, str]
) -> None:
    key, token = bound
    _refused(_mcp(server, token, None), "invalid_dpop_proof", server)
    r = _mcp(server, token, None, scheme="Bearer")
    _refused(r, "invalid_token", server)
    assert "DPoP-bound" in r.json()["error_description"]
    # even with a valid proof beside it: Bearer is not DPoP's scheme (RFC 9449 §7.2)
    _refused(
        _mcp(server, token, key.proof("POST", server.mcp_url, token=token), scheme="Bearer"), "invalid_token", server
    )


@pytest.mark.requirement(req.RFC9449_7_RESOURCE_ACCESS)
def test_a_stolen_token_with_the_attackers_own_key_is_refused(
    server: AuthgateServer, bound: tuple[DpopKey, str]
) -> None:
    _, token = bound
    attacker = DpopKey()
    _refused(_mcp(server, token, attacker.proof("POST", server.mcp_url, token=token)), "invalid_dpop_proof", server)


@pytest.mark.requirement(req.RFC9449_7_RESOURCE_ACCESS)
def test_a_proof_for_another_token_is_refused(server: AuthgateServer, bound: tuple[DpopKey, str]) -> None:
    key, token = bound
    _refused(_mcp(server, token, key.proof("POST", server.mcp_url, token=token + "x")), "invalid_dpop_proof", server)


@pytest.mark.requirement(req.RFC9449_4_3_PROOF_CHECKS)
def test_a_proof_for_another_url_or_method_is_refused(server: AuthgateServer, bound: tuple[DpopKey, str]) -> None:
    key, token = bound
    for method, url in (
        ("POST", server.endpoint("token")),
        ("POST", server.url + "/mcp/other"),
        ("GET", server.mcp_url),
    ):
        r = _mcp(server, token, key.proof(method, url, token=token))
        _refused(r, "invalid_dpop_proof", server)
        assert ("htm" if method == "GET" else "htu") in r.json()["error_description"]


@pytest.mark.requirement(req.RFC9449_4_3_PROOF_CHECKS)
def test_a_proof_outside_the_iat_window_is_refused(server: AuthgateServer, bound: tuple[DpopKey, str]) -> None:
    key, token = bound
    for iat in (time.time() - 400, time.time() + 400):  # the window is ±300 s
        r = _mcp(server, token, key.proof("POST", server.mcp_url, token=token, iat=iat))
        _refused(r, "invalid_dpop_proof", server)
        assert "iat" in r.json()["error_description"]


@pytest.mark.requirement(req.RFC9449_4_3_PROOF_CHECKS)
def test_a_replayed_proof_is_refused(server: AuthgateServer, bound: tuple[DpopKey, str]) -> None:
    key, token = bound
    proof = key.proof("POST", server.mcp_url, token=token)
    assert _mcp(server, token, proof).status_code == 200
    r = _mcp(server, token, proof)
    _refused(r, "invalid_dpop_proof", server)
    assert "jti" in r.json()["error_description"]


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


@pytest.mark.requirement(req.RFC9449_4_3_PROOF_CHECKS)
def test_proofs_with_alg_none_a_mac_or_a_private_key_are_refused(
    server: AuthgateServer, bound: tuple[DpopKey, str]
) -> None:
    key, token = bound
    claims = {
        "htm": "POST",
        "htu": server.mcp_url,
        "iat": int(time.time()),
        "ath": b64(hashlib.sha256(token.encode()).digest()),
    }
    public = key.key.as_dict(private=False)
    none = _unsigned({"typ": "dpop+jwt", "alg": "none", "jwk": public}, {**claims, "jti": "n1"})
    oct_key = OctKey.generate_key(256)
    hs256 = jwt.encode(
        {"typ": "dpop+jwt", "alg": "HS256", "jwk": oct_key.as_dict()},
        {**claims, "jti": "h1"},
        oct_key,
        algorithms=["HS256"],
    )
    private = key.proof("POST", server.mcp_url, token=token, jwk=key.key.as_dict(private=True))
    untyped = jwt.encode({"alg": "ES256", "jwk": public}, {**claims, "jti": "t1"}, key.key, algorithms=["ES256"])
    for proof, why in ((none, "alg"), (hs256, "alg"), (private, "public"), (untyped, "typ")):
        r = _mcp(server, token, proof)
        _refused(r, "invalid_dpop_proof", server)
        assert why in r.json()["error_description"]


@pytest.mark.requirement(req.RFC9449_5_DPOP_BOUND_TOKENS)
def test_a_public_clients_refresh_token_is_bound_to_its_key(server: AuthgateServer) -> None:
    key = DpopKey()
    body = _public_tokens(server, key)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": body["refresh_token"],
        "client_id": claims_of(body["access_token"])["client_id"],
    }
    url = server.endpoint("token")
    for proof in (None, DpopKey().proof("POST", url)):  # none, or another key: refused, nothing rotated
        r = _token(server, form, proof)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_grant"
    r = _token(server, form, key.proof("POST", url))
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    assert claims_of(r.json()["access_token"])["cnf"] == {"jkt": key.jkt}


@pytest.mark.requirement(req.RFC9449_5_DPOP_BOUND_TOKENS)
def test_a_client_registered_for_dpop_must_send_a_proof(server: AuthgateServer) -> None:
    form = _code(server, _register(server, dpop_bound_access_tokens=True))
    r = _token(server, form, None)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_dpop_proof"
    bad = _token(server, form, DpopKey().proof("POST", server.mcp_url))  # a proof for another URL
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_dpop_proof", bad.text


@pytest.mark.requirement(req.ISSUE16_DPOP_SETTINGS)
def test_metadata_advertises_dpop_and_a_bearer_token_still_works(server: AuthgateServer) -> None:
    meta = httpx.get(server.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert "ES256" in meta["dpop_signing_alg_values_supported"]
    assert "none" not in meta["dpop_signing_alg_values_supported"]
    prm = httpx.get(server.url + "/.well-known/oauth-protected-resource/mcp", timeout=10).json()
    assert prm["dpop_bound_access_tokens_required"] is False
    token, _ = server.machine_token("mcp", name="dpop-bearer")
    assert _mcp(server, token, None, scheme="Bearer").status_code == 200
    r = _mcp(server, token, DpopKey().proof("POST", server.mcp_url, token=token))  # DPoP scheme, unbound token
    _refused(r, "invalid_token", server)
    r = httpx.post(server.mcp_url, json=INITIALIZE, headers=MCP_HEADERS, timeout=10)  # no token: both schemes
    assert [c.split(" ", 1)[0] for c in r.headers.get_list("www-authenticate")] == ["Bearer", "DPoP"]


@pytest.mark.requirement(req.RFC9449_8_NONCE)
@pytest.mark.requirement(req.ISSUE16_DPOP_SETTINGS)
def test_nonces_round_trip_and_dpop_required_refuses_bearer(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = _start(tmp_path_factory, "dpop-nonce", AUTHGATE_DPOP_REQUIRED="true", AUTHGATE_DPOP_NONCE="true")
    try:
        key = DpopKey()
        form = _code(server, _register(server))
        url = server.endpoint("token")
        r = _token(server, form, None)
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text
        r = _token(server, form, key.proof("POST", url))
        assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce", r.text
        nonce = r.headers["dpop-nonce"]
        r = _token(server, form, key.proof("POST", url, nonce=nonce[::-1]))  # not one authgate made
        assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce", r.text
        assert r.headers["dpop-nonce"] == nonce  # the current one again
        r = _token(server, form, key.proof("POST", url, nonce=nonce))
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        r = _mcp(server, token, key.proof("POST", server.mcp_url, token=token))
        _refused(r, "use_dpop_nonce", server)
        nonce = r.headers["dpop-nonce"]
        assert _mcp(server, token, key.proof("POST", server.mcp_url, token=token, nonce=nonce)).status_code == 200
        prm = httpx.get(server.url + "/.well-known/oauth-protected-resource/mcp", timeout=10).json()
        assert prm["dpop_bound_access_tokens_required"] is True
        r = httpx.post(server.mcp_url, json=INITIALIZE, headers=MCP_HEADERS, timeout=10)
        assert [c.split(" ", 1)[0] for c in r.headers.get_list("www-authenticate")] == ["DPoP"]
    finally:
        server.stop()


@pytest.mark.requirement(req.ISSUE16_DPOP_SETTINGS)
def test_dpop_required_for_one_scope(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = _start(tmp_path_factory, "dpop-scope", AUTHGATE_SCOPES='["mcp", "notes.write"]')
    try:
        client_id, secret = server.add_machine_client("dpop-scoped", "mcp notes.write")
        url = server.endpoint("token")

        def token(scope: str, proof: str | None) -> httpx.Response:
            form = {"grant_type": "client_credentials", "resource": server.mcp_url, "scope": scope}
            headers = {"DPoP": proof} if proof is not None else {}
            return httpx.post(url, data=form, auth=(client_id, secret), headers=headers, timeout=10)

        before = token("mcp notes.write", None).json()["access_token"]  # issued before the setting
        server.env["AUTHGATE_DPOP_REQUIRED_SCOPES"] = '["notes.write"]'
        server.restart()
        r = token("mcp notes.write", None)
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text
        assert "notes.write" in r.json()["error_description"]
        key = DpopKey()
        r = token("mcp notes.write", key.proof("POST", url))
        assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
        plain = token("mcp", None)
        assert plain.status_code == 200 and plain.json()["token_type"] == "Bearer", plain.text
        assert _mcp(server, plain.json()["access_token"], None, scheme="Bearer").status_code == 200
        r = _mcp(server, before, None, scheme="Bearer")  # a Bearer token holding the scope: refused
        _refused(r, "invalid_token", server)
        assert "must be DPoP-bound" in r.json()["error_description"]
    finally:
        server.stop()


NODE_CLIENT = Path(__file__).resolve().parents[1] / "node" / "dpop" / "client.mjs"


@pytest.mark.requirement(req.RFC9449_5_DPOP_BOUND_TOKENS)
@pytest.mark.requirement(req.RFC9449_7_RESOURCE_ACCESS)
def test_oauth4webapi_gets_a_bound_token_calls_mcp_and_refreshes(server: AuthgateServer) -> None:
    """An independent client: npm oauth4webapi makes every proof (issue 16 done-when 1)."""
    require_node_files(NODE_CLIENT, NODE_CLIENT.parents[1] / "node_modules" / "oauth4webapi" / "package.json")
    client_id = _register(server)
    form = _code(server, client_id)
    callback = f"{CALLBACK}?{urlencode({'code': form['code'], 'state': 's', 'iss': server.issuer})}"
    args = [server.issuer, client_id, CALLBACK, callback, form["code_verifier"], "s", server.mcp_url]
    done = subprocess.run(["node", str(NODE_CLIENT), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    jkt = str(JWKRegistry.import_key(got["jwk"]).thumbprint())
    assert got["token_type"].lower() == "dpop" and got["refreshed_token_type"].lower() == "dpop"
    assert claims_of(got["access_token"])["cnf"] == {"jkt": jkt}
    assert claims_of(got["refreshed_access_token"])["cnf"] == {"jkt": jkt}
    assert got["first_call"] == 200 and got["second_call"] == 200, got
    # the token and the refresh token, stolen, are useless without the client's key
    thief = DpopKey()
    token = got["refreshed_access_token"]
    _refused(_mcp(server, token, thief.proof("POST", server.mcp_url, token=token)), "invalid_dpop_proof", server)
    _refused(_mcp(server, token, None, scheme="Bearer"), "invalid_token", server)
    refresh = {"grant_type": "refresh_token", "refresh_token": got["refresh_token"], "client_id": client_id}
    r = _token(server, refresh, thief.proof("POST", server.endpoint("token")))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


@pytest.mark.requirement(req.RFC9449_8_NONCE)
def test_browsers_may_send_a_proof_and_read_the_nonce(server: AuthgateServer) -> None:
    """CORS (RFC 9449 §8, §9 through a browser): the preflights of /mcp and /token allow the
    `DPoP` request header, and their answers expose `DPoP-Nonce` to the page's script."""
    origin = "http://localhost:6274"
    for url in (server.mcp_url, server.endpoint("token")):
        preflight = httpx.options(
            url,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, dpop",
            },
            timeout=10,
        )
        assert preflight.status_code == 200, (url, preflight.text)
        assert "dpop" in preflight.headers["access-control-allow-headers"].lower(), url
    token = httpx.post(server.endpoint("token"), data={"grant_type": "x"}, headers={"Origin": origin}, timeout=10)
    for answer in (httpx.post(server.mcp_url, headers={**MCP_HEADERS, "Origin": origin}, json={}, timeout=10), token):
        exposed = {h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")}
        assert "dpop-nonce" in exposed, answer.headers
