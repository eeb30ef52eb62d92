"""End to end over a real socket with the official MCP Python SDK client (`mcp` 2.3.0).

authgate runs as a subprocess (see conftest.py). The SDK's `OAuthClientProvider` discovers
the protected resource and the authorization server, registers (DCR) or presents a client ID
metadata document (CIMD), and hands the authorization URL to `redirect_handler`, where the
headless user agent (headless.py) signs alice in and consents; `callback_handler` returns
the code, state and RFC 9207 `iss` it captured. The client then lists tools and calls
`whoami`, in both protocol eras:

* legacy — `Client(..., mode="legacy")`: `initialize` handshake at 2025-11-25, sessions;
* 2026-07-28 — `Client(..., mode="auto")`: probes `server/discover` at 2026-07-28 and adopts
  it (stateless); asserting the negotiated version proves the probe did not fall back.

The restart tests SIGKILL authgate right after a state-changing response (registration,
refresh rotation) and check that what the client was told survived.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from mcp_types import CallToolResult, TextContent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from support import requirements as req
from support.headless import AuthorizationResponse, HeadlessUserAgent
from support.sdk_oauth import MemoryTokenStorage

if TYPE_CHECKING:
    from collections.abc import Callable

    from support.authgate_server import AuthgateServer

# Never listened on: the user agent stops at the redirect and does not follow it.
REDIRECT_URI = "http://127.0.0.1:38971/oauth/callback"
FLOW_TIMEOUT = 60.0

# test id -> (Client mode, protocol version the connection must end up on)
MODES = {
    "legacy": ("legacy", "2025-11-25"),
    "2026-07-28": ("auto", "2026-07-28"),
}
AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")


# -- SDK plumbing ---------------------------------------------------------------------------


@dataclass
class Exchange:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WireLog:
    """Every request the SDK's HTTP client sent (auth-flow requests included), with its status."""

    exchanges: list[Exchange] = field(default_factory=list)

    async def on_response(self, response: httpx2.Response) -> None:
        request = response.request
        try:
            body = bytes(request.content)
        except Exception:  # a streamed body: not one we inspect
            body = b""
        self.exchanges.append(
            Exchange(
                request.method,
                str(request.url),
                {k.lower(): v for k, v in request.headers.items()},
                body,
                response.status_code,
            )
        )

    def to(self, path: str, method: str = "POST") -> list[Exchange]:
        return [e for e in self.exchanges if e.path == path and e.method == method]

    def mcp_methods(self, mcp_path: str = "/mcp") -> list[str]:
        methods = []
        for e in self.to(mcp_path):
            try:
                msg = e.json()
            except ValueError:
                continue
            if isinstance(msg, dict) and "method" in msg:
                methods.append(msg["method"])
        return methods


@dataclass
class BrowserHooks:
    """`redirect_handler` / `callback_handler` for `OAuthClientProvider`, driven headlessly."""

    server: AuthgateServer
    agent: HeadlessUserAgent = field(default_factory=HeadlessUserAgent)
    authorization_urls: list[str] = field(default_factory=list)
    responses: list[AuthorizationResponse] = field(default_factory=list)

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        self.responses.append(
            await self.agent.authorize_async(authorization_url, self.server.username, self.server.password)
        )

    async def callback_handler(self) -> AuthorizationCodeResult:
        response = self.responses[-1]
        assert response.code, f"authorization failed: {response.location}"
        return AuthorizationCodeResult(code=response.code, state=response.state, iss=response.iss)


async def _refuse_redirect(url: str) -> None:
    raise AssertionError(f"the client started a new authorization ({url}) instead of using its token")


async def _refuse_callback() -> AuthorizationCodeResult:
    raise AssertionError("unexpected authorization callback")


@dataclass
class McpOutcome:
    protocol_version: str
    tool_names: list[str]
    whoami: dict[str, Any]


