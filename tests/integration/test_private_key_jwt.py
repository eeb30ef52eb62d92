"""`private_key_jwt` client authentication (RFC 7523 §2.2, draft-ietf-oauth-rfc7523bis-11)
against a real `authgate serve`: clients registered by DCR with `jwks` or `jwks_uri`, and a CIMD
client whose document declares the method with a `jwks_uri`, as ChatGPT's does. Keys and
assertions are made with joserfc; the jwks_uri and CIMD documents are served on loopback
(`cimd_allow_loopback_http`, testing only). Every refusal is `invalid_client`."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from support import requirements as req
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.flow_load import signed_in_code

CALLBACK = "http://127.0.0.1:9/callback"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ENV = {"AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000", "AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP": "true"}


class KeyHost:
    """A loopback site serving JWK Sets (`/jwks/NAME`) and a CIMD document (`/cimd/NAME.json`)."""

    def __init__(self) -> None:
        self.base = ""
        self.jwks: dict[str, dict[str, Any]] = {}
        self.documents: dict[str, dict[str, Any]] = {}
        self.fetches: list[str] = []

    def app(self) -> Starlette:
        async def jwks(request: Request) -> JSONResponse:
            self.fetches.append(request.url.path)
            return JSONResponse(self.jwks[request.path_params["name"]], headers={"Cache-Control": "max-age=60"})

        async def document(request: Request) -> JSONResponse:
            return JSONResponse(self.documents[request.path_params["name"]])

        return Starlette(routes=[Route("/jwks/{name}", jwks), Route("/cimd/{name}.json", document)])


@pytest.fixture(scope="module")
def host() -> Iterator[KeyHost]:
    keys = KeyHost()
    with serve_asgi_in_thread(keys.app()) as base:
        keys.base = base
        yield keys


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    srv = AuthgateServer(tmp_path_factory.mktemp("pkjwt"), extra_env=ENV)
    srv.add_user()
    srv.start()
    yield srv
    srv.stop()


def _ec(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid})


def _public(*keys: Any) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def assertion(key: Any, client_id: str, aud: Any, **overrides: Any) -> str:
    """A client assertion signed by `key`; `overrides` replace claims (None removes one) or,
    prefixed `h_`, header members."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "exp": now + 60,
        "iat": now,
        "jti": secrets.token_urlsafe(12),
    }
    header: dict[str, Any] = {"alg": "ES256" if isinstance(key, ECKey) else "RS256"}
    if key.kid:
        header["kid"] = key.kid
    for name, value in overrides.items():
        target, name = (header, name[2:]) if name.startswith("h_") else (claims, name)
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return jwt.encode(header, claims, key, algorithms=[header["alg"]])


def _register(server: AuthgateServer, **metadata: Any) -> str:
    body = {"client_name": "keyed", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "private_key_jwt"}
    r = httpx.post(server.endpoint("register"), json={**body, **metadata}, timeout=10)
    assert r.status_code == 201, r.text
    assert "client_secret" not in r.json()
    return str(r.json()["client_id"])


def _code(server: AuthgateServer, client_id: str) -> tuple[str, str]:
    return signed_in_code(server, client_id, CALLBACK)


