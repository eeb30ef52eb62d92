"""Issue 13: `whoami` in a stdio server behind `authgate serve -- authgate kb serve --stdio`
reports the signed-in caller, over /mcp with a real user token (sign-in and consent on
authgate's pages): with identity_headers its subject, client and user name; without, that
the gateway let an authenticated caller in and how to have it named. Run directly by a
local MCP client (no gateway), nobody signed in."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from authgate.mcpapp.whoami import stdio_caller
from gateway.conftest import user_token
from support import requirements as req
from support.authgate_server import AuthgateServer
from support.stdio_support import last_message, modern_headers, modern_request

LEGACY = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
VERSION = "2025-06-18"


def _gate(workdir: Path, **env: str) -> AuthgateServer:
    kb = ("kb", "serve", "--stdio", "--data-dir", str(workdir / "kb-data"))
    server = AuthgateServer(workdir, extra_env=env, serve_args=("--", sys.executable, "-m", "authgate", *kb))
    server.add_user()
    server.start()
    return server


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    server = _gate(tmp_path_factory.mktemp("whoami-named"), AUTHGATE_IDENTITY_HEADERS="true")
    try:
        yield server
    finally:
        server.stop()


def _message(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return response.json()


def _whoami(server: AuthgateServer, token: str) -> dict[str, Any]:
    """initialize, initialized, tools/call whoami over the gateway's /mcp; the tool's answer."""
    headers = {**LEGACY, "Authorization": f"Bearer {token}"}
    hello = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    with httpx.Client(timeout=60) as http:
        init = http.post(
            server.mcp_url, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
        )
        _message(init)
        headers |= {"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": VERSION}
        http.post(server.mcp_url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
        result = _message(http.post(server.mcp_url, headers=headers, json=call))["result"]
    assert not result.get("isError"), result
    return dict(json.loads(result["content"][0]["text"]))


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@pytest.mark.requirement(req.ISSUE13_WHOAMI_OVER_STDIO)
def test_whoami_behind_the_stdio_gateway_names_the_signed_in_user(named: AuthgateServer) -> None:
    token = user_token(named)
    claims = _claims(token)
    answer = _whoami(named, token)
    assert answer["authenticated"] is True, answer
    assert answer["username"] == named.username
    assert answer["subject"] == claims["sub"]
    assert answer["client_id"] == claims["client_id"]


@pytest.mark.requirement(req.ISSUE13_WHOAMI_OVER_STDIO)
def test_whoami_in_a_2026_07_28_stateless_call_names_the_signed_in_user(named: AuthgateServer) -> None:
    token = user_token(named)
    body = modern_request("tools/call", {"name": "whoami", "arguments": {}})
    answer = httpx.post(named.mcp_url, headers=modern_headers(token, body), json=body, timeout=60)
    result = last_message(answer)["result"]
    assert not result.get("isError"), result
    who = json.loads(result["content"][0]["text"])
    assert (who["authenticated"], who["username"], who["subject"]) == (True, named.username, _claims(token)["sub"])


@pytest.mark.requirement(req.ISSUE13_WHOAMI_OVER_STDIO)
def test_whoami_behind_the_stdio_gateway_without_identity_headers_says_how_to_name_the_caller(
    tmp_path: Path,
) -> None:
    server = _gate(tmp_path)
    try:
        answer = _whoami(server, user_token(server))
    finally:
        server.stop()
    assert answer["authenticated"] is True, answer
    assert answer["subject"] is None and answer["username"] is None  # not passed: the default
    assert "identity_headers = true" in answer["note"]


@pytest.mark.requirement(req.ISSUE13_BANNER_NAMES_UPSTREAM)
def test_the_start_banner_names_the_stdio_program_not_its_arguments(named: AuthgateServer) -> None:
    banner = next(line for line in named.logs().splitlines() if "MCP endpoint" in line)
    program = Path(sys.executable).name
    assert banner.endswith(f"protecting the stdio MCP server {program!r} (a process per caller)"), banner
    assert "kb-data" not in banner and " -m " not in banner  # its arguments may carry secrets


def test_whoami_over_stdio_without_the_gateway_is_not_signed_in() -> None:
    assert stdio_caller({}) == {"authenticated": False}
    # the caller's variables alone, without the gateway's mark, name nobody
    assert stdio_caller({"AUTHGATE_CALLER_SUBJECT": "someone"}) == {"authenticated": False}
