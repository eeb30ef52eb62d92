"""Issue 15 done-when 2 through real processes: a tool that needs the caller's connection to a
third-party provider (npm oidc-provider), called by the `mcp` SDK client.

* Library mode (`authgate.protect` around an SDK MCPServer, uvicorn on loopback): the tool's one
  line `await authgate.connection_token(ctx, "idp")`. At 2026-07-28 the client gets an
  InputRequiredResult whose elicitation (url mode) its callback opens in the test's browser —
  sign in at authgate, Continue, the provider, the callback — and the driver's retry succeeds;
  at 2025-11-25 the call fails with -32042, the browser connects, the retried call succeeds; a
  client without `elicitation.url` gets a tool error with the link.
* Gateway mode (`authgate serve --upstream`, the upstream an SDK MCPServer): a tool configured
  in `connection_tools` gets the caller's token in X-Authgate-Connection-idp (a client's copy
  never arrives); a tool that signals (-32012) at run time is asked for the same way; an
  upstream tool's own input_required round trip (form elicitation) passes untouched.

The tools prove the token works: they call the provider's userinfo with it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import anyio
import anyio.to_thread
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult

import authgate
from authgate.connections.elicitation import signal_error
from support import requirements as req
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.flow_load import signed_in_tokens
from support.headless import AuthorizationResponse, HeadlessUserAgent, Page
from support.idp_peers import IdpUserAgent, OidcProvider, ProviderShape, require_oidc_provider
from support.ports import free_port

SECRET = "connect-elicitation-" + "q" * 32
ACCOUNT = "alice-at-idp"  # alice's account at the provider
WAIT = 40.0
OFF = TransportSecuritySettings(enable_dns_rebinding_protection=False)


# -- the provider, the person's browser, the client --------------------------------------------
@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    require_oidc_provider()
    idp = OidcProvider(tmp_path_factory.mktemp("provider"), ProviderShape(port=free_port(), default_resource=None))
    idp.start()
    yield idp
    idp.stop()


def _settings(provider: OidcProvider) -> dict[str, str]:
    providers = {"idp": {"issuer": provider.issuer, "title": "Test IdP", "scopes": ["openid", "profile"]}}
    return {
        "AUTHGATE_SECRET_KEY": SECRET,
        "AUTHGATE_CONNECTION_PROVIDERS": json.dumps(providers),
        "AUTHGATE_OUTBOUND_ALLOW_LOOPBACK_HTTP": "true",
    }


def connect_in_browser(server: AuthgateServer, link: str) -> None:
    """The person opens the connect link: signs in at authgate, continues, signs in at the
    provider, and the provider's answer reaches authgate's callback."""
    assert link.startswith(f"{server.url}/connect/"), link
    with HeadlessUserAgent() as agent:
        page = agent.open(link)
        assert isinstance(page, Page) and page.login_form is not None, page
        page = agent.submit(page.login_form, username=server.username, password=server.password)
        assert isinstance(page, Page) and page.consent_form is not None, page
        leaving = agent.submit(page.consent_form, decision="connect")
        assert isinstance(leaving, AuthorizationResponse) and leaving.status == 303, leaving
        idp = IdpUserAgent(ACCOUNT)
        try:
            params = idp.authorize(leaving.location)
        finally:
            idp.close()
        done = agent.http.get(f"{server.url}/connect/callback?{urlencode(params)}")
        assert done.status_code == 200 and "Connected to" in done.text, done.text


def alice_token(server: AuthgateServer) -> str:
    return str(signed_in_tokens(server, "elicitation-test", resource=server.mcp_url)["access_token"])


class Person:
    """The client's elicitation callback: a URL elicitation opens the link in the browser; a form
    elicitation (the upstream's own) is answered with a name."""

    def __init__(self, server: AuthgateServer) -> None:
        self.server = server
        self.links: list[str] = []
        self.forms: list[str] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        if getattr(params, "mode", None) == "url":
            self.links.append(params.url)
            await anyio.to_thread.run_sync(connect_in_browser, self.server, params.url)
            return ElicitResult(action="accept")
        self.forms.append(params.message)
        return ElicitResult(action="accept", content={"name": "Ada"})


@asynccontextmanager
async def mcp_client(server: AuthgateServer, token: str, mode: str, person: Person | None) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0)) as http:
        transport = streamable_http_client(server.mcp_url, http_client=http)
        async with Client(transport, mode=mode, elicitation_callback=person) as client:
            yield client