def _token(server: AuthgateServer, form: dict[str, str], signed: str | None = None) -> httpx.Response:
    if signed is not None:
        form = {**form, "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
    return httpx.post(server.endpoint("token"), data=form, timeout=15)


def _signed_in(server: AuthgateServer, client_id: str, key: Any) -> dict[str, Any]:
    code, verifier = _code(server, client_id)
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": CALLBACK}
    r = _token(server, {**form, "client_id": client_id}, assertion(key, client_id, server.issuer))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _refused(r: httpx.Response, why: str = "") -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client", r.text
    assert why in r.json().get("error_description", ""), r.text


@pytest.mark.requirement(req.RFC8414_2_AUTH_SIGNING_ALGS)
def test_metadata_advertises_private_key_jwt_and_asymmetric_algorithms(server: AuthgateServer) -> None:
    meta = httpx.get(f"{server.url}/.well-known/oauth-authorization-server", timeout=10).json()
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    algs = meta["token_endpoint_auth_signing_alg_values_supported"]
    assert "RS256" in algs and "ES256" in algs
    assert not [a for a in algs if a == "none" or a.startswith("HS")]


@pytest.mark.requirement(req.RFC7523_2_2_PRIVATE_KEY_JWT)
@pytest.mark.requirement(req.RFC7523_3_AUDIENCE_ISSUER)
@pytest.mark.requirement(req.RFC7523_3_EXP_BOUNDED)
@pytest.mark.requirement(req.RFC7523_3_JTI_SINGLE_USE)
@pytest.mark.requirement(req.RFC7523_3_SIGNATURE_BY_CLIENT_KEY)
@pytest.mark.requirement(req.RFC8725_3_1_ALGORITHM_PINNED)
def test_a_client_with_registered_jwks_authenticates_and_every_bad_assertion_is_refused(
    server: AuthgateServer,
) -> None:
    key, other_key = _ec("k1"), _ec("k2")
    client_id = _register(server, jwks=_public(key))
    other_id = _register(server, jwks=_public(other_key))
    tokens = _signed_in(server, client_id, key)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
    iss = server.issuer

    _refused(_token(server, refresh), "send a client_assertion")  # anonymous: no assertion at all
    _refused(_token(server, refresh, assertion(other_key, other_id, iss)), "iss and sub")  # another client's
    _refused(_token(server, refresh, assertion(other_key, client_id, iss)), "kid")  # its key, claiming to be us
    forged = assertion(_ec("k1"), client_id, iss)  # our kid, a stranger's key
    _refused(_token(server, refresh, forged), "signature")
    _refused(_token(server, {**refresh, "client_id": other_id}, assertion(key, client_id, iss)), "iss and sub")
    used = assertion(key, client_id, iss)
    good = _token(server, refresh, used)
    assert good.status_code == 200, good.text
    refresh["refresh_token"] = good.json()["refresh_token"]
    _refused(_token(server, refresh, used), "already used")  # replayed jti
    now = int(time.time())
    _refused(_token(server, refresh, assertion(key, client_id, iss, exp=now - 120, iat=now - 180)), "expired")
    _refused(_token(server, refresh, assertion(key, client_id, iss, exp=None)), "exp")
    _refused(_token(server, refresh, assertion(key, client_id, iss, exp=now + 3600)), "ahead")
    _refused(_token(server, refresh, assertion(key, client_id, iss, jti=None)), "jti")
    _refused(_token(server, refresh, assertion(key, client_id, server.endpoint("token"))), "aud")  # legacy off
    _refused(_token(server, refresh, assertion(key, client_id, [iss, server.endpoint("token")])), "aud")
    _refused(_token(server, refresh, assertion(key, client_id, "https://elsewhere.example")), "aud")
    _refused(_token(server, refresh, assertion(key, client_id, iss, h_kid="unknown")), "kid")
    _refused(_token(server, refresh, assertion(key, client_id, iss, h_typ="at+jwt")), "typ")
    # alg none: the unsigned JWT a careless verifier would take
    _, body, _ = assertion(key, client_id, iss).split(".")
    none_header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "k1"}).encode()).rstrip(b"=").decode()
    _refused(_token(server, refresh, f"{none_header}.{body}."), "alg")
    # HS256 keyed with the client's public key (the algorithm-confusion attack)
    public_as_secret = OctKey.import_key(json.dumps(key.as_dict(private=False)).encode())
    confused = jwt.encode(
        {"alg": "HS256", "kid": "k1"},
        {"iss": client_id, "sub": client_id, "aud": iss, "exp": now + 60, "jti": "hs"},
        public_as_secret,
        algorithms=["HS256"],
    )
    _refused(_token(server, refresh, confused), "alg")
    # mixing methods, or a wrong assertion type
    mixed = {**refresh, "client_secret": "x"}
    r = _token(server, mixed, assertion(key, client_id, iss))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = httpx.post(
        server.endpoint("token"),
        data={**refresh, "client_assertion_type": "urn:other", "client_assertion": assertion(key, client_id, iss)},
        timeout=10,
    )
    _refused(r, "client_assertion_type")
    # a sole-member array audience is the issuer as its sole value (rfc7523bis): accepted
    last = _token(server, refresh, assertion(key, client_id, [iss]))
    assert last.status_code == 200, last.text
    # no client_id in the form: the assertion's iss names the client
    form = {"grant_type": "refresh_token", "refresh_token": last.json()["refresh_token"]}
    assert _token(server, form, assertion(key, client_id, iss)).status_code == 200
    assert tokens["refresh_token"] not in server.logs()