def _whoami_payload(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, f"whoami failed: {result.content}"
    if isinstance(result.structured_content, dict) and "username" in result.structured_content:
        return result.structured_content
    texts = [c.text for c in result.content if isinstance(c, TextContent)]
    assert texts, f"whoami returned no text: {result.content}"
    payload = json.loads(texts[0])
    assert isinstance(payload, dict)
    return payload


async def connect_and_whoami(
    server: AuthgateServer, provider: OAuthClientProvider, mode: str, wire: WireLog | None = None
) -> McpOutcome:
    """Connect with the SDK `Client`, list tools and call `whoami`; bounded."""
    wire = wire or WireLog()
    async with httpx2.AsyncClient(
        auth=provider, timeout=httpx2.Timeout(30.0), event_hooks={"response": [wire.on_response]}
    ) as http:
        with anyio.fail_after(FLOW_TIMEOUT):
            transport = streamable_http_client(server.mcp_url, http_client=http)
            async with Client(transport, mode=mode) as client:
                tools = await client.list_tools()
                result = await client.call_tool("whoami", {})
                return McpOutcome(client.protocol_version, [t.name for t in tools.tools], _whoami_payload(result))


def _scopes(value: Any) -> set[str]:
    return set(value.split()) if isinstance(value, str) else set(value or ())


def _client_metadata(auth_method: str, name: str) -> OAuthClientMetadata:
    return OAuthClientMetadata(
        client_name=name,
        redirect_uris=[REDIRECT_URI],  # type: ignore[list-item]
        token_endpoint_auth_method=auth_method,  # type: ignore[arg-type]
        grant_types=["authorization_code", "refresh_token"],
    )


async def _as_metadata(server: AuthgateServer) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        r = await http.get(f"{server.url}/.well-known/oauth-authorization-server")
    assert r.status_code == 200, r.text
    metadata: dict[str, Any] = r.json()
    return metadata


def _assert_mode(outcome: McpOutcome, wire: WireLog, mode_id: str) -> None:
    expected_version = MODES[mode_id][1]
    assert outcome.protocol_version == expected_version
    # Sign-in starts from a 401 on the first MCP request (MCP authorization: discovery).
    assert wire.to("/mcp")[0].status == 401
    methods = wire.mcp_methods()
    if mode_id == "legacy":
        assert "initialize" in methods and "server/discover" not in methods, methods
    else:
        assert "server/discover" in methods and "initialize" not in methods, methods
        # Stateless: authgate hands out no session.
        assert all("mcp-session-id" not in e.headers for e in wire.to("/mcp")), "client sent a session id"


# -- 1. DCR with each token endpoint auth method, in both eras --------------------------------


@pytest.mark.requirement(req.RFC7591_3_2_1_CLIENT_INFORMATION)
@pytest.mark.requirement(req.RFC6749_2_3_1_CLIENT_PASSWORD)
@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_PKCE_S256)
@pytest.mark.requirement(req.RFC9207_ISS)
@pytest.mark.parametrize("mode_id", list(MODES))
@pytest.mark.parametrize("auth_method", AUTH_METHODS)
async def test_sdk_client_registers_signs_in_and_calls_whoami(
    authgate: AuthgateServer, auth_method: str, mode_id: str
) -> None:
    metadata = await _as_metadata(authgate)
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata.get("authorization_response_iss_parameter_supported") is True
    assert auth_method in metadata["token_endpoint_auth_methods_supported"]

    storage = MemoryTokenStorage()
    hooks = BrowserHooks(authgate)
    wire = WireLog()
    provider = OAuthClientProvider(
        authgate.mcp_url,
        _client_metadata(auth_method, f"sdk-e2e-{auth_method}"),
        storage,
        redirect_handler=hooks.redirect_handler,
        callback_handler=hooks.callback_handler,
    )
    try:
        outcome = await connect_and_whoami(authgate, provider, MODES[mode_id][0], wire)
    finally:
        hooks.agent.close()

    # Registration: one DCR, and the response echoes the method asked for (RFC 7591 §3.2.1).
    registrations = wire.to("/register")
    assert [e.status for e in registrations] == [201]
    assert registrations[0].json()["token_endpoint_auth_method"] == auth_method
    client = storage.client_info
    assert client is not None
    assert client.token_endpoint_auth_method == auth_method
    assert (client.client_secret is None) == (auth_method == "none")

    # Authorization: PKCE S256, and an `iss` naming the issuer (RFC 9207 §2).
    assert len(hooks.authorization_urls) == 1
    query = parse_qs(urlsplit(hooks.authorization_urls[0]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert hooks.responses[0].iss == authgate.issuer

    # Token request authenticated the way the client registered (RFC 6749 §2.3.1).
    code_exchanges = [e for e in wire.to("/token") if e.form().get("grant_type") == "authorization_code"]
    assert [e.status for e in code_exchanges] == [200]
    sent = code_exchanges[0]
    if auth_method == "client_secret_basic":
        assert sent.headers.get("authorization", "").startswith("Basic ")
        assert "client_secret" not in sent.form()
    elif auth_method == "client_secret_post":
        assert sent.form().get("client_secret") == client.client_secret
        assert "authorization" not in sent.headers
    else:
        assert "client_secret" not in sent.form() and "authorization" not in sent.headers
    assert storage.tokens is not None and storage.tokens.access_token

    _assert_mode(outcome, wire, mode_id)
    assert "whoami" in outcome.tool_names
    assert outcome.whoami["username"] == "alice"
    assert outcome.whoami["subject"]
    assert outcome.whoami["client_id"] == client.client_id
    assert "mcp" in _scopes(outcome.whoami["scopes"])


# -- 2. CIMD: the client ID is a metadata document URL, no registration ----------------------


class ClientMetadataDocument:
    """A client ID metadata document served on loopback, counting fetches."""

    path = "/oauth/client-metadata.json"

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}{self.path}"
        self.fetches = 0
        self.document = {
            "client_id": self.url,
            "client_name": "sdk-e2e CIMD client",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        self.app = Starlette(routes=[Route(self.path, self._serve)])

    async def _serve(self, request: Request) -> JSONResponse:
        self.fetches += 1
        return JSONResponse(self.document)


@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_CIMD)
@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_PKCE_S256)
@pytest.mark.parametrize("mode_id", list(MODES))
async def test_sdk_client_uses_client_id_metadata_document_without_registering(
    authgate_factory: Callable[..., AuthgateServer],
    loopback_app: Callable[..., str],
    free_port: int,
    mode_id: str,
) -> None:
    doc = ClientMetadataDocument(free_port)
    loopback_app(doc.app, free_port)
    server = authgate_factory(AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP="true")
    metadata = await _as_metadata(server)
    assert metadata.get("client_id_metadata_document_supported") is True
    assert "none" in metadata["token_endpoint_auth_methods_supported"]

    storage = MemoryTokenStorage()
    hooks = BrowserHooks(server)
    wire = WireLog()
    provider = OAuthClientProvider(
        server.mcp_url,
        _client_metadata("none", "sdk-e2e CIMD client"),
        storage,
        redirect_handler=hooks.redirect_handler,
        callback_handler=hooks.callback_handler,
    )
    # The SDK accepts only https client_metadata_url values at construction; authgate under
    # test accepts loopback http (AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP), so set it afterwards.
    provider.context.client_metadata_url = doc.url
    try:
        outcome = await connect_and_whoami(server, provider, MODES[mode_id][0], wire)
    finally:
        hooks.agent.close()

    assert wire.to("/register") == [], "the client registered instead of using its document"
    assert storage.client_info is not None and storage.client_info.client_id == doc.url
    assert doc.fetches >= 1, "authgate never fetched the client metadata document"
    assert parse_qs(urlsplit(hooks.authorization_urls[0]).query)["client_id"] == [doc.url]
    assert hooks.responses[0].iss == server.issuer
    _assert_mode(outcome, wire, mode_id)
    assert outcome.whoami["username"] == "alice"
    assert outcome.whoami["client_id"] == doc.url


