"""Proxy mode (issue 15): the caller's own upstream IdP token, for the app behind authgate —
`authgate.upstream_token(ctx)` in library mode, `upstream_token_header` through the gateway —
against the real upstream IdP (oidc-provider 9.13.3, no DCR, authgate's static client; it
rotates every refresh token here, so a refresh token spent twice would end the grant).

Its access tokens live UPSTREAM_TTL seconds, less than the vault's REFRESH_MARGIN: every use
finds the token near expiry and renews it at the IdP, with no sleeping. The IdP counts the
refresh requests it answers (GET /__counts), so "one refresh" is counted where it happens.
The "protected API" the tools call as the person is the IdP's own userinfo endpoint, which
validates the token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from proxy_harness import SECRET_KEY, proxy_gate
from proxy_standins import FakeGitHub
from starlette.types import ASGIApp, Receive, Scope, Send
from test_proxy_refresh import _sign_in

import authgate
from authgate.idp.proxy.vault import REFRESH_MARGIN
from support import requirements as req
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.idp_peers import PROXY_ID, PROXY_SECRET, OidcProvider, no_dcr_upstream
from support.pg import fresh_database
from support.ports import free_port
from support.upstream_app import build_upstream

UPSTREAM_TTL = 30  # < REFRESH_MARGIN: every use renews
HOLD_MS = 1500  # the IdP answers a refresh this much later: concurrent callers overlap it
HEADER = "X-Upstream-Token"  # outside X-Authgate-*: only the setting keeps client copies out
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

assert UPSTREAM_TTL < REFRESH_MARGIN


def _shape(port: int, callback: str, *, hold: bool = False) -> Any:
    return dataclasses.replace(
        no_dcr_upstream(port, callback),
        access_token_ttl=UPSTREAM_TTL,
        rotate_refresh=True,
        refresh_delay_ms=HOLD_MS if hold else 0,
    )


def _refreshes(provider: OidcProvider) -> dict[str, int]:
    return provider.token_counts().get("refresh_token", {"ok": 0, "error": 0})


def _headers(token: str, **more: str) -> dict[str, str]:
    return {**HEADERS, "MCP-Protocol-Version": "2025-06-18", "Authorization": f"Bearer {token}", **more}


def _tool(name: str, n: int = 1, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    given = {"text": str(n)} if name == "echo" and arguments is None else (arguments or {})
    return {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": name, "arguments": given}}


def _call(base: str, token: str, tool: str, arguments: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/mcp", timeout=30.0, headers=_headers(token, **headers), json=_tool(tool, 1, arguments))


def _at_once(urls: list[str], token: str, tool: str) -> Any:
    """One call per URL, all sent at once (one connection each)."""

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=len(urls))) as http:
            posts = [
                http.post(f"{url}/mcp", headers=_headers(token), json=_tool(tool, n)) for n, url in enumerate(urls)
            ]
            return list(await asyncio.gather(*posts))

    return run()


def _text(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result.get("isError") is not True, result
    seen: dict[str, Any] = json.loads(result["content"][0]["text"])
    return seen


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _userinfo_sub(provider: OidcProvider, token: str) -> str | None:
    r = httpx.get(provider.discovery()["userinfo_endpoint"], timeout=10.0, headers={"Authorization": f"Bearer {token}"})
    return r.json().get("sub") if r.status_code == 200 else None


# -- library mode -------------------------------------------------------------------------


def _tools_app(userinfo: str) -> ASGIApp:
    mcp = MCPServer("as-the-user")

    @mcp.tool()
    async def as_upstream_user(ctx: Context) -> str:
        try:
            token = await authgate.upstream_token(ctx)
        except authgate.UpstreamTokenError as exc:
            return json.dumps({"error": type(exc).__name__, "message": str(exc)})
        async with httpx.AsyncClient(timeout=10.0) as http:  # the upstream API, as the person
            r = await http.get(userinfo, headers={"Authorization": f"Bearer {token}"})
        return json.dumps({"status": r.status_code, "sub": r.json().get("sub"), "token": _digest(token)})

    app: ASGIApp = mcp.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return app


@pytest.mark.requirement(req.ISSUE15_UPSTREAM_TOKEN_LIBRARY)
async def test_a_library_tool_calls_the_upstream_api_as_the_caller_with_a_fresh_token(
    tmp_path: Path, idp: Callable[..., OidcProvider]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    provider = idp(_shape(free_port(), f"{base}/upstream/callback", hold=True))
    app = authgate.protect(
        _tools_app(provider.discovery()["userinfo_endpoint"]),
        public_url=base,
        data_dir=tmp_path / "lib",
        auth_mode="proxy",
        idp_preset="oidc",
        idp_issuer=provider.issuer,
        idp_client_id=PROXY_ID,
        idp_client_secret=PROXY_SECRET,
        secret_key=SECRET_KEY,
        token_cache_seconds=0,
    )
    with serve_asgi_in_thread(app, port, lifespan="on"):
        gate: Any = SimpleNamespace(url=base)
        _, alice = await _sign_in(gate, "alice")
        _, bob = await _sign_in(gate, "bob")
        before = _refreshes(provider)

        seen_alice = _text(await asyncio.to_thread(_call, base, alice["access_token"], "as_upstream_user"))
        seen_bob = _text(await asyncio.to_thread(_call, base, bob["access_token"], "as_upstream_user"))
        assert (seen_alice["status"], seen_alice["sub"]) == (200, "alice")  # the IdP's API took it: alice's
        assert (seen_bob["status"], seen_bob["sub"]) == (200, "bob")
        assert seen_alice["token"] != seen_bob["token"]
        # near expiry (TTL < margin): each was renewed at the IdP first, once
        assert _refreshes(provider) == {"ok": before["ok"] + 2, "error": 0}

        # five calls of one person at once, the IdP holding the refresh in flight: one refresh
        seen = [_text(r) for r in await _at_once([base] * 5, alice["access_token"], "as_upstream_user")]
        assert {(s["status"], s["sub"]) for s in seen} == {(200, "alice")}
        assert len({s["token"] for s in seen}) == 1 and seen[0]["token"] != seen_alice["token"]
        assert _refreshes(provider) == {"ok": before["ok"] + 3, "error": 0}

        # the person removes authgate at the IdP: the next renewal is refused, the tool is told
        # why, and alice's authgate grant ends with it (as an authgate refresh would end it)
        stored = _stored(tmp_path / "lib", f"{provider.issuer}|alice")
        r = httpx.post(
            provider.discovery()["revocation_endpoint"],
            timeout=10.0,
            auth=(PROXY_ID, PROXY_SECRET),
            data={"token": stored["refresh_token"], "token_type_hint": "refresh_token"},
        )
        assert r.status_code == 200, r.text
        ended = _text(await asyncio.to_thread(_call, base, alice["access_token"], "as_upstream_user"))
        assert ended["error"] == "UpstreamGrantEnded" and "sign in again" in ended["message"], ended
        assert stored["refresh_token"] not in ended["message"]
        assert _families(tmp_path / "lib") == {"alice": True, "bob": False}
        assert (await asyncio.to_thread(_call, base, alice["access_token"], "as_upstream_user")).status_code == 401

        # the IdP down: retry later, nothing revoked
        provider.stop()
        down = _text(await asyncio.to_thread(_call, base, bob["access_token"], "as_upstream_user"))
        assert down["error"] == "UpstreamTokenUnavailable" and "retry later" in down["message"], down
        assert _families(tmp_path / "lib") == {"alice": True, "bob": False}


def _stored(data_dir: Path, user_id: str) -> dict[str, Any]:
    from authgate.oauth.sealing import derive_key, unseal

    with sqlite3.connect(data_dir / "authgate.db") as conn:
        (blob,) = conn.execute("SELECT sealed_tokens FROM upstream_tokens WHERE user_id = ?", (user_id,)).fetchone()
    opened: dict[str, Any] = json.loads(
        unseal(derive_key(SECRET_KEY.encode(), "upstream-tokens"), blob, user_id.encode())
    )
    return opened


def _families(data_dir: Path) -> dict[str, bool]:
    """Each user's name -> whether their (one) authgate refresh family is revoked."""
    with sqlite3.connect(data_dir / "authgate.db") as conn:
        rows = conn.execute(
            "SELECT u.username, f.revoked_at IS NOT NULL FROM refresh_families f JOIN users u ON u.user_id = f.user_id"
        ).fetchall()
    return {name: bool(revoked) for name, revoked in rows}