@pytest.mark.requirement(req.RFC7523_3_AUDIENCE_ISSUER)
def test_the_token_endpoint_audience_only_with_the_legacy_setting(
    authgate_factory: Any,
) -> None:
    server = authgate_factory(AUTHGATE_CLIENT_ASSERTION_TOKEN_ENDPOINT_AUDIENCE="true", **ENV)
    key = _ec("k1")
    client_id = _register(server, jwks=_public(key))
    tokens = _signed_in(server, client_id, key)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
    r = _token(server, refresh, assertion(key, client_id, server.endpoint("token")))
    assert r.status_code == 200, r.text
    refresh["refresh_token"] = r.json()["refresh_token"]
    _refused(_token(server, refresh, assertion(key, client_id, [server.issuer, server.endpoint("token")])), "aud")


@pytest.mark.requirement(req.RFC7523_2_2_PRIVATE_KEY_JWT)
@pytest.mark.requirement(req.ISSUE16_JWKS_URI_THROUGH_SSRF_GUARD)
def test_keys_by_jwks_uri_are_fetched_and_a_rotated_key_is_picked_up(server: AuthgateServer, host: KeyHost) -> None:
    old, new = _ec("old"), RSAKey.generate_key(2048, parameters={"kid": "new"})
    host.jwks["rotating"] = _public(old)
    client_id = _register(server, jwks_uri=f"{host.base}/jwks/rotating")
    tokens = _signed_in(server, client_id, old)
    host.jwks["rotating"] = _public(old, new)  # the client rotates: authgate still has the old set cached
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
    # an unknown kid refetches the set, at most every REFETCH_AFTER (10 s): poll, bounded
    deadline = time.monotonic() + 30
    while (r := _token(server, refresh, assertion(new, client_id, server.issuer))).status_code != 200:
        _refused(r, "kid")
        assert time.monotonic() < deadline, "the rotated key was never picked up"
        time.sleep(1)
    assert host.fetches.count("/jwks/rotating") == 2  # one fetch, then one refetch for the new kid


@pytest.mark.requirement(req.ISSUE16_JWKS_URI_THROUGH_SSRF_GUARD)
def test_a_jwks_uri_on_a_private_address_is_never_fetched(server: AuthgateServer) -> None:
    key = _ec("k1")
    for uri in ("https://10.0.0.1/jwks.json", "https://169.254.169.254/latest/jwks", "http://192.168.1.1/jwks"):
        client_id = _register(server, jwks_uri=uri)
        code, verifier = _code(server, client_id)
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": CALLBACK}
        r = _token(server, {**form, "client_id": client_id}, assertion(key, client_id, server.issuer))
        _refused(r, "jwks_uri could not be fetched")
        assert uri.split("/")[2] not in r.text  # the network detail is logged, not told
    assert "is private" in server.logs_once("is private") or "link-local" in server.logs()