def _text(result: CallToolResult) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def _revoke(server: AuthgateServer) -> None:
    done = server.cli("connections", "revoke", "--user", server.username, "--provider", "idp")
    assert done.returncode in (0, 1), done.stderr


async def _userinfo(provider: OidcProvider, token: str | None) -> str:
    if not token:
        return "no token"
    async with httpx.AsyncClient(timeout=10.0) as http:
        r = await http.get(provider.url("/me"), headers={"Authorization": f"Bearer {token}"})
    return f"sub={r.json().get('sub')}" if r.status_code == 200 else f"userinfo {r.status_code}"


# -- library mode ----------------------------------------------------------------------------------
def library_app(provider: OidcProvider) -> Any:
    mcp = MCPServer("connect-tests")

    @mcp.tool()
    async def idp_whoami(ctx: Context) -> str:
        token = await authgate.connection_token(ctx, "idp")  # the one line
        return await _userinfo(provider, token)

    return mcp.streamable_http_app(transport_security=OFF)


@pytest.fixture(scope="module")
def library(provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    server = AuthgateServer(tmp_path_factory.mktemp("library"), extra_env=_settings(provider))
    server.add_user()
    providers = json.loads(_settings(provider)["AUTHGATE_CONNECTION_PROVIDERS"])
    app = authgate.protect(
        library_app(provider),
        public_url=server.url,
        data_dir=server.data_dir,
        secret_key=SECRET,
        connection_providers=providers,
        outbound_allow_loopback_http=True,
    )
    with serve_asgi_in_thread(app, server.port, lifespan="on"):
        yield server


@pytest.mark.requirement(req.ISSUE15_URL_ELICITATION_ROUND_TRIP)
@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28, 2025-11-25
def test_a_library_tool_asks_for_the_connection_and_the_retry_succeeds(library: AuthgateServer, mode: str) -> None:
    _revoke(library)
    token, person = alice_token(library), Person(library)

    async def main() -> tuple[str, str]:
        with anyio.fail_after(WAIT):
            async with mcp_client(library, token, mode, person) as client:
                version = client.session.protocol_version if hasattr(client.session, "protocol_version") else ""
                if mode == "auto":
                    return str(version), _text(await client.call_tool("idp_whoami"))
                with pytest.raises(MCPError) as asked:
                    await client.call_tool("idp_whoami")
                assert asked.value.code == -32042, asked.value
                [elicitation] = asked.value.data["elicitations"]
                assert elicitation["mode"] == "url" and elicitation["elicitationId"]
                await anyio.to_thread.run_sync(connect_in_browser, library, elicitation["url"])
                return str(version), _text(await client.call_tool("idp_whoami"))

    version, answer = anyio.run(main)
    assert answer == f"sub={ACCOUNT}", answer
    if mode == "auto":
        assert len(person.links) == 1, person.links  # asked once, in the InputRequiredResult


@pytest.mark.requirement(req.ISSUE15_TOOL_ERROR_WITHOUT_URL_ELICITATION)
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_client_without_url_elicitation_gets_a_tool_error_naming_the_connect_page(
    library: AuthgateServer, mode: str
) -> None:
    _revoke(library)
    token = alice_token(library)

    async def main() -> CallToolResult:
        with anyio.fail_after(WAIT):
            async with mcp_client(library, token, mode, None) as client:
                return await client.call_tool("idp_whoami")

    result = anyio.run(main)
    assert result.is_error and f"{library.url}/connect/" in _text(result), result


# -- gateway mode ----------------------------------------------------------------------------------
def upstream_app(provider: OidcProvider) -> Any:
    mcp = MCPServer("connect-upstream")

    def header(ctx: Context) -> str | None:
        request = ctx.request_context.request
        return request.headers.get("x-authgate-connection-idp") if request is not None else None

    @mcp.tool(description="configured in connection_tools: the caller's token comes in the header")
    async def configured_whoami(ctx: Context) -> str:
        return await _userinfo(provider, header(ctx))

    @mcp.tool(description="asks for the connection at run time (the signal) when no token came")
    async def signalled_whoami(ctx: Context) -> str:
        token = header(ctx)
        if token is None:
            error = signal_error("idp")
            raise MCPError(error["code"], error["message"], error["data"])
        return await _userinfo(provider, token)

    @mcp.tool(description="what a client's own X-Authgate-Connection-idp header turns into")
    def seen_header(ctx: Context) -> str:
        return header(ctx) or "none"

    @mcp.tool(description="the upstream's own input_required round trip (a form elicitation)")
    def ask_name(ctx: Context) -> CallToolResult | InputRequiredResult:
        answer = (ctx.input_responses or {}).get("user_name")
        content = getattr(answer, "content", None)
        if not isinstance(content, dict):
            schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
            form = ElicitRequest(params=ElicitRequestFormParams(message="What is your name?", requested_schema=schema))
            return InputRequiredResult(input_requests={"user_name": form})
        return CallToolResult(content=[{"type": "text", "text": f"hello {content['name']}"}])  # type: ignore[list-item]

    return mcp.streamable_http_app(transport_security=OFF)


@pytest.fixture(scope="module")
def gateway(provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    with serve_asgi_in_thread(upstream_app(provider), lifespan="on") as upstream:
        env = {
            **_settings(provider),
            "AUTHGATE_UPSTREAM": upstream + "/mcp",
            "AUTHGATE_UPSTREAM_OAUTH": "off",
            "AUTHGATE_CONNECTION_TOOLS": json.dumps({"configured_whoami": "idp"}),
        }
        server = AuthgateServer(tmp_path_factory.mktemp("gateway"), extra_env=env)
        server.add_user()
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.mark.requirement(req.ISSUE15_UPSTREAM_INPUT_REQUIRED_PASSES)
def test_through_the_gateway_the_upstreams_own_input_required_passes_beside_authgates(gateway: AuthgateServer) -> None:
    _revoke(gateway)
    token, person = alice_token(gateway), Person(gateway)

    async def main() -> tuple[str, str]:
        with anyio.fail_after(WAIT):
            async with mcp_client(gateway, token, "auto", person) as client:
                return _text(await client.call_tool("ask_name")), _text(await client.call_tool("configured_whoami"))

    named, whoami = anyio.run(main)
    assert named == "hello Ada" and person.forms == ["What is your name?"]
    assert whoami == f"sub={ACCOUNT}" and len(person.links) == 1


@pytest.mark.requirement(req.ISSUE15_URL_ELICITATION_ROUND_TRIP)
def test_through_the_gateway_an_upstreams_signal_asks_and_the_retry_carries_the_token(gateway: AuthgateServer) -> None:
    _revoke(gateway)
    token = alice_token(gateway)
    forged = {"X-Authgate-Connection-idp": "forged-by-the-client"}

    async def main() -> tuple[str, str]:
        with anyio.fail_after(WAIT):
            async with mcp_client(gateway, token, "legacy", Person(gateway)) as client:
                with pytest.raises(MCPError) as asked:
                    await client.call_tool("signalled_whoami")
                assert asked.value.code == -32042, asked.value
                url = asked.value.data["elicitations"][0]["url"]
                await anyio.to_thread.run_sync(connect_in_browser, gateway, url)
                return _text(await client.call_tool("signalled_whoami")), ""

    whoami, _ = anyio.run(main)
    assert whoami == f"sub={ACCOUNT}", whoami

    async def header_seen() -> str:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}", **forged}) as http:
            async with Client(streamable_http_client(gateway.mcp_url, http_client=http), mode="auto") as client:
                return _text(await client.call_tool("seen_header"))

    assert anyio.run(header_seen) == "none"  # a client's copy of the header never reaches the upstream