@pytest.mark.requirement(req.ISSUE15_UPSTREAM_TOKEN_LIBRARY)
async def test_a_github_oauth_app_token_is_given_as_stored_with_no_call_to_github(tmp_path: Path) -> None:
    """GitHub OAuth apps give no refresh token and no expiry: nothing to renew, nothing asked."""
    client_id, secret = "Iv1.standin", "standin-secret-" + "g" * 24
    github = FakeGitHub(client_id, secret)
    with ExitStack() as stack:
        github.url = api = stack.enter_context(serve_asgi_in_thread(github.app()))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        mcp = MCPServer("as-the-github-user")

        @mcp.tool()
        async def my_login(ctx: Context) -> str:
            token = await authgate.upstream_token(ctx)
            async with httpx.AsyncClient(timeout=10.0) as http:
                r = await http.get(f"{api}/user", headers={"Authorization": f"Bearer {token}"})
            return json.dumps({"status": r.status_code, "login": r.json().get("login")})

        inner = mcp.streamable_http_app(
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        app = authgate.protect(
            inner,
            public_url=base,
            data_dir=tmp_path / "lib",
            auth_mode="proxy",
            idp_preset="github",
            idp_client_id=client_id,
            idp_client_secret=secret,
            idp_authorize_url=f"{api}/login/oauth/authorize",
            idp_token_url=f"{api}/login/oauth/access_token",
            idp_userinfo_url=api,
            secret_key=SECRET_KEY,
        )
        stack.enter_context(serve_asgi_in_thread(app, port, lifespan="on"))
        gate: Any = SimpleNamespace(url=base)
        _, tokens = await _sign_in(gate, "-")
        seen = len(github.requests)
        for _ in range(2):
            r = await asyncio.to_thread(_call, base, tokens["access_token"], "my_login")
            assert _text(r) == {"status": 200, "login": "octocat"}
        assert [path for _, path, _ in github.requests[seen:]] == ["/user", "/user"]  # the tool's calls only


async def test_upstream_token_outside_proxy_mode_says_so(tmp_path: Path) -> None:
    scope = {"type": "http", "authgate.identity": authgate.Identity("sub", "client", ("mcp",), (), 0)}
    with pytest.raises(authgate.NoUpstreamToken, match='auth_mode = "proxy"'):
        await authgate.upstream_token(scope)
    with pytest.raises(authgate.NoUpstreamToken, match="no authenticated caller"):
        await authgate.upstream_token({"type": "http"})


# -- gateway mode -------------------------------------------------------------------------


class _RawHeaders:
    """Every request's header list as it reached the upstream (repeats kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[list[tuple[str, str]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/mcp"):
            self.seen.append([(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]])
        await self.app(scope, receive, send)

    def values(self, name: str) -> list[list[str]]:
        return [[v for k, v in request if k == name.lower()] for request in self.seen]


@pytest.fixture
def upstream() -> Iterator[tuple[str, _RawHeaders]]:
    recorder = _RawHeaders(build_upstream(stateless=True, json_response=True).app)
    with serve_asgi_in_thread(recorder, lifespan="on") as url:
        yield f"{url}/mcp", recorder


def _gateway(workdir: Path, upstream_url: str, **settings: Any) -> AuthgateServer:
    return proxy_gate(
        workdir,
        idp_client_id=PROXY_ID,
        idp_client_secret=PROXY_SECRET,
        idp_preset="oidc",
        upstream=upstream_url,
        token_cache_seconds=0,
        **settings,
    )


@pytest.mark.requirement(req.ISSUE15_UPSTREAM_TOKEN_HEADER)
async def test_the_gateway_sends_the_callers_idp_token_never_the_clients_and_strips_forgeries(
    tmp_path: Path, idp: Callable[..., OidcProvider], upstream: tuple[str, _RawHeaders]
) -> None:
    upstream_url, recorder = upstream
    on = _gateway(tmp_path / "on", upstream_url, upstream_token_header=HEADER)
    provider = idp(_shape(free_port(), f"{on.url}/upstream/callback"))
    on.env["AUTHGATE_IDP_ISSUER"] = provider.issuer
    on.start()
    try:
        _, alice = await _sign_in(on, "alice")
        bearer = alice["access_token"]
        forged = {HEADER: "forged-by-the-client", "X-Authgate-Upstream-Token": "forged-too"}

        r = await asyncio.to_thread(_call, on.url, bearer, "echo", {"text": "hi"}, **forged)
        assert r.status_code == 200, r.text
        [sent] = recorder.values(HEADER)[-1:]
        assert len(sent) == 1 and sent[0] not in (bearer, "forged-by-the-client")  # one: authgate's
        assert _userinfo_sub(provider, sent[0]) == "alice"  # alice's own token at the IdP
        assert recorder.values("X-Authgate-Upstream-Token")[-1] == []
        everything = [v for request in recorder.seen for _, v in request]
        assert not any(bearer in v for v in everything)  # the client's token never reached the upstream
    finally:
        on.stop()


@pytest.mark.requirement(req.ISSUE15_UPSTREAM_TOKEN_HEADER)
async def test_the_gateway_without_the_setting_sends_no_idp_token(
    tmp_path: Path, idp: Callable[..., OidcProvider], upstream: tuple[str, _RawHeaders]
) -> None:
    upstream_url, recorder = upstream
    gate = _gateway(tmp_path / "off", upstream_url)
    provider = idp(_shape(free_port(), f"{gate.url}/upstream/callback"))
    gate.env["AUTHGATE_IDP_ISSUER"] = provider.issuer
    gate.start()
    try:
        _, alice = await _sign_in(gate, "alice")
        before = _refreshes(provider)
        r = await asyncio.to_thread(
            _call, gate.url, alice["access_token"], "echo", {"text": "hi"}, **{"X-Authgate-Upstream-Token": "forged"}
        )
        assert r.status_code == 200, r.text
        names = {k for k, _ in recorder.seen[-1]}
        assert "x-authgate-upstream-token" not in names and "authorization" not in names
        assert _refreshes(provider) == before  # off: the IdP is not even asked
    finally:
        gate.stop()


@pytest.mark.requirement(req.ISSUE15_UPSTREAM_TOKEN_HEADER_REFUSALS)
@pytest.mark.parametrize(
    "env, says",
    [
        ({"AUTHGATE_UPSTREAM": "http://127.0.0.1:9/mcp"}, 'needs auth_mode = "proxy"'),
        ({"AUTHGATE_AUTH_MODE": "proxy", "AUTHGATE_IDP_PRESET": "oidc"}, "needs an HTTP upstream"),
        (
            {
                "AUTHGATE_AUTH_MODE": "proxy",
                "AUTHGATE_IDP_PRESET": "oidc",
                "AUTHGATE_UPSTREAM": "http://127.0.0.1:9/mcp",
            },
            "a header authgate, the client or a proxy sets",
        ),
    ],
)
def test_serve_refuses_the_header_outside_proxy_mode_or_on_a_taken_name(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    name = "Authorization" if "a header authgate" in says else HEADER
    proc = subprocess.run(
        [sys.executable, "-m", "authgate", "serve"],
        env={
            "PATH": "/usr/bin:/bin",
            "AUTHGATE_DATA_DIR": str(tmp_path),
            "AUTHGATE_IDP_ISSUER": "http://127.0.0.1:9",
            "AUTHGATE_IDP_CLIENT_ID": "c",
            "AUTHGATE_IDP_CLIENT_SECRET": "s" * 32,
            "AUTHGATE_UPSTREAM_TOKEN_HEADER": name,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    line = next(line for line in proc.stderr.splitlines() if "upstream_token_header" in line)
    assert says in line and "Traceback" not in proc.stderr, proc.stderr


# -- two replicas on PostgreSQL -------------------------------------------------------------


@pytest.fixture
async def database() -> AsyncIterator[sa.URL]:
    async with fresh_database("authgate_upstream_token") as url:
        yield url


@pytest.mark.postgres
@pytest.mark.requirement(req.ISSUE15_UPSTREAM_TOKEN_ONE_REFRESH_ACROSS_REPLICAS)
async def test_two_replicas_renew_one_persons_token_once_between_them(
    tmp_path: Path, idp: Callable[..., OidcProvider], upstream: tuple[str, _RawHeaders], database: sa.URL
) -> None:
    upstream_url, recorder = upstream
    shared = {"database_url": database.render_as_string(hide_password=False), "upstream_token_header": HEADER}
    first = _gateway(tmp_path / "a", upstream_url, **shared)
    second = _gateway(tmp_path / "b", upstream_url, **shared)
    second.env["AUTHGATE_PUBLIC_URL"] = first.url  # one issuer behind a load balancer
    provider = idp(_shape(free_port(), f"{first.url}/upstream/callback", hold=True))
    with ExitStack() as stack:
        for gate in (first, second):
            gate.env["AUTHGATE_IDP_ISSUER"] = provider.issuer
            gate.start()
            stack.callback(gate.stop)
        _, alice = await _sign_in(first, "alice")
        before = _refreshes(provider)
        seen_before = len(recorder.seen)

        # eight calls at once, half on each replica, all finding the token near expiry
        answers = await _at_once([first.url, second.url] * 4, alice["access_token"], "echo")
        assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers]
        assert _refreshes(provider) == {"ok": before["ok"] + 1, "error": 0}  # counted at the IdP: one
        sent = recorder.values(HEADER)[seen_before:]
        assert len(sent) == 8 and all(len(v) == 1 for v in sent)
        assert len({v[0] for v in sent}) == 1  # every call carried the one renewed token
        assert _userinfo_sub(provider, sent[0][0]) == "alice"  # and the IdP still honours the grant