def test_registration_refuses_unusable_key_metadata(server: AuthgateServer) -> None:
    key = _ec("k1")
    private = {"keys": [key.as_dict(private=True)]}
    symmetric = {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}
    for body in (
        {},  # neither jwks nor jwks_uri
        {"jwks": _public(key), "jwks_uri": "https://app.example/jwks"},  # both
        {"jwks": private},
        {"jwks": symmetric},
        {"jwks": {"keys": []}},
        {"jwks_uri": "ftp://app.example/jwks"},
        {"jwks_uri": "https://user@app.example/jwks"},
        {"jwks": _public(key), "token_endpoint_auth_signing_alg": "HS256"},
    ):
        base = {"client_name": "bad", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "private_key_jwt"}
        r = httpx.post(server.endpoint("register"), json={**base, **body}, timeout=10)
        assert r.status_code == 400 and r.json()["error"] == "invalid_client_metadata", (body, r.text)


@pytest.mark.requirement(req.ISSUE16_CIMD_PRIVATE_KEY_JWT)
def test_a_cimd_client_declaring_private_key_jwt_with_a_jwks_uri_authenticates(
    server: AuthgateServer, host: KeyHost
) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "cimd-1"})
    client_id = f"{host.base}/cimd/chatgpt-like.json"
    host.jwks["cimd"] = _public(key)
    host.documents["chatgpt-like"] = {  # the shape of ChatGPT's document (doctor/data/chatgpt-client.json)
        "client_id": client_id,
        "client_name": "ChatGPT-like",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg": "RS256",
        "jwks_uri": f"{host.base}/jwks/cimd",
    }
    tokens = _signed_in(server, client_id, key)
    assert tokens["access_token"]
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
    _refused(_token(server, refresh, assertion(_ec("cimd-1"), client_id, server.issuer)), "RS256")


@pytest.mark.requirement(req.ISSUE16_OPERATOR_CLIENT_WITH_KEYS)
def test_an_operator_made_client_with_keys_gets_tokens_by_private_key_jwt_and_has_no_secret(
    server: AuthgateServer, tmp_path: Any
) -> None:
    key = _ec("ops-1")
    jwks_file = tmp_path / "backup.jwks.json"
    jwks_file.write_text(json.dumps(_public(key)))
    done = server.cli("clients", "add", "keyed-backup", "--grant", "client_credentials", "--scopes", "mcp",
                      "--jwks", str(jwks_file))  # fmt: skip
    assert done.returncode == 0, done.stderr
    fields = dict(line.split("\t", 1) for line in done.stdout.splitlines())
    assert list(fields) == ["client_id"], done.stdout  # no secret exists, none is printed
    assert "private_key_jwt" in done.stderr
    client_id = fields["client_id"]
    shown = json.loads(server.cli("clients", "show", client_id, "--json").stdout)
    assert shown["token_endpoint_auth_method"] == "private_key_jwt" and shown["registration"] == "operator"

    form = {"grant_type": "client_credentials", "client_id": client_id, "resource": server.mcp_url}
    r = _token(server, form, assertion(key, client_id, server.issuer))
    assert r.status_code == 200, r.text
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    headers = {"Authorization": f"Bearer {r.json()['access_token']}", "Accept": "application/json, text/event-stream"}
    answered = httpx.post(server.mcp_url, json=init, headers=headers, timeout=30)
    assert answered.status_code == 200 and "serverInfo" in answered.text, answered.text
    _refused(_token(server, form))  # no assertion: a keyed client has no secret to fall back on
    _refused(_token(server, {**form, "client_secret": "anything"}))
    _refused(_token(server, form, assertion(_ec("ops-1"), client_id, server.issuer)), "signature")

    private = tmp_path / "private.jwks.json"  # a private key is refused, with the flag and the fix
    private.write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
    for bad in (["--jwks", str(private)], ["--jwks", str(tmp_path / "missing.json")], ["--jwks-uri", "ftp://x"]):
        refused = server.cli("clients", "add", "bad", "--grant", "client_credentials", "--scopes", "mcp", *bad)
        assert refused.returncode == 2 and bad[0] in refused.stderr and "Traceback" not in refused.stderr, refused
