"""The audit trail of a real `authgate serve`: allowed and refused calls are recorded with who,
what, the decision and the upstream's status and latency; `authgate audit` reads them; they
survive a restart (a refusal even a SIGKILL right after its 403); no token and no argument
text is stored unless `audit_arguments` asks for arguments."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from support.authgate_server import AuthgateServer

SECRET_ARGUMENT = "secret-argument-text-4711"
POLICY_ENV = {"AUTHGATE_TOOL_SCOPES": json.dumps({"list_knowledge_bases": ["kb.admin"]})}


def _token(server: AuthgateServer, scope: str = "mcp") -> tuple[str, str]:
    return server.machine_token(scope, name="audit-test")


async def _use_tools(server: AuthgateServer, token: str) -> None:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        with anyio.fail_after(60):
            async with Client(streamable_http_client(server.mcp_url, http_client=http), mode="legacy") as client:
                await client.call_tool("list_data_sources", {"knowledge_base_id": SECRET_ARGUMENT})
                refused = await _raw_call(server, token, "list_knowledge_bases")
                assert refused.status_code == 403


async def _raw_call(server: AuthgateServer, token: str, tool: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            server.mcp_url,
            json={
                "jsonrpc": "2.0",
                "id": 9,
                "method": "tools/call",
                "params": {"name": tool, "arguments": {"query": SECRET_ARGUMENT}},
            },
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        )


def _audit(server: AuthgateServer, *args: str) -> list[dict[str, Any]]:
    done = server.cli("audit", "--json", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _stored_bytes(server: AuthgateServer) -> bytes:
    return b"".join(p.read_bytes() for p in Path(server.data_dir).iterdir() if p.name.startswith("authgate.db"))


async def test_allowed_and_refused_calls_are_audited_and_survive_a_restart(
    authgate_factory: Callable[..., AuthgateServer],
) -> None:
    server = authgate_factory(**POLICY_ENV)
    token, client_id = _token(server)
    await _use_tools(server, token)
    server.restart()  # graceful: whatever was queued is written first

    events = _audit(server, "--subject", client_id)
    calls = [e for e in events if e["method"] == "tools/call"]
    allowed = next(e for e in calls if e["decision"] == "allowed")
    refused = next(e for e in calls if e["decision"] == "refused")
    assert (allowed["target"], allowed["status"], allowed["client_id"]) == ("list_data_sources", 200, client_id)
    assert allowed["latency_ms"] is not None and allowed["latency_ms"] >= 0
    assert refused["target"] == "list_knowledge_bases" and refused["status"] is None
    assert refused["reason"] == "insufficient_scope: needs kb.admin"
    assert any(e["method"] == "initialize" and e["decision"] == "allowed" for e in events)
    assert [e["target"] for e in _audit(server, "--tool", "list_knowledge_bases")] == ["list_knowledge_bases"]

    text = server.cli("audit", "--since", "1h").stdout
    header, *rows = text.splitlines()
    assert header.split()[:4] == ["TIME", "DECISION", "METHOD", "TARGET"], header
    assert any(row.split()[1:4] == ["refused", "tools/call", "list_knowledge_bases"] for row in rows), text

    stored = _stored_bytes(server) + json.dumps(events).encode() + text.encode()
    assert token.encode() not in stored and token.split(".")[2].encode() not in stored
    assert SECRET_ARGUMENT.encode() not in stored
    assert all(e["arguments"] is None for e in events)


async def test_a_refusal_is_durable_before_its_403_even_across_sigkill(
    authgate_factory: Callable[..., AuthgateServer],
) -> None:
    server = authgate_factory(**POLICY_ENV)
    token, _client_id = _token(server)
    r = await _raw_call(server, token, "list_knowledge_bases")
    server.kill(signal.SIGKILL)
    assert r.status_code == 403
    server.start()
    assert [e["decision"] for e in _audit(server, "--tool", "list_knowledge_bases")] == ["refused"]


async def test_arguments_are_recorded_when_configured(authgate_factory: Callable[..., AuthgateServer]) -> None:
    server = authgate_factory(AUTHGATE_AUDIT_ARGUMENTS="true", **POLICY_ENV)
    token, _client_id = _token(server)
    await _raw_call(server, token, "list_knowledge_bases")
    [event] = _audit(server, "--tool", "list_knowledge_bases")
    assert json.loads(event["arguments"]) == {"query": SECRET_ARGUMENT}