# -- 3. Durability across SIGKILL -------------------------------------------------------------


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def _register_public_client(http: httpx.AsyncClient, server: AuthgateServer) -> dict[str, Any]:
    r = await http.post(
        server.endpoint("register"),
        json={
            "client_name": "sdk-e2e durable client",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
    )
    assert r.status_code == 201, f"POST /register -> {r.status_code} {r.text}"
    body: dict[str, Any] = r.json()
    return body


async def _authorize_and_redeem(http: httpx.AsyncClient, server: AuthgateServer, client_id: str) -> dict[str, Any]:
    """Raw authorization code flow with PKCE: headless sign-in, then POST /token."""
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(16)
    url = (
        server.endpoint("authorize")
        + "?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT_URI,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "scope": "mcp",
                "resource": server.mcp_url,
            }
        )
    )
    with HeadlessUserAgent() as agent:
        answer = await agent.authorize_async(url, server.username, server.password)
    assert answer.code, f"authorization failed: {answer.location}"
    assert answer.state == state and answer.iss == server.issuer
    r = await http.post(
        server.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "code": answer.code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": client_id,
            "resource": server.mcp_url,
        },
    )
    assert r.status_code == 200, f"POST /token (authorization_code) -> {r.status_code} {r.text}"
    tokens: dict[str, Any] = r.json()
    assert tokens.get("access_token") and tokens.get("refresh_token"), tokens
    return tokens


