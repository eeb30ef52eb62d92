"""Seed 002 end to end (docs/seeds/002-per-tool-scopes.md, whose TOML block is the config):
the `mcp` 2.3.0 SDK client signs in with the baseline read scopes, is refused the write tool
with the 403 scope challenge, steps up through a consent page that lists only the new scope,
and the retried call succeeds with a token that still holds the read scopes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult
from mcp_types import TextContent
from policy_servers import Protected, seed_app, seed_config, serve_protected
from test_sdk_client import MODES, REDIRECT_URI, MemoryTokenStorage, WireLog

from support import requirements as req
from support.headless import AuthorizationResponse, HeadlessUserAgent, Page
from support.sdk_oauth import public_client

FLOW_TIMEOUT = 90.0


class RecordingAgent(HeadlessUserAgent):
    """The headless browser, keeping every authgate page it was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.pages: list[Page] = []

    def _settle(self, response: httpx.Response) -> Page | AuthorizationResponse:
        step = super()._settle(response)
        if isinstance(step, Page):
            self.pages.append(step)
        return step

    @property
    def consent_pages(self) -> list[Page]:
        return [p for p in self.pages if p.consent_form is not None]


@dataclass
class Hooks:
    server: Protected
    agent: RecordingAgent = field(default_factory=RecordingAgent)
    responses: list[AuthorizationResponse] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    async def redirect_handler(self, url: str) -> None:
        self.urls.append(url)
        self.responses.append(await self.agent.authorize_async(url, "admin", self.server.admin_password))

    async def callback_handler(self) -> AuthorizationCodeResult:
        r = self.responses[-1]
        assert r.code, f"authorization failed: {r.location}"
        return AuthorizationCodeResult(code=r.code, state=r.state, iss=r.iss)


def _text(result: Any) -> str:
    assert not result.is_error, result.content
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.fixture
def seed_server(tmp_path: Path) -> Any:
    with serve_protected(seed_app(), tmp_path / "data", config_file=seed_config(tmp_path)) as server:
        yield server


def test_prm_keeps_the_baseline_and_publishes_the_tool_scope_map(seed_server: Protected) -> None:
    prm = httpx.get(f"{seed_server.url}/.well-known/oauth-protected-resource/mcp").json()
    assert prm["scopes_supported"] == ["search.read", "memory.read"]
    assert prm["authgate_scopes"]["tools"]["docs.create"] == ["docs.write"]
    offered = httpx.get(f"{seed_server.url}/.well-known/oauth-authorization-server").json()["scopes_supported"]
    assert offered == ["search.read", "memory.read", "docs.write", "memory.write", "memory.delete", "offline_access"]


@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_SCOPE_CHALLENGE)
@pytest.mark.requirement(req.RFC6750_3_1_INSUFFICIENT_SCOPE)
@pytest.mark.parametrize("mode_id", list(MODES))
async def test_a_read_token_steps_up_to_the_write_tool_through_incremental_consent(
    seed_server: Protected, mode_id: str
) -> None:
    storage, hooks, wire = MemoryTokenStorage(), Hooks(seed_server), WireLog()
    wire_challenges: list[str] = []

    async def challenges(response: httpx2.Response) -> None:
        if response.status_code == 403:
            wire_challenges.append(response.headers["www-authenticate"])

    provider = public_client(
        seed_server.mcp_url, "seed-002", REDIRECT_URI, storage, hooks.redirect_handler, hooks.callback_handler
    )
    try:
        async with httpx2.AsyncClient(
            auth=provider, timeout=httpx2.Timeout(30.0), event_hooks={"response": [wire.on_response, challenges]}
        ) as http:
            with anyio.fail_after(FLOW_TIMEOUT):
                async with Client(
                    streamable_http_client(seed_server.mcp_url, http_client=http), mode=MODES[mode_id][0]
                ) as client:
                    listed = [t.name for t in (await client.list_tools()).tools]
                    searched = _text(await client.call_tool("codebase.search", {"text": "q"}))
                    assert storage.tokens is not None
                    first_scopes = set((storage.tokens.scope or "").split())
                    created = _text(await client.call_tool("docs.create", {"text": "hello"}))
                    again = _text(await client.call_tool("local_memory_search", {"text": "q"}))
                    version = client.protocol_version
    finally:
        hooks.agent.close()

    assert version == MODES[mode_id][1]
    assert sorted(listed) == ["codebase.search", "local_memory_search"]  # filtered to the baseline
    assert (searched, created, again) == ("codebase.search: done", "docs.create: done", "local_memory_search: done")
    assert first_scopes - {"offline_access"} == {"search.read", "memory.read"}

    # exactly one refusal, on the write tool, naming what it needs and what was held
    refused = [e for e in wire.to("/mcp") if e.status == 403]
    assert len(refused) == 1 and refused[0].json()["params"]["name"] == "docs.create"
    challenged = wire_challenges[0]
    assert 'error="insufficient_scope"' in challenged
    assert 'scope="docs.write search.read memory.read"' in challenged

    # two authorizations: the first asked for the baseline, the step-up for the union
    assert len(hooks.urls) == 2
    step_up_scope = set(httpx.URL(hooks.urls[1]).params["scope"].split())
    assert {"docs.write", "search.read", "memory.read"} <= step_up_scope
    first, second = hooks.agent.consent_pages
    assert "search.read" in first.text and "memory.read" in first.text
    assert "docs.write" in second.text and "Tools: docs.create" in second.text
    listed_scopes = second.text.split("It will be able to:")[1].split("Already allowed")[0]
    assert "search.read" not in listed_scopes and "memory.read" not in listed_scopes
    already = second.text.split("Already allowed:")[1]
    assert "search.read" in already and "memory.read" in already

    # the new token still holds the read scopes
    assert storage.tokens is not None
    assert {"docs.write", "search.read", "memory.read"} <= set((storage.tokens.scope or "").split())
    claims = json.loads(_payload(storage.tokens.access_token))
    assert {"docs.write", "search.read", "memory.read"} <= set(claims["scope"].split())


def _payload(jwt: str) -> str:
    import base64

    body = jwt.split(".")[1]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