async def _refresh(
    http: httpx.AsyncClient, server: AuthgateServer, client_id: str, refresh_token: str
) -> httpx.Response:
    return await http.post(
        server.endpoint("token"),
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
            "resource": server.mcp_url,
        },
    )


async def _whoami_with_token(
    server: AuthgateServer, registration: dict[str, Any], tokens: dict[str, Any], mode_id: str
) -> McpOutcome:
    """The SDK client with a pre-seeded TokenStorage; any re-authorization fails the test."""
    client_info = OAuthClientInformationFull.model_validate({k: v for k, v in registration.items() if k != "issuer"})
    storage = MemoryTokenStorage(OAuthToken.model_validate(tokens), client_info)
    provider = OAuthClientProvider(
        server.mcp_url,
        _client_metadata("none", "sdk-e2e durable client"),
        storage,
        redirect_handler=_refuse_redirect,
        callback_handler=_refuse_callback,
    )
    return await connect_and_whoami(server, provider, MODES[mode_id][0])


async def test_registration_survives_sigkill_right_after_201(authgate: AuthgateServer) -> None:
    async with httpx.AsyncClient(timeout=10.0) as http:
        registration = await _register_public_client(http, authgate)
        authgate.kill(signal.SIGKILL)
        authgate.restart()

        tokens = await _authorize_and_redeem(http, authgate, registration["client_id"])

    outcome = await _whoami_with_token(authgate, registration, tokens, "legacy")
    assert outcome.whoami["username"] == "alice"
    assert outcome.whoami["client_id"] == registration["client_id"]


@pytest.mark.requirement(req.OAUTH21_4_3_1_REFRESH_ROTATES)
@pytest.mark.requirement(req.RFC6749_5_2_INVALID_GRANT)
async def test_rotated_refresh_token_survives_sigkill_and_old_one_dies_after_grace(
    authgate_factory: Callable[..., AuthgateServer],
) -> None:
    server = authgate_factory(AUTHGATE_REFRESH_GRACE_SECONDS="1")
    async with httpx.AsyncClient(timeout=10.0) as http:
        registration = await _register_public_client(http, server)
        client_id = registration["client_id"]
        first = await _authorize_and_redeem(http, server, client_id)

        r = await _refresh(http, server, client_id, first["refresh_token"])
        server.kill(signal.SIGKILL)
        assert r.status_code == 200, f"POST /token (refresh_token) -> {r.status_code} {r.text}"
        second = r.json()
        assert second["refresh_token"] != first["refresh_token"], "public client refresh token not rotated"

        server.restart()
        await anyio.sleep(1.5)  # past AUTHGATE_REFRESH_GRACE_SECONDS=1 since the rotation

        r = await _refresh(http, server, client_id, second["refresh_token"])
        assert r.status_code == 200, f"the rotated refresh token was lost: {r.status_code} {r.text}"
        third = r.json()
        assert third["access_token"] and third["refresh_token"] != second["refresh_token"]

        outcome = await _whoami_with_token(server, registration, third, "2026-07-28")
        assert outcome.whoami["username"] == "alice"
        assert outcome.whoami["client_id"] == client_id

        r = await _refresh(http, server, client_id, first["refresh_token"])
        assert r.status_code == 400, f"old refresh token accepted: {r.status_code} {r.text}"
        assert r.json()["error"] == "invalid_grant"
